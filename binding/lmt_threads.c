/*
 * lmt_threads.c — the library's thread count (src/parallel.c):
 *
 *   torch.set_num_threads(n)   -- the library's kernels (matrix products included) use n threads
 *   torch.get_num_threads()    -- the count in effect (default: the CPUs this process may use,
 *                              -- or MOONTORCH_NUM_THREADS when set)
 */
#include "lmt.h"

static int l_set_num_threads(lua_State *L) {
  int64_t n = lmt_checkint(L, 1, "set_num_threads", "n");
  if (n < 1 || n > 64) return lmt_argerror(L, 1, "set_num_threads", "thread count must be 1 to 64, got %lld", (long long)n);
  lmt_check_status(L, mt_set_num_threads((int)n), "set_num_threads");
  return 0;
}

static int l_get_num_threads(lua_State *L) {
  lua_pushinteger(L, mt_get_num_threads());
  return 1;
}

void lmt_open_threads(lua_State *L, const lmt_tables *tb) {
  static const luaL_Reg module[] = {{"set_num_threads", l_set_num_threads},
                                    {"get_num_threads", l_get_num_threads},
                                    {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
