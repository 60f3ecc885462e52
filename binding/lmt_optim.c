/*
 * lmt_optim.c — the update loops of torch.optim as the Lua optimizers call them: one call per
 * parameter group and step,
 *
 *   core._sgd_step(group, gi, state)
 *   core._adam_step(group, gi, state, decoupled)     -- decoupled: AdamW
 *   core._rmsprop_step(group, gi, state)
 *   core._adagrad_step(group, gi, state)
 *
 * `group` is a param group (its `params` array and hyperparameters are read here), `gi` its
 * position (for messages) and `state` the optimizer's state table, keyed by parameter.
 * Parameters without a gradient are skipped. The others must already have their state entry
 * (the Lua optimizers in lua/moontorch/optim create it lazily, as PyTorch does), except that
 * SGD's first step with momentum makes `momentum_buffer` here. The arithmetic is the core's
 * (src/optim.c).
 */
#include "lmt.h"

#include <string.h>

typedef struct ctx {
  lua_State *L;
  const char *fname; /* "optim.Adam.step" */
  int group, state;  /* absolute stack indices */
  int gi;
} ctx;

/* ---- hyperparameters ---------------------------------------------------------------------- */

static double num_field(const ctx *c, const char *key) {
  lua_State *L = c->L;
  lua_getfield(L, c->group, key);
  if (lua_type(L, -1) != LUA_TNUMBER)
    lmt_error(L, c->fname, "param_groups[%d].%s must be a number, got %s", c->gi, key, luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static bool bool_field(const ctx *c, const char *key) {
  lua_State *L = c->L;
  lua_getfield(L, c->group, key);
  if (lua_type(L, -1) != LUA_TBOOLEAN)
    lmt_error(L, c->fname, "param_groups[%d].%s must be a boolean, got %s", c->gi, key, luaL_typename(L, -1));
  bool v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void betas_field(const ctx *c, double *b1, double *b2) {
  lua_State *L = c->L;
  lua_getfield(L, c->group, "betas");
  if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) != 2 || lua_rawgeti(L, -1, 1) != LUA_TNUMBER ||
      lua_rawgeti(L, -2, 2) != LUA_TNUMBER)
    lmt_error(L, c->fname, "param_groups[%d].betas must be a list of two numbers", c->gi);
  *b1 = lua_tonumber(L, -2);
  *b2 = lua_tonumber(L, -1);
  lua_pop(L, 3);
}

/* ---- parameters and their state ----------------------------------------------------------- */

/* Pushes group.params (checked to be a table) and returns its length. */
static lua_Integer push_params(const ctx *c) {
  lua_State *L = c->L;
  if (lua_getfield(L, c->group, "params") != LUA_TTABLE)
    lmt_error(L, c->fname, "param_groups[%d].params must be a list of tensors, got %s", c->gi, luaL_typename(L, -1));
  return (lua_Integer)lua_rawlen(L, -1);
}

/* The i-th parameter (params table at the top of the stack); NULL when it has no gradient. On
 * a parameter with a gradient, pushes its state entry (a table) and returns the parameter. */
static mt_tensor *param_at(const ctx *c, lua_Integer i) {
  lua_State *L = c->L;
  lua_rawgeti(L, -1, i);
  mt_tensor *p = lmt_test(L, -1);
  if (!p)
    lmt_error(L, c->fname, "param_groups[%d].params[%d] is a %s, not a tensor", c->gi, (int)i, luaL_typename(L, -1));
  if (!p->grad) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_rawget(L, c->state) != LUA_TTABLE) /* state[p]; pops p */
    lmt_error(L, c->fname, "param_groups[%d].params[%d] has no state table", c->gi, (int)i);
  return p;
}

/* state_entry[key] (entry at the top of the stack) as a tensor, or NULL when absent. The state
 * table keeps the tensor alive; the stack is left as it was. */
static mt_tensor *state_tensor(const ctx *c, lua_Integer i, const char *key) {
  lua_State *L = c->L;
  lua_getfield(L, -1, key);
  mt_tensor *t = lmt_test(L, -1);
  if (!t && !lua_isnil(L, -1))
    lmt_error(L, c->fname, "param_groups[%d].params[%d]: state %s is a %s, not a tensor", c->gi, (int)i, key,
              luaL_typename(L, -1));
  lua_pop(L, 1);
  return t;
}

static mt_tensor *required_state(const ctx *c, lua_Integer i, const char *key) {
  mt_tensor *t = state_tensor(c, i, key);
  if (!t) lmt_error(c->L, c->fname, "param_groups[%d].params[%d]: state %s is missing", c->gi, (int)i, key);
  return t;
}

