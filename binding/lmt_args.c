/*
 * lmt_args.c — reading Lua arguments: integers, dims (1-based), sizes, dtypes, scalars,
 * options tables, number operands and index tensors (shifted between 1- and 0-based).
 */
#include "lmt.h"

#include <math.h>
#include <string.h>

int64_t lmt_checkint(lua_State *L, int arg, const char *fname, const char *what) {
  int isint = 0;
  lua_Integer v = 0;
  if (lua_type(L, arg) == LUA_TNUMBER) v = lua_tointegerx(L, arg, &isint);
  if (!isint) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      lmt_argerror(L, arg, fname, "%s must be an integer, got %s", what, lua_tostring(L, arg));
    lmt_typeerror(L, arg, fname, "integer");
  }
  return v;
}

bool lmt_optbool(lua_State *L, int arg, bool def, const char *fname) {
  switch (lua_type(L, arg)) {
  case LUA_TNONE:
  case LUA_TNIL:
    return def;
  case LUA_TBOOLEAN:
    return lua_toboolean(L, arg);
  default:
    lmt_typeerror(L, arg, fname, "boolean");
    return def;
  }
}

int lmt_todim(lua_State *L, int64_t d, int ndim, int extra, const char *fname) {
  int n = ndim + extra;
  if (n == 0) n = 1; /* a 0-dim tensor takes dim 1 / -1, as PyTorch takes 0 / -1 */
  if (d == 0) lmt_error(L, fname, "dim 0 is invalid (dims are 1-based)");
  if (d > n || d < -n) {
    if (extra)
      lmt_error(L, fname, "dim %lld is out of range for a %d-D tensor (expected %d..%d or -%d..-1)", (long long)d,
                ndim, 1, n, n);
    lmt_error(L, fname, "dim %lld is out of range for a %d-D tensor", (long long)d, ndim);
  }
  return (int)(d > 0 ? d - 1 : d + n);
}

int lmt_checkdim(lua_State *L, int arg, int ndim, int extra, const char *fname) {
  return lmt_todim(L, lmt_checkint(L, arg, fname, "dim"), ndim, extra, fname);
}

int lmt_optdim(lua_State *L, int arg, int ndim, int def, const char *fname) {
  if (lua_isnoneornil(L, arg)) return def;
  return lmt_checkdim(L, arg, ndim, 0, fname);
}

mt_dtype lmt_checkdtype(lua_State *L, int arg, const char *fname) {
  mt_dtype dt;
  if (lua_type(L, arg) != LUA_TSTRING) lmt_typeerror(L, arg, fname, "dtype string");
  const char *s = lua_tostring(L, arg);
  if (!mt_dtype_from_name(s, &dt))
    lmt_error(L, fname, "unknown dtype '%s' (expected float32, float64, float16, bfloat16, int64, int32, int16, "
              "int8, uint8 or bool)", s);
  return dt;
}

mt_scalar lmt_checkscalar(lua_State *L, int arg, const char *fname) {
  switch (lua_type(L, arg)) {
  case LUA_TNUMBER:
    if (lua_isinteger(L, arg)) return mt_scalar_int(lua_tointeger(L, arg));
    return mt_scalar_float(lua_tonumber(L, arg));
  case LUA_TBOOLEAN:
    return mt_scalar_bool(lua_toboolean(L, arg));
  default: {
    mt_tensor *t = lmt_test(L, arg);
    mt_scalar s = mt_scalar_int(0);
    if (!t) lmt_typeerror(L, arg, fname, "number");
    if (mt_item(t, &s) != MT_OK) lmt_argerror(L, arg, fname, "%s", mt_last_error());
    return s;
  }
  }
}

/* A table at `idx` holds sizes when it is a sequence (or empty); an options table has names. */
static bool is_size_table(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return false;
  if (lua_rawlen(L, idx) > 0) return true;
  lua_pushnil(L);
  if (lua_next(L, idx)) {
    lua_pop(L, 2);
    return false;
  }
  return true;
}

static int64_t read_size(lua_State *L, int idx, int arg, int dim, bool allow_neg1, const char *fname) {
  int isint = 0;
  lua_Integer v = 0;
  if (lua_type(L, idx) == LUA_TNUMBER) v = lua_tointegerx(L, idx, &isint);
  if (!isint) {
    const char *got = lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx);
    lmt_argerror(L, arg, fname, "size of dim %d must be an integer, got %s", dim, got);
  }
  if (v < 0 && !(v == -1 && allow_neg1))
    lmt_error(L, fname, "size %lld of dim %d is negative", (long long)v, dim);
  return v;
}

