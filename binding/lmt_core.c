/*
 * lmt_core.c — the tensor userdata and the module `moontorch.core`: the one metatable
 * (__gc, __close, __index, __newindex, __len), error reporting, and GC pacing.
 *
 * The module table returned by luaopen_moontorch_core holds the creation functions, plus
 * `_methods` (the table behind t:name(...)), `_metatable`, `_getters` (name -> function(t)
 * computing t.name) and `_setters` (name -> function(t, v) for t.name = v), so that the Lua
 * side and later issues (autograd fields) can extend tensors without touching this file.
 */
#include "lmt.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------------------- */

static int raise_v(lua_State *L, const char *fname, const char *prefix, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  lua_pushfstring(L, "moontorch.%s: %s%s", fname, prefix, msg);
  return lua_error(L);
}

int lmt_error(lua_State *L, const char *fname, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  raise_v(L, fname, "", fmt, ap);
  va_end(ap);
  return 0;
}

/* Argument numbers as the user wrote them: in t:f(x), x is argument #1 (as luaL_argerror). */
static int user_arg(lua_State *L, int arg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.namewhat && strcmp(ar.namewhat, "method") == 0)
    return arg - 1;
  return arg;
}

int lmt_argerror(lua_State *L, int arg, const char *fname, const char *fmt, ...) {
  char prefix[48];
  int n = user_arg(L, arg);
  if (n == 0)
    snprintf(prefix, sizeof prefix, "bad self (");
  else
    snprintf(prefix, sizeof prefix, "bad argument #%d (", n);
  char msg[448];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lmt_error(L, fname, "%s%s)", prefix, msg);
}

int lmt_typeerror(lua_State *L, int arg, const char *fname, const char *expected) {
  const char *got;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA)
    got = "light userdata";
  else
    got = luaL_typename(L, arg);
  return lmt_argerror(L, arg, fname, "%s expected, got %s", expected, got);
}

/* ---- GC pacing -----------------------------------------------------------------------------
 * Tensor memory lives outside Lua's heap, so the collector would not hurry to free a loop's
 * temporaries. Each lua_State remembers how much the core had allocated when it last told the
 * collector; once 256 KiB more has appeared, the difference is added to the collector's debt
 * (LUA_GCSTEP). That paces the incremental collector. The generational one (lua5.4's default
 * in the standalone interpreter) only runs a minor collection for it, which never frees
 * tensors that lived through two of them; so, as a backstop, when live tensor memory passes a
 * limit, a full collection runs. The limit is at least twice the live tensor memory and the
 * Lua heap after the previous one, so its cost stays proportional to what was allocated. */

#define LMT_GC_QUANTUM (256u * 1024u)
#define LMT_GC_FULL_MIN ((uint64_t)64 << 20)

typedef struct lmt_gcstate {
  uint64_t reported;   /* mt_storage_bytes_allocated() + tl_headers at the last report */
  uint64_t live_limit; /* live storage bytes that trigger the full collection */
} lmt_gcstate;

static const char GC_KEY = 'g'; /* its address keys the state in the registry */

static void full_collection(lua_State *L, lmt_gcstate *g) {
  lua_gc(L, LUA_GCCOLLECT);
  uint64_t live = mt_storage_bytes_live();
  uint64_t heap = (uint64_t)lua_gc(L, LUA_GCCOUNT) << 10;
  uint64_t limit = 2 * live;
  if (limit < heap) limit = heap;
  g->live_limit = limit < LMT_GC_FULL_MIN ? LMT_GC_FULL_MIN : limit;
}

/* The state is looked up only when this thread has allocated a quantum since it last looked
 * (a registry lookup per op is a noticeable part of a small op): headers are counted per
 * thread, and a state's `reported` catches up with whatever was made in between. */
static _Thread_local uint64_t tl_headers, tl_next_look;

