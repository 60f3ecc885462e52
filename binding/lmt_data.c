/*
 * lmt_data.c — what torch.utils.data and torch.datasets (lua/moontorch/utils/data.lua,
 * lua/moontorch/datasets.lua) need from C:
 *
 *   torch.Generator([seed])      a random generator of its own (PyTorch's torch.Generator):
 *                                g:manual_seed(s) (returns g), g:initial_seed(), g:get_state()
 *                                (a uint8 tensor), g:set_state(t) (returns g)
 *   core._random_seed([g])       PyTorch's `torch.empty((), dtype=torch.int64).random_(generator=g)`:
 *                                one number in [0, 2^63) from g or the default generator
 *   core._randperm(n[, g])       a permutation of 1..n (int64) drawn from g or the default one
 *   core._read_idx(path)         an IDX file as a tensor, or nil, message, status name
 *
 * The last returns its error instead of raising it, so that the dataset can say which dataset
 * failed and what to install; torch.datasets.read_idx raises.
 */
#include "lmt.h"

#include <stdint.h>

#define LMT_GENERATOR "moontorch.Generator"

typedef struct gen_box {
  mt_generator *g;
} gen_box;

static mt_generator *check_gen(lua_State *L, int arg, const char *fname) {
  gen_box *b = (gen_box *)luaL_testudata(L, arg, LMT_GENERATOR);
  if (!b || !b->g) lmt_typeerror(L, arg, fname, "Generator");
  return b->g;
}

/* nil / none: the default generator. */
static mt_generator *opt_gen(lua_State *L, int arg, const char *fname) {
  if (lua_isnoneornil(L, arg)) return mt_default_generator();
  return check_gen(L, arg, fname);
}

/* torch.Generator([seed]): seeded with PyTorch's default seed unless one is given. */
static int l_generator(lua_State *L) {
  static const char *const NAME = "Generator";
  uint64_t seed = UINT64_C(67280421310721);
  if (!lua_isnoneornil(L, 1)) seed = (uint64_t)lmt_checkint(L, 1, NAME, "seed");
  gen_box *b = (gen_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->g = NULL;
  luaL_setmetatable(L, LMT_GENERATOR);
  lmt_check_status(L, mt_generator_new(&b->g, seed), NAME);
  return 1;
}

static int g_gc(lua_State *L) {
  gen_box *b = (gen_box *)luaL_checkudata(L, 1, LMT_GENERATOR);
  mt_generator_free(b->g);
  b->g = NULL;
  return 0;
}

static int g_tostring(lua_State *L) {
  mt_generator *g = check_gen(L, 1, "Generator");
  lua_pushfstring(L, "moontorch.Generator(initial_seed=%I)", (lua_Integer)mt_initial_seed(g));
  return 1;
}

static int g_manual_seed(lua_State *L) {
  static const char *const NAME = "Generator.manual_seed";
  mt_generator *g = check_gen(L, 1, NAME);
  mt_manual_seed(g, (uint64_t)lmt_checkint(L, 2, NAME, "seed"));
  lua_settop(L, 1);
  return 1;
}

static int g_initial_seed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mt_initial_seed(check_gen(L, 1, "Generator.initial_seed")));
  return 1;
}

static int g_get_state(lua_State *L) {
  static const char *const NAME = "Generator.get_state";
  mt_generator *g = check_gen(L, 1, NAME);
  int64_t n = (int64_t)mt_generator_state_size();
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_empty(out, MT_UINT8, 1, &n), NAME);
  mt_generator_get_state(g, (uint8_t *)mt_data(*out));
  return 1;
}

static int g_set_state(lua_State *L) {
  static const char *const NAME = "Generator.set_state";
  mt_generator *g = check_gen(L, 1, NAME);
  mt_tensor *t = lmt_check(L, 2, NAME);
  if (t->dtype != MT_UINT8) return lmt_argerror(L, 2, NAME, "expected a uint8 tensor, got %s", mt_dtype_info(t->dtype)->name);
  mt_tensor **c = lmt_slot(L);
  lmt_check_status(L, mt_contiguous(c, t), NAME);
  lmt_check_status(L, mt_generator_set_state(g, (const uint8_t *)mt_data(*c), (size_t)mt_numel(*c)), NAME);
  lua_settop(L, 1);
  return 1;
}

/* PyTorch draws an int64 random_() as random64() % 2^63. The core's randint over the whole
 * int64 range gives random64() % (2^64 - 1) - 2^63, whose low 63 bits are the same number
 * except when random64() is 2^64 - 1 (probability 2^-64). */
static int l_random_seed(lua_State *L) {
  static const char *const NAME = "_random_seed";
  mt_generator *g = opt_gen(L, 1, NAME);
  mt_tensor **t = lmt_slot(L);
  lmt_check_status(L, mt_empty(t, MT_INT64, 0, NULL), NAME);
  lmt_check_status(L, mt_randint_(*t, INT64_MIN, INT64_MAX, g), NAME);
  uint64_t v = (uint64_t)*(const int64_t *)mt_data(*t);
  lua_pushinteger(L, (lua_Integer)(v & (uint64_t)INT64_MAX));
  return 1;
}

static int l_randperm(lua_State *L) {
  static const char *const NAME = "_randperm";
  int64_t n = lmt_checkint(L, 1, NAME, "n");
  mt_generator *g = opt_gen(L, 2, NAME);
  if (n < 0) return lmt_error(L, NAME, "n must be non-negative, got %lld", (long long)n);
  mt_tensor **out = lmt_slot(L);
  lmt_check_status(L, mt_randperm(out, n, MT_INT64, g), NAME);
  lmt_index_out(*out);
  return 1;
}

static int l_read_idx(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mt_tensor **out = lmt_slot(L);
  mt_status st = mt_read_idx(out, path);
  if (st != MT_OK) {
    lua_pushnil(L);
    lua_pushstring(L, mt_last_error());
    lua_pushstring(L, mt_status_name(st));
    return 3;
  }
  lmt_gc_pace(L);
  return 1;
}

void lmt_open_data(lua_State *L, const lmt_tables *tb) {
  if (luaL_newmetatable(L, LMT_GENERATOR)) {
    static const luaL_Reg meta[] = {{"__gc", g_gc}, {"__tostring", g_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"manual_seed", g_manual_seed},
                                       {"initial_seed", g_initial_seed},
                                       {"get_state", g_get_state},
                                       {"set_state", g_set_state},
                                       {NULL, NULL}};
    lmt_setfuncs(L, -1, meta);
    lua_newtable(L);
    lmt_setfuncs(L, -1, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg module[] = {{"Generator", l_generator},
                                    {"_random_seed", l_random_seed},
                                    {"_randperm", l_randperm},
                                    {"_read_idx", l_read_idx},
                                    {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
