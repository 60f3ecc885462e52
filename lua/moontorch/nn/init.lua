-- torch.nn (SPEC section 4): the package table. `require "moontorch.nn"` and `torch.nn` are the
-- same table; it holds
--   Module, Parameter, is_parameter, is_module, get_class     (moontorch/nn/module.lua)
--   Sequential, ModuleList, ModuleDict                         (containers.lua)
--   the layers, recurrent layers and losses                    (layers*.lua, rnn.lua, loss.lua)
--   nn.functional, nn.init, nn.utils                            (functional.lua, initializers.lua, utils.lua)
--   nn.parallel (DistributedDataParallel)                      (parallel.lua)
--
-- The files below may `require "moontorch.nn"` themselves: the table is in package.loaded
-- before they load, holding what has been assembled so far (Module and Parameter first).
local module = require "moontorch.nn.module"

local nn = {
  Module = module.Module,
  Parameter = module.Parameter,
  is_parameter = module.is_parameter,
  is_module = module.is_module,
  get_class = module.get_class,
}
package.loaded["moontorch.nn"] = nn

-- Copies a file's classes / functions into nn (a file may also return nn itself, or true).
local function merge(name)
  local t = require(name)
  if type(t) == "table" and t ~= nn then
    for k, v in pairs(t) do
      if nn[k] == nil then nn[k] = v end
    end
  end
end

nn.init = require "moontorch.nn.initializers"
nn.utils = require "moontorch.nn.utils"
merge "moontorch.nn.containers"
nn.functional = require "moontorch.nn.functional"
merge "moontorch.nn.layers"
merge "moontorch.nn.layers_conv"
merge "moontorch.nn.rnn"
merge "moontorch.nn.loss"
nn.parallel = require "moontorch.nn.parallel"

return nn
