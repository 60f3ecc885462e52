-- torch.utils: the package of torch.utils.data (datasets, samplers, DataLoader).
return {
  data = require "moontorch.utils.data",
}
