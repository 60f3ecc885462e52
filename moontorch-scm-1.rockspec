-- Build and install from a checkout (as root, into the system tree):
--     luarocks --lua-version=5.4 make
-- (Debian's luarocks defaults to Lua 5.1; `--lua-version=5.4` selects the 5.4 tree, from which
-- `lua5.4 -l moontorch` then works in any directory.)
rockspec_format = "3.0"
package = "moontorch"
version = "scm-1"

source = {
   url = "git+file://.",
}

description = {
   summary = "Deep learning for Lua 5.4 with a C core",
   detailed = [[
moontorch is a deep-learning library for Lua 5.4: a C core of tensors, autograd, layers,
optimizers and serialization (PyTorch-compatible checkpoint files), exposed as the Lua
module `moontorch`. Matrix work runs on OpenBLAS; files are read and written with libzip.
]],
   license = "MIT",
   labels = { "deep-learning", "tensor", "autograd", "neural-network" },
}

dependencies = {
   "lua >= 5.4, < 5.5",
}

external_dependencies = {
   OPENBLAS = { library = "openblas" },
   LIBZIP = { header = "zip.h" },
   ZLIB = { header = "zlib.h" },
   CJSON = { header = "cjson/cJSON.h" },
   LIBDEFLATE = { header = "libdeflate.h" },
}

build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      MOONTORCH_LUAROCKS = "ON",
      LUADIR = "$(LUADIR)",
      LIBDIR = "$(LIBDIR)",
      LUA_LIBDIR_INSTALL = "$(LIBDIR)",
      BINDIR = "$(BINDIR)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
   },
}
