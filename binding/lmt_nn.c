/*
 * lmt_nn.c — raw bindings of the core's neural-network ops, in the module table as `_nn`
 * (core._nn.conv2d, ...). lua/moontorch/nn/functional.lua puts PyTorch's signatures on top
 * (positional arguments, option tables, defaults, legacy arguments); here every argument
 * arrives in PyTorch's positional order, fully resolved, so that argument numbers in errors are
 * the ones the user of F.<name> sees.
 *
 * Lua's 1-based conventions are mapped here, uniformly: class targets, ignore_index,
 * Embedding ids and padding_idx shift by -1 on the way in (so ignore_index = -100 still means
 * "a target of -100"), and max_pool2d's indices shift by +1 on the way out.
 */
#include "lmt.h"

#include <stdint.h>
#include <string.h>

/* Every op reports errors as "moontorch.nn.functional.<name>: ...". */
#define FN(name) "nn.functional." name

/* ---- arguments ---------------------------------------------------------------------------- */

static mt_tensor *opt_tensor(lua_State *L, int arg, const char *fname) {
  if (lua_isnoneornil(L, arg)) return NULL;
  return lmt_check(L, arg, fname);
}

static double opt_number(lua_State *L, int arg, double def, const char *fname, const char *what) {
  if (lua_isnoneornil(L, arg)) return def;
  if (lua_type(L, arg) != LUA_TNUMBER)
    lmt_argerror(L, arg, fname, "%s must be a number, got %s", what, luaL_typename(L, arg));
  return lua_tonumber(L, arg);
}

static int64_t opt_int(lua_State *L, int arg, int64_t def, const char *fname, const char *what) {
  if (lua_isnoneornil(L, arg)) return def;
  return lmt_checkint(L, arg, fname, what);
}

/* An integer element of a size table (element i, 1-based), or `def` where it is nil / false. */
static int64_t table_int(lua_State *L, int arg, int i, int64_t def, bool allow_nil, const char *fname,
                         const char *what) {
  lua_rawgeti(L, arg, i);
  int64_t v = def;
  if (!(allow_nil && (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))))) {
    int isint = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
    if (!isint) lmt_argerror(L, arg, fname, "%s must hold integers", what);
  }
  lua_pop(L, 1);
  return v;
}

/* An int n (-> {n, n}) or a table {a, b}; nil gives def (when def is not NULL). With
 * allow_nil, a table's nil / false entries become `fill`'s entries (adaptive pooling's "keep
 * this size"); the table is then read by position, holes included. */
static void read_pair(lua_State *L, int arg, int64_t out[2], const int64_t *def, const char *fname,
                      const char *what, bool allow_nil, const int64_t *fill) {
  if (lua_isnoneornil(L, arg) && def) {
    out[0] = def[0], out[1] = def[1];
    return;
  }
  if (lua_type(L, arg) == LUA_TTABLE && !lmt_test(L, arg)) {
    size_t len = lua_rawlen(L, arg);
    if (len > 2 || (!allow_nil && len != 2))
      lmt_argerror(L, arg, fname, "%s must be an integer or a list of 2 integers, got a list of %d", what, (int)len);
    for (int i = 0; i < 2; i++) out[i] = table_int(L, arg, i + 1, fill ? fill[i] : 0, allow_nil, fname, what);
    return;
  }
  if (lua_type(L, arg) != LUA_TNUMBER)
    lmt_argerror(L, arg, fname, "%s must be an integer or a list of 2 integers, got %s", what, luaL_typename(L, arg));
  out[0] = out[1] = lmt_checkint(L, arg, fname, what);
}

/* conv1d's int arguments: an int n or a table {n}. */
static int64_t read_single(lua_State *L, int arg, int64_t def, const char *fname, const char *what) {
  if (lua_isnoneornil(L, arg)) return def;
  if (lua_type(L, arg) == LUA_TTABLE && !lmt_test(L, arg)) {
    if (lua_rawlen(L, arg) != 1)
      lmt_argerror(L, arg, fname, "%s must be an integer or a list of 1 integer, got a list of %d", what,
                   (int)lua_rawlen(L, arg));
    return table_int(L, arg, 1, 0, false, fname, what);
  }
  return lmt_checkint(L, arg, fname, what);
}

