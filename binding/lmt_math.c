/*
 * lmt_math.c — elementwise math with broadcasting: binary ops (and the operators + - * / ^ %
 * and unary minus), unary ops, their in-place `_` forms, clamp, where, and matrix products.
 *
 * Lua numbers become wrapped 0-dim tensors (mt_wrap_number), the weakest operand in type
 * promotion, so `int_tensor + 1.5` is float32 and `float32_tensor * 2.0` stays float32, as in
 * PyTorch. These hot paths allocate nothing on the Lua side but the result's userdata.
 */
#include "lmt.h"

/* Both operands of a binary op: tensors or numbers, at least one a tensor; booleans only where
 * they make sense (comparisons, logical ops, where), as Lua itself refuses `true * 2`. Types
 * are checked before anything is wrapped, so a raise never strands a wrapped number. */
typedef struct operands {
  mt_tensor *a, *b;   /* what the core gets */
  mt_tensor *ta, *tb; /* wrapped numbers to release after the call */
} operands;

static bool is_plain(lua_State *L, int arg, bool booleans) {
  int tp = lua_type(L, arg);
  return tp == LUA_TNUMBER || (booleans && tp == LUA_TBOOLEAN);
}

/* Comparisons and logical ops take booleans as operands; arithmetic does not. */
static bool takes_booleans(mt_binop op) { return op >= MT_EQ; }

static void get_operands(lua_State *L, int ia, int ib, operands *o, bool booleans, const char *fname) {
  const char *what = booleans ? "tensor, number or boolean" : "tensor or number";
  bool pa = is_plain(L, ia, booleans), pb = is_plain(L, ib, booleans);
  /* each operand is looked at once (a tensor check is not free), in the order of the checks */
  if (!(o->a = pa ? NULL : lmt_test(L, ia)) && !pa) lmt_typeerror(L, ia, fname, what);
  if (!(o->b = pb ? NULL : lmt_test(L, ib)) && !pb) lmt_typeerror(L, ib, fname, what);
  if (pa && pb) lmt_error(L, fname, "expected at least one tensor, got two numbers");
  o->ta = o->tb = NULL; /* at most one of the two is wrapped */
  if (pa) o->a = lmt_operand(L, ia, &o->ta, fname);
  if (pb) o->b = lmt_operand(L, ib, &o->tb, fname);
}

static void release_operands(operands *o) {
  mt_tensor_release(o->ta);
  mt_tensor_release(o->tb);
}

static int binary(lua_State *L, mt_binop op, const char *fname) {
  lua_settop(L, 2); /* the result's slot goes at 3 */
  mt_tensor **out = lmt_slot(L);
  operands o;
  get_operands(L, 1, 2, &o, takes_booleans(op), fname);
  mt_status st = mt_binary(out, op, o.a, o.b);
  release_operands(&o);
  lmt_check_status(L, st, fname);
  return 1;
}

static int binary_(lua_State *L, mt_binop op, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname), *tmp;
  if (!is_plain(L, 2, takes_booleans(op)) && !lmt_test(L, 2))
    lmt_typeerror(L, 2, fname, takes_booleans(op) ? "tensor, number or boolean" : "tensor or number");
  mt_tensor *b = lmt_operand(L, 2, &tmp, fname);
  mt_status st = mt_binary_(op, t, b);
  mt_tensor_release(tmp);
  lmt_check_status(L, st, fname);
  lua_settop(L, 1);
  return 1;
}

/* add / sub with alpha: a + alpha * b. alpha is the third argument or {alpha = x}. */
static bool get_alpha(lua_State *L, int arg, const char *fname) {
  if (lua_type(L, arg) == LUA_TTABLE) {
    lua_getfield(L, arg, "alpha");
    lua_replace(L, arg);
  }
  if (lua_isnoneornil(L, arg)) return false;
  if (lua_type(L, arg) != LUA_TNUMBER) lmt_typeerror(L, arg, fname, "number (alpha)");
  return !(lua_isinteger(L, arg) && lua_tointeger(L, arg) == 1);
}

static int add_sub(lua_State *L, mt_binop op, const char *fname, bool inplace) {
  if (!get_alpha(L, 3, fname)) {
    lua_settop(L, 2);
    return inplace ? binary_(L, op, fname) : binary(L, op, fname);
  }
  /* scaled = b * alpha, kept in a slot at index 4, then a op scaled */
  mt_tensor *a = inplace ? lmt_check(L, 1, fname) : NULL;
  lua_settop(L, 3);
  mt_tensor **scaled = lmt_slot(L);
  operands o;
  get_operands(L, 2, 3, &o, false, fname);
  mt_status st = mt_binary(scaled, MT_MUL, o.a, o.b);
  release_operands(&o);
  lmt_check_status(L, st, fname);
  if (inplace) {
    lmt_check_status(L, mt_binary_(op, a, *scaled), fname);
    lua_settop(L, 1);
    return 1;
  }
  lua_replace(L, 2);
  lua_settop(L, 2);
  return binary(L, op, fname);
}

