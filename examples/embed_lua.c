/*
 * embed_lua.c — a C application that hosts Lua itself and links moontorch statically: it
 * creates its own lua_State, registers the module with luaopen_moontorch_core (from the static
 * library libmoontorch_lua.a, no core.so to find at run time), points package.path at
 * moontorch's Lua files and runs a training snippet: a few SGD steps of a small nn model.
 *
 *     embed_lua [LUA_DIR]
 *
 * LUA_DIR is the directory holding moontorch/init.lua (the repository's lua/, or the installed
 * share/lua/5.4); without it, $MOONTORCH_LUA_DIR, else the source tree this was built from.
 * Build: link libmoontorch_lua.a, libmoontorch.a and its dependencies, and liblua5.4.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module's entry point; an application declares it itself (the usual way with luaopen_*). */
int luaopen_moontorch_core(lua_State *L);

/* Fits y = 1.5 a - 2 b + 0.5 c + 0.25 with a two-layer MLP. The host passes the number of
 * steps; the chunk prints the loss after each and returns the last one. */
static const char TRAINING[] =
    "local steps = ...\n"
    "local torch = require 'moontorch'\n"
    "local nn = torch.nn\n"
    "torch.manual_seed(0)\n"
    "local x = torch.randn(64, 3)\n"
    "local y = x:matmul(torch.tensor({ { 1.5 }, { -2.0 }, { 0.5 } })) + 0.25\n"
    "local model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))\n"
    "local optimizer = torch.optim.SGD(model:parameters(), { lr = 0.1 })\n"
    "local criterion = nn.MSELoss()\n"
    "local first, last\n"
    "for step = 1, steps do\n"
    "  optimizer:zero_grad()\n"
    "  local loss = criterion(model(x), y)\n"
    "  loss:backward()\n"
    "  optimizer:step()\n"
    "  last = loss:item()\n"
    "  first = first or last\n"
    "  print(string.format('step %2d  loss %.6f', step, last))\n"
    "end\n"
    "assert(last < first / 4, 'training did not reduce the loss')\n"
    "return last\n";

/* Message handler for lua_pcall: the error with a traceback. */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* package.path = DIR/?.lua;DIR/?/init.lua;<the default>, so that require 'moontorch' finds the
 * Lua half of the library; the C half is already in package.loaded. */
static void set_lua_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("MOONTORCH_LUA_DIR");
#ifdef MT_SOURCE_DIR
  if (!dir) dir = MT_SOURCE_DIR "/lua"; /* set by moontorch's own build */
#endif
  if (!dir) {
    fprintf(stderr, "usage: embed_lua LUA_DIR (the directory holding moontorch/init.lua)\n");
    return 2;
  }

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "embed_lua: cannot create a Lua state (out of memory)\n");
    return 1;
  }
  luaL_openlibs(L);
  /* package.loaded["moontorch.core"] = luaopen_moontorch_core(L), as require would do */
  luaL_requiref(L, "moontorch.core", luaopen_moontorch_core, 0);
  lua_pop(L, 1);
  set_lua_path(L, dir);

  int status = 1;
  lua_pushcfunction(L, traceback);
  if (luaL_loadbuffer(L, TRAINING, strlen(TRAINING), "=training") != LUA_OK) {
    fprintf(stderr, "embed_lua: %s\n", lua_tostring(L, -1));
  } else {
    lua_pushinteger(L, 12); /* the chunk's `...`: the number of steps */
    if (lua_pcall(L, 1, 1, -3) != LUA_OK) {
      fprintf(stderr, "embed_lua: %s\n", lua_tostring(L, -1));
    } else {
      printf("final loss, read from C: %.6f\n", lua_tonumber(L, -1));
      status = 0;
    }
  }
  lua_close(L);
  return status;
}