static mt_reduction read_reduction(lua_State *L, int arg, const char *fname) {
  if (lua_isnoneornil(L, arg)) return MT_REDUCTION_MEAN;
  const char *s = lua_type(L, arg) == LUA_TSTRING ? lua_tostring(L, arg) : NULL;
  if (s && strcmp(s, "mean") == 0) return MT_REDUCTION_MEAN;
  if (s && strcmp(s, "sum") == 0) return MT_REDUCTION_SUM;
  if (s && strcmp(s, "none") == 0) return MT_REDUCTION_NONE;
  lmt_argerror(L, arg, fname, "reduction must be \"mean\", \"sum\" or \"none\", got %s",
               s ? lua_tostring(L, arg) : luaL_typename(L, arg));
  return MT_REDUCTION_MEAN;
}

/* Lua's 1-based ids or class targets as a fresh 0-based int64 tensor pushed on the stack: each
 * value must lie in 1..limit or equal `keep` (ignore_index; kept, shifted like the others).
 * Checked here, so that a bad value is reported as the user wrote it. */
static mt_tensor *shifted_ids(lua_State *L, int arg, int64_t limit, const int64_t *keep, const char *what,
                              const char *fname) {
  mt_tensor *src = lmt_test(L, arg);
  mt_tensor **out = lmt_slot(L);
  if (src) {
    if (mt_dtype_info(src->dtype)->is_float || src->dtype == MT_BOOL)
      lmt_argerror(L, arg, fname, "%ss must have an integer dtype, got %s", what, mt_dtype_info(src->dtype)->name);
    mt_status st = mt_empty(out, MT_INT64, src->ndim, src->sizes);
    if (st == MT_OK) st = mt_copy_(*out, src);
    lmt_check_status(L, st, fname);
  } else if (lua_type(L, arg) == LUA_TTABLE) { /* a flat list of integers */
    int64_t n = (int64_t)lua_rawlen(L, arg);
    lmt_check_status(L, mt_empty(out, MT_INT64, 1, &n), fname);
    int64_t *p = (int64_t *)mt_data(*out);
    for (int64_t i = 0; i < n; i++) p[i] = table_int(L, arg, (int)(i + 1), 0, false, fname, what);
  } else {
    lmt_typeerror(L, arg, fname, "tensor of integers");
  }
  int64_t *p = (int64_t *)mt_data(*out), n = mt_numel(*out);
  for (int64_t i = 0; i < n; i++) {
    int64_t v = p[i];
    if ((v < 1 || v > limit) && !(keep && v == *keep)) {
      if (v == 0) lmt_error(L, fname, "%s 0 is invalid (%ss are 1-based)", what, what);
      lmt_error(L, fname, "%s %lld is out of range 1..%lld", what, (long long)v, (long long)limit);
    }
    p[i] = v - 1;
  }
  return *out;
}

/* ignore_index, shifted with the targets: any integer but the smallest (which cannot shift). */
static int64_t read_ignore_index(lua_State *L, int arg, const char *fname) {
  int64_t v = opt_int(L, arg, -100, fname, "ignore_index");
  if (v == INT64_MIN) lmt_argerror(L, arg, fname, "ignore_index %lld is out of range", (long long)v);
  return v;
}

/* ---- layers ------------------------------------------------------------------------------- */

/* linear(input, weight[, bias]) */
static int nn_linear(lua_State *L) {
  static const char *const NAME = FN("linear");
  mt_tensor *x = lmt_check(L, 1, NAME), *w = lmt_check(L, 2, NAME), *b = opt_tensor(L, 3, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_linear(out, x, w, b), NAME);
  return 1;
}

