-- Packaging (SPEC section 7, issue 7): `cmake --install` of the build (MT_BINARY_DIR) into a
-- temporary prefix installs the shared and static libraries, moontorch.h, moontorch.pc,
-- moontorch-run and the Lua module; a Lua 5.4 using only the installed module traces and
-- saves a model; examples/run_traced.c, compiled against the installed pkg-config file (shared,
-- and with --static against libmoontorch.a), prints that model's outputs exactly as Lua computes
-- them, and the installed moontorch-run saves the same outputs.
local H = require "spec.helpers"
local torch = H.torch

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local build_dir = os.getenv("MT_BINARY_DIR") or (source_dir .. "/build")
local q = H.shquote
-- A sanitizer build's libraries need the sanitizer runtime in whatever links them.
local san_flags = os.getenv("MOONTORCH_SANITIZE") == "1" and " -fsanitize=address,undefined" or ""

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- Runs cmd, asserting success; returns its output.
local function must(cmd, what)
  local code, out = sh(cmd)
  assert(code == 0, (what or cmd) .. " failed (status " .. tostring(code) .. "):\n" .. out)
  return out
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The one file below dir whose path ends in `tail` (lib or lib64, share/lua/5.4 or another
-- place: the layout is the install's business).
local function find(dir, tail)
  local out = must("find " .. q(dir) .. " -path " .. q("*/" .. tail))
  local hits = {}
  for line in out:gmatch("[^\n]+") do hits[#hits + 1] = line end
  assert(#hits == 1, "expected one " .. tail .. " under " .. dir .. ", found:\n" .. out)
  return hits[1]
end

-- The path with symbolic links and ../ resolved.
local function realpath(path) return (must("realpath " .. q(path)):gsub("\n$", "")) end

local function dirname(path) return (path:gsub("/[^/]*$", "")) end

-- Traces a small conv net with the installed Lua module only, saves it, an input and its
-- outputs, and prints them as run_traced does.
local CHILD = [[
local torch = require "moontorch"
assert(package.searchpath("moontorch.core", package.cpath):find(os.getenv("PREFIX"), 1, true))
local nn = torch.nn
local dir = os.getenv("WORK")
torch.manual_seed(3)
local model = nn.Sequential(nn.Conv2d(2, 4, 3, { padding = 1 }), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
  nn.Flatten(), nn.Linear(4 * 2 * 2, 3))
model:eval()
torch.jit.trace(model, torch.randn(2, 2, 4, 4)):save(dir .. "/model.pt")
local x = torch.randn(3, 2, 4, 4)
torch.save(x, dir .. "/x.pt")
local y = model(x)
torch.save(y, dir .. "/want.pt")
local vals = {}
for i, v in ipairs(y:view(-1):tolist()) do vals[i] = string.format("%.9g", v) end
io.write(string.format("output 1: %s [%s]\n%s\n", y.dtype, table.concat(y.shape, ", "), table.concat(vals, " ")))
]]

describe("packaging: cmake --install into a temporary prefix", function()
  local work, prefix, libdir, pc_env, lua_out

  lazy_setup(function()
    local p = assert(io.popen("mktemp -d /tmp/moontorch-pkg.XXXXXX"))
    work = p:read("l")
    p:close()
    prefix = work .. "/prefix"
    assert(exists(build_dir .. "/cmake_install.cmake"), build_dir .. " is not a configured build (set MT_BINARY_DIR)")
    must("cmake --install " .. q(build_dir) .. " --prefix " .. q(prefix), "cmake --install")
    libdir = dirname(find(prefix, "libmoontorch.a"))
    pc_env = "PKG_CONFIG_PATH=" .. q(libdir .. "/pkgconfig") .. " "
  end)
  lazy_teardown(function()
    if work then os.execute("rm -rf " .. q(work)) end
  end)

  it("installs the libraries, the header, the pkg-config file, moontorch-run and the Lua module", function()
    for _, rel in ipairs({ "include/moontorch.h", "bin/moontorch-run" }) do
      assert.is_true(exists(prefix .. "/" .. rel), rel .. " is not installed")
    end
    for _, name in ipairs({ "libmoontorch.so", "libmoontorch.a", "libmoontorch_lua.a", "pkgconfig/moontorch.pc" }) do
      assert.is_true(exists(libdir .. "/" .. name), name .. " is not installed in " .. libdir)
    end
    find(prefix, "moontorch/core.so")
    find(prefix, "moontorch/init.lua")
    find(prefix, "moontorch/jit.lua")
    -- the shared library exports the API and hides the internals
    local syms = must("nm -D --defined-only " .. q(libdir .. "/libmoontorch.so"))
    assert.is_truthy(syms:find(" T mt_graph_load\n", 1, true), "mt_graph_load is not exported")
    assert.is_falsy(syms:find(" T mt_trace_record\n", 1, true), "an internal function is exported")
  end)

  it("has a pkg-config file that points into the prefix", function()
    assert.are.equal(0, (sh(pc_env .. "pkg-config --exists moontorch")), "pkg-config cannot find moontorch")
    local cflags = must(pc_env .. "pkg-config --cflags moontorch")
    local incdir = cflags:match("%-I(%S+)")
    assert.are.equal(realpath(prefix .. "/include"), incdir and realpath(incdir), cflags)
    local libs = must(pc_env .. "pkg-config --libs moontorch")
    local ldir = libs:match("%-L(%S+)")
    assert.are.equal(realpath(libdir), ldir and realpath(ldir), libs)
    assert.is_truthy(libs:find("-lmoontorch", 1, true), libs)
    local static = must(pc_env .. "pkg-config --static --libs moontorch")
    assert.is_truthy(static:find("-lopenblas", 1, true), static)
  end)

  describe("with a model traced by the installed Lua module", function()
    lazy_setup(function()
      local luadir = dirname(dirname(find(prefix, "moontorch/init.lua"))) -- holds moontorch/init.lua
      local cdir = dirname(dirname(find(prefix, "moontorch/core.so")))    -- holds moontorch/core.so
      local path, cpath = q(luadir .. "/?.lua;" .. luadir .. "/?/init.lua"), q(cdir .. "/?.so")
      local env = string.format("LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s PREFIX=%s WORK=%s ", path,
        path, cpath, cpath, q(prefix), q(work))
      lua_out = must(env .. "lua5.4 -e " .. q(CHILD), "tracing with the installed module")
    end)

    -- Compiles examples/run_traced.c with the flags pkg-config gives for pkg_args (transformed
    -- when asked); returns the program's path.
    local function build(name, pkg_args, transform)
      local flags = must(pc_env .. "pkg-config " .. pkg_args .. " moontorch"):gsub("\n", " ")
      if transform then flags = transform(flags) end
      local exe = work .. "/" .. name
      -- the compiler that built the library (CC, as CMake reads it), so sanitizer runtimes match
      must(string.format("%s -std=c11 -O2 -Wall -Werror%s %s -o %s %s", os.getenv("CC") or "cc", san_flags,
        q(source_dir .. "/examples/run_traced.c"), q(exe), flags), "compiling run_traced.c (" .. name .. ")")
      return exe
    end

    local function run(exe, env)
      return must((env or "") .. q(exe) .. " " .. q(work .. "/model.pt") .. " " .. q(work .. "/x.pt"))
    end

    it("builds examples/run_traced.c against libmoontorch.so and prints Lua's outputs", function()
      local exe = build("run_shared", "--cflags --libs")
      local env = "LD_LIBRARY_PATH=" .. q(libdir) .. " "
      local libs = must(env .. "ldd " .. q(exe))
      assert.is_truthy(libs:find(libdir .. "/libmoontorch.so", 1, true), libs)
      assert.are.equal(lua_out, run(exe, env))
    end)

    it("builds it with --static against libmoontorch.a and prints Lua's outputs", function()
      -- -l:libmoontorch.a picks the archive over the .so lying beside it; the rest of the
      -- line is what pkg-config says the archive needs
      local exe = build("run_static", "--static --cflags --libs", function(f)
        local n
        f, n = f:gsub("%-lmoontorch%f[%s]", "-l:libmoontorch.a")
        assert(n == 1, "no -lmoontorch in: " .. f)
        return f
      end)
      local libs = must("ldd " .. q(exe))
      assert.is_falsy(libs:find("libmoontorch", 1, true), libs)
      assert.are.equal(lua_out, run(exe))
    end)

    it("runs the model with the installed moontorch-run", function()
      local tool = prefix .. "/bin/moontorch-run"
      assert.is_falsy(must("ldd " .. q(tool)):find("liblua", 1, true), "moontorch-run links Lua")
      must(q(tool) .. " " .. q(work .. "/model.pt") .. " " .. q(work .. "/x.pt") .. " " .. q(work .. "/got.pt"))
      local got, want = torch.load(work .. "/got.pt"), torch.load(work .. "/want.pt")
      assert.is_true(torch.equal(got, want), "moontorch-run's output differs from Lua's")
    end)
  end)
end)
