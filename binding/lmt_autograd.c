/*
 * lmt_autograd.c — autograd as Lua sees it (SPEC section 3). The ops themselves record their
 * nodes in the core, so nothing here sits on the hot path; this file only exposes the state:
 *
 *   getters   t.requires_grad, t.grad, t.grad_fn, t.is_leaf, t._version
 *   methods   t:requires_grad_([flag]), t:backward([grad[, opts]]), t:detach()
 *   module    is_grad_enabled(), set_grad_enabled(flag), and the raw setters
 *             _set_requires_grad / _set_grad that lua/moontorch/autograd.lua puts into
 *             `_setters` (t.requires_grad = flag, t.grad = g)
 *
 * t.grad is cached in the tensor userdata's user value, so repeated reads give the same Lua
 * object (and `t.grad = g` makes t.grad be g itself, as in PyTorch). The cache is checked
 * against the core's pointer on every read, since backward may create the gradient.
 *
 * t.grad_fn is a "moontorch.Node" userdata: the node plus a reference to a tensor that holds
 * it (the tensor keeps its grad_fn, which keeps every node behind it alive through its edges),
 * so the handle stays valid however long Lua keeps it.
 */
#include "lmt.h"

#include <string.h>

#define LMT_NODE "moontorch.Node"

typedef struct lmt_node {
  mt_tensor *anchor; /* retained; keeps `node` alive */
  mt_node *node;
} lmt_node;

/* ---- creation options --------------------------------------------------------------------- */

void lmt_finish_options(lua_State *L, const lmt_opts *o, const char *fname) {
  if (!o->requires_grad) return;
  mt_tensor *t = lmt_check(L, -1, fname);
  if (mt_requires_grad_(t, true) != MT_OK) lmt_error(L, fname, "%s", mt_last_error());
}

/* ---- grad_fn handles ---------------------------------------------------------------------- */

static void push_node(lua_State *L, mt_tensor *anchor, mt_node *node) {
  lmt_node *h = (lmt_node *)lua_newuserdatauv(L, sizeof *h, 0);
  h->anchor = NULL;
  h->node = NULL;
  luaL_setmetatable(L, LMT_NODE);
  mt_tensor_retain(anchor);
  h->anchor = anchor;
  h->node = node;
}

static lmt_node *check_node(lua_State *L, int arg, const char *fname) {
  lmt_node *h = (lmt_node *)luaL_testudata(L, arg, LMT_NODE);
  if (!h) lmt_typeerror(L, arg, fname, "autograd node");
  return h;
}

static int n_gc(lua_State *L) {
  lmt_node *h = (lmt_node *)luaL_checkudata(L, 1, LMT_NODE);
  mt_tensor_release(h->anchor);
  h->anchor = NULL;
  h->node = NULL;
  return 0;
}

static int n_name(lua_State *L) {
  lmt_node *h = check_node(L, 1, "name");
  lua_pushstring(L, mt_node_name(h->node));
  return 1;
}

/* One entry per input of the op, in order: that input's grad_fn, or false where the input is a
 * leaf or does not take part in autograd (an array has no holes, so not nil). */
static int n_next_functions(lua_State *L) {
  lmt_node *h = check_node(L, 1, "next_functions");
  int n = mt_node_num_next(h->node);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    mt_node *c = mt_node_next(h->node, i);
    if (c) push_node(L, h->anchor, c);
    else lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* Two handles are equal when they stand for the same node. */
static int n_eq(lua_State *L) {
  lmt_node *a = (lmt_node *)luaL_testudata(L, 1, LMT_NODE);
  lmt_node *b = (lmt_node *)luaL_testudata(L, 2, LMT_NODE);
  lua_pushboolean(L, a && b && a->node == b->node);
  return 1;
}

/* __index: methods, then the fields name-less Lua code reads (next_functions). Upvalue 1 = methods. */
static int n_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "next_functions") == 0) return n_next_functions(L);
  return 1; /* nil */
}