/* conv1d(input, weight, bias, stride, padding, dilation, groups): numeric padding only */
static int nn_conv1d(lua_State *L) {
  static const char *const NAME = FN("conv1d");
  mt_tensor *x = lmt_check(L, 1, NAME), *w = lmt_check(L, 2, NAME), *b = opt_tensor(L, 3, NAME);
  int64_t stride = read_single(L, 4, 1, NAME, "stride"), padding = read_single(L, 5, 0, NAME, "padding");
  int64_t dilation = read_single(L, 6, 1, NAME, "dilation"), groups = opt_int(L, 7, 1, NAME, "groups");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_conv1d(out, x, w, b, stride, padding, dilation, groups), NAME);
  return 1;
}

/* conv2d(input, weight, bias, stride, padding, dilation, groups) */
static int nn_conv2d(lua_State *L) {
  static const char *const NAME = FN("conv2d");
  static const int64_t ONE[2] = {1, 1}, ZERO[2] = {0, 0};
  mt_tensor *x = lmt_check(L, 1, NAME), *w = lmt_check(L, 2, NAME), *b = opt_tensor(L, 3, NAME);
  int64_t stride[2], padding[2], dilation[2];
  read_pair(L, 4, stride, ONE, NAME, "stride", false, NULL);
  read_pair(L, 5, padding, ZERO, NAME, "padding", false, NULL);
  read_pair(L, 6, dilation, ONE, NAME, "dilation", false, NULL);
  int64_t groups = opt_int(L, 7, 1, NAME, "groups");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_conv2d(out, x, w, b, stride, padding, dilation, groups), NAME);
  return 1;
}

/* max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
 * stride nil means kernel_size; with return_indices, also the 1-based flat positions of the
 * maxima within each input plane. */
static int nn_max_pool2d(lua_State *L) {
  static const char *const NAME = FN("max_pool2d");
  static const int64_t ONE[2] = {1, 1}, ZERO[2] = {0, 0};
  mt_tensor *x = lmt_check(L, 1, NAME);
  int64_t kernel[2], stride[2], padding[2], dilation[2];
  read_pair(L, 2, kernel, NULL, NAME, "kernel_size", false, NULL);
  read_pair(L, 3, stride, kernel, NAME, "stride", false, NULL);
  read_pair(L, 4, padding, ZERO, NAME, "padding", false, NULL);
  read_pair(L, 5, dilation, ONE, NAME, "dilation", false, NULL);
  bool ceil_mode = lmt_optbool(L, 6, false, NAME), with_indices = lmt_optbool(L, 7, false, NAME);
  lua_settop(L, 7);
  mt_tensor **out = lmt_slot(L), **indices = with_indices ? lmt_slot(L) : NULL;
  lmt_check_status(L, mt_max_pool2d(out, indices, x, kernel, stride, padding, dilation, ceil_mode), NAME);
  if (!with_indices) return 1;
  lmt_index_out_of(L, indices, *out, NAME);
  return 2;
}

/* avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad) */
static int nn_avg_pool2d(lua_State *L) {
  static const char *const NAME = FN("avg_pool2d");
  static const int64_t ZERO[2] = {0, 0};
  mt_tensor *x = lmt_check(L, 1, NAME);
  int64_t kernel[2], stride[2], padding[2];
  read_pair(L, 2, kernel, NULL, NAME, "kernel_size", false, NULL);
  read_pair(L, 3, stride, kernel, NAME, "stride", false, NULL);
  read_pair(L, 4, padding, ZERO, NAME, "padding", false, NULL);
  bool ceil_mode = lmt_optbool(L, 5, false, NAME), count_include_pad = lmt_optbool(L, 6, true, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_avg_pool2d(out, x, kernel, stride, padding, ceil_mode, count_include_pad), NAME);
  return 1;
}