static int m_add(lua_State *L) { return add_sub(L, MT_ADD, "add", false); }
static int m_sub(lua_State *L) { return add_sub(L, MT_SUB, "sub", false); }
static int m_add_(lua_State *L) { return add_sub(L, MT_ADD, "add_", true); }
static int m_sub_(lua_State *L) { return add_sub(L, MT_SUB, "sub_", true); }

#define BINARY_FNS(X)                                                                          \
  X(mul, MT_MUL)                                                                               \
  X(div, MT_DIV)                                                                               \
  X(pow, MT_POW)                                                                               \
  X(maximum, MT_MAXIMUM)                                                                       \
  X(minimum, MT_MINIMUM)                                                                       \
  X(fmod, MT_FMOD)                                                                             \
  X(remainder, MT_REMAINDER)                                                                   \
  X(eq, MT_EQ)                                                                                 \
  X(ne, MT_NE)                                                                                 \
  X(lt, MT_LT)                                                                                 \
  X(le, MT_LE)                                                                                 \
  X(gt, MT_GT)                                                                                 \
  X(ge, MT_GE)                                                                                 \
  X(logical_and, MT_LOGICAL_AND)                                                               \
  X(logical_or, MT_LOGICAL_OR)                                                                 \
  X(logical_xor, MT_LOGICAL_XOR)

#define X(name, OP)                                                                            \
  static int m_##name(lua_State *L) { return binary(L, OP, #name); }                           \
  static int m_##name##_(lua_State *L) { return binary_(L, OP, #name "_"); }
BINARY_FNS(X)
#undef X

/* Operators: either side may be the number. */
static int op_add(lua_State *L) { return binary(L, MT_ADD, "add"); }
static int op_sub(lua_State *L) { return binary(L, MT_SUB, "sub"); }

static int unary(lua_State *L, mt_unop op, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_unary(out, op, t), fname);
  return 1;
}

static int unary_(lua_State *L, mt_unop op, const char *fname) {
  mt_tensor *t = lmt_check(L, 1, fname);
  lmt_check_status(L, mt_unary_(op, t), fname);
  lua_settop(L, 1);
  return 1;
}

#define UNARY_FNS(X)                                                                           \
  X(neg, MT_NEG)                                                                               \
  X(abs, MT_ABS)                                                                               \
  X(sign, MT_SIGN)                                                                             \
  X(relu, MT_RELU)                                                                             \
  X(floor, MT_FLOOR)                                                                           \
  X(ceil, MT_CEIL)                                                                             \
  X(round, MT_ROUND)                                                                           \
  X(trunc, MT_TRUNC)                                                                           \
  X(square, MT_SQUARE)                                                                         \
  X(exp, MT_EXP)                                                                               \
  X(log, MT_LOG)                                                                               \
  X(log2, MT_LOG2)                                                                             \
  X(log1p, MT_LOG1P)                                                                           \
  X(expm1, MT_EXPM1)                                                                           \
  X(sqrt, MT_SQRT)                                                                             \
  X(rsqrt, MT_RSQRT)                                                                           \
  X(reciprocal, MT_RECIPROCAL)                                                                 \
  X(sin, MT_SIN)                                                                               \
  X(cos, MT_COS)                                                                               \
  X(tan, MT_TAN)                                                                               \
  X(tanh, MT_TANH)                                                                             \
  X(sigmoid, MT_SIGMOID)                                                                       \
  X(erf, MT_ERF)                                                                               \
  X(logical_not, MT_LOGICAL_NOT)

#define X(name, OP)                                                                            \
  static int m_##name(lua_State *L) { return unary(L, OP, #name); }                            \
  static int m_##name##_(lua_State *L) { return unary_(L, OP, #name "_"); }
UNARY_FNS(X)
#undef X