static void open_node(lua_State *L) {
  if (!luaL_newmetatable(L, LMT_NODE)) {
    lua_pop(L, 1);
    return;
  }
  static const luaL_Reg methods[] = {{"name", n_name}, {NULL, NULL}};
  lua_newtable(L);
  lmt_setfuncs(L, -1, methods);
  lua_pushcclosure(L, n_index, 1);
  lua_setfield(L, -2, "__index");
  static const luaL_Reg meta[] = {{"__gc", n_gc}, {"__tostring", n_name}, {"__eq", n_eq}, {NULL, NULL}};
  lmt_setfuncs(L, -1, meta);
  lua_pushliteral(L, LMT_NODE);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

/* ---- getters ------------------------------------------------------------------------------ */

static int p_requires_grad(lua_State *L) {
  lua_pushboolean(L, lmt_check(L, 1, "requires_grad")->requires_grad);
  return 1;
}

static int p_is_leaf(lua_State *L) {
  lua_pushboolean(L, lmt_check(L, 1, "is_leaf")->grad_fn == NULL);
  return 1;
}

static int p_version(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mt_tensor_version(lmt_check(L, 1, "_version")));
  return 1;
}

static int p_grad_fn(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "grad_fn");
  if (!t->grad_fn) lua_pushnil(L);
  else push_node(L, t, t->grad_fn);
  return 1;
}

/* Caches the userdata at the top of the stack (or nil) as t's gradient; t at index 1. */
static void cache_grad(lua_State *L) {
  if (!lua_setiuservalue(L, 1, 1)) lua_pop(L, 1); /* a userdata without the slot: no cache */
}

static int p_grad(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "grad");
  if (!t->grad) {
    lua_pushnil(L);
    return 1;
  }
  if (lua_getiuservalue(L, 1, 1) == LUA_TUSERDATA) {
    lmt_box *b = lmt_testbox(L, -1);
    if (b && b->t == t->grad) return 1;
  }
  lua_pop(L, 1);
  mt_tensor **slot = lmt_slot(L);
  mt_tensor_retain(t->grad);
  *slot = t->grad;
  lua_pushvalue(L, -1);
  cache_grad(L);
  return 1;
}

/* ---- setters ------------------------------------------------------------------------------ */

static int s_requires_grad(lua_State *L) {
  static const char *const NAME = "requires_grad";
  mt_tensor *t = lmt_check(L, 1, NAME);
  if (lua_type(L, 2) != LUA_TBOOLEAN)
    return lmt_error(L, NAME, "requires_grad must be a boolean, got %s", luaL_typename(L, 2));
  if (mt_requires_grad_(t, lua_toboolean(L, 2)) != MT_OK) return lmt_error(L, NAME, "%s", mt_last_error());
  return 0;
}

/* t.grad = nil | tensor of t's shape and dtype (as PyTorch, which refuses another dtype). */
static int s_grad(lua_State *L) {
  static const char *const NAME = "grad";
  mt_tensor *t = lmt_check(L, 1, NAME);
  mt_tensor *g = NULL;
  if (!lua_isnoneornil(L, 2)) {
    g = lmt_test(L, 2);
    if (!g) return lmt_error(L, NAME, "grad must be a tensor or nil, got %s", luaL_typename(L, 2));
    if (g == t) return lmt_error(L, NAME, "a tensor cannot be its own gradient");
    if (g->dtype != t->dtype)
      return lmt_error(L, NAME, "the gradient's dtype %s does not match the tensor's dtype %s",
                       mt_dtype_info(g->dtype)->name, mt_dtype_info(t->dtype)->name);
  }
  if (mt_set_grad(t, g) != MT_OK) return lmt_error(L, NAME, "%s", mt_last_error());
  lua_settop(L, 2);
  if (!g) {
    lua_pushnil(L);
    cache_grad(L);
  } else {
    cache_grad(L); /* the very object assigned: t.grad == g afterwards */
  }
  return 0;
}

