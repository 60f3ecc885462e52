/*
 * lmt_reduce.c — reductions (sum, mean, prod, var, std, amax, amin, all, any, max, min,
 * argmax, argmin), softmax / log_softmax, cumsum, sort and topk. Index results come back
 * 1-based.
 */
#include "lmt.h"

#include <string.h>

typedef mt_status (*reduce_fn)(mt_tensor **, const mt_tensor *, int, const int64_t *, bool);

/* name([dims[, keepdim]]): dims is nil (all), a dim or a table of dims. */
static int reduce(lua_State *L, reduce_fn fn, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  int ndims;
  int64_t dims[MT_MAX_DIMS];
  lmt_reduce_dims(L, 2, t->ndim, &ndims, dims, fname);
  bool keepdim = lmt_optbool(L, 3, false, fname);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, fn(out, t, ndims, dims, keepdim), fname);
  return 1;
}

static int m_sum(lua_State *L) { return reduce(L, mt_sum, "sum"); }
static int m_mean(lua_State *L) { return reduce(L, mt_mean, "mean"); }
static int m_prod(lua_State *L) { return reduce(L, mt_prod, "prod"); }
static int m_amax(lua_State *L) { return reduce(L, mt_amax, "amax"); }
static int m_amin(lua_State *L) { return reduce(L, mt_amin, "amin"); }
static int m_all(lua_State *L) { return reduce(L, mt_all, "all"); }
static int m_any(lua_State *L) { return reduce(L, mt_any, "any"); }

/* var / std: (dims, unbiased, keepdim) positionally as PyTorch, `unbiased` alone as a boolean,
 * or an options table {dim =, unbiased =, correction =, keepdim =} in any position. */
static int var_std(lua_State *L, bool is_std, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  int64_t correction = 1;
  bool keepdim = false;
  int opts = 0;
  for (int i = 2; i <= 4 && i <= lua_gettop(L); i++) {
    if (lua_type(L, i) == LUA_TTABLE && lua_rawlen(L, i) == 0 && !lmt_test(L, i)) {
      opts = i;
      break;
    }
  }
  int top = opts ? opts - 1 : lua_gettop(L);
  int dims_arg = 2, unbiased_arg = 3, keepdim_arg = 4;
  if (top >= 2 && lua_type(L, 2) == LUA_TBOOLEAN) { /* var(unbiased) */
    dims_arg = 0;
    unbiased_arg = 2;
    keepdim_arg = 0;
  }
  int ndims = 0;
  int64_t dims[MT_MAX_DIMS];
  if (dims_arg && top >= dims_arg) lmt_reduce_dims(L, dims_arg, t->ndim, &ndims, dims, fname);
  if (unbiased_arg && top >= unbiased_arg) correction = lmt_optbool(L, unbiased_arg, true, fname) ? 1 : 0;
  if (keepdim_arg && top >= keepdim_arg) keepdim = lmt_optbool(L, keepdim_arg, false, fname);
  if (opts) {
    lua_getfield(L, opts, "dim");
    if (!lua_isnil(L, -1)) lmt_reduce_dims(L, lua_gettop(L), t->ndim, &ndims, dims, fname);
    lua_getfield(L, opts, "unbiased");
    if (!lua_isnil(L, -1)) correction = lmt_optbool(L, -1, true, fname) ? 1 : 0;
    lua_getfield(L, opts, "correction");
    if (!lua_isnil(L, -1)) correction = lmt_checkint(L, lua_gettop(L), fname, "correction");
    lua_getfield(L, opts, "keepdim");
    keepdim = lmt_optbool(L, -1, keepdim, fname);
    lua_pop(L, 4);
  }
  mt_tensor **out = lmt_slot(L);
  mt_status st = is_std ? mt_std(out, t, ndims, dims, correction, keepdim)
                        : mt_var(out, t, ndims, dims, correction, keepdim);
  lmt_check_status(L, st, fname);
  return 1;
}

static int m_var(lua_State *L) { return var_std(L, false, "var"); }
static int m_std(lua_State *L) { return var_std(L, true, "std"); }

typedef mt_status (*dimred_fn)(mt_tensor **, mt_tensor **, const mt_tensor *, int64_t, bool);

/* max()/min(): the extreme value as a 0-dim tensor; max(d[, keepdim]): values and 1-based
 * indices; max(u) with a tensor or number u: elementwise maximum. */
static int max_min(lua_State *L, bool is_max, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  if (lua_isnoneornil(L, 2)) {
    mt_tensor **out = lmt_slot(L);
    lmt_check_status(L, (is_max ? mt_amax : mt_amin)(out, t, 0, NULL, false), fname);
    return 1;
  }
  if (lmt_test(L, 2)) {
    mt_tensor *u = lmt_test(L, 2);
    mt_tensor **out = lmt_slot(L);
    lmt_check_status(L, mt_binary(out, is_max ? MT_MAXIMUM : MT_MINIMUM, t, u), fname);
    return 1;
  }
  int d = lmt_checkdim(L, 2, t->ndim, 0, fname);
  bool keepdim = lmt_optbool(L, 3, false, fname);
  mt_tensor **values = lmt_slot(L);
  mt_tensor **indices = lmt_slot(L);
  lmt_check_status(L, (is_max ? mt_max_dim : mt_min_dim)(values, indices, t, d, keepdim), fname);
  lmt_index_out_of(L, indices, *values, fname);
  return 2;
}

