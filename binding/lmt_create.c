/*
 * lmt_create.c — making tensors: torch.tensor from nested tables, zeros/ones/empty/full, the
 * *_like family, ranges, eye, random tensors and the generator state, cat and stack.
 *
 * During a trace (torch.jit.trace) what the deterministic creators make is a constant of the
 * graph, its values fixed at trace time as PyTorch's tracer fixes them. The random ones are
 * left alone: their fills refuse to be traced.
 */
#include "lmt.h"

#include <stdio.h>
#include <string.h>

static void traced_constant(const mt_tensor *t) {
  if (mt_trace_active()) mt_trace_constant(t);
}

/* ---- torch.tensor ------------------------------------------------------------------------- */

enum { KIND_NONE, KIND_BOOL, KIND_INT, KIND_FLOAT };

typedef struct nested {
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  int64_t path[MT_MAX_DIMS + 1]; /* 1-based position being visited, for messages */
  int kind;                      /* widest element kind seen */
  const char *fname;
} nested;

static const char *path_str(const nested *n, int depth, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < depth && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "[%lld]", (long long)n->path[i]);
  return buf;
}

static int leaf_kind(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    return lua_isinteger(L, idx) ? KIND_INT : KIND_FLOAT;
  case LUA_TBOOLEAN:
    return KIND_BOOL;
  default: {
    mt_tensor *t = lmt_test(L, idx);
    if (t && t->ndim == 0) return mt_dtype_info(t->dtype)->is_float ? KIND_FLOAT : t->dtype == MT_BOOL ? KIND_BOOL : KIND_INT;
    return KIND_NONE;
  }
  }
}

/* Pass 1a: the shape, from the first element at each level. */
static void nested_shape(lua_State *L, int idx, nested *n) {
  n->ndim = 0;
  lua_pushvalue(L, idx);
  while (lua_type(L, -1) == LUA_TTABLE) {
    if (n->ndim == MT_MAX_DIMS) lmt_error(L, n->fname, "too many dims (the most is %d)", MT_MAX_DIMS);
    int64_t len = (int64_t)lua_rawlen(L, -1);
    n->sizes[n->ndim++] = len;
    if (len == 0) break;
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
}

/* Pass 1b: every element agrees with the shape and is a number, boolean or 0-dim tensor. */
static void nested_check(lua_State *L, int idx, int depth, nested *n) {
  char buf[MT_MAX_DIMS * 24];
  if (depth == n->ndim) {
    int k = leaf_kind(L, idx);
    if (k == KIND_NONE) {
      if (lua_type(L, idx) == LUA_TTABLE)
        lmt_error(L, n->fname, "ragged nested table: element %s is a table, expected a number",
                  path_str(n, depth, buf, sizeof buf));
      if (lmt_test(L, idx))
        lmt_error(L, n->fname, "element %s is a tensor with dims; use torch.stack to join tensors",
                  path_str(n, depth, buf, sizeof buf));
      lmt_error(L, n->fname, "element %s is a %s, expected a number or boolean", path_str(n, depth, buf, sizeof buf),
                luaL_typename(L, idx));
    }
    if (k > n->kind) n->kind = k;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    lmt_error(L, n->fname, "ragged nested table: element %s is a %s, expected a table of %lld elements",
              path_str(n, depth, buf, sizeof buf), luaL_typename(L, idx), (long long)n->sizes[depth]);
  int64_t len = (int64_t)lua_rawlen(L, idx);
  if (len != n->sizes[depth])
    lmt_error(L, n->fname, "ragged nested table: element %s has length %lld, expected %lld",
              depth ? path_str(n, depth, buf, sizeof buf) : "{}", (long long)len, (long long)n->sizes[depth]);
  luaL_checkstack(L, 4, "nested table");
  for (int64_t i = 1; i <= len; i++) {
    n->path[depth] = i;
    lua_rawgeti(L, idx, (lua_Integer)i);
    nested_check(L, lua_gettop(L), depth + 1, n);
    lua_pop(L, 1);
  }
}

/* Pass 2: store elements in row-major order into a contiguous tensor of dtype dt. */
typedef struct filler {
  char *p;
  size_t size;
  mt_dtype dt;
  const mt_dtype_traits *tr;
} filler;

static void store(lua_State *L, int idx, filler *f) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      lua_Integer v = lua_tointeger(L, idx);
      switch (f->dt) {
      case MT_INT64: *(int64_t *)f->p = v; break;
      case MT_FLOAT32: *(float *)f->p = (float)v; break;
      case MT_FLOAT64: *(double *)f->p = (double)v; break;
      default:
        if (f->tr->is_float) f->tr->from_f64(f->p, (double)v); else f->tr->from_i64(f->p, v);
      }
    } else {
      lua_Number v = lua_tonumber(L, idx);
      switch (f->dt) {
      case MT_FLOAT32: *(float *)f->p = (float)v; break;
      case MT_FLOAT64: *(double *)f->p = v; break;
      default: f->tr->from_f64(f->p, v);
      }
    }
  } else if (lua_type(L, idx) == LUA_TBOOLEAN) {
    f->tr->from_i64(f->p, lua_toboolean(L, idx));
  } else { /* a 0-dim tensor, checked in pass 1 */
    mt_tensor *t = lmt_test(L, idx);
    mt_scalar s;
    mt_item(t, &s);
    if (s.kind == MT_SCALAR_FLOAT) f->tr->from_f64(f->p, s.f); else f->tr->from_i64(f->p, s.i);
  }
  f->p += f->size;
}

