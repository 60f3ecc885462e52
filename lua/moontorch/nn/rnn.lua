-- Recurrent layers of torch.nn: LSTM, GRU and RNN (tanh or relu), as PyTorch 1.13's: the same
-- constructor arguments, parameter names and registration order (weight_ih_l0, weight_hh_l0,
-- bias_ih_l0, bias_hh_l0, then the _reverse ones of a bidirectional layer, then layer 1, ...),
-- gate order (LSTM i, f, g, o; GRU r, z, n), formulas and default initialisation
-- (uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) drawn in parameter order).
--
--   local lstm = nn.LSTM(10, 20, {num_layers = 2, batch_first = true})
--   local out, state = lstm(x)              -- state = {h_n, c_n}; lstm(x, {h0, c0}) starts from one
--   local gru = nn.GRU(10, 20)
--   local out, h_n = gru(x[, h0])
--
-- Input is [T, B, input_size] ([B, T, input_size] with batch_first) or unbatched [T, input_size];
-- the output has hidden_size (proj_size for a projected LSTM) features per direction, and the
-- states are [num_layers * num_directions, B, hidden]. Dropout, when set, applies to the
-- outputs of every layer but the last, in training mode.
--
-- The cells are composed of autograd ops: per layer and direction the input projection of the
-- whole sequence is one matrix product up front, then each time step is a few fused calls
-- (one product with the hidden state, the gate nonlinearities, the state update).
local torch = require "moontorch"
local Module = require("moontorch.nn.module").Module
local Parameter = require("moontorch.nn.module").Parameter
local F = require "moontorch.nn.functional"
local init = require "moontorch.nn.initializers"
local U = require "moontorch.nn.layers_util"

local R = {}

local GATES = { LSTM = 4, GRU = 3, RNN_TANH = 1, RNN_RELU = 1 }

local ARGS = { "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
  "proj_size", "dtype", required = 2,
  defaults = { num_layers = 1, bias = true, batch_first = false, dropout = 0.0, bidirectional = false, proj_size = 0 } }
local ARGS_NO_PROJ = { "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
  "dtype", required = 2, defaults = ARGS.defaults }
-- RNN's nonlinearity is keyword-only in PyTorch 1.13; here it is an option.
local ARGS_RNN = { "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
  "nonlinearity", "dtype", required = 2, defaults = ARGS.defaults }

-- PyTorch's RNNBase.__init__.
local function rnn_init(self, cname, mode, a)
  self.mode = mode
  self.input_size = U.int(cname, "input_size", a.input_size, 0)
  self.hidden_size = U.int(cname, "hidden_size", a.hidden_size, 0)
  self.num_layers = U.int(cname, "num_layers", a.num_layers, 1)
  self.bias = a.bias and true or false
  self.batch_first = a.batch_first and true or false
  self.bidirectional = a.bidirectional and true or false
  local p = a.dropout
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(string.format("moontorch.nn.%s: dropout should be a number in range [0, 1] representing the " ..
      "probability of an element being zeroed, got %s", cname, tostring(p)), 0)
  end
  self.dropout = p + 0.0
  local proj = math.tointeger(a.proj_size or 0)
  if not proj or proj < 0 then
    error("moontorch.nn." .. cname .. ": proj_size should be a positive integer or zero to disable projections", 0)
  end
  if proj > 0 and proj >= self.hidden_size then
    error("moontorch.nn." .. cname .. ": proj_size has to be smaller than hidden_size", 0)
  end
  self.proj_size = proj

  local dtype = U.dtype(cname, a.dtype)
  local h = self.hidden_size
  local gate_size = GATES[mode] * h
  local real_h = proj > 0 and proj or h
  local dirs = self.bidirectional and 2 or 1
  self._flat_weights_names = {}
  local function add(name, shape)
    self[name] = Parameter(torch.empty(shape, { dtype = dtype }))
    table.insert(self._flat_weights_names, name)
  end
  for layer = 0, self.num_layers - 1 do
    for dir = 1, dirs do
      local suffix = layer .. (dir == 2 and "_reverse" or "")
      local in_size = layer == 0 and self.input_size or real_h * dirs
      add("weight_ih_l" .. suffix, { gate_size, in_size })
      add("weight_hh_l" .. suffix, { gate_size, real_h })
      if self.bias then
        add("bias_ih_l" .. suffix, { gate_size })
        add("bias_hh_l" .. suffix, { gate_size })
      end
      if proj > 0 then add("weight_hr_l" .. suffix, { proj, h }) end
    end
  end
  self:reset_parameters()
