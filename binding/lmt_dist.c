/*
 * lmt_dist.c — what torch.distributed and nn.parallel.DistributedDataParallel
 * (lua/moontorch/distributed.lua, lua/moontorch/nn/parallel.lua) need from C, in the
 * moontorch.core table. The core is src/dist.c (MPI collectives) and src/dist_reducer.c (the
 * gradient reducer); moontorch.h's "Distributed" section has the details.
 *
 *   core._dist_available() -> bool          built with MPI
 *   core._dist_init()                       joins the MPI job; idempotent. Raises when not
 *                                          started by mpirun, or in a build without MPI
 *   core._dist_is_initialized() -> bool     initialized and not finalized
 *   core._dist_rank() -> int                0-based, as MPI numbers ranks
 *   core._dist_world_size() -> int
 *   core._dist_all_reduce(t[, op]) -> t     op: "sum" (default), "avg", "max", "min"; in place
 *                                          on every rank. float32/64, float16/bfloat16 (summed
 *                                          in float32), int8/16/32/64, uint8; "avg" only for
 *                                          floating dtypes; bool refused
 *   core._dist_broadcast(t, src) -> t       src: 0-based rank; in place
 *   core._dist_barrier()
 *   core._dist_finalize()                   no-op unless initialized; MPI cannot start again
 *   core._ddp_new(params[, bucket_cap_bytes]) -> reducer
 *                                          params: Lua array of leaf tensors that require grad
 *                                          (model:parameters() order); bucket_cap_bytes: nil
 *                                          or 0 gives 25 MiB (PyTorch's default)
 *   reducer:set_enabled(bool)              false for no_sync: gradients stay local
 *   reducer:stats() -> {comm_seconds =, bytes =, buckets =, num_buckets =}
 *                                          time the communication thread spent in MPI, bytes
 *                                          and buckets reduced since ddp_new; num_buckets: how
 *                                          many buckets the parameters were split into
 *   reducer:close()                        joins the thread, removes the hooks; also __gc and
 *                                          __close; idempotent. Any use after close raises
 *
 * Errors name moontorch.distributed.<fn> (the collectives) and
 * moontorch.nn.parallel.DistributedDataParallel (the reducer). Collectives must be called in
 * the same order on every rank, as with MPI itself.
 */
#include "lmt.h"

#include <string.h>

#define LMT_REDUCER "moontorch.DDPReducer"
#define DDP_NAME "nn.parallel.DistributedDataParallel"

typedef struct reducer_box {
  mt_ddp *d; /* NULL once closed */
} reducer_box;

static int l_available(lua_State *L) {
  lua_pushboolean(L, mt_dist_available());
  return 1;
}

static int l_init(lua_State *L) {
  lmt_check_status(L, mt_dist_init(), "distributed.init_process_group");
  return 0;
}

static int l_is_initialized(lua_State *L) {
  lua_pushboolean(L, mt_dist_is_initialized());
  return 1;
}

static int l_rank(lua_State *L) {
  int r = 0;
  lmt_check_status(L, mt_dist_rank(&r), "distributed.get_rank");
  lua_pushinteger(L, r);
  return 1;
}

static int l_world_size(lua_State *L) {
  int n = 0;
  lmt_check_status(L, mt_dist_world_size(&n), "distributed.get_world_size");
  lua_pushinteger(L, n);
  return 1;
}

static int l_all_reduce(lua_State *L) {
  static const char *const NAME = "distributed.all_reduce";
  mt_tensor *t = lmt_check(L, 1, NAME);
  mt_reduce_op op = MT_REDUCE_SUM;
  if (!lua_isnoneornil(L, 2)) {
    const char *s = lua_tostring(L, 2);
    if (lua_type(L, 2) != LUA_TSTRING) return lmt_typeerror(L, 2, NAME, "string (\"sum\", \"avg\", \"max\" or \"min\")");
    if (strcmp(s, "sum") == 0) op = MT_REDUCE_SUM;
    else if (strcmp(s, "avg") == 0) op = MT_REDUCE_AVG;
    else if (strcmp(s, "max") == 0) op = MT_REDUCE_MAX;
    else if (strcmp(s, "min") == 0) op = MT_REDUCE_MIN;
    else return lmt_argerror(L, 2, NAME, "unknown op '%s' (expected \"sum\", \"avg\", \"max\" or \"min\")", s);
  }
  lmt_check_status(L, mt_dist_all_reduce(t, op), NAME);
  lua_settop(L, 1);
  return 1;
}

static int l_broadcast(lua_State *L) {
  static const char *const NAME = "distributed.broadcast";
  mt_tensor *t = lmt_check(L, 1, NAME);
  int64_t src = lmt_checkint(L, 2, NAME, "src");
  if (src < 0 || src > 0x7fffffff) return lmt_argerror(L, 2, NAME, "src must be a rank >= 0, got %lld", (long long)src);
  lmt_check_status(L, mt_dist_broadcast(t, (int)src), NAME);
  lua_settop(L, 1);
  return 1;
}