/* adaptive_avg_pool2d(input, output_size): an int or {h, w}, where nil keeps the input's size */
static int nn_adaptive_avg_pool2d(lua_State *L) {
  static const char *const NAME = FN("adaptive_avg_pool2d");
  mt_tensor *x = lmt_check(L, 1, NAME);
  int64_t keep[2] = {0, 0}, size[2];
  if (x->ndim >= 2) keep[0] = x->sizes[x->ndim - 2], keep[1] = x->sizes[x->ndim - 1];
  read_pair(L, 2, size, NULL, NAME, "output_size", true, keep);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_adaptive_avg_pool2d(out, x, size), NAME);
  return 1;
}

/* batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps) */
static int nn_batch_norm(lua_State *L) {
  static const char *const NAME = FN("batch_norm");
  mt_tensor *x = lmt_check(L, 1, NAME), *rm = opt_tensor(L, 2, NAME), *rv = opt_tensor(L, 3, NAME);
  mt_tensor *w = opt_tensor(L, 4, NAME), *b = opt_tensor(L, 5, NAME);
  bool training = lmt_optbool(L, 6, false, NAME);
  double momentum = opt_number(L, 7, 0.1, NAME, "momentum"), eps = opt_number(L, 8, 1e-5, NAME, "eps");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_batch_norm(out, x, w, b, rm, rv, training, momentum, eps), NAME);
  return 1;
}

/* layer_norm(input, normalized_shape, weight, bias, eps): the shape is an int or a list */
static int nn_layer_norm(lua_State *L) {
  static const char *const NAME = FN("layer_norm");
  mt_tensor *x = lmt_check(L, 1, NAME);
  int64_t shape[MT_MAX_DIMS];
  int nshape = 0;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    shape[0] = lmt_checkint(L, 2, NAME, "normalized_shape");
    nshape = 1;
  } else if (lua_type(L, 2) == LUA_TTABLE && !lmt_test(L, 2)) {
    size_t len = lua_rawlen(L, 2);
    if (len < 1 || len > MT_MAX_DIMS)
      lmt_argerror(L, 2, NAME, "normalized_shape must list 1 to %d sizes, got %d", MT_MAX_DIMS, (int)len);
    for (size_t i = 0; i < len; i++) shape[i] = table_int(L, 2, (int)i + 1, 0, false, NAME, "normalized_shape");
    nshape = (int)len;
  } else {
    lmt_typeerror(L, 2, NAME, "integer or list of integers (normalized_shape)");
  }
  mt_tensor *w = opt_tensor(L, 3, NAME), *b = opt_tensor(L, 4, NAME);
  double eps = opt_number(L, 5, 1e-5, NAME, "eps");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_layer_norm(out, x, nshape, shape, w, b, eps), NAME);
  return 1;
}

/* embedding(input, weight, padding_idx): ids in 1..num_embeddings (a tensor of int64 / int32,
 * or a list); padding_idx 1-based, negative from the end, nil for none. */
static int nn_embedding(lua_State *L) {
  static const char *const NAME = FN("embedding");
  mt_tensor *w = lmt_check(L, 2, NAME);
  if (w->ndim != 2)
    lmt_argerror(L, 2, NAME, "weight must be 2-D [num_embeddings, embedding_dim], got a %d-D tensor", w->ndim);
  const int64_t num = w->sizes[0];
  int64_t pad = -1;
  if (!lua_isnoneornil(L, 3)) {
    int64_t p = lmt_checkint(L, 3, NAME, "padding_idx");
    if (p == 0) lmt_error(L, NAME, "padding_idx 0 is invalid (indices are 1-based)");
    if (p > num || p < -num)
      lmt_error(L, NAME, "padding_idx %lld is out of range for %lld embeddings", (long long)p, (long long)num);
    pad = p > 0 ? p - 1 : num + p;
  }
  mt_tensor *src = lmt_test(L, 1);
  if (src && src->dtype != MT_INT64 && src->dtype != MT_INT32)
    lmt_argerror(L, 1, NAME, "ids must be int64 or int32, got %s", mt_dtype_info(src->dtype)->name);
  lua_settop(L, 3);
  mt_tensor *ids = shifted_ids(L, 1, num, NULL, "id", NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_embedding(out, w, ids, pad), NAME);
  return 1;
}

