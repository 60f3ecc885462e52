-- torch.datasets (SPEC section 8): datasets that read files already on the machine.
--
--   local train = torch.datasets.FashionMNIST()                   -- the training set (60000)
--   local test = torch.datasets.FashionMNIST(nil, {train = false}) -- the test set (10000)
--   local x, y = train:get(1)    -- float32 [1, 28, 28] in [0, 1], and the label in 1..10
--   train[1]                     -- the same as {x, y}; #train == 60000
--   train.data, train.targets    -- uint8 [N, 28, 28], int64 [N] (1..10)
--   train.classes[y]             -- "T-shirt/top", "Trouser", ...
--   local loader = torch.utils.data.DataLoader(train, {batch_size = 64, shuffle = true})
--
-- FashionMNIST(root, {train = true, transform = nil, target_transform = nil}) reads the gzip IDX
-- files that Debian's dataset-fashion-mnist installs (the default root,
-- /usr/share/datasets/fashion-mnist), or the same files, plain or gzip, under another root.
-- Labels are 0..9 in the files and 1..10 here (SPEC section 1), so that they index classes
-- and serve as cross_entropy targets. Images convert as torchvision's ToTensor converts them
-- (float32, pixel / 255), batch by batch: a DataLoader fetches a whole batch with one
-- index_select (dataset:get_batch), unless a transform asks for samples one at a time.
-- ds:tensors() gives every image and target at once, for a TensorDataset.
--
-- torch.datasets.read_idx(path) reads any IDX file (plain or gzip) into a tensor of its type.
local torch = require "moontorch"
local core = require "moontorch.core"

local mtype = math.type

local datasets = {}

local DEFAULT_FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
local INSTALL_HINT = "install Debian's dataset-fashion-mnist"

local fail = require("moontorch.errors").raiser("moontorch.datasets.")

local typename = require("moontorch.errors").typename

local function shape_str(t) return "[" .. table.concat(t.shape, ", ") .. "]" end

function datasets.read_idx(path)
  if type(path) ~= "string" then fail("read_idx", "path must be a string, got %s", typename(path)) end
  local t, err = core._read_idx(path)
  if not t then fail("read_idx", "%s", err) end
  return t
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- <root>/<name>.gz, or <root>/<name> when only the uncompressed file is there.
local function read_member(fname, root, name, hint)
  local path = root .. "/" .. name .. ".gz"
  if not file_exists(path) and file_exists(root .. "/" .. name) then path = root .. "/" .. name end
  local t, err, status = core._read_idx(path)
  if not t then
    if status == "I/O error" and err:find(": no such file$") and hint then err = err .. " (" .. hint .. ")" end
    fail(fname, "%s", err)
  end
  return t, path
end

-- ---------------------------------------------------------------------------------------------
-- Image-classification datasets in IDX files (MNIST's layout)

local ImageIDX = {}
ImageIDX.__index = function(self, k)
  if mtype(k) == "integer" then return { self:get(k) } end
  return getmetatable(self)[k]
end

-- Builds a class for one dataset: `spec` has name, default_root, hint, classes.
local function image_idx_class(spec)
  local C = {}
  for k, v in pairs(ImageIDX) do C[k] = v end
  C.__name = "moontorch.datasets." .. spec.name
  C.classes = spec.classes

  local KNOWN = { train = true, transform = true, target_transform = true }
  return setmetatable(C, {
    __call = function(cls, root, opts)
      local F = spec.name
      if root == nil then root = spec.default_root end
      if type(root) ~= "string" then fail(F, "root must be a directory path (string), got %s", typename(root)) end
      if opts ~= nil and type(opts) ~= "table" then fail(F, "options must be a table, got %s", typename(opts)) end
      opts = opts or {}
      for k in pairs(opts) do
        if not KNOWN[k] then fail(F, "unknown option '%s' (known: target_transform, train, transform)", tostring(k)) end
      end
      local train = opts.train
      if train == nil then train = true end
      if type(train) ~= "boolean" then fail(F, "train must be a boolean, got %s", typename(train)) end
      for _, k in ipairs({ "transform", "target_transform" }) do
        if opts[k] ~= nil and type(opts[k]) ~= "function" then fail(F, "%s must be a function, got %s", k, typename(opts[k])) end
      end

      local prefix = train and "train" or "t10k"
      local images, ipath = read_member(F, root, prefix .. "-images-idx3-ubyte", spec.hint)
      local labels, lpath = read_member(F, root, prefix .. "-labels-idx1-ubyte", spec.hint)
      if images.dtype ~= "uint8" or images:dim() ~= 3 then
        fail(F, "%s: expected uint8 images [N, rows, columns], got %s %s", ipath, images.dtype, shape_str(images))
      end
      if labels.dtype ~= "uint8" or labels:dim() ~= 1 then
        fail(F, "%s: expected uint8 labels [N], got %s %s", lpath, labels.dtype, shape_str(labels))
      end
      if labels:size(1) ~= images:size(1) then
        fail(F, "%s holds %d labels but %s holds %d images", lpath, labels:size(1), ipath, images:size(1))
      end
      local nclass = #spec.classes
      if labels:numel() > 0 then
        local hi, at = labels:max(1)
        hi = hi:item()
        if hi >= nclass then
          fail(F, "%s: label %d of sample %d is outside 0..%d", lpath, hi, at:item(), nclass - 1)
        end
      end

      local self = setmetatable({}, cls)
      self.root, self.train = root, train
      self.data = images
      self.targets = labels:long():add_(1) -- 0-based in the file, 1-based here
      self.transform, self.target_transform = opts.transform, opts.target_transform
      if self.transform or self.target_transform then self.get_batch = false end -- per sample
      return self
    end,
  })
end

function ImageIDX:__len() return self.data:size(1) end

function ImageIDX:__tostring()
  return string.format("%s(%s, %d samples, %s)", getmetatable(self).__name, self.train and "train" or "test",
    self.data:size(1), self.root)
end

-- Sample i: the image as float32 [1, rows, columns] in [0, 1] and the label (an integer).
function ImageIDX:get(i)
  local F = getmetatable(self).__name:match("[^.]+$")
  if mtype(i) ~= "integer" then fail(F, "index must be an integer, got %s", tostring(i)) end
  local n = self.data:size(1)
  local j = i < 0 and n + 1 + i or i
  if j < 1 or j > n then fail(F, "index %d is out of range for a dataset of %d samples", i, n) end
  local x = self.data[j]:float():div_(255):unsqueeze(1)
  local y = self.targets[j]:item()
  if self.transform then x = self.transform(x) end
  if self.target_transform then y = self.target_transform(y) end
  return x, y
end

-- The batch at idx (1-based int64): images float32 [B, 1, rows, columns], targets int64 [B].
function ImageIDX:get_batch(idx)
  local x = self.data:index_select(1, idx):float():div_(255):unsqueeze(2)
  return x, self.targets:index_select(1, idx)
end

-- Every image (float32 [N, 1, rows, columns], in [0, 1]) and target (int64 [N], 1..C).
function ImageIDX:tensors()
  return self.data:float():div_(255):unsqueeze(2), self.targets
end

datasets.FashionMNIST = image_idx_class({
  name = "FashionMNIST",
  default_root = DEFAULT_FASHION_ROOT,
  hint = INSTALL_HINT,
  classes = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" },
})

return datasets
