/*
 * lmt_shape.c — tensor metadata (size, stride, ...), element access (item, tolist),
 * copies and dtype conversion, views (view, reshape, transpose, narrow, select, expand, ...)
 * and indexing (index_select, gather, scatter, masked_fill).
 */
#include "lmt.h"

#include <string.h>

/* ---- metadata ----------------------------------------------------------------------------- */

static int push_dims(lua_State *L, int n, const int64_t *v) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_size(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "size");
  if (lua_isnoneornil(L, 2)) return push_dims(L, t->ndim, t->sizes);
  if (t->ndim == 0) return lmt_error(L, "size", "a 0-dim tensor has no dims");
  lua_pushinteger(L, t->sizes[lmt_checkdim(L, 2, t->ndim, 0, "size")]);
  return 1;
}

static int m_stride(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "stride");
  if (lua_isnoneornil(L, 2)) return push_dims(L, t->ndim, t->strides);
  if (t->ndim == 0) return lmt_error(L, "stride", "a 0-dim tensor has no dims");
  lua_pushinteger(L, t->strides[lmt_checkdim(L, 2, t->ndim, 0, "stride")]);
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, lmt_check(L, 1, "dim")->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, mt_numel(lmt_check(L, 1, "numel")));
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, mt_is_contiguous(lmt_check(L, 1, "is_contiguous")));
  return 1;
}

static int m_element_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mt_dtype_info(lmt_check(L, 1, "element_size")->dtype)->size);
  return 1;
}

static int m_storage_offset(lua_State *L) {
  lua_pushinteger(L, lmt_check(L, 1, "storage_offset")->offset);
  return 1;
}

/* The address of element 1: equal pointers mean shared memory (as PyTorch's data_ptr). */
static int m_data_ptr(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(uintptr_t)mt_data(lmt_check(L, 1, "data_ptr")));
  return 1;
}

/* ---- element access ----------------------------------------------------------------------- */

static void push_scalar(lua_State *L, mt_scalar s) {
  switch (s.kind) {
  case MT_SCALAR_BOOL: lua_pushboolean(L, (int)s.i); break;
  case MT_SCALAR_INT: lua_pushinteger(L, s.i); break;
  default: lua_pushnumber(L, s.f); break;
  }
}

static int m_item(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "item");
  mt_scalar s;
  if (mt_item(t, &s) != MT_OK) return lmt_error(L, "item", "%s", mt_last_error());
  push_scalar(L, s);
  return 1;
}

typedef struct lister {
  const char *p;
  size_t size;
  const mt_dtype_traits *tr;
  mt_dtype dt;
} lister;

static void push_elem(lua_State *L, lister *ls) {
  switch (ls->dt) {
  case MT_FLOAT32: lua_pushnumber(L, *(const float *)ls->p); break;
  case MT_FLOAT64: lua_pushnumber(L, *(const double *)ls->p); break;
  case MT_INT64: lua_pushinteger(L, *(const int64_t *)ls->p); break;
  case MT_BOOL: lua_pushboolean(L, ls->tr->to_i64(ls->p) != 0); break;
  default:
    if (ls->tr->is_float) lua_pushnumber(L, ls->tr->to_f64(ls->p));
    else lua_pushinteger(L, ls->tr->to_i64(ls->p));
  }
  ls->p += ls->size;
}

static void list_dim(lua_State *L, const mt_tensor *t, int d, lister *ls) {
  int64_t n = t->sizes[d];
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
  if (d == t->ndim - 1) {
    for (int64_t i = 1; i <= n; i++) {
      push_elem(L, ls);
      lua_rawseti(L, -2, (lua_Integer)i);
    }
    return;
  }
  luaL_checkstack(L, 2, "tolist");
  for (int64_t i = 1; i <= n; i++) {
    list_dim(L, t, d + 1, ls);
    lua_rawseti(L, -2, (lua_Integer)i);
  }
}

/* Nested Lua tables; integers as Lua integers, bools as booleans; a 0-dim tensor gives a value. */
static int m_tolist(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "tolist");
  mt_tensor **c = lmt_slot(L);
  lmt_check_status(L, mt_contiguous(c, t), "tolist");
  lister ls = {(const char *)mt_data(*c), mt_dtype_info(t->dtype)->size, mt_dtype_info(t->dtype), t->dtype};
  if (t->ndim == 0)
    push_elem(L, &ls);
  else
    list_dim(L, *c, 0, &ls);
  return 1;
}

/* ---- copies and conversion ---------------------------------------------------------------- */

static int m_clone(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "clone");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_clone(out, t), "clone");
  return 1;
}

/* Returns t itself (the same Lua value) when the core hands back the same tensor. */
static int same_or_new(lua_State *L, mt_tensor *t, mt_tensor **out) {
  if (*out == t) lua_pushvalue(L, 1);
  return 1;
}

