#!/usr/bin/python3
"""PyTorch's side of spec/21-pytorch_files_spec.lua (run with Debian's /usr/bin/python3 + torch).

    pytorch_files.py write DIR   files made by torch.save in DIR, and DIR/expected.lua: what each
                                 file holds, described as the spec compares it
    pytorch_files.py check DIR   loads every *.pt / *.safetensors in DIR (written by moontorch)
                                 and writes DIR/report.lua: how each file loaded, the globals its
                                 pickle names, its zip layout, and a description of its value

A description is a Lua table: {kind = "int", v = 3}, {kind = "float", v = 0x1.8p+0},
{kind = "str" | "bytes", v = "..."}, {kind = "bool", v = true}, {kind = "none"},
{kind = "list" | "tuple", items = {...}}, {kind = "dict" | "OrderedDict", keys = {...},
vals = {...}} (keys described too, in order), and {kind = "tensor", dtype, shape, stride,
offset, storage (an id: equal ids <=> a.storage().data_ptr() == b.storage().data_ptr()),
storage_numel, values (flat, row-major), parameter}.
"""
import collections
import io
import json
import math
import os
import pickletools
import struct
import sys
import zipfile

import torch

DTYPES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
    torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32",
    torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool",
}
BY_NAME = {v: k for k, v in DTYPES.items()}

# ------------------------------------------------------------------------------------------
# Lua literals


LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}