int lmt_sizes(lua_State *L, int first, int *ndim, int64_t *sizes, bool allow_neg1, const char *fname) {
  int n = 0;
  if (is_size_table(L, first)) {
    size_t len = lua_rawlen(L, first);
    if (len > MT_MAX_DIMS)
      lmt_error(L, fname, "too many dims (%zu; the most is %d)", len, MT_MAX_DIMS);
    for (size_t i = 1; i <= len; i++) {
      lua_rawgeti(L, first, (lua_Integer)i);
      sizes[n] = read_size(L, -1, first, n + 1, allow_neg1, fname);
      n++;
      lua_pop(L, 1);
    }
    *ndim = n;
    return first + 1;
  }
  int i = first;
  while (lua_type(L, i) == LUA_TNUMBER) {
    if (n == MT_MAX_DIMS) lmt_error(L, fname, "too many dims (the most is %d)", MT_MAX_DIMS);
    sizes[n] = read_size(L, i, i, n + 1, allow_neg1, fname);
    n++;
    i++;
  }
  *ndim = n;
  return i;
}

void lmt_reduce_dims(lua_State *L, int arg, int ndim, int *ndims, int64_t *dims, const char *fname) {
  *ndims = 0;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_type(L, arg) == LUA_TTABLE) {
    size_t len = lua_rawlen(L, arg);
    if (len > MT_MAX_DIMS) lmt_error(L, fname, "too many dims (%zu; the most is %d)", len, MT_MAX_DIMS);
    if (len == 0) lmt_argerror(L, arg, fname, "empty list of dims");
    for (size_t i = 1; i <= len; i++) {
      lua_rawgeti(L, arg, (lua_Integer)i);
      int isint = 0;
      lua_Integer d = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
      if (!isint) lmt_argerror(L, arg, fname, "dims must be integers");
      lua_pop(L, 1);
      int z = lmt_todim(L, d, ndim, 0, fname);
      for (int j = 0; j < *ndims; j++)
        if (dims[j] == z) lmt_error(L, fname, "dim %lld appears more than once", (long long)d);
      dims[(*ndims)++] = z;
    }
    return;
  }
  dims[0] = lmt_checkdim(L, arg, ndim, 0, fname);
  *ndims = 1;
}

void lmt_options(lua_State *L, int arg, lmt_opts *o, const char *fname) {
  o->has_dtype = false;
  o->dtype = MT_FLOAT32;
  o->requires_grad = false;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_type(L, arg) != LUA_TTABLE) lmt_typeerror(L, arg, fname, "options table");
  arg = lua_absindex(L, arg);
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && strcmp(k, "dtype") == 0) {
      o->dtype = lmt_checkdtype(L, -1, fname);
      o->has_dtype = true;
    } else if (k && strcmp(k, "requires_grad") == 0) {
      if (lua_type(L, -1) != LUA_TBOOLEAN && !lua_isnil(L, -1))
        lmt_error(L, fname, "option requires_grad must be a boolean, got %s", luaL_typename(L, -1));
      o->requires_grad = lua_toboolean(L, -1);
    } else if (k && strcmp(k, "device") == 0) {
      if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "cpu") != 0)
        lmt_error(L, fname, "only the device 'cpu' is available");
    } else {
      lua_pushvalue(L, -2);
      lmt_error(L, fname, "unknown option '%s'", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
  }
}

mt_tensor *lmt_operand(lua_State *L, int arg, mt_tensor **tmp, const char *fname) {
  *tmp = NULL;
  mt_status st;
  switch (lua_type(L, arg)) {
  case LUA_TNUMBER:
    if (lua_isinteger(L, arg))
      st = mt_wrap_number(tmp, mt_scalar_int(lua_tointeger(L, arg)));
    else
      st = mt_wrap_number(tmp, mt_scalar_float(lua_tonumber(L, arg)));
    break;
  case LUA_TBOOLEAN:
    st = mt_wrap_number(tmp, mt_scalar_bool(lua_toboolean(L, arg)));
    break;
  default: {
    mt_tensor *t = lmt_test(L, arg);
    if (!t) lmt_typeerror(L, arg, fname, "tensor or number");
    return t;
  }
  }
  if (st != MT_OK) lmt_error(L, fname, "%s", mt_last_error());
  return *tmp;
}

/* ---- index tensors ------------------------------------------------------------------------ */