end

local RNNBase = {}

function RNNBase:reset_parameters()
  local stdv = self.hidden_size > 0 and 1.0 / math.sqrt(self.hidden_size) or 0
  for _, name in ipairs(self._flat_weights_names) do init.uniform_(self[name], -stdv, stdv) end
end

-- PyTorch's flatten_parameters compacts weights for cuDNN; on the CPU there is nothing to do.
function RNNBase:flatten_parameters() end

function RNNBase:extra_repr()
  local s = self.input_size .. ", " .. self.hidden_size
  if self.proj_size ~= 0 then s = s .. ", proj_size=" .. self.proj_size end
  if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
  if not self.bias then s = s .. ", bias=False" end
  if self.batch_first then s = s .. ", batch_first=True" end
  if self.dropout ~= 0 then s = s .. ", dropout=" .. U.repr(self.dropout) end
  if self.bidirectional then s = s .. ", bidirectional=True" end
  return s
end

-- ------------------------------------------------------------------------------------------
-- One layer in one direction over a time-major sequence. xs: the input projections of the
-- steps (an array of [B, G*H] tensors, bias_ih included); h (and c for LSTM): [B, H].
-- Returns the array of per-step outputs, and the last h (and c).

local function run_lstm(self, xs, h, c, w_hh, b_hh, w_hr, reverse)
  local T, out = #xs, {}
  for k = 1, T do
    local t = reverse and T + 1 - k or k
    local gates = (xs[t] + F.linear(h, w_hh, b_hh)):chunk(4, 2)
    local i, f, g, o = gates[1]:sigmoid(), gates[2]:sigmoid(), gates[3]:tanh(), gates[4]:sigmoid()
    c = f * c + i * g
    h = o * c:tanh()
    if w_hr then h = F.linear(h, w_hr) end
    out[t] = h
  end
  return out, h, c
end

local function run_gru(self, xs, h, w_hh, b_hh, reverse)
  local T, H, out = #xs, self.hidden_size, {}
  for k = 1, T do
    local t = reverse and T + 1 - k or k
    local gi, gh = xs[t], F.linear(h, w_hh, b_hh)
    local rz = (gi:narrow(2, 1, 2 * H) + gh:narrow(2, 1, 2 * H)):sigmoid():chunk(2, 2)
    local n = (gi:narrow(2, 2 * H + 1, H) + rz[1] * gh:narrow(2, 2 * H + 1, H)):tanh()
    h = n + rz[2] * (h - n) -- (1 - z) * n + z * h, as PyTorch's kernel writes it
    out[t] = h
  end
  return out, h
end

local function run_simple(self, xs, h, w_hh, b_hh, reverse)
  local T, out = #xs, {}
  local relu = self.mode == "RNN_RELU"
  for k = 1, T do
    local t = reverse and T + 1 - k or k
    local pre = xs[t] + F.linear(h, w_hh, b_hh)
    h = relu and pre:relu() or pre:tanh()
    out[t] = h
  end
  return out, h
end

local function shape_str(s)
  local parts = {}
  for i = 1, #s do parts[i] = tostring(s[i]) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

-- Checks a given initial state tensor against the expected shape.
local function check_state(self, v, what, expected)
  if not torch.is_tensor(v) then
    error(string.format("moontorch.nn.%s: %s must be a tensor, got %s", self._cname, what, type(v)), 0)
  end
  local s = v.shape
  local same = #s == #expected
  for i = 1, #expected do same = same and s[i] == expected[i] end
  if not same then
    error(string.format("moontorch.nn.%s: expected %s of size %s, got %s", self._cname, what, shape_str(expected),
      shape_str(s)), 0)
  end
end