void lmt_gc_pace(lua_State *L) {
  tl_headers += sizeof(mt_tensor);
  uint64_t now = mt_storage_bytes_allocated() + tl_headers;
  if (now < tl_next_look) return;
  tl_next_look = now + LMT_GC_QUANTUM;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &GC_KEY);
  lmt_gcstate *g = (lmt_gcstate *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!g) return;
  if (now < g->reported) g->reported = now; /* a state used from several threads: resync */
  if (now - g->reported < LMT_GC_QUANTUM) return;
  uint64_t kib = (now - g->reported) >> 10;
  g->reported = now;
  if (lua_gc(L, LUA_GCISRUNNING) != 1) return; /* stopped by the host, or inside a finalizer */
  lua_gc(L, LUA_GCSTEP, kib > INT_MAX ? INT_MAX : (int)kib);
  if (mt_storage_bytes_live() > g->live_limit) full_collection(L, g);
}

void lmt_check_status(lua_State *L, mt_status st, const char *fname) {
  if (st != MT_OK) lmt_error(L, fname, "%s", mt_last_error());
  lmt_gc_pace(L);
}

/* ---- the tensor userdata ------------------------------------------------------------------
 * The metatable is also kept in the registry under the address of META_KEY: luaL_testudata
 * and luaL_setmetatable look "moontorch.Tensor" up by name, which interns the C string
 * (a strcmp through Lua's string cache) on every call, a noticeable part of a small op. */

static const char META_KEY = 'm', SENTRY_KEY = 's';

/* Cheaper still: the addresses of the tensor metatables of the live lua_States, process-wide.
 * A userdata whose metatable is one of them is a tensor (no other object can have another
 * state's table as its metatable, and a state's entry goes, through a finalizer in its
 * registry, before lua_close frees the table). States beyond the first few use the registry. */
#define LMT_FAST_METAS 8
static _Atomic(const void *) fast_metas[LMT_FAST_METAS];

static bool is_fast_meta(const void *m) {
  for (int i = 0; i < LMT_FAST_METAS; i++)
    if (atomic_load_explicit(&fast_metas[i], memory_order_relaxed) == m) return true;
  return false;
}

/* __gc of the sentry userdata in the registry (runs at lua_close): forget this state's table. */
static int sentry_gc(lua_State *L) {
  const void **m = (const void **)lua_touserdata(L, 1);
  for (int i = 0; m && *m && i < LMT_FAST_METAS; i++) {
    const void *expected = *m;
    if (atomic_compare_exchange_strong(&fast_metas[i], &expected, NULL)) break;
  }
  return 0;
}

/* Registers the tensor metatable at the top of the stack (once per state). */
static void register_fast_meta(lua_State *L) {
  const void *m = lua_topointer(L, -1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SENTRY_KEY) != LUA_TNIL || is_fast_meta(m)) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  const void **sentry = (const void **)lua_newuserdatauv(L, sizeof *sentry, 0);
  *sentry = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sentry_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SENTRY_KEY);
  for (int i = 0; i < LMT_FAST_METAS; i++) {
    const void *expected = NULL;
    if (atomic_compare_exchange_strong(&fast_metas[i], &expected, m)) {
      *sentry = m;
      break;
    }
  }
}

static int closed_error(lua_State *L) {
  return luaL_error(L, "moontorch: tensor used after it was closed");
}

lmt_box *lmt_testbox(lua_State *L, int arg) {
  lmt_box *b = (lmt_box *)lua_touserdata(L, arg);
  if (!b || !lua_getmetatable(L, arg)) return NULL; /* light userdata has no metatable either */
  const void *m = lua_topointer(L, -1);
  if (!is_fast_meta(m)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &META_KEY);
    if (lua_topointer(L, -1) != m) b = NULL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return b;
}

mt_tensor *lmt_test(lua_State *L, int arg) {
  lmt_box *b = lmt_testbox(L, arg);
  if (!b) return NULL;
  if (!b->t) closed_error(L);
  return b->t;
}

mt_tensor *lmt_check(lua_State *L, int arg, const char *fname) {
  lmt_box *b = lmt_testbox(L, arg);
  if (!b) lmt_typeerror(L, arg, fname, "tensor");
  if (!b->t) closed_error(L);
  return b->t;
}