static void bad_index(lua_State *L, int64_t v, int64_t limit, int dim, const char *fname) {
  if (v == 0) lmt_error(L, fname, "index 0 is invalid (indices are 1-based)");
  lmt_error(L, fname, "index %lld is out of range for dim %d of size %lld", (long long)v, dim + 1,
            (long long)limit);
}

mt_tensor *lmt_index_in(lua_State *L, int arg, int64_t limit, int dim, const char *fname) {
  mt_tensor *src = lmt_test(L, arg);
  mt_tensor **out = lmt_slot(L);
  if (src && mt_trace_active()) {
    /* Traced: the shift to 0-based is an op of the graph (the indices may come from the input). */
    if (mt_dtype_info(src->dtype)->is_float || src->dtype == MT_BOOL)
      lmt_argerror(L, arg, fname, "index tensor must have an integer dtype, got %s", mt_dtype_info(src->dtype)->name);
    int64_t n = mt_numel(src);
    for (int64_t i = 0; i < n; i++) {
      mt_scalar s;
      if (mt_get_flat(src, i, &s) == MT_OK && (s.i < 1 || s.i > limit)) bad_index(L, s.i, limit, dim, fname);
    }
    mt_tensor *one = NULL, *wide = NULL;
    mt_status st = mt_wrap_number(&one, mt_scalar_int(1));
    if (st == MT_OK) st = mt_to_dtype(&wide, src, MT_INT64);
    if (st == MT_OK) st = mt_binary(out, MT_SUB, wide, one);
    mt_tensor_release(one);
    mt_tensor_release(wide);
    lmt_check_status(L, st, fname);
    return *out;
  }
  if (src) {
    if (mt_dtype_info(src->dtype)->is_float || src->dtype == MT_BOOL)
      lmt_argerror(L, arg, fname, "index tensor must have an integer dtype, got %s", mt_dtype_info(src->dtype)->name);
    mt_status st = mt_empty(out, MT_INT64, src->ndim, src->sizes);
    if (st == MT_OK) st = mt_copy_(*out, src);
    lmt_check_status(L, st, fname);
  } else if (lua_type(L, arg) == LUA_TTABLE) {
    int64_t n = (int64_t)lua_rawlen(L, arg);
    lmt_check_status(L, mt_empty(out, MT_INT64, 1, &n), fname);
    int64_t *p = (int64_t *)mt_data(*out);
    for (int64_t i = 0; i < n; i++) {
      lua_rawgeti(L, arg, (lua_Integer)(i + 1));
      int isint = 0;
      p[i] = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
      if (!isint) lmt_argerror(L, arg, fname, "index list must hold integers (element %lld)", (long long)(i + 1));
      lua_pop(L, 1);
    }
    mt_trace_constant(*out); /* a list from Lua is a constant of a traced graph */
  } else {
    lmt_typeerror(L, arg, fname, "index tensor or list of integers");
  }
  int64_t *p = (int64_t *)mt_data(*out), n = mt_numel(*out);
  for (int64_t i = 0; i < n; i++) {
    int64_t v = p[i];
    if (v < 1 || v > limit) bad_index(L, v, limit, dim, fname);
    p[i] = v - 1;
  }
  return *out;
}

void lmt_index_out(mt_tensor *t) {
  if (!t || t->dtype != MT_INT64) return;
  int64_t n = mt_numel(t);
  if (mt_is_contiguous(t)) {
    int64_t *p = (int64_t *)mt_data(t);
    for (int64_t i = 0; i < n; i++) p[i] += 1;
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    mt_scalar s;
    if (mt_get_flat(t, i, &s) == MT_OK) mt_set_flat(t, i, mt_scalar_int(s.i + 1));
  }
}

void lmt_index_out_of(lua_State *L, mt_tensor **indices, const mt_tensor *values, const char *fname) {
  /* In place is cheapest; but an autograd node saved these very indices, and a trace must see
   * the shift as an op, so then the shift is a recorded add. */
  if (!(values && values->grad_fn) && !mt_trace_active()) {
    lmt_index_out(*indices);
    return;
  }
  mt_tensor *one, *shifted;
  mt_status st = mt_wrap_number(&one, mt_scalar_int(1));
  if (st == MT_OK) {
    st = mt_binary(&shifted, MT_ADD, *indices, one);
    mt_tensor_release(one);
  }
  if (st == MT_OK) {
    mt_tensor_release(*indices);
    *indices = shifted;
  }
  lmt_check_status(L, st, fname);
}
