/*
 * lmt_jit.c — raw bindings of traced models (moontorch.h, "Traced models"), in the module table
 * as `_jit`; lua/moontorch/jit.lua builds torch.jit on top (the eval-mode / no_grad setup, the
 * flattening of outputs, the TracedModule object).
 *
 *   _jit.trace_begin()             -> trace (a "moontorch.Trace" userdata; __gc aborts it)
 *   _jit.trace_input(trace, t)     declares the next graph input
 *   _jit.trace_end(trace, {t...})  -> graph computing those outputs; ends the trace either way
 *   _jit.trace_abort(trace)        ends it without a graph (idempotent)
 *   _jit.trace_active()            -> boolean
 *   _jit.load(path)                -> graph
 *   graph:run({t...})              -> {t...}  (a "moontorch.Graph" userdata; __gc frees it)
 *   graph:save(path), graph:num_inputs(), graph:num_outputs()
 *   graph:value([adopt])           -> the value tree the file holds, as Lua tables; dicts go
 *                                     through adopt(t, keys) (ordered tables) when given
 *
 * Errors name what the user called: moontorch.jit.trace, jit.load, jit.save and
 * jit.TracedModule (running a graph).
 */
#include "lmt.h"

#include <stdio.h>
#include <stdlib.h>

#define TRACE "moontorch.Trace"
#define GRAPH "moontorch.Graph"
#define HELD "moontorch.jit.Held" /* outputs or a value tree between the core and Lua */

#define TRACE_FN "jit.trace"
#define LOAD_FN "jit.load"
#define SAVE_FN "jit.save"
#define RUN_FN "jit.TracedModule"

typedef struct trace_box {
  mt_trace *tr; /* NULL once ended or aborted */
} trace_box;

typedef struct graph_box {
  mt_graph *g; /* NULL until loaded / built */
} graph_box;

/* What the core hands over before it is wrapped for Lua: released by __close when the call
 * returns or raises, so a failure half-way through leaks nothing. */
typedef struct held {
  mt_value *v;
  mt_tensor **ts;
  int n;
} held;

/* ---- helpers ------------------------------------------------------------------------------ */

static int held_close(lua_State *L) {
  held *h = (held *)luaL_checkudata(L, 1, HELD);
  mt_value_free(h->v);
  h->v = NULL;
  if (h->ts) {
    for (int i = 0; i < h->n; i++) mt_tensor_release(h->ts[i]);
    free(h->ts);
    h->ts = NULL;
  }
  return 0;
}

static held *held_push(lua_State *L) {
  held *h = (held *)lua_newuserdatauv(L, sizeof *h, 0);
  h->v = NULL;
  h->ts = NULL;
  h->n = 0;
  luaL_setmetatable(L, HELD);
  lua_toclose(L, -1);
  return h;
}

static mt_trace *check_trace(lua_State *L, int arg) {
  trace_box *b = (trace_box *)luaL_testudata(L, arg, TRACE);
  if (!b) lmt_typeerror(L, arg, TRACE_FN, "trace");
  if (!b->tr) lmt_error(L, TRACE_FN, "the trace has already ended");
  return b->tr;
}

static mt_graph *check_graph(lua_State *L, int arg, const char *fname) {
  graph_box *b = (graph_box *)luaL_testudata(L, arg, GRAPH);
  if (!b || !b->g) lmt_typeerror(L, arg, fname, "traced graph");
  return b->g;
}

static graph_box *push_graph(lua_State *L) {
  graph_box *b = (graph_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->g = NULL;
  luaL_setmetatable(L, GRAPH);
  return b;
}

static const char *check_path(lua_State *L, int arg, const char *fname) {
  if (lua_type(L, arg) != LUA_TSTRING) lmt_typeerror(L, arg, fname, "path");
  return lua_tostring(L, arg);
}

/* What is wrong with the Lua array at `arg` as a list of tensors (exactly `want` of them unless
 * want < 0), written into msg; NULL when nothing is. `what` names the items ("input"). */
static const char *list_problem(lua_State *L, int arg, int want, const char *what, char *msg, size_t cap) {
  if (lua_type(L, arg) != LUA_TTABLE) {
    snprintf(msg, cap, "bad argument #%d (table of tensors expected, got %s)", arg, luaL_typename(L, arg));
    return msg;
  }
  lua_Integer len = (lua_Integer)lua_rawlen(L, arg);
  if (want >= 0 && len != want) {
    snprintf(msg, cap, "expected %d %s tensor%s, got %lld", want, what, want == 1 ? "" : "s", (long long)len);
    return msg;
  }
  if (len > 1 << 20) {
    snprintf(msg, cap, "too many %s tensors (%lld)", what, (long long)len);
    return msg;
  }
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, arg, i);
    lmt_box *b = (lmt_box *)luaL_testudata(L, -1, LMT_TENSOR); /* lmt_test would raise for a closed one */
    if (!b || !b->t)
      snprintf(msg, cap, "%s %lld is a %s, expected a tensor", what, (long long)i, b ? "closed tensor" : luaL_typename(L, -1));
    lua_pop(L, 1);
    if (!b || !b->t) return msg;
  }
  return NULL;
}