mt_tensor **lmt_slot(lua_State *L) {
  /* One user value is reserved for per-tensor Lua state that later issues attach (autograd). */
  lmt_box *b = (lmt_box *)lua_newuserdatauv(L, sizeof *b, 1);
  b->t = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &META_KEY);
  lua_setmetatable(L, -2);
  return &b->t;
}

void lmt_setfuncs(lua_State *L, int idx, const luaL_Reg *regs) {
  idx = lua_absindex(L, idx);
  for (; regs->name; regs++) {
    lua_pushcfunction(L, regs->func);
    lua_setfield(L, idx, regs->name);
  }
}

/* __gc and __close: drop the core's reference once; later use raises. */
static int t_release(lua_State *L) {
  lmt_box *b = lmt_testbox(L, 1);
  if (!b) return lmt_typeerror(L, 1, "release", "tensor");
  mt_tensor_release(b->t);
  b->t = NULL;
  return 0;
}

/* __index: t[i] selects along dim 1; names find methods, then property getters; else nil.
 * Upvalues: 1 = methods, 2 = getters. */
static int t_index(lua_State *L) {
  switch (lua_type(L, 2)) {
  case LUA_TSTRING:
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) == LUA_TNIL) return 1; /* unknown key: nil */
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
  case LUA_TNUMBER: {
    mt_tensor *t = lmt_check(L, 1, "select");
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint) return lmt_error(L, "select", "index %s is not an integer", lua_tostring(L, 2));
    if (t->ndim == 0) return lmt_error(L, "select", "cannot index a 0-dim tensor");
    int64_t n = t->sizes[0];
    if (i == 0) return lmt_error(L, "select", "index 0 is invalid (indices are 1-based)");
    if (i > n || i < -n)
      return lmt_error(L, "select", "index %lld is out of range for dim 1 of size %lld", (long long)i,
                       (long long)n);
    mt_tensor **out = lmt_slot(L);
    lmt_check_status(L, mt_select(out, t, 0, i > 0 ? i - 1 : i), "select");
    return 1;
  }
  default:
    return 0;
  }
}

/* __newindex: t[i] = v copies a number or tensor into t:select(1, i); names go to setters.
 * Upvalue 1 = setters. */
static int t_newindex(lua_State *L) {
  static const char *const NAME = "setindex";
  mt_tensor *t = lmt_check(L, 1, NAME);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint) return lmt_error(L, NAME, "index %s is not an integer", lua_tostring(L, 2));
    if (t->ndim == 0) return lmt_error(L, NAME, "cannot index a 0-dim tensor");
    int64_t n = t->sizes[0];
    if (i == 0) return lmt_error(L, NAME, "index 0 is invalid (indices are 1-based)");
    if (i > n || i < -n)
      return lmt_error(L, NAME, "index %lld is out of range for dim 1 of size %lld", (long long)i,
                       (long long)n);
    mt_tensor **row = lmt_slot(L); /* a view, freed by the GC like any other */
    lmt_check_status(L, mt_select(row, t, 0, i > 0 ? i - 1 : i), NAME);
    mt_tensor *src = lmt_test(L, 3);
    mt_status st;
    if (src) {
      st = mt_copy_(*row, src);
    } else {
      int tp = lua_type(L, 3);
      if (tp != LUA_TNUMBER && tp != LUA_TBOOLEAN) return lmt_typeerror(L, 3, NAME, "number or tensor");
      st = mt_fill_(*row, lmt_checkscalar(L, 3, NAME));
    }
    lmt_check_status(L, st, NAME);
    return 0;
  }
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
      lua_pushvalue(L, 1);
      lua_pushvalue(L, 3);
      lua_call(L, 2, 0);
      return 0;
    }
    return lmt_error(L, NAME, "tensors have no settable field '%s'", lua_tostring(L, 2));
  }
  return lmt_error(L, NAME, "a tensor cannot be indexed with a %s", luaL_typename(L, 2));
}