def lua_str(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    out = []
    for c in b:
        ch = chr(c)
        if c < 128 and (ch.isalnum() or ch in " _.-/:,+=()[]"):
            out.append(ch)
        else:
            out.append("\\%03d" % c)
    return '"' + "".join(out) + '"'


def lua(x):
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        if x == -2**63:
            return "math.mininteger"
        if not -2**63 < x < 2**63:
            raise ValueError("integer %d does not fit in a Lua integer" % x)
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "(0/0)"
        if math.isinf(x):
            return "math.huge" if x > 0 else "(-math.huge)"
        return "(" + x.hex() + ")"  # exact; Lua 5.4 reads hex floats (and keeps -0.0)
    if isinstance(x, (str, bytes)):
        return lua_str(x)
    if isinstance(x, list):
        return "{" + ", ".join(lua(v) for v in x) + "}"
    if isinstance(x, dict):
        return "{" + ", ".join("%s = %s" % (k if isinstance(k, str) and k.isidentifier() and k not in LUA_KEYWORDS
                                            else "[%s]" % lua(k), lua(v)) for k, v in x.items()) + "}"
    raise TypeError("no Lua literal for %r" % type(x))


# ------------------------------------------------------------------------------------------
# Descriptions


class Storages:
    """Numbers storages by identity (data_ptr), in first-seen order."""

    def __init__(self):
        self.ids = {}
        self.next = 1

    def id_of(self, t):
        s = t.storage()
        key = s.data_ptr()
        if s.nbytes() == 0:  # every empty storage has data_ptr 0: give each its own id
            key = ("empty", self.next)
        if key not in self.ids:
            self.ids[key] = self.next
            self.next += 1
        return self.ids[key]


def describe(x, st):
    if x is None:
        return {"kind": "none"}
    if isinstance(x, bool):
        return {"kind": "bool", "v": x}
    if isinstance(x, int):
        return {"kind": "int", "v": x}
    if isinstance(x, float):
        return {"kind": "float", "v": x}
    if isinstance(x, str):
        return {"kind": "str", "v": x}
    if isinstance(x, bytes):
        return {"kind": "bytes", "v": x}
    if isinstance(x, torch.device):
        return {"kind": "str", "v": str(x)}
    if isinstance(x, torch.dtype):
        return {"kind": "str", "v": str(x).replace("torch.", "")}
    if isinstance(x, tuple):
        return {"kind": "tuple", "items": [describe(v, st) for v in x]}
    if isinstance(x, list):
        return {"kind": "list", "items": [describe(v, st) for v in x]}
    if isinstance(x, dict):
        kind = "OrderedDict" if isinstance(x, collections.OrderedDict) else "dict"
        return {"kind": kind, "keys": [describe(k, st) for k in x.keys()],
                "vals": [describe(v, st) for v in x.values()]}
    if isinstance(x, torch.Tensor):
        t = x.detach()
        return {
            "kind": "tensor", "dtype": DTYPES[t.dtype], "shape": list(t.shape),
            "stride": list(t.stride()), "offset": t.storage_offset(), "storage": st.id_of(t),
            "storage_numel": t.storage().size(), "values": t.reshape(-1).tolist(),
            "parameter": isinstance(x, torch.nn.Parameter),
        }
    raise TypeError("cannot describe %r" % type(x))


# ------------------------------------------------------------------------------------------
# write: files made by torch.save


class Net(torch.nn.Module):
    """A small conv net with BatchNorm (running stats, num_batches_tracked) and a Sequential."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, bias=False)
        self.head = torch.nn.Sequential(torch.nn.Linear(6 * 2 * 2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.head(x.flatten(1))


def trained(opt_cls, **kw):
    torch.manual_seed(0)
    net = Net()
    opt = opt_cls(net.parameters(), **kw)
    x, y = torch.randn(5, 1, 6, 6), torch.randint(0, 3, (5,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net, opt


def every_dtype():
    inf, nan = float("inf"), float("nan")
    d = collections.OrderedDict()
    d["float32"] = torch.tensor([1.5, -0.0, inf, -inf, nan, 3.4028234663852886e38, 1e-45], dtype=torch.float32)
    d["float64"] = torch.tensor([1.5, -0.0, inf, -inf, nan, 1.7976931348623157e308, 5e-324, 0.1])
    d["float16"] = torch.tensor([1.5, -0.0, inf, -inf, nan, 65504.0, 2.0**-24], dtype=torch.float16)
    d["bfloat16"] = torch.tensor([1.5, -0.0, inf, -inf, nan, 3.3895313892515355e38, 2.0**-133],
                                 dtype=torch.bfloat16)
    d["int64"] = torch.tensor([0, -1, 2**63 - 1, -2**63], dtype=torch.int64)
    d["int32"] = torch.tensor([0, -1, 2**31 - 1, -2**31], dtype=torch.int32)
    d["int16"] = torch.tensor([0, -1, 2**15 - 1, -2**15], dtype=torch.int16)
    d["int8"] = torch.tensor([0, -1, 127, -128], dtype=torch.int8)
    d["uint8"] = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    d["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
    for t in list(d.values()):
        name = DTYPES[t.dtype]
        d[name + "_2d"] = t[:3].reshape(1, 3).expand(2, 3).contiguous()
        d[name + "_scalar"] = t[0].clone()
        d[name + "_empty"] = torch.empty(2, 0, 3, dtype=t.dtype)
    return d


def views_and_ties():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tied = torch.nn.Parameter(torch.arange(6, dtype=torch.float64).reshape(2, 3))
    return collections.OrderedDict([
        ("base", base),
        ("t", base.t()),
        ("row", base[2]),
        ("col", base[:, 3]),
        ("block", base[1:3, 2:5]),
        ("every_other", base.reshape(-1)[1::2]),
        ("expand", torch.arange(3, dtype=torch.int32).expand(4, 3)),
        ("tail", base.reshape(-1)[20:]),  # a view whose storage is larger than itself
        ("enc.weight", tied),
        ("dec.weight", tied),  # tied: the same Parameter twice
        ("separate", base.clone()),
    ])


def plain_values():
    return {
        "int": 7, "neg": -300, "int16": 40000, "big": 2**62, "max": 2**63 - 1, "min": -2**63,
        "float": 1.5, "one": 1.0, "inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"),
        "negzero": -0.0, "str": "h\u00e9llo \u2603", "empty": "", "bytes": b"\x00\xff\xfe\x80a",
        "zeros": "a\x00b", "true": True, "false": False, "none": None,
        "list": [1, 2.5, "x", [3, [4, []]]], "tuple": (1, "a", (2.0,)), "emptylist": [], "emptydict": {},
        "nested": {"a": {"b": {"c": [1, 2, 3]}}},
        "intkeys": {0: "zero", 1: "one", -5: "minus five", 10**12: "big"},
        "boolkeys": {True: 1, False: 0},
        "floatkey": {1.5: "one and a half"},
        "od": collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)]),
        "size": torch.Size([2, 3]), "device": torch.device("cpu"), "cuda_device": torch.device("cuda", 0),
        "dtype": torch.float16,
    }


def save_tagged(obj, path, location):
    """torch.save with every storage tagged `location` (no GPU needed: the tag is a string)."""
    import torch.serialization as ser
    orig = ser.location_tag
    ser.location_tag = lambda storage: location
    try:
        torch.save(obj, path)
    finally:
        ser.location_tag = orig


def rezip(src, dst, compress):
    """Copies a zip with every record rewritten by Python's zipfile (no 64-byte alignment)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def write(out):
    os.makedirs(out, exist_ok=True)
    expected = collections.OrderedDict()

    def save(name, obj, saver=None):
        path = os.path.join(out, name)
        (saver or torch.save)(obj, path)
        expected[name] = describe(obj, Storages())

    net, sgd = trained(torch.optim.SGD, lr=0.1, momentum=0.9)
    sd = net.state_dict()
    assert hasattr(sd, "_metadata") and "bn1.num_batches_tracked" in sd
    save("convnet.pt", sd)
    save("sgd.pt", sgd.state_dict())
    anet, adam = trained(torch.optim.Adam, lr=1e-3)
    save("adam.pt", adam.state_dict())
    save("checkpoint.pt", {"epoch": 5, "model_state_dict": anet.state_dict(),
                           "optimizer_state_dict": adam.state_dict(), "loss": 0.3125})
    save("dtypes.pt", every_dtype())
    save("views.pt", views_and_ties())
    save("values.pt", plain_values())
    torch.manual_seed(1)
    save("parameter.pt", {"p": torch.nn.Parameter(torch.randn(3, 2)),
                          "frozen": torch.nn.Parameter(torch.arange(3.0), requires_grad=False)})
    save("cuda.pt", net.state_dict(), lambda o, p: save_tagged(o, p, "cuda:0"))
    save("mps.pt", {"w": torch.arange(4.0)}, lambda o, p: save_tagged(o, p, "mps"))
    save("tensor_only.pt", torch.arange(6, dtype=torch.int16).reshape(2, 3))

    # A file saved to a buffer (top folder "archive") and one whose top folder has dots.
    def to_buffer(o, p):
        buf = io.BytesIO()
        torch.save(o, buf)
        with open(p, "wb") as f:
            f.write(buf.getvalue())
    save("buffer.pt", collections.OrderedDict([("x", torch.ones(2, 2))]), to_buffer)
    save("my.model.v2.pt", collections.OrderedDict([("y", torch.zeros(3, dtype=torch.int8))]))

    # The same state dict rewritten by zipfile: deflated records, and stored but unaligned ones.
    rezip(os.path.join(out, "convnet.pt"), os.path.join(out, "deflated.pt"), zipfile.ZIP_DEFLATED)
    expected["deflated.pt"] = expected["convnet.pt"]
    rezip(os.path.join(out, "convnet.pt"), os.path.join(out, "unaligned.pt"), zipfile.ZIP_STORED)
    expected["unaligned.pt"] = expected["convnet.pt"]

    with open(os.path.join(out, "expected.lua"), "w") as f:
        f.write("-- written by tools/pytorch_files.py with torch %s\nreturn {\n" % torch.__version__)
        for name, desc in expected.items():
            f.write("  [%s] = %s,\n" % (lua(name), lua(desc)))
        f.write("}\n")


# ------------------------------------------------------------------------------------------
# check: files written by moontorch

# What moontorch's writer may name (SPEC 6): a file naming anything else is not opened at all.
WRITER_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "_codecs.encode"} | {
    "torch." + n for n in ("DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
                           "IntStorage", "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage")}