static void nested_fill(lua_State *L, int idx, int depth, int ndim, filler *f) {
  if (depth == ndim) {
    store(L, idx, f);
    return;
  }
  int64_t len = (int64_t)lua_rawlen(L, idx);
  for (int64_t i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i);
    nested_fill(L, lua_gettop(L), depth + 1, ndim, f);
    lua_pop(L, 1);
  }
}

static int l_tensor(lua_State *L) {
  static const char *const NAME = "tensor";
  lmt_opts o;
  lmt_options(L, 2, &o, NAME);
  mt_tensor *src = lmt_test(L, 1);
  mt_tensor **out = lmt_slot(L);
  if (src) { /* a copy without history, as torch.tensor(t) makes */
    bool grad_mode = mt_is_grad_enabled();
    mt_set_grad_enabled(false);
    mt_status st = o.has_dtype && o.dtype != src->dtype ? mt_to_dtype(out, src, o.dtype) : mt_clone(out, src);
    mt_set_grad_enabled(grad_mode);
    lmt_check_status(L, st, NAME);
    lmt_finish_options(L, &o, NAME);
    return 1;
  }
  nested n;
  memset(&n, 0, sizeof n);
  n.fname = NAME;
  int tp = lua_type(L, 1);
  if (tp != LUA_TTABLE && tp != LUA_TNUMBER && tp != LUA_TBOOLEAN)
    return lmt_typeerror(L, 1, NAME, "number, boolean, table or tensor");
  nested_shape(L, 1, &n);
  nested_check(L, 1, 0, &n);
  mt_dtype dt = o.dtype;
  if (!o.has_dtype) dt = n.kind == KIND_INT ? MT_INT64 : n.kind == KIND_BOOL ? MT_BOOL : MT_FLOAT32;
  lmt_check_status(L, mt_empty(out, dt, n.ndim, n.sizes), NAME);
  filler f = {(char *)mt_data(*out), mt_dtype_info(dt)->size, dt, mt_dtype_info(dt)};
  nested_fill(L, 1, 0, n.ndim, &f);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

/* ---- sizes + value creators --------------------------------------------------------------- */

/* Sizes from arg 1 (varargs or a table), then the options table. */
static void sizes_and_options(lua_State *L, int first, int *ndim, int64_t *sizes, lmt_opts *o, const char *fname) {
  int next = lmt_sizes(L, first, ndim, sizes, false, fname);
  lmt_options(L, next, o, fname);
  if (lua_gettop(L) > next) lmt_argerror(L, next + 1, fname, "unexpected argument after the options table");
}

static int make_filled(lua_State *L, const char *fname, int kind) {
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  lmt_opts o;
  sizes_and_options(L, 1, &ndim, sizes, &o, fname);
  mt_tensor **out = lmt_slot(L);
  mt_status st;
  switch (kind) {
  case 0: st = mt_zeros(out, o.dtype, ndim, sizes); break;
  case 1: st = mt_full(out, o.dtype, ndim, sizes, mt_scalar_int(1)); break;
  default: st = mt_empty(out, o.dtype, ndim, sizes); break;
  }
  lmt_check_status(L, st, fname);
  traced_constant(*out);
  lmt_finish_options(L, &o, fname);
  return 1;
}

static int l_zeros(lua_State *L) { return make_filled(L, "zeros", 0); }
static int l_ones(lua_State *L) { return make_filled(L, "ones", 1); }
static int l_empty(lua_State *L) { return make_filled(L, "empty", 2); }

/* The dtype torch.full infers from its fill value. */
static mt_dtype scalar_dtype(mt_scalar v) {
  return v.kind == MT_SCALAR_BOOL ? MT_BOOL : v.kind == MT_SCALAR_INT ? MT_INT64 : MT_FLOAT32;
}

/* full(size, value[, opts]): size is a table or one integer. */
static int l_full(lua_State *L) {
  static const char *const NAME = "full";
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  if (lua_type(L, 1) == LUA_TNUMBER) { /* full(n, value): one dim */
    ndim = 1;
    sizes[0] = lmt_checkint(L, 1, NAME, "size");
    if (sizes[0] < 0) return lmt_error(L, NAME, "size %lld of dim 1 is negative", (long long)sizes[0]);
  } else if (lua_type(L, 1) != LUA_TTABLE || lmt_sizes(L, 1, &ndim, sizes, false, NAME) != 2) {
    return lmt_argerror(L, 1, NAME, "a size is expected: an integer or a table of integers");
  }
  if (lua_isnoneornil(L, 2)) return lmt_argerror(L, 2, NAME, "the fill value is missing");
  mt_scalar v = lmt_checkscalar(L, 2, NAME);
  lmt_opts o;
  lmt_options(L, 3, &o, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_full(out, o.has_dtype ? o.dtype : scalar_dtype(v), ndim, sizes, v), NAME);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

/* ---- *_like ------------------------------------------------------------------------------- */

enum { LIKE_ZEROS, LIKE_ONES, LIKE_EMPTY, LIKE_RAND, LIKE_RANDN };

static int make_like(lua_State *L, const char *fname, int kind) {
  mt_tensor *t = lmt_check(L, 1, fname);
  lmt_opts o;
  lmt_options(L, 2, &o, fname);
  mt_dtype dt = o.has_dtype ? o.dtype : t->dtype;
  mt_tensor **out = lmt_slot(L);
  mt_status st;
  switch (kind) {
  case LIKE_ZEROS: st = mt_zeros(out, dt, t->ndim, t->sizes); break;
  case LIKE_ONES: st = mt_full(out, dt, t->ndim, t->sizes, mt_scalar_int(1)); break;
  case LIKE_EMPTY: st = mt_empty(out, dt, t->ndim, t->sizes); break;
  default:
    st = mt_empty(out, dt, t->ndim, t->sizes);
    if (st == MT_OK) st = kind == LIKE_RAND ? mt_uniform_(*out, 0, 1, NULL) : mt_normal_(*out, 0, 1, NULL);
  }
  lmt_check_status(L, st, fname);
  if (kind != LIKE_RAND && kind != LIKE_RANDN) traced_constant(*out);
  lmt_finish_options(L, &o, fname);
  return 1;
}

static int l_zeros_like(lua_State *L) { return make_like(L, "zeros_like", LIKE_ZEROS); }
static int l_ones_like(lua_State *L) { return make_like(L, "ones_like", LIKE_ONES); }
static int l_empty_like(lua_State *L) { return make_like(L, "empty_like", LIKE_EMPTY); }
static int l_rand_like(lua_State *L) { return make_like(L, "rand_like", LIKE_RAND); }
static int l_randn_like(lua_State *L) { return make_like(L, "randn_like", LIKE_RANDN); }

static int l_full_like(lua_State *L) {
  static const char *const NAME = "full_like";
  mt_tensor *t = lmt_check(L, 1, NAME);
  mt_scalar v = lmt_checkscalar(L, 2, NAME);
  lmt_opts o;
  lmt_options(L, 3, &o, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_full(out, o.has_dtype ? o.dtype : t->dtype, t->ndim, t->sizes, v), NAME);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

/* ---- ranges ------------------------------------------------------------------------------- */

static double checknum(lua_State *L, int arg, const char *fname) {
  if (lua_type(L, arg) != LUA_TNUMBER) lmt_typeerror(L, arg, fname, "number");
  return lua_tonumber(L, arg);
}

/* arange(stop) | arange(start, stop[, step]), then options: integers give int64, floats float32. */
static int l_arange(lua_State *L) {
  static const char *const NAME = "arange";
  int nnum = 0;
  bool any_float = false;
  while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER) {
    if (!lua_isinteger(L, nnum + 1)) any_float = true;
    nnum++;
  }
  if (nnum == 0) return lmt_typeerror(L, 1, NAME, "number");
  double start = 0, stop, step = 1;
  if (nnum == 1) {
    stop = lua_tonumber(L, 1);
  } else {
    start = lua_tonumber(L, 1);
    stop = lua_tonumber(L, 2);
    if (nnum == 3) step = lua_tonumber(L, 3);
  }
  lmt_opts o;
  lmt_options(L, nnum + 1, &o, NAME);
  mt_dtype dt = o.has_dtype ? o.dtype : any_float ? MT_FLOAT32 : MT_INT64;
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_arange(out, dt, start, stop, step), NAME);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

static int l_linspace(lua_State *L) {
  static const char *const NAME = "linspace";
  double start = checknum(L, 1, NAME), stop = checknum(L, 2, NAME);
  int64_t steps = lmt_checkint(L, 3, NAME, "steps");
  lmt_opts o;
  lmt_options(L, 4, &o, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_linspace(out, o.dtype, start, stop, steps), NAME);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

static int l_eye(lua_State *L) {
  static const char *const NAME = "eye";
  int64_t n = lmt_checkint(L, 1, NAME, "n"), m = n;
  int opt = 2;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    m = lmt_checkint(L, 2, NAME, "m");
    opt = 3;
  } else if (lua_isnil(L, 2) && lua_gettop(L) >= 3) {
    opt = 3;
  }
  lmt_opts o;
  lmt_options(L, opt, &o, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_eye(out, o.dtype, n, m), NAME);
  traced_constant(*out);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

/* ---- random ------------------------------------------------------------------------------- */

static int make_random(lua_State *L, const char *fname, bool normal) {
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  lmt_opts o;
  sizes_and_options(L, 1, &ndim, sizes, &o, fname);
  if (!mt_dtype_info(o.dtype)->is_float)
    return lmt_error(L, fname, "dtype %s is not a floating-point dtype", mt_dtype_info(o.dtype)->name);
  mt_tensor **out = lmt_slot(L);
  mt_status st = mt_empty(out, o.dtype, ndim, sizes);
  if (st == MT_OK) st = normal ? mt_normal_(*out, 0, 1, NULL) : mt_uniform_(*out, 0, 1, NULL);
  lmt_check_status(L, st, fname);
  lmt_finish_options(L, &o, fname);
  return 1;
}

static int l_rand(lua_State *L) { return make_random(L, "rand", false); }
static int l_randn(lua_State *L) { return make_random(L, "randn", true); }

/* randint(low, high, size[, opts]) or randint(high, size[, opts]); values in [low, high). */
static int l_randint(lua_State *L) {
  static const char *const NAME = "randint";
  int64_t low = 0, high;
  int size_arg;
  if (lua_type(L, 2) == LUA_TTABLE) {
    high = lmt_checkint(L, 1, NAME, "high");
    size_arg = 2;
  } else {
    low = lmt_checkint(L, 1, NAME, "low");
    high = lmt_checkint(L, 2, NAME, "high");
    size_arg = 3;
  }
  if (lua_type(L, size_arg) != LUA_TTABLE && lua_type(L, size_arg) != LUA_TNUMBER)
    return lmt_typeerror(L, size_arg, NAME, "size table");
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  int next = size_arg + 1;
  if (lua_type(L, size_arg) == LUA_TNUMBER) {
    ndim = 1;
    sizes[0] = lmt_checkint(L, size_arg, NAME, "size");
    if (sizes[0] < 0) return lmt_error(L, NAME, "size %lld of dim 1 is negative", (long long)sizes[0]);
  } else {
    lmt_sizes(L, size_arg, &ndim, sizes, false, NAME);
  }
  lmt_opts o;
  lmt_options(L, next, &o, NAME);
  if (high <= low) return lmt_error(L, NAME, "high (%lld) must be greater than low (%lld)", (long long)high, (long long)low);
  mt_tensor **out = lmt_slot(L);
  mt_status st = mt_empty(out, o.has_dtype ? o.dtype : MT_INT64, ndim, sizes);
  if (st == MT_OK) st = mt_randint_(*out, low, high, NULL);
  lmt_check_status(L, st, NAME);
  lmt_finish_options(L, &o, NAME);
  return 1;
}

/* randperm(n[, opts]): a random permutation of 1..n (1-based, like every index in moontorch). */
static int l_randperm(lua_State *L) {
  static const char *const NAME = "randperm";
  int64_t n = lmt_checkint(L, 1, NAME, "n");
  lmt_opts o;
  lmt_options(L, 2, &o, NAME);
  if (n < 0) return lmt_error(L, NAME, "n must be non-negative, got %lld", (long long)n);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_randperm(out, n, MT_INT64, NULL), NAME);
  lmt_index_out(*out);
  if (o.has_dtype && o.dtype != MT_INT64) {
    mt_tensor **conv = lmt_slot(L);
    lmt_check_status(L, mt_to_dtype(conv, *out, o.dtype), NAME);
  }
  lmt_finish_options(L, &o, NAME);
  return 1;
}

static int l_manual_seed(lua_State *L) {
  int64_t seed = lmt_checkint(L, 1, "manual_seed", "seed");
  mt_manual_seed(mt_default_generator(), (uint64_t)seed);
  return 0;
}

static int l_initial_seed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mt_initial_seed(mt_default_generator()));
  return 1;
}