/* ---- methods ------------------------------------------------------------------------------ */

static int m_requires_grad_(lua_State *L) {
  static const char *const NAME = "requires_grad_";
  mt_tensor *t = lmt_check(L, 1, NAME);
  bool flag = lmt_optbool(L, 2, true, NAME);
  if (mt_requires_grad_(t, flag) != MT_OK) return lmt_error(L, NAME, "%s", mt_last_error());
  lua_settop(L, 1);
  return 1;
}

static int m_detach(lua_State *L) {
  mt_tensor *t = lmt_check(L, 1, "detach");
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_detach(out, t), "detach");
  return 1;
}

/* Reads backward's options table at `arg` (none/nil allowed) into *retain. */
static void backward_options(lua_State *L, int arg, bool *retain, const char *fname) {
  *retain = false;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_type(L, arg) != LUA_TTABLE) lmt_typeerror(L, arg, fname, "options table");
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && strcmp(k, "retain_graph") == 0) {
      if (lua_type(L, -1) != LUA_TBOOLEAN && !lua_isnil(L, -1))
        lmt_error(L, fname, "option retain_graph must be a boolean, got %s", luaL_typename(L, -1));
      *retain = lua_toboolean(L, -1);
    } else if (k && strcmp(k, "create_graph") == 0) {
      if (lua_toboolean(L, -1)) lmt_error(L, fname, "create_graph is not supported (no higher-order gradients)");
    } else {
      lua_pushvalue(L, -2);
      lmt_error(L, fname, "unknown option '%s'", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
  }
}

/* backward([grad[, opts]]); a plain table in place of grad is the options table. */
static int m_backward(lua_State *L) {
  static const char *const NAME = "backward";
  mt_tensor *t = lmt_check(L, 1, NAME);
  mt_tensor *g = NULL;
  int opt = 3;
  if (!lua_isnoneornil(L, 2)) {
    g = lmt_test(L, 2);
    if (!g) {
      if (lua_type(L, 2) != LUA_TTABLE || !lua_isnoneornil(L, 3)) return lmt_typeerror(L, 2, NAME, "tensor");
      opt = 2;
    }
  }
  bool retain;
  backward_options(L, opt, &retain, NAME);
  lmt_check_status(L, mt_backward(t, g, retain), NAME);
  return 0;
}

/* ---- grad mode ---------------------------------------------------------------------------- */

static int l_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, mt_is_grad_enabled());
  return 1;
}

/* set_grad_enabled(flag): returns the previous mode, so that callers can put it back. */
static int l_set_grad_enabled(lua_State *L) {
  static const char *const NAME = "set_grad_enabled";
  if (lua_type(L, 1) != LUA_TBOOLEAN) return lmt_typeerror(L, 1, NAME, "boolean");
  lua_pushboolean(L, mt_is_grad_enabled());
  mt_set_grad_enabled(lua_toboolean(L, 1));
  return 1;
}

void lmt_open_autograd(lua_State *L, const lmt_tables *tb) {
  open_node(L);
  static const luaL_Reg getters[] = {{"requires_grad", p_requires_grad},
                                     {"grad", p_grad},
                                     {"grad_fn", p_grad_fn},
                                     {"is_leaf", p_is_leaf},
                                     {"_version", p_version},
                                     {NULL, NULL}};
  lmt_setfuncs(L, tb->getters, getters);
  static const luaL_Reg methods[] = {
      {"requires_grad_", m_requires_grad_}, {"detach", m_detach}, {"backward", m_backward}, {NULL, NULL}};
  lmt_setfuncs(L, tb->methods, methods);
  static const luaL_Reg module[] = {{"is_grad_enabled", l_is_grad_enabled},
                                    {"set_grad_enabled", l_set_grad_enabled},
                                    {"_set_requires_grad", s_requires_grad},
                                    {"_set_grad", s_grad},
                                    {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