static int t_len(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "len");
  if (t->ndim == 0) return lmt_error(L, "len", "a 0-dim tensor has no length");
  lua_pushinteger(L, t->sizes[0]);
  return 1;
}

/* Lua's < and <= must give one boolean; elementwise comparison is t:lt(u) / t:le(u). */
static int t_compare(lua_State *L) {
  return luaL_error(L, "moontorch: tensors do not support < <= > >=; use t:lt(u), t:le(u), t:gt(u), t:ge(u)");
}

/* ---- properties --------------------------------------------------------------------------- */

static int p_dtype(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "dtype");
  lua_pushstring(L, mt_dtype_info(t->dtype)->name);
  return 1;
}

static int p_shape(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "shape");
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->sizes[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int p_ndim(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "ndim");
  lua_pushinteger(L, t->ndim);
  return 1;
}

/* ---- the module --------------------------------------------------------------------------- */

int luaopen_moontorch_core(lua_State *L) {
  luaL_checkversion(L);
  mt_set_index_base(1); /* the core's messages count dims and indices as Lua does */

  /* GC pacing state, one per lua_State (shared by its coroutines). */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &GC_KEY);
  if (lua_isnil(L, -1)) {
    lmt_gcstate *g = (lmt_gcstate *)lua_newuserdatauv(L, sizeof *g, 0);
    g->reported = mt_storage_bytes_allocated() + tl_headers;
    g->live_limit = LMT_GC_FULL_MIN;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &GC_KEY);
  }
  lua_pop(L, 1);

  luaL_newmetatable(L, LMT_TENSOR);
  int meta = lua_gettop(L);
  lua_pushvalue(L, meta);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &META_KEY);
  register_fast_meta(L);
  lua_newtable(L);
  int methods = lua_gettop(L);
  lua_newtable(L);
  int getters = lua_gettop(L);
  lua_newtable(L);
  int setters = lua_gettop(L);
  lua_newtable(L);
  int module = lua_gettop(L);

  lua_pushcfunction(L, t_release);
  lua_setfield(L, meta, "__gc");
  lua_pushcfunction(L, t_release);
  lua_setfield(L, meta, "__close");
  lua_pushvalue(L, methods);
  lua_pushvalue(L, getters);
  lua_pushcclosure(L, t_index, 2);
  lua_setfield(L, meta, "__index");
  lua_pushvalue(L, setters);
  lua_pushcclosure(L, t_newindex, 1);
  lua_setfield(L, meta, "__newindex");
  lua_pushcfunction(L, t_len);
  lua_setfield(L, meta, "__len");
  lua_pushcfunction(L, t_compare);
  lua_setfield(L, meta, "__lt");
  lua_pushcfunction(L, t_compare);
  lua_setfield(L, meta, "__le");
  lua_pushliteral(L, "moontorch.Tensor");
  lua_setfield(L, meta, "__name");

  static const luaL_Reg props[] = {{"dtype", p_dtype}, {"shape", p_shape}, {"ndim", p_ndim}, {NULL, NULL}};
  lmt_setfuncs(L, getters, props);

  lmt_tables tb = {meta, methods, module, getters};
  lmt_open_create(L, &tb);
  lmt_open_shape(L, &tb);
  lmt_open_math(L, &tb);
  lmt_open_reduce(L, &tb);
  lmt_open_autograd(L, &tb);
  lmt_open_serialize(L, &tb);
  lmt_open_nn(L, &tb);
  lmt_open_optim(L, &tb);
  lmt_open_data(L, &tb);
  lmt_open_jit(L, &tb);
  lmt_open_dist(L, &tb);
  lmt_open_threads(L, &tb);

  lua_pushvalue(L, methods);
  lua_setfield(L, module, "_methods");
  lua_pushvalue(L, meta);
  lua_setfield(L, module, "_metatable");
  lua_pushvalue(L, getters);
  lua_setfield(L, module, "_getters");
  lua_pushvalue(L, setters);
  lua_setfield(L, module, "_setters");
  return 1;
}