static int l_get_rng_state(lua_State *L) {
  int64_t n = (int64_t)mt_generator_state_size();
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_empty(out, MT_UINT8, 1, &n), "get_rng_state");
  mt_generator_get_state(mt_default_generator(), (uint8_t *)mt_data(*out));
  return 1;
}

static int l_set_rng_state(lua_State *L) {
  static const char *const NAME = "set_rng_state";
  mt_tensor *t = lmt_check(L, 1, NAME);
  if (t->dtype != MT_UINT8) return lmt_argerror(L, 1, NAME, "expected a uint8 tensor, got %s", mt_dtype_info(t->dtype)->name);
  mt_tensor **c = lmt_slot(L);
  lmt_check_status(L, mt_contiguous(c, t), NAME);
  mt_status st = mt_generator_set_state(mt_default_generator(), (const uint8_t *)mt_data(*c), (size_t)mt_numel(*c));
  lmt_check_status(L, st, NAME);
  return 0;
}

/* In-place fills from the default generator: uniform_([lo[, hi]]), normal_([mean[, std]]),
 * bernoulli_([p]), random_([low,] high) (integers in [low, high)). Each returns the tensor. */
static double optnum(lua_State *L, int arg, double def, const char *fname) {
  if (lua_isnoneornil(L, arg)) return def;
  return checknum(L, arg, fname);
}

