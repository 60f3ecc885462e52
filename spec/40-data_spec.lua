-- SPEC §8 (torch.utils.data, torch.datasets):
--   1. TensorDataset, Subset, random_split, default_collate and the DataLoader's batching,
--      lengths, drop_last, iteration forms, options and errors;
--   2. shuffling against PyTorch 1.13 (/usr/bin/python3): with the same seed the same batches
--      and afterwards the same default-generator numbers, with and without a Generator; a run
--      resumed from the RNG state continues exactly;
--   3. FashionMNIST against Python's own parse of Debian's files (gzip + struct): sizes, label
--      histograms, checksums of the first and last images, pixel values, labels shifted to 1..10;
--   4. IDX files that are broken or hostile (written by Python's gzip), through read_idx and
--      through the dataset, each refused with the file and the problem named.
local H = require "spec.helpers"
local torch = H.torch
local data = torch.utils.data

local PYTHON = "/usr/bin/python3"
local FASHION = "/usr/share/datasets/fashion-mnist"

local sh = H.sh

local function mktemp_dir() return H.mktemp_dir("data") end

-- Runs a Python program (with `args`) whose stdout is a Lua expression; returns its value.
local PY_PRELUDE = [[
import sys
def lua(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, int): return str(v)
    if isinstance(v, float): return repr(v)
    if isinstance(v, str): return '"' + v + '"'
    if isinstance(v, dict): return "{" + ", ".join(k + " = " + lua(x) for k, x in v.items()) + "}"
    return "{" + ", ".join(lua(x) for x in v) + "}"
]]
local function python(code, args)
  local dir = mktemp_dir()
  local path = dir .. "/prog.py"
  local f = assert(io.open(path, "w"))
  f:write(PY_PRELUDE, code)
  f:close()
  local ok, out = sh(PYTHON .. " " .. H.shquote(path) .. " " .. (args or ""))
  os.remove(path)
  os.remove(dir)
  assert(ok, "python failed: " .. out)
  local chunk = assert(load("return " .. out, "python", "t", {}))
  return chunk()
end

-- The error of fn(...), which must contain each plain string given.
local function expect_error(fn, args, ...)
  local ok, err = pcall(fn, table.unpack(args))
  assert(not ok, "expected an error, but the call succeeded")
  err = tostring(err)
  for _, s in ipairs({ ... }) do
    assert(err:find(s, 1, true), "error message lacks '" .. s .. "': " .. err)
  end
  return err
end

-- A pass of a loader as a list of batches, each the first value's list.
local function pass(loader)
  local out = {}
  for x in loader:iter() do out[#out + 1] = x:tolist() end
  return out
end

local function assert_same(got, want, what)
  local g, w = H.flatten(got), H.flatten(want)
  assert(#g == #w, what .. ": " .. #g .. " values, expected " .. #w)
  for i = 1, #g do
    if g[i] ~= w[i] then
      error(string.format("%s: value %d is %s, expected %s\n  got:      %s\n  expected: %s", what, i, tostring(g[i]),
        tostring(w[i]), H.list_str(g), H.list_str(w)), 2)
    end
  end
end

local function same(a, b) return (pcall(assert_same, a, b, "")) end

-- ------------------------------------------------------------------------------------------

describe("torch.utils.data.TensorDataset", function()
  local x = torch.arange(1, 13):reshape(6, 2)
  local y = torch.arange(1, 7) * 10
  local ds = data.TensorDataset(x, y)

  it("has one sample per row; ds[i] and ds:get(i) give the i-th row of each tensor (1-based)", function()
    assert.equals(6, #ds)
    local a, b = ds:get(1)
    assert_same(a:tolist(), { 1, 2 }, "x row 1")
    assert.equals(10, b:item())
    local s = ds[6]
    assert.equals(2, #s)
    assert_same(s[1]:tolist(), { 11, 12 }, "x row 6")
    assert.equals(60, s[2]:item())
    assert.equals(50, ds[-2][2]:item())
    assert.equals(x, ds.tensors[1])
  end)

  it("gathers a batch with index_select (get_batch), equal to stacking the rows", function()
    local bx, by = ds:get_batch(torch.tensor({ 5, 2, 5 }))
    assert_same(bx:tolist(), { { 9, 10 }, { 3, 4 }, { 9, 10 } }, "batch x")
    assert_same(by:tolist(), { 50, 20, 50 }, "batch y")
    bx:fill_(0) -- a copy, not a view of the dataset
    assert.equals(9, x[5][1]:item())
  end)

  it("refuses bad tensors and indices", function()
    expect_error(data.TensorDataset, {}, "moontorch.utils.data.TensorDataset", "at least one tensor")
    expect_error(data.TensorDataset, { x, torch.zeros(5) }, "tensor 2 has 5 rows", "tensor 1 has 6")
    expect_error(data.TensorDataset, { x, 3 }, "argument #2 is a number")
    expect_error(data.TensorDataset, { torch.tensor(1.5) }, "0-dim")
    expect_error(function() return ds[7] end, {}, "index 7 is out of range for a dataset of 6 samples")
    expect_error(function() return ds:get(0) end, {}, "index 0 is out of range")
    expect_error(function() return ds:get(1.5) end, {}, "index must be an integer")
  end)
end)

describe("torch.utils.data.DataLoader", function()
  local n = 10
  local ds = data.TensorDataset(torch.arange(1, n + 1), torch.arange(1, n + 1):float() * 0.5)

  it("batches in order, with a last partial batch unless drop_last", function()
    local loader = data.DataLoader(ds, { batch_size = 4 })
    assert.equals(3, #loader)
    local got = {}
    for xb, yb in loader:iter() do
      got[#got + 1] = xb:tolist()
      H.assert_values(yb, H.flatten(xb:float():mul(0.5):tolist()), true, "y follows x")
      assert.equals("int64", xb.dtype)
      assert.equals("float32", yb.dtype)
    end
    assert_same(got, { { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10 } }, "batches")
    local dropped = data.DataLoader(ds, { batch_size = 4, drop_last = true })
    assert.equals(2, #dropped)
    assert_same(pass(dropped), { { 1, 2, 3, 4 }, { 5, 6, 7, 8 } }, "drop_last")
    assert.equals(10, #data.DataLoader(ds))
    assert_same(pass(data.DataLoader(ds)), { { 1 }, { 2 }, { 3 }, { 4 }, { 5 }, { 6 }, { 7 }, { 8 }, { 9 }, { 10 } }, "batch_size 1")
  end)

  it("has #loader batches for every size and drop_last", function()
    for size = 0, 7 do
      local d = data.TensorDataset(torch.zeros(size, 2))
      for bs = 1, 4 do
        for _, drop in ipairs({ false, true }) do
          local loader = data.DataLoader(d, { batch_size = bs, drop_last = drop, shuffle = size % 2 == 1 })
          local count, rows = 0, 0
          for xb in loader:iter() do
            count = count + 1
            rows = rows + xb:size(1)
            assert(drop and xb:size(1) == bs or xb:size(1) <= bs)
          end
          assert.equals(#loader, count)
          assert.equals(drop and size - size % bs or size, rows)
        end
      end
    end
  end)

  it("iterates as `for x, y in loader do`, a new pass per loop, also after a break", function()
    local loader = data.DataLoader(ds, { batch_size = 3 })
    local firsts = {}
    for xb, yb in loader do
      firsts[#firsts + 1] = xb[1]:item()
      assert.equals(xb:size(1), yb:size(1))
    end
    assert_same(firsts, { 1, 4, 7, 10 }, "first loop")
    for xb in loader do
      assert.equals(1, xb[1]:item())
      break
    end
    firsts = {}
    for xb in loader do firsts[#firsts + 1] = xb[1]:item() end
    assert_same(firsts, { 1, 4, 7, 10 }, "loop after a break")
    -- Two passes at once through iter().
    local a, b = loader:iter(), loader:iter()
    assert.equals(1, a()[1]:item())
    assert.equals(4, a()[1]:item())
    assert.equals(1, b()[1]:item())
  end)

  it("shuffles every sample exactly once per pass, the same way for the same seed", function()
    local loader = data.DataLoader(ds, { batch_size = 3, shuffle = true })
    torch.manual_seed(123)
    local e1, e2 = pass(loader), pass(loader)
    torch.manual_seed(123)
    assert_same(pass(loader), e1, "same seed, first pass")
    assert_same(pass(loader), e2, "same seed, second pass")
    assert(not same(e1, e2), "two passes gave the same order")
    for _, e in ipairs({ e1, e2 }) do
      local seen = H.flatten(e)
      table.sort(seen)
      assert_same(seen, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, "a permutation")
    end
    torch.manual_seed(124)
    assert(not same(pass(loader), e1), "another seed gave the same order")
  end)

  it("continues exactly when resumed from the RNG state (default generator and a Generator)", function()
    local loader = data.DataLoader(ds, { batch_size = 4, shuffle = true })
    torch.manual_seed(5)
    pass(loader)
    local state = torch.get_rng_state()
    local e2, e3 = pass(loader), pass(loader)
    torch.manual_seed(99) -- a new process would start elsewhere
    torch.set_rng_state(state)
    assert_same(pass(loader), e2, "resumed pass 2")
    assert_same(pass(loader), e3, "resumed pass 3")

    local g = torch.Generator(7)
    local gl = data.DataLoader(ds, { batch_size = 4, shuffle = true, generator = g })
    pass(gl)
    local gstate = g:get_state()
    local before = torch.get_rng_state()
    local f2 = pass(gl)
    assert(torch.equal(before, torch.get_rng_state()), "a loader with a generator left the default one alone")
    local g2 = torch.Generator():set_state(gstate)
    assert_same(pass(data.DataLoader(ds, { batch_size = 4, shuffle = true, generator = g2 })), f2, "resumed generator")
    assert.equals(7, g:initial_seed())
  end)

  it("matches PyTorch 1.13's order and random draws", function()
    local py = python([==[
import torch
from torch.utils.data import TensorDataset, DataLoader, random_split
def passes(dl, k): return [[b[0].tolist() for b in dl] for _ in range(k)]
ds = TensorDataset(torch.arange(1, 11))
out = {}
torch.manual_seed(7)
out["shuffle"] = passes(DataLoader(ds, batch_size=3, shuffle=True), 2)
out["after_shuffle"] = torch.rand(3).tolist()
out["sequential"] = passes(DataLoader(ds, batch_size=4), 1)
out["after_sequential"] = torch.rand(3).tolist()
g = torch.Generator().manual_seed(3)
out["gen_drop"] = passes(DataLoader(ds, batch_size=4, shuffle=True, generator=g, drop_last=True), 2)
out["gen_keep"] = passes(DataLoader(ds, batch_size=4, shuffle=True, generator=g), 2)
out["gen_even"] = passes(DataLoader(ds, batch_size=5, shuffle=True, generator=g), 2)
out["gen_state"] = g.get_state().tolist()
out["after_gen"] = torch.rand(3).tolist()
torch.manual_seed(11)
out["split"] = [[i + 1 for i in p.indices] for p in random_split(range(10), [3, 7])]
out["split_frac"] = [[i + 1 for i in p.indices] for p in
                     random_split(range(10), [0.5, 0.3, 0.2], generator=torch.Generator().manual_seed(5))]
print(lua(out))
]==])
    local function show(loader, k)
      local out = {}
      for i = 1, k do out[i] = pass(loader) end
      return out
    end
    torch.manual_seed(7)
    assert_same(show(data.DataLoader(ds, { batch_size = 3, shuffle = true }), 2), py.shuffle, "shuffle")
    H.assert_values(torch.rand(3), py.after_shuffle, true, "default generator after shuffling")
    assert_same(show(data.DataLoader(ds, { batch_size = 4 }), 1), py.sequential, "sequential")
    H.assert_values(torch.rand(3), py.after_sequential, true, "default generator after a sequential pass")
    local g = torch.Generator():manual_seed(3)
    assert_same(show(data.DataLoader(ds, { batch_size = 4, shuffle = true, generator = g, drop_last = true }), 2),
      py.gen_drop, "generator, drop_last")
    assert_same(show(data.DataLoader(ds, { batch_size = 4, shuffle = true, generator = g }), 2), py.gen_keep,
      "generator, partial batch")
    assert_same(show(data.DataLoader(ds, { batch_size = 5, shuffle = true, generator = g }), 2), py.gen_even,
      "generator, even batches")
    assert_same(g:get_state():tolist(), py.gen_state, "generator state")
    H.assert_values(torch.rand(3), py.after_gen, true, "default generator after a loader with a generator")
    torch.manual_seed(11)
    local parts = data.random_split(data.TensorDataset(torch.arange(1, 11)), { 3, 7 })
    assert_same({ parts[1].indices:tolist(), parts[2].indices:tolist() }, py.split, "random_split")
    parts = data.random_split(torch.arange(1, 11), { 0.5, 0.3, 0.2 }, torch.Generator():manual_seed(5))
    assert_same({ parts[1].indices:tolist(), parts[2].indices:tolist(), parts[3].indices:tolist() }, py.split_frac,
      "random_split with fractions")
    assert.equals(py.split_frac[1][1], parts[1][1]:item()) -- a Subset of a tensor gives its rows
  end)

  it("gives the same batches through get_batch and through sample-by-sample collation", function()
    local x = torch.randn(13, 3, 2)
    local y = torch.randint(1, 5, { 13 })
    local d = data.TensorDataset(x, y)
    local g1, g2 = torch.Generator(1), torch.Generator(1)
    local fast = data.DataLoader(d, { batch_size = 5, shuffle = true, generator = g1 })
    local slow = data.DataLoader(d, { batch_size = 5, shuffle = true, generator = g2, collate_fn = data.default_collate })
    local it = slow:iter()
    local count = 0
    for fx, fy in fast:iter() do
      local sx, sy = it()
      count = count + 1
      assert(torch.equal(fx, sx) and torch.equal(fy, sy), "batch " .. count .. " differs")
      H.assert_meta(fx, { fx:size(1), 3, 2 }, "float32")
    end
    assert.equals(3, count)
    assert.is_nil(it())
  end)

  it("collates generic datasets: arrays of samples, get(i), tensors, tables of fields", function()
    local samples = {
      { torch.tensor({ 1.0, 2.0 }), 3, true, "a" },
      { torch.tensor({ 4.0, 5.0 }), 6, false, "b" },
      { torch.tensor({ 7.0, 8.0 }), 9, true, "c" },
    }
    local loader = data.DataLoader(samples, { batch_size = 2 })
    local it = loader:iter()
    local x, n, b, s = it()
    H.assert_meta(x, { 2, 2 }, "float32")
    H.assert_values(x, { 1, 2, 4, 5 }, true)
    H.assert_meta(n, { 2 }, "int64")
    H.assert_values(n, { 3, 6 }, true)
    H.assert_meta(b, { 2 }, "bool")
    assert_same(s, { "a", "b" }, "strings")
    x, n = it()
    H.assert_values(x, { 7, 8 }, true)
    assert.is_nil(it())

    -- Floats become float64, as PyTorch's default_collate makes them.
    local f = data.default_collate({ 1, 2.5 })
    H.assert_meta(f, { 2 }, "float64")

    -- An object with __len and get(i) returning several values; dict samples.
    local obj = setmetatable({}, {
      __len = function() return 5 end,
      __index = { get = function(_, i) return torch.full({ 2 }, i), { id = i, w = i / 2 } end },
    })
    local got = {}
    for xb, meta in data.DataLoader(obj, { batch_size = 2 }) do
      got[#got + 1] = xb:tolist()
      H.assert_meta(meta.id, { xb:size(1) }, "int64")
      H.assert_meta(meta.w, { xb:size(1) }, "float64")
    end
    assert_same(got, { { { 1, 1 }, { 2, 2 } }, { { 3, 3 }, { 4, 4 } }, { { 5, 5 } } }, "get(i) dataset")

    -- A tensor is a dataset of its rows.
    local rows = torch.arange(1, 7):reshape(3, 2)
    assert_same(pass(data.DataLoader(rows, { batch_size = 2 })), { { { 1, 2 }, { 3, 4 } }, { { 5, 6 } } }, "tensor dataset")

    -- collate_fn gets the list of samples and the loader returns what it returns.
    local seen
    local custom = data.DataLoader(samples, {
      batch_size = 3,
      collate_fn = function(list)
        seen = #list
        return #list, list[3][4]
      end,
    })
    local k, last = custom:iter()()
    assert.equals(3, k)
    assert.equals(3, seen)
    assert.equals("c", last)
  end)

  it("names the problem when samples cannot be collated", function()
    expect_error(data.default_collate, { { torch.zeros(2), torch.zeros(3) } }, "moontorch.utils.data.default_collate",
      "sample 2 has shape [3], sample 1 has [2]")
    expect_error(data.default_collate, { { { torch.zeros(2), 1 }, { torch.zeros(2), "x" } } }, "batch[2]",
      "sample 2 has a string where sample 1 has a number")
    expect_error(data.default_collate, { { { a = 1 }, { b = 1 } } }, "sample 2 has no field a")
    expect_error(data.default_collate, { { print } }, "cannot collate a function")
    expect_error(data.default_collate, { {} }, "non-empty list")
    local holes = setmetatable({}, { __len = function() return 2 end, __index = function() return nil end })
    expect_error(function() return data.DataLoader(holes):iter()() end, {}, "sample 1 of the dataset is nil")
  end)

  it("checks its options", function()
    local F = "moontorch.utils.data.DataLoader"
    expect_error(data.DataLoader, { ds, { batchsize = 4 } }, F, "unknown option 'batchsize'", "batch_size")
    expect_error(data.DataLoader, { ds, { batch_size = 0 } }, "batch_size must be a positive integer, got 0")
    expect_error(data.DataLoader, { ds, { batch_size = 2.5 } }, "batch_size must be a positive integer")
    expect_error(data.DataLoader, { ds, { shuffle = 1 } }, "shuffle must be a boolean")
    expect_error(data.DataLoader, { ds, { drop_last = "yes" } }, "drop_last must be a boolean")
    expect_error(data.DataLoader, { ds, { generator = 42 } }, "generator must be a torch.Generator")
    expect_error(data.DataLoader, { ds, { collate_fn = {} } }, "collate_fn must be a function")
    expect_error(data.DataLoader, { ds, { sampler = data.SequentialSampler(ds), shuffle = true } }, "cannot be combined")
    expect_error(data.DataLoader, { ds, { sampler = {} } }, "indices() method")
    expect_error(data.DataLoader, { 42 }, "the dataset must be a table or tensor")
    expect_error(data.DataLoader, { setmetatable({}, { __len = function() return "x" end }) }, "has no length")
  end)

  it("takes a sampler: its indices, in its order, and its length", function()
    local every_other = { indices = function() return { 2, 4, 6, 8, 10 } end }
    setmetatable(every_other, { __len = function() return 5 end })
    local loader = data.DataLoader(ds, { batch_size = 2, sampler = every_other })
    assert.equals(3, #loader)
    assert_same(pass(loader), { { 2, 4 }, { 6, 8 }, { 10 } }, "sampler order")
    local bad = setmetatable({ indices = function() return { 1, 2.5 } end }, { __len = function() return 2 end })
    expect_error(function() return data.DataLoader(ds, { sampler = bad }):iter() end, {}, "the sampler's indices[2] is 2.5")
  end)

  it("makes Subsets and random splits that cover the dataset once", function()
    local sub = data.Subset(ds, { 10, 1, 5 })
    assert.equals(3, #sub)
    local a, b = sub:get(1)
    assert.equals(10, a:item())
    assert.equals(5, b:item())
    assert.equals(1, sub[2][1]:item())
    assert_same(pass(data.DataLoader(sub, { batch_size = 2 })), { { 10, 1 }, { 5 } }, "subset batches")
    expect_error(data.Subset, { ds, { 0, 3 } }, "moontorch.utils.data.Subset", "index 0 is out of range for a dataset of 10")
    expect_error(data.Subset, { ds, { 11 } }, "index 11 is out of range")

    torch.manual_seed(3)
    local parts = data.random_split(ds, { 0.6, 0.4 })
    assert.equals(6, #parts[1])
    assert.equals(4, #parts[2])
    local all = H.flatten({ parts[1].indices:tolist(), parts[2].indices:tolist() })
    table.sort(all)
    assert_same(all, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, "split covers the dataset")
    expect_error(data.random_split, { ds, { 3, 4 } }, "the lengths sum to 7 but the dataset has 10 samples")
    expect_error(data.random_split, { ds, { 2.5, 7.5 } }, "is not an integer")
    expect_error(data.random_split, { ds, { 5, 5 }, "seed" }, "generator must be a torch.Generator")
  end)
end)

describe("torch.Generator", function()
  it("draws independently of the default generator and restores its state", function()
    local g = torch.Generator()
    assert.equals(67280421310721, g:initial_seed()) -- PyTorch's default seed
    assert.equals(g, g:manual_seed(42))
    assert.equals(42, g:initial_seed())
    local s = g:get_state()
    H.assert_meta(s, { 5056 }, "uint8")
    assert(tostring(g):find("moontorch.Generator", 1, true))
    expect_error(function() return g:set_state(torch.zeros(3)) end, {}, "Generator.set_state", "uint8")
    expect_error(function() return g:manual_seed(1.5) end, {}, "seed must be an integer")
  end)
end)

-- ------------------------------------------------------------------------------------------

local function fashion_installed()
  local f = io.open(FASHION .. "/train-images-idx3-ubyte.gz", "rb")
  if f then f:close() end
  return f ~= nil
end

describe("torch.datasets.FashionMNIST (Debian's files)", function()
  if not fashion_installed() then
    pending("Debian's dataset-fashion-mnist is not installed (" .. FASHION .. ")")
    return
  end
  local py, train, test

  lazy_setup(function()
    py = python([==[
import gzip, struct
root = sys.argv[1]
def read(name):
    with gzip.open(root + "/" + name, "rb") as f:
        b = f.read()
    zero, typ, nd = struct.unpack(">HBB", b[:4])
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return typ, list(dims), b[4 + 4 * nd:]
def checks(img):
    return {"sum": sum(img), "wsum": sum(i * v for i, v in enumerate(img)), "pixels": [img[k] for k in (0, 150, 406, 783)]}
out = {}
for split in ("train", "t10k"):
    it, idims, images = read(split + "-images-idx3-ubyte.gz")
    lt, ldims, labels = read(split + "-labels-idx1-ubyte.gz")
    n, sz = idims[0], idims[1] * idims[2]
    out[split] = {"itype": it, "idims": idims, "ltype": lt, "ldims": ldims, "total": sum(images),
                  "first": checks(images[:sz]), "last": checks(images[(n - 1) * sz:]),
                  "labels": [labels[0], labels[1], labels[-1]], "hist": [labels.count(c) for c in range(10)]}
print(lua(out))
]==], H.shquote(FASHION))
    train = torch.datasets.FashionMNIST()
    test = torch.datasets.FashionMNIST(FASHION, { train = false })
  end)

  local function image_checks(img)
    local flat = img:flatten():long()
    return {
      sum = flat:sum():item(),
      wsum = (flat * torch.arange(0, flat:numel())):sum():item(),
      pixels = { flat[1]:item(), flat[151]:item(), flat[407]:item(), flat[784]:item() },
    }
  end

  it("reads the same images and labels as Python's parse of the same files", function()
    for _, case in ipairs({ { train, py.train }, { test, py.t10k } }) do
      local ds, p = case[1], case[2]
      assert.equals(0x08, p.itype)
      H.assert_meta(ds.data, p.idims, "uint8")
      H.assert_meta(ds.targets, p.ldims, "int64")
      assert.equals(p.idims[1], #ds)
      assert.equals(p.total, ds.data:sum():item())
      local first, last = image_checks(ds.data[1]), image_checks(ds.data[-1])
      assert_same({ first.sum, first.wsum, first.pixels }, { p.first.sum, p.first.wsum, p.first.pixels }, "first image")
      assert_same({ last.sum, last.wsum, last.pixels }, { p.last.sum, p.last.wsum, p.last.pixels }, "last image")
      -- Labels shift from 0..9 to 1..10.
      assert.equals(p.labels[1] + 1, ds.targets[1]:item())
      assert.equals(p.labels[2] + 1, ds.targets[2]:item())
      assert.equals(p.labels[3] + 1, ds.targets[-1]:item())
      for c = 1, 10 do assert.equals(p.hist[c], ds.targets:eq(c):sum():item()) end
    end
    assert.equals(60000, #train)
    assert.equals(10000, #test)
    assert.equals("Ankle boot", train.classes[train.targets[1]:item()])
  end)

  it("gives samples as float32 [1, 28, 28] in [0, 1] (pixel / 255) with labels in 1..10", function()
    local x, y = train:get(1)
    H.assert_meta(x, { 1, 28, 28 }, "float32")
    assert.equals(py.train.labels[1] + 1, y)
    assert.equals("integer", math.type(y))
    local flat = H.values(x)
    local px = py.train.first.pixels
    for k, pos in ipairs({ 1, 151, 407, 784 }) do
      assert(math.abs(flat[pos] - px[k] / 255) < 1e-7, "pixel " .. pos .. ": " .. flat[pos] .. " vs " .. px[k] / 255)
    end
    assert(x:max():item() <= 1 and x:min():item() >= 0)
    local s = test[-1]
    assert(torch.equal(s[1], test.data[-1]:float():div(255):unsqueeze(1)))
    assert.equals(py.t10k.labels[3] + 1, s[2])
  end)

  it("batches through the DataLoader with one index_select, equal to its samples", function()
    local loader = data.DataLoader(test, { batch_size = 64, shuffle = true, generator = torch.Generator(0) })
    assert.equals(157, #loader)
    local xb, yb = loader:iter()()
    H.assert_meta(xb, { 64, 1, 28, 28 }, "float32")
    H.assert_meta(yb, { 64 }, "int64")
    local idx = torch.Generator(0) -- the same draws: base seed, then the permutation
    require("moontorch.core")._random_seed(idx)
    local perm = require("moontorch.core")._randperm(#test, idx)
    for _, k in ipairs({ 1, 17, 64 }) do
      local sx, sy = test:get(perm[k]:item())
      assert(torch.equal(xb[k], sx), "image " .. k)
      assert.equals(sy, yb[k]:item())
    end
    local total = 0
    for bx in data.DataLoader(test, { batch_size = 1000 }) do total = total + bx:size(1) end
    assert.equals(10000, total)
    local all_x, all_y = test:tensors()
    H.assert_meta(all_x, { 10000, 1, 28, 28 }, "float32")
    assert(torch.equal(all_y, test.targets))
    local td = data.TensorDataset(test:tensors())
    local tx, ty = td:get(5)
    local sx, sy = test:get(5)
    assert(torch.equal(tx, sx))
    assert.equals(sy, ty:item())
  end)

  it("applies transform and target_transform sample by sample", function()
    local ds = torch.datasets.FashionMNIST(nil, {
      train = false,
      transform = function(x) return x:flatten() end,
      target_transform = function(y) return y - 1 end,
    })
    local x, y = ds:get(1)
    H.assert_meta(x, { 784 }, "float32")
    assert.equals(py.t10k.labels[1], y)
    local xb, yb = data.DataLoader(ds, { batch_size = 3 }):iter()()
    H.assert_meta(xb, { 3, 784 }, "float32")
    assert.equals(py.t10k.labels[1], yb[1]:item())
  end)
end)

-- ------------------------------------------------------------------------------------------

describe("IDX files that are broken or hostile", function()
  local dir

  lazy_setup(function()
    dir = mktemp_dir()
    python([==[
import gzip, os, struct
d = sys.argv[1]
def hdr(typ, dims): return struct.pack(">HBB", 0, typ, len(dims)) + b"".join(struct.pack(">I", x) for x in dims)
def put(name, b):
    with open(os.path.join(d, name), "wb") as f: f.write(b)
def put_gz(name, b): put(name, gzip.compress(b))
good = hdr(8, [2, 3]) + bytes([1, 2, 3, 4, 5, 6])
put_gz("empty.gz", b"")
put("empty", b"")
put("bad_magic", b"\x12\x34" + good[2:])
put("unknown_type", hdr(10, [2, 3]) + bytes(6))
put("nine_dims", hdr(8, [1] * 9) + bytes(1))
put("zero_dims", hdr(8, []) + bytes(1))
put("short_header", hdr(8, [2, 3])[:9])
put_gz("wrong_dims.gz", hdr(8, [2, 4]) + bytes(6))
put("truncated", good[:-2])
put_gz("trailing.gz", good + b"\x00")
put_gz("huge.gz", hdr(8, [60000, 28, 28, 1000]) + bytes(10))
put("overflow", hdr(14, [0xffffffff] * 4))
put("not_gzip.gz", b"PK\x03\x04" + bytes(40))
z = gzip.compress(hdr(8, [4000]) + bytes((i * i >> 3) & 255 for i in range(4000)))
put("bad_crc.gz", z[:-8] + bytes([z[-8] ^ 0xff]) + z[-7:])
put("cut.gz", z[: len(z) // 2])
put("junk_after.gz", gzip.compress(good) + b"junk")
put("big_endian_int32.gz", gzip.compress(hdr(12, [3]) + struct.pack(">iii", -2, 70000, 1 << 30)))
put("float64", hdr(14, [2]) + struct.pack(">dd", -1.5, 1e300))
# Dataset folders: images 3 x 28 x 28 with pixel (k * 7 + i) % 256, labels 0..9.
def images(n, typ=8, dims=None):
    return hdr(typ, dims or [n, 28, 28]) + bytes((k * 7 + i) % 256 for i in range(n) for k in range(784))
def labels(ls): return hdr(8, [len(ls)]) + bytes(ls)
def folder(name, files):
    os.makedirs(os.path.join(d, name))
    for fname, b, gz in files:
        (put_gz if gz else put)(os.path.join(name, fname + (".gz" if gz else "")), b)
folder("ok", [("train-images-idx3-ubyte", images(3), True), ("train-labels-idx1-ubyte", labels([9, 0, 4]), True)])
folder("plain", [("t10k-images-idx3-ubyte", images(2), False), ("t10k-labels-idx1-ubyte", labels([1, 2]), False)])
folder("count", [("train-images-idx3-ubyte", images(3), True), ("train-labels-idx1-ubyte", labels([1, 2, 3, 4]), True)])
folder("label_range", [("train-images-idx3-ubyte", images(3), True), ("train-labels-idx1-ubyte", labels([1, 10, 3]), True)])
folder("int_images", [("train-images-idx3-ubyte", hdr(12, [3, 28, 28]) + bytes(4 * 3 * 784), True),
                      ("train-labels-idx1-ubyte", labels([1, 2, 3]), True)])
folder("flat_images", [("train-images-idx3-ubyte", hdr(8, [3, 784]) + bytes(3 * 784), True),
                       ("train-labels-idx1-ubyte", labels([1, 2, 3]), True)])
folder("no_labels", [("train-images-idx3-ubyte", images(3), True)])
folder("bad_images", [("train-images-idx3-ubyte", good[:-1], True), ("train-labels-idx1-ubyte", labels([1, 2, 3]), True)])
print("true")
]==], H.shquote(dir))
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  local read_idx = function(...) return torch.datasets.read_idx(...) end

  it("refuses each malformed file, naming the file and the problem", function()
    local cases = {
      { "empty", "the file is empty" },
      { "empty.gz", "the file is empty" },
      { "bad_magic", "not an IDX file (it starts with bytes 12 34 08 02" },
      { "unknown_type", "unknown IDX element type 0x0a" },
      { "nine_dims", "the header declares 9 dimensions; 1 to 8 are supported" },
      { "zero_dims", "the header declares 0 dimensions" },
      { "short_header", "truncated header: 5 of the 8 bytes of its dimension sizes" },
      { "wrong_dims.gz", "truncated: its header declares [2, 4] uint8 (8 bytes of data) but it holds 6" },
      { "truncated", "truncated: its header declares [2, 3] uint8 (6 bytes of data) but it holds 4" },
      { "trailing.gz", "trailing data after the 6 bytes of data its header declares" },
      { "huge.gz", "truncated: its header declares [60000, 28, 28, 1000] uint8 (47040000000 bytes of data) but it holds 10" },
      { "overflow", "the header declares [4294967295, 4294967295, 4294967295, 4294967295] float64, which is too large" },
      { "not_gzip.gz", "not an IDX file (it starts with bytes 50 4b 03 04" },
      { "bad_crc.gz", "corrupt gzip data (incorrect data check)" },
      { "cut.gz", "the gzip stream is truncated" },
      { "junk_after.gz", "trailing data after the gzip stream" },
      { "missing.gz", "no such file" },
      { "", "is a directory" },
    }
    for _, c in ipairs(cases) do
      local path = dir .. "/" .. c[1]
      expect_error(read_idx, { path }, "moontorch.datasets.read_idx: " .. path .. ": " .. c[2])
    end
    expect_error(read_idx, { 3 }, "path must be a string")
  end)

  it("reads the other element types, converting from big-endian", function()
    local t = read_idx(dir .. "/big_endian_int32.gz")
    H.assert_meta(t, { 3 }, "int32")
    H.assert_values(t, { -2, 70000, 1 << 30 }, true)
    t = read_idx(dir .. "/float64")
    H.assert_meta(t, { 2 }, "float64")
    H.assert_values(t, { -1.5, 1e300 }, true)
  end)

  it("reads a dataset folder of its own, gzip or plain", function()
    local ds = torch.datasets.FashionMNIST(dir .. "/ok")
    assert.equals(3, #ds)
    H.assert_values(ds.targets, { 10, 1, 5 }, true)
    local x, y = ds:get(2)
    assert.equals(1, y)
    H.assert_meta(x, { 1, 28, 28 }, "float32")
    -- Pixel k of image i is (7k + i) % 256 (both 0-based).
    assert(torch.equal(x:flatten():narrow(1, 1, 3), torch.tensor({ 1, 8, 15 }):float():div(255)))
    local plain = torch.datasets.FashionMNIST(dir .. "/plain", { train = false })
    assert.equals(2, #plain)
    H.assert_values(plain.targets, { 2, 3 }, true)
    assert(tostring(plain):find("test, 2 samples", 1, true))
  end)

  it("refuses dataset folders with missing or inconsistent files", function()
    local F = "moontorch.datasets.FashionMNIST: "
    expect_error(torch.datasets.FashionMNIST, { "/x" },
      F .. "/x/train-images-idx3-ubyte.gz: no such file (install Debian's dataset-fashion-mnist)")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/no_labels" },
      F .. dir .. "/no_labels/train-labels-idx1-ubyte.gz: no such file (install Debian's dataset-fashion-mnist)")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/count" }, "holds 4 labels but", "holds 3 images")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/label_range" }, "label 10 of sample 2 is outside 0..9")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/int_images" },
      "expected uint8 images [N, rows, columns], got int32 [3, 28, 28]")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/flat_images" }, "got uint8 [3, 784]")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/bad_images" },
      F .. dir .. "/bad_images/train-images-idx3-ubyte.gz: truncated")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/ok", { train = "yes" } }, "train must be a boolean")
    expect_error(torch.datasets.FashionMNIST, { dir .. "/ok", { split = "test" } }, "unknown option 'split'")
    expect_error(torch.datasets.FashionMNIST, { 42 }, "root must be a directory path")
    local ds = torch.datasets.FashionMNIST(dir .. "/ok")
    expect_error(function() return ds[4] end, {}, "FashionMNIST: index 4 is out of range for a dataset of 3 samples")
  end)
end)