/* dropout(input, p, training, channelwise): the input itself when it does nothing */
static int nn_dropout(lua_State *L) {
  static const char *const NAME = FN("dropout");
  mt_tensor *x = lmt_check(L, 1, NAME);
  double p = opt_number(L, 2, 0.5, NAME, "p");
  bool training = lmt_optbool(L, 3, true, NAME), channelwise = lmt_optbool(L, 4, false, NAME);
  lua_settop(L, 4);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_dropout(out, x, p, training, channelwise, mt_default_generator()), NAME);
  if (*out == x) lua_pushvalue(L, 1); /* the same Lua object, as PyTorch returns the same tensor */
  return 1;
}

/* leaky_relu(input, negative_slope) */
static int nn_leaky_relu(lua_State *L) {
  static const char *const NAME = FN("leaky_relu");
  mt_tensor *x = lmt_check(L, 1, NAME);
  double slope = opt_number(L, 2, 0.01, NAME, "negative_slope");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_leaky_relu(out, x, slope), NAME);
  return 1;
}

/* gelu(input, approximate): "none" or "tanh" */
static int nn_gelu(lua_State *L) {
  static const char *const NAME = FN("gelu");
  mt_tensor *x = lmt_check(L, 1, NAME);
  bool tanh_form = false;
  if (!lua_isnoneornil(L, 2)) {
    const char *s = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (!s || (strcmp(s, "none") != 0 && strcmp(s, "tanh") != 0))
      lmt_argerror(L, 2, NAME, "approximate must be \"none\" or \"tanh\", got %s", s ? s : luaL_typename(L, 2));
    tanh_form = strcmp(s, "tanh") == 0;
  }
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_gelu(out, x, tanh_form), NAME);
  return 1;
}

static int nn_silu(lua_State *L) {
  static const char *const NAME = FN("silu");
  mt_tensor *x = lmt_check(L, 1, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_silu(out, x), NAME);
  return 1;
}

/* ---- losses ------------------------------------------------------------------------------- */

/* The number of classes of an input [C] or [N, C, ...]. */
static int64_t num_classes(lua_State *L, const mt_tensor *x, const char *fname) {
  if (x->ndim == 0) lmt_error(L, fname, "expected an input of shape [C] or [N, C, ...], got a 0-dim tensor");
  return x->sizes[x->ndim == 1 ? 0 : 1];
}

/* nll_loss(input, target, weight, ignore_index, reduction) */
static int nn_nll_loss(lua_State *L) {
  static const char *const NAME = FN("nll_loss");
  mt_tensor *x = lmt_check(L, 1, NAME);
  lmt_check(L, 2, NAME); /* class targets: a tensor, as PyTorch's */
  mt_tensor *w = opt_tensor(L, 3, NAME);
  int64_t ignore = read_ignore_index(L, 4, NAME);
  mt_reduction red = read_reduction(L, 5, NAME);
  lua_settop(L, 5);
  mt_tensor *target = shifted_ids(L, 2, num_classes(L, x, NAME), &ignore, "target", NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_nll_loss(out, x, target, w, ignore - 1, red), NAME);
  return 1;
}

/* cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing): target holds
 * class indices (integers) or class probabilities (floats, the input's shape) */
static int nn_cross_entropy(lua_State *L) {
  static const char *const NAME = FN("cross_entropy");
  mt_tensor *x = lmt_check(L, 1, NAME), *target = lmt_check(L, 2, NAME);
  mt_tensor *w = opt_tensor(L, 3, NAME);
  int64_t ignore = read_ignore_index(L, 4, NAME);
  mt_reduction red = read_reduction(L, 5, NAME);
  double smoothing = opt_number(L, 6, 0.0, NAME, "label_smoothing");
  lua_settop(L, 6);
  if (!mt_dtype_info(target->dtype)->is_float) /* class indices, not probabilities */
    target = shifted_ids(L, 2, num_classes(L, x, NAME), &ignore, "target", NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_cross_entropy(out, x, target, w, ignore - 1, smoothing, red), NAME);
  return 1;
}