static int l_barrier(lua_State *L) {
  lmt_check_status(L, mt_dist_barrier(), "distributed.barrier");
  return 0;
}

static int l_finalize(lua_State *L) {
  lmt_check_status(L, mt_dist_finalize(), "distributed.destroy_process_group");
  return 0;
}

/* ---- the reducer -------------------------------------------------------------------------- */

static mt_ddp *check_reducer(lua_State *L, const char *fname) {
  reducer_box *b = (reducer_box *)luaL_testudata(L, 1, LMT_REDUCER);
  if (!b) lmt_typeerror(L, 1, fname, "DDP reducer");
  if (!b->d) lmt_error(L, fname, "the reducer was closed");
  return b->d;
}

static int l_ddp_new(lua_State *L) {
  if (!lua_istable(L, 1)) return lmt_typeerror(L, 1, DDP_NAME, "table of parameters");
  lua_Integer n = luaL_len(L, 1);
  size_t cap = 0;
  if (!lua_isnoneornil(L, 2)) {
    int64_t c = lmt_checkint(L, 2, DDP_NAME, "bucket_cap_bytes");
    if (c < 0) return lmt_argerror(L, 2, DDP_NAME, "bucket_cap_bytes must be >= 0, got %lld", (long long)c);
    cap = (size_t)c;
  }
  /* The pointer array lives in a userdata, so a raise below frees it with the rest. */
  mt_tensor **ps = (mt_tensor **)lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ps, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    ps[i - 1] = lmt_test(L, -1);
    if (!ps[i - 1]) return lmt_error(L, DDP_NAME, "parameter %lld is not a tensor (got %s)", (long long)i, luaL_typename(L, -1));
    lua_pop(L, 1); /* the table keeps it alive */
  }
  reducer_box *b = (reducer_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->d = NULL;
  luaL_setmetatable(L, LMT_REDUCER);
  lmt_check_status(L, mt_ddp_new(ps, (size_t)n, cap, &b->d), DDP_NAME);
  return 1;
}

static int r_close(lua_State *L) {
  reducer_box *b = (reducer_box *)luaL_checkudata(L, 1, LMT_REDUCER);
  mt_ddp_free(b->d);
  b->d = NULL;
  return 0;
}

static int r_set_enabled(lua_State *L) {
  mt_ddp *d = check_reducer(L, DDP_NAME);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  mt_ddp_set_enabled(d, lua_toboolean(L, 2));
  return 0;
}

static int r_stats(lua_State *L) {
  mt_ddp *d = check_reducer(L, DDP_NAME);
  double secs = 0;
  uint64_t bytes = 0, buckets = 0;
  mt_ddp_stats(d, &secs, &bytes, &buckets);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, secs);
  lua_setfield(L, -2, "comm_seconds");
  lua_pushinteger(L, (lua_Integer)bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)buckets);
  lua_setfield(L, -2, "buckets");
  lua_pushinteger(L, (lua_Integer)mt_ddp_num_buckets(d));
  lua_setfield(L, -2, "num_buckets");
  return 1;
}

static int r_tostring(lua_State *L) {
  reducer_box *b = (reducer_box *)luaL_checkudata(L, 1, LMT_REDUCER);
  if (b->d) lua_pushfstring(L, "moontorch.DDPReducer(%d buckets)", (int)mt_ddp_num_buckets(b->d));
  else lua_pushliteral(L, "moontorch.DDPReducer(closed)");
  return 1;
}

void lmt_open_dist(lua_State *L, const lmt_tables *tb) {
  if (luaL_newmetatable(L, LMT_REDUCER)) {
    static const luaL_Reg meta[] = {{"__gc", r_close}, {"__close", r_close}, {"__tostring", r_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"set_enabled", r_set_enabled}, {"stats", r_stats}, {"close", r_close}, {NULL, NULL}};
    lmt_setfuncs(L, -1, meta);
    lua_newtable(L);
    lmt_setfuncs(L, -1, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg module[] = {{"_dist_available", l_available},
                                    {"_dist_init", l_init},
                                    {"_dist_is_initialized", l_is_initialized},
                                    {"_dist_rank", l_rank},
                                    {"_dist_world_size", l_world_size},
                                    {"_dist_all_reduce", l_all_reduce},
                                    {"_dist_broadcast", l_broadcast},
                                    {"_dist_barrier", l_barrier},
                                    {"_dist_finalize", l_finalize},
                                    {"_ddp_new", l_ddp_new},
                                    {NULL, NULL}};
  lmt_setfuncs(L, tb->module, module);
}
