-- A short tour of moontorch tensors: lua5.4 examples/tour.lua (from the repository root, after make).
local torch = require "moontorch"

local function section(title)
  print()
  print("== " .. title .. " " .. string.rep("=", 60 - #title))
end

section("Creating tensors")
local a = torch.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }) -- Lua integers give int64
print("a =", a)
print("a.dtype =", a.dtype, " a.shape = {" .. table.concat(a.shape, ", ") .. "}", " #a =", #a)
local x = torch.tensor({ 0.5, -1.25, 2 }) -- any float gives float32
print("x =", x)
print("zeros(2, 3) =", torch.zeros(2, 3))
print("arange(0, 1, 0.25) =", torch.arange(0, 1, 0.25))
print("eye(3, {dtype = \"float64\"}) =", torch.eye(3, { dtype = "float64" }))
torch.manual_seed(42)
print("randn(2, 2) with seed 42 =", torch.randn(2, 2))

section("Arithmetic and broadcasting")
print("a * 10 =", a * 10)
print("a + 0.5 (int64 + float gives float32) =", a + 0.5)
local row = torch.tensor({ 100, 200, 300 })
local col = torch.tensor({ { 1 }, { 2 } })
print("a + row (shape {3} broadcasts over the rows) =", a + row)
print("a * col (shape {2, 1} broadcasts over the columns) =", a * col)
print("x:exp() =", x:exp())
print("x:clamp(0, 1) =", x:clamp(0, 1))

section("Views share storage")
local m = torch.zeros(3, 4)
local r = m[2]              -- m:select(1, 2): the second row, a view
r:fill_(7)
m:narrow(2, 4, 1):fill_(-1) -- the last column
print("after filling row 2 and column 4 through views, m =", m)
local t = m:t()
print("m:t() is a view too: t:is_contiguous() =", t:is_contiguous(), " t:stride() = {" .. table.concat(t:stride(), ", ") .. "}")
print("m:view(2, 6) =", m:view(2, 6))

section("Reductions (dims are 1-based)")
local s = torch.tensor({ { 1.0, 5.0, 3.0 }, { 4.0, 2.0, 6.0 } })
print("s =", s)
print("s:sum() =", s:sum(), " s:sum(1) =", s:sum(1), " s:mean(2) =", s:mean(2))
local values, indices = s:max(2)
print("s:max(2) -> values", values, "indices (1-based)", indices)
print("s:argmax() =", s:argmax(), " s:std() =", s:std())
print("softmax over dim 2 =", s:softmax(2))

section("Matrix products")
local w = torch.tensor({ { 1.0, 0.0 }, { 0.0, 1.0 }, { 1.0, 1.0 } })
print("s:matmul(w) =", s:matmul(w))
local batch = torch.ones(4, 2, 3)
print("batched: ones(4, 2, 3):matmul(w) has shape {" .. table.concat(batch:matmul(w).shape, ", ") .. "}")

section("Comparisons and selection")
local mask = s:gt(3)
print("s:gt(3) =", mask)
print("torch.where(mask, s, 0) =", torch.where(mask, s, 0))
print("s:masked_fill(mask, -1) =", s:masked_fill(mask, -1))
print("torch.equal(s, s:clone()) =", torch.equal(s, s:clone()))
print("torch.allclose(s, s + 1e-7) =", torch.allclose(s, s + 1e-7))

section("Printing large tensors")
print(torch.arange(10000):view(100, 100))

section("Errors name the function and the problem")
local ok, err = pcall(function() return torch.zeros(2, 3):view(4) end)
print(ok, err)
ok, err = pcall(function() return torch.tensor({ { 1, 2 }, { 3 } }) end)
print(ok, err)