static int m_contiguous(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "contiguous");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_contiguous(out, t), "contiguous");
  return same_or_new(L, t, out);
}

static int convert(lua_State *L, const char *fname, mt_dtype dt) {
  mt_tensor *t = lmt_check(L, 1, fname);
  if (t->dtype == dt) {
    lua_settop(L, 1);
    return 1;
  }
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_to_dtype(out, t, dt), fname);
  return 1;
}

/* to(dtype) | to(other_tensor) | to("cpu"): a tensor already of that dtype comes back itself. */
static int m_to(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "to");
  mt_tensor *other = lmt_test(L, 2);
  if (other) return convert(L, "to", other->dtype);
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "cpu") == 0) {
    if (lua_isnoneornil(L, 3)) {
      lua_settop(L, 1);
      return 1;
    }
    lua_remove(L, 2);
  }
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "dtype");
    if (lua_isnil(L, -1)) {
      lua_settop(L, 1);
      return 1;
    }
    lua_replace(L, 2);
  }
  (void)t;
  return convert(L, "to", lmt_checkdtype(L, 2, "to"));
}

static int m_float(lua_State *L) { return convert(L, "float", MT_FLOAT32); }
static int m_double(lua_State *L) { return convert(L, "double", MT_FLOAT64); }
static int m_half(lua_State *L) { return convert(L, "half", MT_FLOAT16); }
static int m_bfloat16(lua_State *L) { return convert(L, "bfloat16", MT_BFLOAT16); }
static int m_long(lua_State *L) { return convert(L, "long", MT_INT64); }
static int m_int(lua_State *L) { return convert(L, "int", MT_INT32); }
static int m_short(lua_State *L) { return convert(L, "short", MT_INT16); }
static int m_char(lua_State *L) { return convert(L, "char", MT_INT8); }
static int m_byte(lua_State *L) { return convert(L, "byte", MT_UINT8); }
static int m_bool(lua_State *L) { return convert(L, "bool", MT_BOOL); }

static int m_copy_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "copy_");
  mt_tensor *src = lmt_check(L, 2, "copy_"); /* numbers go to fill_ */
  lmt_check_status(L, mt_copy_(t, src), "copy_");
  lua_settop(L, 1);
  return 1;
}

static int m_fill_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "fill_");
  lmt_check_status(L, mt_fill_(t, lmt_checkscalar(L, 2, "fill_")), "fill_");
  lua_settop(L, 1);
  return 1;
}

static int m_zero_(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "zero_");
  lmt_check_status(L, mt_fill_(t, mt_scalar_int(0)), "zero_");
  lua_settop(L, 1);
  return 1;
}

/* ---- views -------------------------------------------------------------------------------- */

static int shaped(lua_State *L, const char *fname, int kind) {
  mt_tensor *t = lmt_check(L, 1, fname);
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  int next = lmt_sizes(L, 2, &ndim, sizes, true, fname);
  if (!lua_isnone(L, next)) return lmt_typeerror(L, next, fname, "integer");
  mt_tensor **out = lmt_slot(L);
  mt_status st = kind == 0 ? mt_view(out, t, ndim, sizes)
                 : kind == 1 ? mt_reshape(out, t, ndim, sizes)
                             : mt_expand(out, t, ndim, sizes);
  lmt_check_status(L, st, fname);
  return 1;
}

static int m_view(lua_State *L) { return shaped(L, "view", 0); }
static int m_reshape(lua_State *L) { return shaped(L, "reshape", 1); }
static int m_expand(lua_State *L) { return shaped(L, "expand", 2); }

static int shaped_as(lua_State *L, const char *fname, int kind) {
  mt_tensor *t = lmt_check(L, 1, fname), *u = lmt_check(L, 2, fname);
  mt_tensor **out = lmt_slot(L);
  mt_status st = kind == 0 ? mt_view(out, t, u->ndim, u->sizes)
                 : kind == 1 ? mt_reshape(out, t, u->ndim, u->sizes)
                             : mt_expand(out, t, u->ndim, u->sizes);
  lmt_check_status(L, st, fname);
  return 1;
}

static int m_view_as(lua_State *L) { return shaped_as(L, "view_as", 0); }
static int m_reshape_as(lua_State *L) { return shaped_as(L, "reshape_as", 1); }
static int m_expand_as(lua_State *L) { return shaped_as(L, "expand_as", 2); }

static int m_flatten(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "flatten");
  int start = lmt_optdim(L, 2, t->ndim, 0, "flatten");
  int stop = lmt_optdim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0, "flatten");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_flatten(out, t, start, stop), "flatten");
  return 1;
}

static int m_transpose(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "transpose");
  int d0 = lmt_checkdim(L, 2, t->ndim, 0, "transpose");
  int d1 = lmt_checkdim(L, 3, t->ndim, 0, "transpose");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_transpose(out, t, d0, d1), "transpose");
  return 1;
}

