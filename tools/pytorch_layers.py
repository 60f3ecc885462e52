#!/usr/bin/python3
"""PyTorch's side of spec/28-layers_spec.lua (run with Debian's /usr/bin/python3 + torch 1.13).

    pytorch_layers.py OUTDIR      writes OUTDIR/layers.pt

The file is one torch.save'd dict with two entries:

  "cases": name -> {
      "state":   the layer's state dict before the forward pass (the spec loads it STRICTLY into
                 the same layer built in Lua),
      "train":   whether the layer ran in training mode,
      "pre":     how many forward passes ran (without backward) before the measured one,
      "seed":    the seed set right before the measured pass, or absent,
      "inputs":  the positional inputs (a tensor, or a tuple of tensors for an RNN's (h0, c0)),
      "outputs": every output tensor, flattened in order (LSTM: output, h_n, c_n),
      "gouts":   one fixed tensor per output; the loss that is back-propagated is
                 sum_k (outputs[k] * gouts[k]).sum(),
      "grads":   "input<k>" (or "input<k>_<j>" inside a tuple input) for each floating input and every parameter
                 name -> its gradient,
      "after":   the state dict after the measured pass (running statistics of batch norm),
      "repr":    str(module).
  }
  "seeded": name -> the state dict of a layer built right after torch.manual_seed(0), so the
            spec can check that moontorch's default initialisation draws the same numbers.

Indices are stored as PyTorch has them (0-based); the spec shifts them. Inputs and weights are
drawn from a fixed generator, then the weights are perturbed away from their defaults, so that
a wrong default (a forgotten bias, weight = 1) cannot hide.
"""
import collections
import os
import sys

import torch
import torch.nn as nn

GEN = torch.Generator().manual_seed(20240611)
F64 = torch.float64


def randn(*shape, dtype=torch.float32):
    return torch.randn(shape, generator=GEN, dtype=F64).to(dtype)


def rand(*shape, dtype=torch.float32):
    return torch.rand(shape, generator=GEN, dtype=F64).to(dtype)