static void check(const ctx *c, lua_Integer i, mt_status st) {
  if (st != MT_OK) lmt_error(c->L, c->fname, "param_groups[%d].params[%d]: %s", c->gi, (int)i, mt_last_error());
}

static ctx make_ctx(lua_State *L, const char *fname) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  ctx c = {L, fname, 1, 3, (int)luaL_checkinteger(L, 2)};
  return c;
}

/* ---- the optimizers ----------------------------------------------------------------------- */

static int l_sgd_step(lua_State *L) {
  ctx c = make_ctx(L, "optim.SGD.step");
  mt_sgd_opts o = {num_field(&c, "lr"), num_field(&c, "momentum"), num_field(&c, "dampening"),
                   num_field(&c, "weight_decay"), bool_field(&c, "nesterov"), bool_field(&c, "maximize")};
  lua_Integer n = push_params(&c);
  for (lua_Integer i = 1; i <= n; i++) {
    mt_tensor *p = param_at(&c, i);
    if (!p) continue;
    mt_tensor *buf = o.momentum != 0 ? state_tensor(&c, i, "momentum_buffer") : NULL;
    if (buf || o.momentum == 0) {
      check(&c, i, mt_sgd_step(p, p->grad, &buf, &o));
    } else {
      mt_tensor **slot = lmt_slot(L); /* owns the new buffer even if setting it raises */
      check(&c, i, mt_sgd_step(p, p->grad, slot, &o));
      lua_setfield(L, -2, "momentum_buffer");
    }
    lua_pop(L, 1); /* the state entry */
  }
  return 0;
}

static int l_adam_step(lua_State *L) {
  bool decoupled = lua_toboolean(L, 4);
  ctx c = make_ctx(L, decoupled ? "optim.AdamW.step" : "optim.Adam.step");
  mt_adam_opts o = {.lr = num_field(&c, "lr"), .eps = num_field(&c, "eps"),
                    .weight_decay = num_field(&c, "weight_decay"), .amsgrad = bool_field(&c, "amsgrad"),
                    .maximize = bool_field(&c, "maximize"), .decoupled_weight_decay = decoupled};
  betas_field(&c, &o.beta1, &o.beta2);
  lua_Integer n = push_params(&c);
  for (lua_Integer i = 1; i <= n; i++) {
    mt_tensor *p = param_at(&c, i);
    if (!p) continue;
    mt_tensor *step = required_state(&c, i, "step"), *m = required_state(&c, i, "exp_avg"),
              *v = required_state(&c, i, "exp_avg_sq");
    mt_tensor *vmax = o.amsgrad ? required_state(&c, i, "max_exp_avg_sq") : NULL;
    check(&c, i, mt_adam_step(p, p->grad, step, m, v, vmax, &o));
    lua_pop(L, 1);
  }
  return 0;
}

static int l_rmsprop_step(lua_State *L) {
  ctx c = make_ctx(L, "optim.RMSprop.step");
  mt_rmsprop_opts o = {num_field(&c, "lr"), num_field(&c, "alpha"), num_field(&c, "eps"),
                       num_field(&c, "weight_decay"), num_field(&c, "momentum"), bool_field(&c, "centered"),
                       bool_field(&c, "maximize")};
  lua_Integer n = push_params(&c);
  for (lua_Integer i = 1; i <= n; i++) {
    mt_tensor *p = param_at(&c, i);
    if (!p) continue;
    mt_tensor *sq = required_state(&c, i, "square_avg");
    mt_tensor *buf = o.momentum > 0 ? required_state(&c, i, "momentum_buffer") : NULL;
    mt_tensor *gavg = o.centered ? required_state(&c, i, "grad_avg") : NULL;
    check(&c, i, mt_rmsprop_step(p, p->grad, sq, buf, gavg, &o));
    lua_pop(L, 1);
  }
  return 0;
}

static int l_adagrad_step(lua_State *L) {
  ctx c = make_ctx(L, "optim.Adagrad.step");
  mt_adagrad_opts o = {num_field(&c, "lr"), num_field(&c, "lr_decay"), num_field(&c, "eps"),
                       num_field(&c, "weight_decay"), bool_field(&c, "maximize")};
  lua_Integer n = push_params(&c);
  for (lua_Integer i = 1; i <= n; i++) {
    mt_tensor *p = param_at(&c, i);
    if (!p) continue;
    check(&c, i, mt_adagrad_step(p, p->grad, required_state(&c, i, "step"), required_state(&c, i, "sum"), &o));
    lua_pop(L, 1);
  }
  return 0;
}

void lmt_open_optim(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg module[] = {{"_sgd_step", l_sgd_step},
                                    {"_adam_step", l_adam_step},
                                    {"_rmsprop_step", l_rmsprop_step},
                                    {"_adagrad_step", l_adagrad_step},
                                    {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