static int m_uniform_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "uniform_");
  double lo = optnum(L, 2, 0, "uniform_"), hi = optnum(L, 3, 1, "uniform_");
  lmt_check_status(L, mt_uniform_(t, lo, hi, NULL), "uniform_");
  lua_settop(L, 1);
  return 1;
}

static int m_normal_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "normal_");
  double mean = optnum(L, 2, 0, "normal_"), std = optnum(L, 3, 1, "normal_");
  lmt_check_status(L, mt_normal_(t, mean, std, NULL), "normal_");
  lua_settop(L, 1);
  return 1;
}

static int m_bernoulli_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "bernoulli_");
  double p = optnum(L, 2, 0.5, "bernoulli_");
  lmt_check_status(L, mt_bernoulli_(t, p, NULL), "bernoulli_");
  lua_settop(L, 1);
  return 1;
}

static int m_random_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "random_");
  int64_t low = 0, high = lmt_checkint(L, 2, "random_", "high");
  if (!lua_isnoneornil(L, 3)) {
    low = high;
    high = lmt_checkint(L, 3, "random_", "high");
  }
  if (high <= low) return lmt_error(L, "random_", "high (%lld) must be greater than low (%lld)", (long long)high, (long long)low);
  lmt_check_status(L, mt_randint_(t, low, high, NULL), "random_");
  lua_settop(L, 1);
  return 1;
}