static int m_t(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "t");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_t(out, t), "t");
  return 1;
}

static int m_permute(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "permute");
  int64_t dims[MT_MAX_DIMS];
  int n = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    size_t len = lua_rawlen(L, 2);
    if ((int)len != t->ndim || len > MT_MAX_DIMS)
      return lmt_error(L, "permute", "expected %d dims, got %zu", t->ndim, len);
    for (size_t i = 1; i <= len; i++) {
      lua_rawgeti(L, 2, (lua_Integer)i);
      dims[n++] = lmt_checkdim(L, -1, t->ndim, 0, "permute");
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (top - 1 != t->ndim) return lmt_error(L, "permute", "expected %d dims, got %d", t->ndim, top - 1);
    for (int i = 2; i <= top; i++) dims[n++] = lmt_checkdim(L, i, t->ndim, 0, "permute");
  }
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_permute(out, t, n, dims), "permute");
  return 1;
}

static int m_squeeze(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "squeeze");
  if (lua_isnoneornil(L, 2)) {
    mt_tensor **out = lmt_slot(L);
    lmt_check_status(L, mt_squeeze_all(out, t), "squeeze");
    return 1;
  }
  int d = lmt_checkdim(L, 2, t->ndim, 0, "squeeze");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_squeeze(out, t, d), "squeeze");
  return 1;
}

static int m_unsqueeze(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "unsqueeze");
  int d = lmt_checkdim(L, 2, t->ndim, 1, "unsqueeze");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_unsqueeze(out, t, d), "unsqueeze");
  return 1;
}

/* A 1-based position along a dim of size n (negative from the end) as 0-based; `extra` admits
 * n + 1 (narrow may start just past the end with length 0). */
static int64_t checkpos(lua_State *L, int arg, int64_t n, int extra, int dim, const char *fname, const char *what) {
  int64_t i = lmt_checkint(L, arg, fname, what);
  if (i == 0) lmt_error(L, fname, "%s 0 is invalid (indices are 1-based)", what);
  if (i > n + extra || i < -n)
    lmt_error(L, fname, "%s %lld is out of range for dim %d of size %lld", what, (long long)i, dim + 1, (long long)n);
  return i > 0 ? i - 1 : i + n;
}

static int m_narrow(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "narrow");
  if (t->ndim == 0) return lmt_error(L, "narrow", "cannot narrow a 0-dim tensor");
  int d = lmt_checkdim(L, 2, t->ndim, 0, "narrow");
  int64_t start = checkpos(L, 3, t->sizes[d], 1, d, "narrow", "start");
  int64_t length = lmt_checkint(L, 4, "narrow", "length");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_narrow(out, t, d, start, length), "narrow");
  return 1;
}

static int m_select(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "select");
  if (t->ndim == 0) return lmt_error(L, "select", "cannot select from a 0-dim tensor");
  int d = lmt_checkdim(L, 2, t->ndim, 0, "select");
  int64_t i = checkpos(L, 3, t->sizes[d], 0, d, "select", "index");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_select(out, t, d, i), "select");
  return 1;
}

/* ---- indexing ----------------------------------------------------------------------------- */

static int m_index_select(lua_State *L) {
  static const char *const NAME = "index_select";
  mt_tensor *t = lmt_check(L, 1, NAME);
  int d = lmt_checkdim(L, 2, t->ndim, 0, NAME);
  mt_tensor *idx = lmt_index_in(L, 3, t->ndim ? t->sizes[d] : 1, d, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_index_select(out, t, d, idx), NAME);
  return 1;
}

static int m_gather(lua_State *L) {
  static const char *const NAME = "gather";
  mt_tensor *t = lmt_check(L, 1, NAME);
  int d = lmt_checkdim(L, 2, t->ndim, 0, NAME);
  mt_tensor *idx = lmt_index_in(L, 3, t->ndim ? t->sizes[d] : 1, d, NAME);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_gather(out, t, d, idx), NAME);
  return 1;
}

/* scatter / scatter_add (dim, index, src) where src may be a number (scatter only). */
static int scatter(lua_State *L, const char *fname, bool add, bool inplace) {
  lua_settop(L, 4); /* index_in pushes the shifted indices at 5 */
  mt_tensor *t = lmt_check(L, 1, fname);
  int d = lmt_checkdim(L, 2, t->ndim, 0, fname);
  mt_tensor *idx = lmt_index_in(L, 3, t->ndim ? t->sizes[d] : 1, d, fname);
  mt_tensor *src = lmt_test(L, 4);
  if (!src) {
    if (add) return lmt_typeerror(L, 4, fname, "tensor");
    mt_scalar v = lmt_checkscalar(L, 4, fname);
    mt_tensor **s = lmt_slot(L);
    lmt_check_status(L, mt_full(s, t->dtype, idx->ndim, idx->sizes, v), fname);
    src = *s;
  }
  mt_tensor **out = lmt_slot(L);
  mt_status st = add ? mt_scatter_add(out, t, d, idx, src) : mt_scatter(out, t, d, idx, src);
  if (st == MT_OK && inplace) st = mt_copy_(t, *out);
  lmt_check_status(L, st, fname);
  if (inplace) lua_settop(L, 1);
  return 1;
}