-- The forward pass shared by the three classes: hx is nil, a tensor (GRU, RNN) or {h0, c0}
-- (LSTM). Returns output and the final state in the same form.
function RNNBase:forward(input, hx)
  local cname, lstm = self._cname, self.mode == "LSTM"
  if not torch.is_tensor(input) or (input:dim() ~= 2 and input:dim() ~= 3) then
    error(string.format("moontorch.nn.%s: expected input to be 2-D or 3-D but received %s", cname,
      torch.is_tensor(input) and (input:dim() .. "-D tensor") or type(input)), 0)
  end
  if input:size(-1) ~= self.input_size then
    error(string.format("moontorch.nn.%s: input.size(-1) must be equal to input_size. Expected %d, got %d", cname,
      self.input_size, input:size(-1)), 0)
  end
  local batched = input:dim() == 3
  local x = input
  if not batched then
    x = x:unsqueeze(2)                     -- [T, 1, I]
  elseif self.batch_first then
    x = x:transpose(1, 2)                  -- [T, B, I]
  end
  if x:size(1) == 0 then
    error("moontorch.nn." .. cname .. ": expected sequence length to be larger than 0", 0)
  end
  local B = x:size(2)
  local dirs = self.bidirectional and 2 or 1
  local out_h = self.proj_size > 0 and self.proj_size or self.hidden_size
  local h_shape = batched and { self.num_layers * dirs, B, out_h } or { self.num_layers * dirs, out_h }
  local c_shape = batched and { self.num_layers * dirs, B, self.hidden_size } or { self.num_layers * dirs, self.hidden_size }

  local h0, c0
  if hx ~= nil then
    if lstm then
      if type(hx) ~= "table" or #hx ~= 2 then
        error("moontorch.nn.LSTM: the initial state must be a table {h0, c0}", 0)
      end
      h0, c0 = hx[1], hx[2]
      check_state(self, h0, "h0 (hx[1])", h_shape)
      check_state(self, c0, "c0 (hx[2])", c_shape)
    else
      h0 = hx
      check_state(self, h0, "h0", h_shape)
    end
    if not batched then
      h0 = h0:unsqueeze(2)
      c0 = c0 and c0:unsqueeze(2)
    end
  else
    h0 = torch.zeros(self.num_layers * dirs, B, out_h, { dtype = x.dtype })
    if lstm then c0 = torch.zeros(self.num_layers * dirs, B, self.hidden_size, { dtype = x.dtype }) end
  end
  local h0s = h0:unbind(1)
  local c0s = c0 and c0:unbind(1)

  local h_n, c_n = {}, {}
  for layer = 0, self.num_layers - 1 do
    local outs = {}
    for dir = 1, dirs do
      local suffix = layer .. (dir == 2 and "_reverse" or "")
      local k = layer * dirs + dir
      local xs = F.linear(x, self["weight_ih_l" .. suffix], self["bias_ih_l" .. suffix]):unbind(1)
      local w_hh, b_hh = self["weight_hh_l" .. suffix], self["bias_hh_l" .. suffix]
      local steps
      if lstm then
        steps, h_n[k], c_n[k] = run_lstm(self, xs, h0s[k], c0s[k], w_hh, b_hh, self["weight_hr_l" .. suffix], dir == 2)
      elseif self.mode == "GRU" then
        steps, h_n[k] = run_gru(self, xs, h0s[k], w_hh, b_hh, dir == 2)
      else
        steps, h_n[k] = run_simple(self, xs, h0s[k], w_hh, b_hh, dir == 2)
      end
      outs[dir] = torch.stack(steps, 1)    -- [T, B, H]
    end
    x = dirs == 2 and torch.cat(outs, 3) or outs[1]
    if self.dropout > 0 and self.training and layer < self.num_layers - 1 then
      x = F.dropout(x, { p = self.dropout, training = true })
    end
  end

  local output = x
  local hn, cn = torch.stack(h_n, 1), lstm and torch.stack(c_n, 1) or nil
  if not batched then
    output = output:squeeze(2)
    hn = hn:squeeze(2)
    cn = cn and cn:squeeze(2)
  elseif self.batch_first then
    output = output:transpose(1, 2)
  end
  if lstm then return output, { hn, cn } end
  return output, hn
end

local function rnn_class(cname, args, mode_of)
  local cls = Module:extend(cname)
  for k, v in pairs(RNNBase) do cls[k] = v end
  function cls:__init(...)
    local a = U.bind(cname, args, ...)
    self._cname = cname
    local mode = mode_of(a)
    if mode ~= "LSTM" and mode ~= "GRU" then self.nonlinearity = mode == "RNN_TANH" and "tanh" or "relu" end
    rnn_init(self, cname, mode, a)
  end
  return cls
end

R.LSTM = rnn_class("LSTM", ARGS, function() return "LSTM" end)
R.GRU = rnn_class("GRU", ARGS_NO_PROJ, function() return "GRU" end)
R.RNN = rnn_class("RNN", ARGS_RNN, function(a)
  local nl = a.nonlinearity or "tanh"
  if nl ~= "tanh" and nl ~= "relu" then
    error(string.format("moontorch.nn.RNN: unknown nonlinearity '%s' (expected 'tanh' or 'relu')", tostring(nl)), 0)
  end
  return nl == "tanh" and "RNN_TANH" or "RNN_RELU"
end)

return R