def scan_pickle(data):
    """Globals named and opcodes used, without executing anything."""
    globs, ops = [], set()
    for op, arg, _ in pickletools.genops(data):
        ops.add(op.name)
        if op.name == "GLOBAL":
            globs.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            globs.append("<STACK_GLOBAL>")
    return globs, ops


def zip_layout(path):
    with open(path, "rb") as f:
        raw = f.read()
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        top = infos[0].filename.split("/")[0]
        records, stored, aligned, zero_dates = [], True, True, True
        for info in infos:
            records.append(info.filename[len(top) + 1:] if info.filename.startswith(top + "/") else info.filename)
            stored = stored and info.compress_type == zipfile.ZIP_STORED
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            aligned = aligned and (info.file_size == 0 or start % 64 == 0)
            zero_dates = zero_dates and info.date_time[0] == 1980
        contents = {}
        for r in ("byteorder", "version"):
            if r in records:
                contents[r] = z.read(top + "/" + r)
        return {"top": top, "records": records, "stored": stored, "aligned": aligned,
                "contents": contents}, z.read(top + "/data.pkl")


def repickled(obj):
    """data.pkl as torch.save writes it for obj (to compare with ours byte for byte)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return z.read("archive/data.pkl")


def check_pt(path):
    rep = {}
    layout, pkl = zip_layout(path)
    rep["layout"] = layout
    globs, ops = scan_pickle(pkl)
    rep["globals"] = sorted(set(globs))
    rep["disallowed"] = sorted(set(g for g in globs if g not in WRITER_GLOBALS))
    if rep["disallowed"]:
        rep["error"] = "not loaded: the pickle names disallowed globals"
        return rep
    # torch 1.13's weights_only reader lacks BINFLOAT and _codecs.encode: those files open with
    # plain torch.load, which is safe here because every global was checked above.
    plain = "BINFLOAT" in ops or "_codecs.encode" in globs
    rep["mode"] = "plain" if plain else "weights_only"
    obj = torch.load(path) if plain else torch.load(path, weights_only=True)
    rep["value"] = describe(obj, Storages())
    mine = pkl
    theirs = repickled(obj)
    rep["same_pickle"] = mine == theirs
    if mine != theirs:
        n = next((i for i in range(min(len(mine), len(theirs))) if mine[i] != theirs[i]), min(len(mine), len(theirs)))
        rep["pickle_diff"] = "first difference at byte %d of %d (torch.save: %d bytes)" % (n, len(mine), len(theirs))
    return rep


ST_DTYPES = {"BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "F16": torch.float16,
             "BF16": torch.bfloat16, "I32": torch.int32, "F32": torch.float32, "F64": torch.float64,
             "I64": torch.int64}


def check_safetensors(path):
    """An independent reader that applies the reference implementation's rules strictly."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n <= 100_000_000 and 8 + n <= len(raw), "header length %d" % n
    text = raw[8:8 + n].decode("utf-8")
    header = json.loads(text, object_pairs_hook=collections.OrderedDict)
    rep = {"header_padded": n % 8 == 0 and text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" ")))}
    meta = header.pop("__metadata__", None)
    if meta is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), "metadata"
        rep["metadata"] = dict(meta)
    buf = raw[8 + n:]
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])
    pos = 0
    tensors = collections.OrderedDict()
    for name, e in entries:
        b, end = e["data_offsets"]
        assert b == pos and end >= b, "%s: offsets %r leave a gap or overlap" % (name, e["data_offsets"])
        dt = ST_DTYPES[e["dtype"]]
        numel = math.prod(e["shape"])
        assert end - b == numel * torch.empty(0, dtype=dt).element_size(), "%s: byte size" % name
        chunk = bytearray(buf[b:end])
        t = torch.frombuffer(chunk, dtype=dt) if numel else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(e["shape"])
        pos = end
    assert pos == len(buf), "data buffer is %d bytes, entries cover %d" % (len(buf), pos)
    rep["file_order"] = [name for name, _ in entries]
    rep["value"] = describe(tensors, Storages())
    try:
        from safetensors.torch import load_file  # the reference reader, when installed
    except ImportError:
        rep["reference"] = "unavailable"
    else:
        ref = load_file(path)
        rep["reference"] = "equal" if (ref.keys() == tensors.keys() and all(
            torch.equal(ref[k], tensors[k]) or (ref[k].dtype.is_floating_point and torch.allclose(
                ref[k], tensors[k], equal_nan=True, rtol=0, atol=0)) for k in ref)) else "different"
    return rep


def check(out):
    report = collections.OrderedDict()
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name.endswith(".pt"):
            checker = check_pt
        elif name.endswith(".safetensors"):
            checker = check_safetensors
        else:
            continue
        try:
            report[name] = checker(path)
        except Exception as e:  # reported per file: one bad file must not hide the others
            report[name] = {"error": "%s: %s" % (type(e).__name__, e)}
    with open(os.path.join(out, "report.lua"), "w") as f:
        f.write("return {\n")
        for name, rep in report.items():
            f.write("  [%s] = %s,\n" % (lua(name), lua(rep)))
        f.write("}\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    (write if sys.argv[1] == "write" else check)(sys.argv[2])