typedef mt_status (*pair_loss_fn)(mt_tensor **, const mt_tensor *, const mt_tensor *, mt_reduction);

static int pair_loss(lua_State *L, pair_loss_fn fn, const char *fname) {
  mt_tensor *x = lmt_check(L, 1, fname), *y = lmt_check(L, 2, fname);
  mt_reduction red = read_reduction(L, 3, fname);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, fn(out, x, y, red), fname);
  return 1;
}

/* mse_loss / l1_loss(input, target, reduction) */
static int nn_mse_loss(lua_State *L) { return pair_loss(L, mt_mse_loss, FN("mse_loss")); }
static int nn_l1_loss(lua_State *L) { return pair_loss(L, mt_l1_loss, FN("l1_loss")); }

/* smooth_l1_loss(input, target, reduction, beta) */
static int nn_smooth_l1_loss(lua_State *L) {
  static const char *const NAME = FN("smooth_l1_loss");
  mt_tensor *x = lmt_check(L, 1, NAME), *y = lmt_check(L, 2, NAME);
  mt_reduction red = read_reduction(L, 3, NAME);
  double beta = opt_number(L, 4, 1.0, NAME, "beta");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_smooth_l1_loss(out, x, y, red, beta), NAME);
  return 1;
}

/* binary_cross_entropy(input, target, weight, reduction) */
static int nn_binary_cross_entropy(lua_State *L) {
  static const char *const NAME = FN("binary_cross_entropy");
  mt_tensor *x = lmt_check(L, 1, NAME), *y = lmt_check(L, 2, NAME), *w = opt_tensor(L, 3, NAME);
  mt_reduction red = read_reduction(L, 4, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_bce_loss(out, x, y, w, red), NAME);
  return 1;
}

/* binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight) */
static int nn_binary_cross_entropy_with_logits(lua_State *L) {
  static const char *const NAME = FN("binary_cross_entropy_with_logits");
  mt_tensor *x = lmt_check(L, 1, NAME), *y = lmt_check(L, 2, NAME), *w = opt_tensor(L, 3, NAME);
  mt_reduction red = read_reduction(L, 4, NAME);
  mt_tensor *pos = opt_tensor(L, 5, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_bce_with_logits(out, x, y, w, pos, red), NAME);
  return 1;
}

void lmt_open_nn(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg fns[] = {
      {"linear", nn_linear},
      {"conv1d", nn_conv1d},
      {"conv2d", nn_conv2d},
      {"max_pool2d", nn_max_pool2d},
      {"avg_pool2d", nn_avg_pool2d},
      {"adaptive_avg_pool2d", nn_adaptive_avg_pool2d},
      {"batch_norm", nn_batch_norm},
      {"layer_norm", nn_layer_norm},
      {"embedding", nn_embedding},
      {"dropout", nn_dropout},
      {"leaky_relu", nn_leaky_relu},
      {"gelu", nn_gelu},
      {"silu", nn_silu},
      {"nll_loss", nn_nll_loss},
      {"cross_entropy", nn_cross_entropy},
      {"mse_loss", nn_mse_loss},
      {"l1_loss", nn_l1_loss},
      {"smooth_l1_loss", nn_smooth_l1_loss},
      {"binary_cross_entropy", nn_binary_cross_entropy},
      {"binary_cross_entropy_with_logits", nn_binary_cross_entropy_with_logits},
      {NULL, NULL}};
  lua_createtable(L, 0, (int)(sizeof fns / sizeof fns[0]) - 1);
  lmt_setfuncs(L, -1, fns);
  lua_setfield(L, tb->module, "_nn");
}