static int m_max(lua_State *L) { return max_min(L, true, "max"); }
static int m_min(lua_State *L) { return max_min(L, false, "min"); }

/* argmax([d[, keepdim]]): 1-based; without d, the flat index over the whole tensor. */
static int arg_ext(lua_State *L, bool is_max, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  bool all = lua_isnoneornil(L, 2);
  int d = all ? 0 : lmt_checkdim(L, 2, t->ndim, 0, fname);
  bool keepdim = lmt_optbool(L, 3, false, fname);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, (is_max ? mt_argmax : mt_argmin)(out, t, all, d, keepdim), fname);
  lmt_index_out_of(L, out, NULL, fname);
  return 1;
}

static int m_argmax(lua_State *L) { return arg_ext(L, true, "argmax"); }
static int m_argmin(lua_State *L) { return arg_ext(L, false, "argmin"); }

typedef mt_status (*along_fn)(mt_tensor **, const mt_tensor *, int64_t);

/* softmax(d), log_softmax(d), cumsum(d): the dim is required (PyTorch's implicit one is
 * deprecated). */
static int along(lua_State *L, along_fn fn, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  if (lua_isnoneornil(L, 2)) return lmt_error(L, fname, "the dim argument is required");
  int d = lmt_checkdim(L, 2, t->ndim, 0, fname);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, fn(out, t, d), fname);
  return 1;
}

static int m_softmax(lua_State *L) { return along(L, mt_softmax, "softmax"); }
static int m_log_softmax(lua_State *L) { return along(L, mt_log_softmax, "log_softmax"); }
static int m_cumsum(lua_State *L) { return along(L, mt_cumsum, "cumsum"); }

/* Reads {dim =, descending = / largest =} from an options table at `arg`, if there is one. */
static bool opt_table(lua_State *L, int arg) {
  return lua_type(L, arg) == LUA_TTABLE && !lmt_test(L, arg);
}

/* sort([d[, descending]]) or sort({dim =, descending =}); d defaults to the last dim. */
static int m_sort(lua_State *L) {
  static const char *const NAME = "sort";
  mt_tensor *t = lmt_check(L, 1, NAME);
  int64_t d = -1;
  bool descending = false;
  if (opt_table(L, 2)) {
    lua_getfield(L, 2, "dim");
    if (!lua_isnil(L, -1)) d = lmt_checkdim(L, -1, t->ndim, 0, NAME);
    lua_getfield(L, 2, "descending");
    descending = lmt_optbool(L, -1, false, NAME);
    lua_pop(L, 2);
  } else {
    if (lua_type(L, 2) == LUA_TBOOLEAN) { /* sort(descending) */
      descending = lua_toboolean(L, 2);
    } else {
      if (!lua_isnoneornil(L, 2)) d = lmt_checkdim(L, 2, t->ndim, 0, NAME);
      descending = lmt_optbool(L, 3, false, NAME);
    }
  }
  mt_tensor **values = lmt_slot(L);
  mt_tensor **indices = lmt_slot(L);
  lmt_check_status(L, mt_sort(values, indices, t, d, descending), NAME);
  lmt_index_out_of(L, indices, *values, NAME);
  return 2;
}

/* topk(k[, d[, largest]]) or topk(k, {dim =, largest =}); d defaults to the last dim. */
static int m_topk(lua_State *L) {
  static const char *const NAME = "topk";
  mt_tensor *t = lmt_check(L, 1, NAME);
  int64_t k = lmt_checkint(L, 2, NAME, "k");
  int64_t d = -1;
  bool largest = true;
  if (opt_table(L, 3)) {
    lua_getfield(L, 3, "dim");
    if (!lua_isnil(L, -1)) d = lmt_checkdim(L, -1, t->ndim, 0, NAME);
    lua_getfield(L, 3, "largest");
    largest = lmt_optbool(L, -1, true, NAME);
    lua_pop(L, 2);
  } else {
    if (!lua_isnoneornil(L, 3)) d = lmt_checkdim(L, 3, t->ndim, 0, NAME);
    largest = lmt_optbool(L, 4, true, NAME);
  }
  if (k < 0) return lmt_error(L, NAME, "k must be non-negative, got %lld", (long long)k);
  mt_tensor **values = lmt_slot(L);
  mt_tensor **indices = lmt_slot(L);
  lmt_check_status(L, mt_topk(values, indices, t, k, d, largest), NAME);
  lmt_index_out_of(L, indices, *values, NAME);
  return 2;
}

void lmt_open_reduce(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg methods[] = {
      {"sum", m_sum},         {"mean", m_mean},       {"prod", m_prod},
      {"amax", m_amax},       {"amin", m_amin},       {"all", m_all},
      {"any", m_any},         {"var", m_var},         {"std", m_std},
      {"max", m_max},         {"min", m_min},         {"argmax", m_argmax},
      {"argmin", m_argmin},   {"softmax", m_softmax}, {"log_softmax", m_log_softmax},
      {"cumsum", m_cumsum},   {"sort", m_sort},       {"topk", m_topk},
      {NULL, NULL}};
  lmt_setfuncs(L, tb->methods, methods);
}