def perturb(m):
    """Moves every parameter and float buffer away from its default value."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(randn(*p.shape, dtype=p.dtype) * 0.3)
        for name, b in m.named_buffers():
            if name.endswith("running_var"):
                b.copy_(rand(*b.shape, dtype=b.dtype) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(randn(*b.shape, dtype=b.dtype) * 0.2)
    return m


CASES = collections.OrderedDict()


def detach(x):
    return tuple(detach(v) for v in x) if isinstance(x, tuple) else x.detach()


def case(name, module, inputs, train=False, pre=0, grad_inputs=None, keep=False, seed=None):
    """Runs `module` on `inputs` and records everything the spec compares.

    grad_inputs: indices (0-based) of the inputs that take a gradient; by default every
    floating-point input. A tuple input's tensors are "input<k>_<j>" in the gradients. keep: do not perturb the parameters (losses, pure functions).
    """
    if not keep:
        perturb(module)
    module.train(train)
    state = collections.OrderedDict((k, v.clone()) for k, v in module.state_dict().items())

    def prepare(x, key, want):
        if isinstance(x, tuple):
            return tuple(prepare(v, "%s_%d" % (key, j + 1), want) for j, v in enumerate(x))
        x = x.clone()
        if want and x.is_floating_point():
            x.requires_grad_(True)
            grad_leaves.append((key, x))
        return x

    grad_leaves = []
    inputs = [prepare(x, "input%d" % (i + 1), grad_inputs is None or i in grad_inputs)
              for i, x in enumerate(inputs)]
    for _ in range(pre):
        with torch.no_grad():
            module(*inputs)
    if seed is not None:
        torch.manual_seed(seed)
    result = module(*inputs)

    outputs = []

    def flat(v):
        if torch.is_tensor(v):
            outputs.append(v)
        else:
            for x in v:
                flat(x)
    flat(result)
    # integer outputs (max_pool2d's indices) take no part in the loss: an empty gout
    gouts = [randn(*o.shape, dtype=o.dtype) if o.is_floating_point() else torch.zeros(0) for o in outputs]
    loss = sum((o * g).sum() for o, g in zip(outputs, gouts) if o.is_floating_point())
    loss.backward()

    grads = collections.OrderedDict()
    for key, x in grad_leaves:
        grads[key] = x.grad
    for pname, p in module.named_parameters():
        if p.grad is not None:
            grads[pname] = p.grad

    CASES[name] = {
        "state": state,
        "train": train,
        "pre": pre,
        "seed": seed,
        "inputs": [detach(x) for x in inputs],
        "outputs": [o.detach() for o in outputs],
        "gouts": gouts,
        "grads": grads,
        "after": collections.OrderedDict((k, v.clone()) for k, v in module.state_dict().items()),
        "repr": str(module),
    }


def build_cases():
    d = F64

    # Linear
    case("linear", nn.Linear(5, 3), [randn(4, 5)])
    case("linear_nobias_f64", nn.Linear(5, 3, bias=False, dtype=d), [randn(2, 3, 5, dtype=d)])

    # Convolutions
    case("conv2d", nn.Conv2d(3, 4, 3), [randn(2, 3, 7, 6)])
    case("conv2d_sdpg_f64",
         nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2, dtype=d),
         [randn(2, 4, 9, 8, dtype=d)])
    case("conv2d_nobias", nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False), [randn(2, 2, 8, 9)])
    case("conv2d_unbatched_f64", nn.Conv2d(2, 4, (2, 3), padding=(0, 1), dtype=d), [randn(2, 5, 6, dtype=d)])
    case("conv1d_f64", nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, dtype=d),
         [randn(2, 4, 11, dtype=d)])
    case("conv1d", nn.Conv1d(3, 5, 4), [randn(3, 3, 10)])
    case("conv2d_same_f64", nn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 2), dtype=d),
         [randn(2, 2, 6, 7, dtype=d)])

    # Pooling
    case("maxpool2d", nn.MaxPool2d(3, stride=2, padding=1), [randn(2, 3, 8, 7)])
    case("maxpool2d_dil_ceil_f64", nn.MaxPool2d((2, 3), stride=(2, 1), dilation=(2, 1), ceil_mode=True),
         [randn(1, 2, 9, 8, dtype=d)])
    case("maxpool2d_indices", nn.MaxPool2d(2, return_indices=True), [randn(2, 2, 6, 5)])
    case("avgpool2d", nn.AvgPool2d(3, stride=2, padding=1), [randn(2, 3, 8, 7)])
    case("avgpool2d_divisor_f64", nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True, divisor_override=3),
         [randn(1, 2, 5, 6, dtype=d)])
    case("avgpool2d_nopad_ceil_f64", nn.AvgPool2d((3, 2), stride=2, padding=1, ceil_mode=True,
                                                  count_include_pad=False), [randn(2, 2, 8, 9, dtype=d)])
    case("adaptive_avgpool2d", nn.AdaptiveAvgPool2d((3, 2)), [randn(2, 3, 7, 5)])
    case("adaptive_avgpool2d_1_f64", nn.AdaptiveAvgPool2d(1), [randn(2, 4, 5, 6, dtype=d)])

    # Normalisation
    case("batchnorm2d_train", nn.BatchNorm2d(3), [randn(4, 3, 5, 6)], train=True, pre=1)
    case("batchnorm2d_eval", nn.BatchNorm2d(3), [randn(4, 3, 5, 6)])
    case("batchnorm2d_train_f64", nn.BatchNorm2d(4, eps=1e-3, momentum=0.3, dtype=d),
         [randn(3, 4, 2, 5, dtype=d)], train=True)
    case("batchnorm1d_cumulative_f64", nn.BatchNorm1d(4, momentum=None, dtype=d), [randn(6, 4, dtype=d)],
         train=True, pre=2)
    case("batchnorm1d_3d", nn.BatchNorm1d(3), [randn(4, 3, 5)], train=True)
    case("batchnorm1d_3d_eval_f64", nn.BatchNorm1d(3, dtype=d), [randn(4, 3, 5, dtype=d)])
    case("batchnorm2d_noaffine_nostats", nn.BatchNorm2d(3, affine=False, track_running_stats=False),
         [randn(2, 3, 4, 4)], train=False)
    case("layernorm", nn.LayerNorm((4, 5)), [randn(2, 3, 4, 5)])
    case("layernorm_noaffine_f64", nn.LayerNorm(6, eps=1e-3, elementwise_affine=False, dtype=d),
         [randn(3, 6, dtype=d)])

    # Embedding (ids 0-based here)
    case("embedding_padding", nn.Embedding(10, 4, padding_idx=2),
         [torch.tensor([[1, 2, 3], [2, 9, 0]])])
    case("embedding_f64", nn.Embedding(6, 3, dtype=d), [torch.tensor([5, 0, 5, 1])])
    case("embedding_max_norm_f64", nn.Embedding(6, 3, max_norm=1.0, dtype=d), [torch.tensor([[4, 1], [1, 3]])])

    # Activations and shape layers
    x = randn(3, 5) * 2
    case("relu", nn.ReLU(), [x])
    case("leaky_relu", nn.LeakyReLU(0.2), [x])
    case("gelu", nn.GELU(), [x])
    case("gelu_tanh_f64", nn.GELU(approximate="tanh"), [randn(3, 5, dtype=d)])
    case("silu", nn.SiLU(), [x])
    case("tanh", nn.Tanh(), [x])
    case("sigmoid", nn.Sigmoid(), [x])
    case("softmax", nn.Softmax(dim=1), [randn(2, 4, 3)])
    case("log_softmax_f64", nn.LogSoftmax(dim=-1), [randn(2, 4, 3, dtype=d)])
    case("flatten", nn.Flatten(), [randn(2, 3, 2, 2)])
    case("flatten_range", nn.Flatten(0, 1), [randn(2, 3, 2)])
    case("identity", nn.Identity(), [x])
    case("dropout_eval", nn.Dropout(0.5), [x])
    case("dropout_train", nn.Dropout(0.3), [randn(4, 6)], train=True, seed=3)
    case("dropout2d_train_f64", nn.Dropout2d(0.5), [randn(3, 4, 2, 2, dtype=d)], train=True, seed=4)

    # Recurrent layers
    case("lstm_f64", nn.LSTM(5, 7, dtype=d), [randn(4, 3, 5, dtype=d)])
    case("lstm_2layer_batch_first_f64", nn.LSTM(5, 7, num_layers=2, batch_first=True, dtype=d),
         [randn(3, 4, 5, dtype=d), (randn(2, 3, 7, dtype=d), randn(2, 3, 7, dtype=d))])
    case("lstm_2layer", nn.LSTM(4, 6, num_layers=2), [randn(5, 2, 4)])
    case("lstm_bidirectional_f64", nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=d),
         [randn(2, 5, 3, dtype=d)])
    case("lstm_nobias_unbatched_f64", nn.LSTM(3, 4, bias=False, dtype=d),
         [randn(5, 3, dtype=d), (randn(1, 4, dtype=d), randn(1, 4, dtype=d))])
    case("lstm_proj_f64", nn.LSTM(3, 5, num_layers=2, proj_size=2, dtype=d),
         [randn(4, 2, 3, dtype=d), (randn(2, 2, 2, dtype=d), randn(2, 2, 5, dtype=d))])
    case("gru_f64", nn.GRU(5, 7, dtype=d), [randn(4, 3, 5, dtype=d)])
    case("gru_2layer_batch_first_f64", nn.GRU(5, 7, num_layers=2, batch_first=True, dtype=d),
         [randn(3, 4, 5, dtype=d), randn(2, 3, 7, dtype=d)])
    case("gru_2layer", nn.GRU(4, 6, num_layers=2, batch_first=True), [randn(2, 5, 4)])
    case("gru_bidirectional_f64", nn.GRU(3, 4, bidirectional=True, dtype=d), [randn(5, 2, 3, dtype=d)])
    case("rnn_relu_f64", nn.RNN(3, 4, num_layers=2, nonlinearity="relu", dtype=d), [randn(5, 2, 3, dtype=d)])
    case("rnn_tanh", nn.RNN(3, 4, batch_first=True), [randn(2, 5, 3)])
    case("lstm_dropout_train_f64", nn.LSTM(3, 4, num_layers=3, dropout=0.4, dtype=d), [randn(5, 2, 3, dtype=d)],
         train=True, seed=5)

    # A small network: PyTorch's state dict loads strictly into the same architecture in Lua
    case("net_sequential", nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5), nn.Tanh(), nn.Dropout(0.3)), [randn(2, 1, 6, 7)], train=True, pre=1, seed=7)

    # Losses (targets 0-based)
    a, b = randn(4, 5), randn(4, 5)
    for red in ("mean", "sum", "none"):
        case("mse_" + red, nn.MSELoss(reduction=red), [a, b], keep=True)
        case("l1_" + red, nn.L1Loss(reduction=red), [a, b], keep=True)
    case("smooth_l1_beta", nn.SmoothL1Loss(beta=0.5), [a, b], keep=True)
    case("smooth_l1_sum_f64", nn.SmoothL1Loss(reduction="sum"), [randn(3, 4, dtype=d) * 2, randn(3, 4, dtype=d)],
         keep=True)

    logits = randn(6, 5) * 2
    target = torch.tensor([0, 4, 1, 1, 3, 2])
    case("cross_entropy", nn.CrossEntropyLoss(), [logits, target], keep=True)
    case("cross_entropy_weight_ignore_smooth",
         nn.CrossEntropyLoss(weight=rand(5) + 0.5, ignore_index=1, label_smoothing=0.1), [logits, target],
         keep=True)
    case("cross_entropy_ignore_default_sum_f64", nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.2),
         [randn(4, 3, dtype=d), torch.tensor([2, -100, 0, 1])], keep=True)
    case("cross_entropy_kdim_none_f64", nn.CrossEntropyLoss(weight=rand(3, dtype=d) + 0.5, reduction="none"),
         [randn(2, 3, 4, dtype=d), torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])], keep=True)
    logp = torch.log_softmax(randn(5, 4), 1)
    case("nll", nn.NLLLoss(), [logp, torch.tensor([3, 0, 1, 2, 0])], keep=True)
    case("nll_weight_ignore_sum_f64", nn.NLLLoss(weight=rand(4, dtype=d) + 0.5, ignore_index=0, reduction="sum"),
         [logp.to(d), torch.tensor([3, 0, 1, 2, 0])], keep=True)
    p = torch.sigmoid(randn(3, 4))
    y = (rand(3, 4) > 0.5).float()
    case("bce", nn.BCELoss(), [p, y], grad_inputs=[0], keep=True)
    case("bce_weight_sum_f64", nn.BCELoss(weight=rand(4, dtype=d), reduction="sum"), [p.to(d), y.to(d)],
         grad_inputs=[0], keep=True)
    case("bce_logits", nn.BCEWithLogitsLoss(), [randn(3, 4) * 3, y], grad_inputs=[0], keep=True)
    case("bce_logits_pos_weight_f64",
         nn.BCEWithLogitsLoss(weight=rand(3, 1, dtype=d), pos_weight=rand(4, dtype=d) * 2, reduction="none"),
         [randn(3, 4, dtype=d) * 3, y.to(d)], grad_inputs=[0], keep=True)


def seeded():
    builders = collections.OrderedDict([
        ("linear", lambda: nn.Linear(3, 4)),
        ("linear_f64", lambda: nn.Linear(7, 2, dtype=F64)),
        ("conv2d", lambda: nn.Conv2d(3, 8, 3, groups=1)),
        ("conv2d_groups", lambda: nn.Conv2d(4, 6, (3, 2), groups=2, bias=True)),
        ("conv1d", lambda: nn.Conv1d(2, 5, 4)),
        ("embedding", lambda: nn.Embedding(7, 3, padding_idx=-2)),
        ("batchnorm2d", lambda: nn.BatchNorm2d(5)),
        ("layernorm", lambda: nn.LayerNorm((2, 3))),
        ("lstm", lambda: nn.LSTM(3, 5, num_layers=2)),
        ("gru", lambda: nn.GRU(4, 3, bidirectional=True)),
        ("rnn", lambda: nn.RNN(2, 3, bias=False)),
    ])
    out = collections.OrderedDict()
    for name, build in builders.items():
        torch.manual_seed(0)
        out[name] = build().state_dict()
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pytorch_layers.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    build_cases()
    path = os.path.join(outdir, "layers.pt")
    torch.save({"cases": CASES, "seeded": seeded()}, path + ".tmp")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