/* clamp(min, max) with nil for no bound, or clamp({min = a, max = b}). */
static int clamp(lua_State *L, const char *fname, bool inplace) {
  mt_tensor *t = lmt_check(L, 1, fname);
  if (lua_type(L, 2) == LUA_TTABLE && !lmt_test(L, 2)) {
    lua_getfield(L, 2, "min");
    lua_getfield(L, 2, "max");
    lua_replace(L, 3);
    lua_replace(L, 2);
  }
  mt_scalar lo, hi;
  bool has_lo = !lua_isnoneornil(L, 2), has_hi = !lua_isnoneornil(L, 3);
  if (has_lo) lo = lmt_checkscalar(L, 2, fname);
  if (has_hi) hi = lmt_checkscalar(L, 3, fname);
  if (!has_lo && !has_hi) return lmt_error(L, fname, "at least one of min and max must be given");
  if (inplace) {
    lmt_check_status(L, mt_clamp_(t, has_lo ? &lo : NULL, has_hi ? &hi : NULL), fname);
    lua_settop(L, 1);
    return 1;
  }
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_clamp(out, t, has_lo ? &lo : NULL, has_hi ? &hi : NULL), fname);
  return 1;
}

static int m_clamp(lua_State *L) { return clamp(L, "clamp", false); }
static int m_clamp_(lua_State *L) { return clamp(L, "clamp_", true); }

/* A 0-dim tensor of the dtype PyTorch gives a lone Python number: bool, int64 or float32. */
static mt_tensor *scalar_operand(lua_State *L, int arg, const char *fname) {
  mt_scalar v = lmt_checkscalar(L, arg, fname);
  mt_dtype dt = v.kind == MT_SCALAR_BOOL ? MT_BOOL : v.kind == MT_SCALAR_INT ? MT_INT64 : MT_FLOAT32;
  mt_tensor **slot = lmt_slot(L);
  lmt_check_status(L, mt_scalar_tensor(slot, dt, v), fname);
  return *slot;
}

/* torch.where(cond, a, b): a and b may be numbers (both numbers: the result is as in PyTorch,
 * e.g. where(c, 1, 2.5) is float32). */
static int l_where(lua_State *L) {
  static const char *const NAME = "where";
  mt_tensor *cond = lmt_check(L, 1, NAME);
  lua_settop(L, 3);
  operands o;
  mt_tensor **out; /* its slot is the top of the stack: what the function returns */
  if (is_plain(L, 2, true) && is_plain(L, 3, true)) { /* kept alive at 4 and 5 */
    o.a = scalar_operand(L, 2, NAME);
    o.b = scalar_operand(L, 3, NAME);
    o.ta = o.tb = NULL;
    out = lmt_slot(L);
  } else {
    out = lmt_slot(L); /* before wrapping numbers: nothing may raise while they are held */
    get_operands(L, 2, 3, &o, true, NAME);
  }
  mt_status st = mt_where(out, cond, o.a, o.b);
  release_operands(&o);
  lmt_check_status(L, st, NAME);
  return 1;
}

/* ---- matrix products ---------------------------------------------------------------------- */

static int product(lua_State *L, const char *fname, int kind) {
  mt_tensor *a = lmt_check(L, 1, fname), *b = lmt_check(L, 2, fname);
  if (kind == 3 && (a->ndim != 1 || b->ndim != 1))
    return lmt_error(L, fname, "expects two 1-D tensors, got %d-D and %d-D", a->ndim, b->ndim);
  mt_tensor **out = lmt_slot(L);
  mt_status st = kind == 1 ? mt_mm(out, a, b) : kind == 2 ? mt_bmm(out, a, b) : mt_matmul(out, a, b);
  lmt_check_status(L, st, fname);
  return 1;
}

static int m_matmul(lua_State *L) { return product(L, "matmul", 0); }
static int m_mm(lua_State *L) { return product(L, "mm", 1); }
static int m_bmm(lua_State *L) { return product(L, "bmm", 2); }
static int m_dot(lua_State *L) { return product(L, "dot", 3); }

void lmt_open_math(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg methods[] = {
#define X(name, OP) {#name, m_##name}, {#name "_", m_##name##_},
      BINARY_FNS(X) UNARY_FNS(X)
#undef X
      {"add", m_add},
      {"sub", m_sub},
      {"add_", m_add_},
      {"sub_", m_sub_},
      {"clamp", m_clamp},
      {"clamp_", m_clamp_},
      {"matmul", m_matmul},
      {"mm", m_mm},
      {"bmm", m_bmm},
      {"dot", m_dot},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__add", op_add},      {"__sub", op_sub}, {"__mul", m_mul},
                                  {"__div", m_div},       {"__pow", m_pow},  {"__mod", m_remainder},
                                  {"__unm", m_neg},       {NULL, NULL}};
  static const luaL_Reg module[] = {{"where", l_where}, {NULL, NULL}};
  lmt_setfuncs(L, tb->methods, methods);
  lmt_setfuncs(L, tb->meta, meta);
  lmt_setfuncs(L, tb->module, module);
}