/* ---- cat / stack -------------------------------------------------------------------------- */

static int join(lua_State *L, const char *fname, bool stack) {
  if (lua_type(L, 1) != LUA_TTABLE || lmt_test(L, 1)) return lmt_typeerror(L, 1, fname, "list of tensors");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n == 0) return lmt_argerror(L, 1, fname, "expected a non-empty list of tensors");
  if (n > 1 << 24) return lmt_argerror(L, 1, fname, "too many tensors (%lld)", (long long)n);
  int64_t dim = lua_isnoneornil(L, 2) ? 1 : lmt_checkint(L, 2, fname, "dim");
  lua_settop(L, 1);
  /* The list keeps its tensors alive, so their pointers stay valid during the call. */
  const mt_tensor **ts = (const mt_tensor **)lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    ts[i - 1] = lmt_test(L, -1);
    if (!ts[i - 1])
      return lmt_argerror(L, 1, fname, "element %lld of the list is a %s, expected a tensor", (long long)i,
                          luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  int d = lmt_todim(L, dim, ts[0]->ndim, stack ? 1 : 0, fname);
  mt_tensor **out = lmt_slot(L);
  mt_status st = stack ? mt_stack(out, (int)n, ts, d) : mt_cat(out, (int)n, ts, d);
  lmt_check_status(L, st, fname);
  return 1;
}