/* The tensors of a checked list, in a userdata array pushed on the stack; the list keeps them
 * alive for the call. */
static const mt_tensor **tensor_list(lua_State *L, int arg, int *n) {
  int len = (int)lua_rawlen(L, arg);
  const mt_tensor **ts = (const mt_tensor **)lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *ts, 0);
  for (int i = 1; i <= len; i++) {
    lua_rawgeti(L, arg, i);
    ts[i - 1] = lmt_test(L, -1);
    lua_pop(L, 1);
  }
  *n = len;
  return ts;
}

/* ---- tracing ------------------------------------------------------------------------------ */

static int trace_gc(lua_State *L) {
  trace_box *b = (trace_box *)luaL_checkudata(L, 1, TRACE);
  mt_trace_abort(b->tr);
  b->tr = NULL;
  return 0;
}

static int l_trace_begin(lua_State *L) {
  trace_box *b = (trace_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->tr = NULL;
  luaL_setmetatable(L, TRACE);
  if (mt_trace_begin(&b->tr) != MT_OK) return lmt_error(L, TRACE_FN, "%s", mt_last_error());
  return 1;
}

static int l_trace_input(lua_State *L) {
  mt_trace *tr = check_trace(L, 1);
  mt_tensor *t = lmt_check(L, 2, TRACE_FN);
  if (mt_trace_input(tr, t) != MT_OK) return lmt_error(L, TRACE_FN, "%s", mt_last_error());
  return 0;
}

static int l_trace_end(lua_State *L) {
  mt_trace *tr = check_trace(L, 1);
  trace_box *box = (trace_box *)lua_touserdata(L, 1);
  char msg[160];
  const char *problem = list_problem(L, 2, -1, "output", msg, sizeof msg);
  if (!problem && lua_rawlen(L, 2) == 0) problem = "the traced function returned no tensors";
  if (problem) {
    box->tr = NULL;
    mt_trace_abort(tr);
    return lmt_error(L, TRACE_FN, "%s", problem);
  }
  int n;
  const mt_tensor **outs = tensor_list(L, 2, &n);
  graph_box *g = push_graph(L); /* allocations that may raise come first: until here __gc aborts */
  box->tr = NULL;
  mt_status st = mt_trace_end(tr, n, (mt_tensor *const *)outs, &g->g); /* frees tr, also on failure */
  if (st != MT_OK) return lmt_error(L, TRACE_FN, "%s", mt_last_error());
  return 1;
}

static int l_trace_abort(lua_State *L) {
  luaL_checkudata(L, 1, TRACE);
  return trace_gc(L);
}

static int l_trace_active(lua_State *L) {
  lua_pushboolean(L, mt_trace_active());
  return 1;
}

/* ---- graphs ------------------------------------------------------------------------------- */

static int graph_gc(lua_State *L) {
  graph_box *b = (graph_box *)luaL_checkudata(L, 1, GRAPH);
  mt_graph_free(b->g);
  b->g = NULL;
  return 0;
}

static int l_load(lua_State *L) {
  const char *path = check_path(L, 1, LOAD_FN);
  graph_box *b = push_graph(L);
  if (mt_graph_load(&b->g, path) != MT_OK) return lmt_error(L, LOAD_FN, "%s", mt_last_error());
  return 1;
}

static int g_save(lua_State *L) {
  mt_graph *g = check_graph(L, 1, SAVE_FN);
  const char *path = check_path(L, 2, SAVE_FN);
  if (mt_graph_save(g, path) != MT_OK) return lmt_error(L, SAVE_FN, "%s", mt_last_error());
  return 0;
}

static int g_num_inputs(lua_State *L) {
  lua_pushinteger(L, mt_graph_num_inputs(check_graph(L, 1, RUN_FN)));
  return 1;
}

static int g_num_outputs(lua_State *L) {
  lua_pushinteger(L, mt_graph_num_outputs(check_graph(L, 1, RUN_FN)));
  return 1;
}

/* graph:run({inputs}) -> {outputs} */
static int g_run(lua_State *L) {
  mt_graph *g = check_graph(L, 1, RUN_FN);
  int nin, nout = mt_graph_num_outputs(g);
  char msg[160];
  const char *problem = list_problem(L, 2, mt_graph_num_inputs(g), "input", msg, sizeof msg);
  if (problem) return lmt_error(L, RUN_FN, "%s", problem);
  const mt_tensor **ins = tensor_list(L, 2, &nin);
  held *h = held_push(L);
  if (!(h->ts = (mt_tensor **)calloc((size_t)(nout ? nout : 1), sizeof *h->ts)))
    return lmt_error(L, RUN_FN, "out of memory");
  h->n = nout;
  lmt_check_status(L, mt_graph_run(g, (mt_tensor *const *)ins, h->ts), RUN_FN);
  lua_createtable(L, nout, 0);
  for (int i = 0; i < nout; i++) {
    mt_tensor **slot = lmt_slot(L); /* may raise: what is not moved yet is released by __close */
    *slot = h->ts[i];
    h->ts[i] = NULL;
    lua_rawseti(L, -2, i + 1);
    lmt_gc_pace(L);
  }
  return 1;
}

/* ---- graph:value -------------------------------------------------------------------------- */

typedef struct conv {
  lua_State *L;
  int adopt;   /* stack index of adopt, or 0 */
  int tensors; /* stack index: core tensor -> its userdata (constants sharing one tensor) */
} conv;

static void push_value(conv *c, const mt_value *v, int depth) {
  lua_State *L = c->L;
  if (depth > MT_MAX_NESTING) lmt_error(L, RUN_FN, "the graph's value tree is nested too deeply");
  luaL_checkstack(L, 8, "graph value");
  switch (v->kind) {
  case MT_VAL_NONE: lua_pushnil(L); return;
  case MT_VAL_BOOL: lua_pushboolean(L, v->u.b); return;
  case MT_VAL_INT: lua_pushinteger(L, v->u.i); return;
  case MT_VAL_FLOAT: lua_pushnumber(L, v->u.f); return;
  case MT_VAL_STR:
  case MT_VAL_BYTES: lua_pushlstring(L, v->u.str.ptr, v->u.str.len); return;
  case MT_VAL_TENSOR:
    if (lua_rawgetp(L, c->tensors, v->u.tensor) != LUA_TNIL) return;
    lua_pop(L, 1);
    mt_tensor_retain(v->u.tensor);
    *lmt_slot(L) = v->u.tensor;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, c->tensors, v->u.tensor);
    return;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    lua_createtable(L, v->u.seq.len < INT32_MAX ? (int)v->u.seq.len : 0, 0);
    for (size_t i = 0; i < v->u.seq.len; i++) {
      push_value(c, v->u.seq.items[i], depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  case MT_VAL_DICT: {
    size_t n = v->u.dict.len;
    if (c->adopt) lua_pushvalue(L, c->adopt);
    lua_createtable(L, 0, n < INT32_MAX ? (int)n : 0);
    lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
    for (size_t i = 0; i < n; i++) {
      push_value(c, v->u.dict.keys[i], depth + 1);
      if (lua_isnil(L, -1)) lmt_error(L, RUN_FN, "the graph's value tree has a None dict key");
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, (lua_Integer)i + 1);
      push_value(c, v->u.dict.vals[i], depth + 1);
      lua_rawset(L, -4);
    }
    if (c->adopt) lua_call(L, 2, 1);
    else lua_pop(L, 1);
    return;
  }
  }
  lua_pushnil(L);
}

static int g_value(lua_State *L) {
  mt_graph *g = check_graph(L, 1, RUN_FN);
  int adopt = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    adopt = 2;
  }
  lua_settop(L, 2);
  held *h = held_push(L);
  lmt_check_status(L, mt_graph_to_value(g, &h->v), RUN_FN);
  lua_newtable(L);
  conv c = {L, adopt, lua_gettop(L)};
  push_value(&c, h->v, 1);
  return 1;
}

void lmt_open_jit(lua_State *L, const lmt_tables *tb) {
  if (luaL_newmetatable(L, HELD)) {
    lua_pushcfunction(L, held_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, held_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, TRACE)) {
    lua_pushcfunction(L, trace_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, GRAPH)) {
    static const luaL_Reg methods[] = {{"run", g_run},
                                       {"save", g_save},
                                       {"value", g_value},
                                       {"num_inputs", g_num_inputs},
                                       {"num_outputs", g_num_outputs},
                                       {NULL, NULL}};
    lua_newtable(L);
    lmt_setfuncs(L, -1, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, graph_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"trace_begin", l_trace_begin}, {"trace_input", l_trace_input},
                                 {"trace_end", l_trace_end},     {"trace_abort", l_trace_abort},
                                 {"trace_active", l_trace_active}, {"load", l_load},
                                 {NULL, NULL}};
  lua_createtable(L, 0, (int)(sizeof fns / sizeof fns[0]) - 1);
  lmt_setfuncs(L, -1, fns);
  lua_setfield(L, tb->module, "_jit");
}
