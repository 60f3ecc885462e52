"""Adds PyTorch-written seeds to the fuzz corpus and extracts every checkpoint seed's pickle
into fuzz/corpus/pickle/ (and the traced models' into fuzz/corpus/graph/). Run after fuzz/make_seeds.lua, with /usr/bin/python3 (PyTorch 1.13)."""
import os
import zipfile

import torch

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
torch.manual_seed(0)

ck = os.path.join(D, "checkpoint")
torch.save({"epoch": 7, "w": torch.randn(2, 2), "t": (1, "a", None, 2.5)},
           os.path.join(ck, "pytorch_dict.pt"))
lin = torch.nn.Linear(3, 2)
torch.save(lin.state_dict(), os.path.join(ck, "pytorch_state_dict.pt"))
base = torch.arange(8, dtype=torch.float64)
torch.save([base, base[2:6], base.view(2, 4).t()], os.path.join(ck, "pytorch_views.pt"))

try:
    from safetensors.torch import save_file  # not in Debian; the Lua seeds cover safetensors
    save_file({"x": torch.ones(2, 2)}, os.path.join(D, "safetensors", "pytorch.safetensors"))
except ImportError:  # not in Debian: the same layout by hand (8-byte header size, JSON, data)
    import json
    import struct
    x = torch.ones(2, 2).numpy().tobytes()
    hdr = json.dumps({"__metadata__": {"k": "v"},
                      "x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, len(x)]}}).encode()
    with open(os.path.join(D, "safetensors", "python.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + x)

pk = os.path.join(D, "pickle")
for sub in ("checkpoint", "graph"):
    for name in sorted(n for n in os.listdir(os.path.join(D, sub)) if n.endswith(".pt")):
        with zipfile.ZipFile(os.path.join(D, sub, name)) as z:
            for entry in z.namelist():
                if entry.endswith("/data.pkl"):
                    pkl = z.read(entry)
                    with open(os.path.join(pk, f"{sub}_{os.path.splitext(name)[0]}.pkl"), "wb") as f:
                        f.write(pkl)
                    if sub == "graph":  # fuzz_graph takes bare pickles too
                        with open(os.path.join(D, sub, f"{sub}_{os.path.splitext(name)[0]}.pkl"), "wb") as f:
                            f.write(pkl)