static int l_cat(lua_State *L) { return join(L, "cat", false); }
static int l_stack(lua_State *L) { return join(L, "stack", true); }

static int l_is_tensor(lua_State *L) {
  lua_pushboolean(L, lmt_testbox(L, 1) != NULL);
  return 1;
}

static int l_promote_types(lua_State *L) {
  mt_dtype a = lmt_checkdtype(L, 1, "promote_types"), b = lmt_checkdtype(L, 2, "promote_types");
  lua_pushstring(L, mt_dtype_info(mt_promote_types(a, b))->name);
  return 1;
}

void lmt_open_create(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg module[] = {
      {"tensor", l_tensor},         {"zeros", l_zeros},
      {"ones", l_ones},             {"empty", l_empty},
      {"full", l_full},             {"zeros_like", l_zeros_like},
      {"ones_like", l_ones_like},   {"empty_like", l_empty_like},
      {"rand_like", l_rand_like},   {"randn_like", l_randn_like},
      {"full_like", l_full_like},   {"arange", l_arange},
      {"linspace", l_linspace},     {"eye", l_eye},
      {"rand", l_rand},             {"randn", l_randn},
      {"randint", l_randint},       {"randperm", l_randperm},
      {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
      {"get_rng_state", l_get_rng_state}, {"set_rng_state", l_set_rng_state},
      {"cat", l_cat},               {"stack", l_stack},
      {"is_tensor", l_is_tensor},   {"promote_types", l_promote_types},
      {NULL, NULL}};
  static const luaL_Reg methods[] = {{"uniform_", m_uniform_}, {"normal_", m_normal_}, {"bernoulli_", m_bernoulli_},
                                     {"random_", m_random_}, {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
  lmt_setfuncs(L, tb->methods, methods);
}