static int m_scatter(lua_State *L) { return scatter(L, "scatter", false, false); }
static int m_scatter_add(lua_State *L) { return scatter(L, "scatter_add", true, false); }
static int m_scatter_(lua_State *L) { return scatter(L, "scatter_", false, true); }
static int m_scatter_add_(lua_State *L) { return scatter(L, "scatter_add_", true, true); }

/* index_add_(dim, index, src[, alpha]) */
static int m_index_add_(lua_State *L) {
  static const char *const NAME = "index_add_";
  lua_settop(L, 5); /* index_in pushes the shifted indices at 6 */
  mt_tensor *t = lmt_check(L, 1, NAME);
  int d = lmt_checkdim(L, 2, t->ndim, 0, NAME);
  mt_tensor *idx = lmt_index_in(L, 3, t->ndim ? t->sizes[d] : 1, d, NAME);
  mt_tensor *src = lmt_check(L, 4, NAME);
  if (!lua_isnoneornil(L, 5)) {
    if (lua_type(L, 5) != LUA_TNUMBER) return lmt_typeerror(L, 5, NAME, "number (alpha)");
    mt_tensor **scaled = lmt_slot(L), *tmp; /* the slot first: nothing may raise while tmp is held */
    mt_tensor *alpha = lmt_operand(L, 5, &tmp, NAME);
    mt_status st = mt_binary(scaled, MT_MUL, src, alpha);
    mt_tensor_release(tmp);
    lmt_check_status(L, st, NAME);
    src = *scaled;
  }
  lmt_check_status(L, mt_index_add_(t, d, idx, src), NAME);
  lua_settop(L, 1);
  return 1;
}

static int masked_fill(lua_State *L, const char *fname, bool inplace) {
  mt_tensor *t = lmt_check(L, 1, fname);
  mt_tensor *mask = lmt_check(L, 2, fname);
  mt_scalar v = lmt_checkscalar(L, 3, fname);
  if (inplace) {
    lmt_check_status(L, mt_masked_fill_(t, mask, v), fname);
    lua_settop(L, 1);
    return 1;
  }
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_masked_fill(out, t, mask, v), fname);
  return 1;
}

static int m_masked_fill(lua_State *L) { return masked_fill(L, "masked_fill", false); }
static int m_masked_fill_(lua_State *L) { return masked_fill(L, "masked_fill_", true); }

void lmt_open_shape(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg methods[] = {
      {"size", m_size},
      {"stride", m_stride},
      {"dim", m_dim},
      {"ndimension", m_dim},
      {"numel", m_numel},
      {"nelement", m_numel},
      {"is_contiguous", m_is_contiguous},
      {"element_size", m_element_size},
      {"storage_offset", m_storage_offset},
      {"data_ptr", m_data_ptr},
      {"item", m_item},
      {"tolist", m_tolist},
      {"clone", m_clone},
      {"contiguous", m_contiguous},
      {"to", m_to},
      {"float", m_float},
      {"double", m_double},
      {"half", m_half},
      {"bfloat16", m_bfloat16},
      {"long", m_long},
      {"int", m_int},
      {"short", m_short},
      {"char", m_char},
      {"byte", m_byte},
      {"bool", m_bool},
      {"copy_", m_copy_},
      {"fill_", m_fill_},
      {"zero_", m_zero_},
      {"view", m_view},
      {"reshape", m_reshape},
      {"expand", m_expand},
      {"view_as", m_view_as},
      {"reshape_as", m_reshape_as},
      {"expand_as", m_expand_as},
      {"flatten", m_flatten},
      {"transpose", m_transpose},
      {"t", m_t},
      {"permute", m_permute},
      {"squeeze", m_squeeze},
      {"unsqueeze", m_unsqueeze},
      {"narrow", m_narrow},
      {"select", m_select},
      {"index_select", m_index_select},
      {"gather", m_gather},
      {"scatter", m_scatter},
      {"scatter_add", m_scatter_add},
      {"scatter_", m_scatter_},
      {"scatter_add_", m_scatter_add_},
      {"index_add_", m_index_add_},
      {"masked_fill", m_masked_fill},
      {"masked_fill_", m_masked_fill_},
      {NULL, NULL}};
  lmt_setfuncs(L, tb->methods, methods);
}
