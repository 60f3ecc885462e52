#!/usr/bin/env python3
"""Broken and hostile checkpoint files for spec/22-bad_files_spec.lua (plain Python 3, no torch).

    make_bad_files.py DIR     writes DIR/<case> for every case below and DIR/good.pt,
                              DIR/good.safetensors (the intact files the cases are made from)

The pickles are assembled opcode by opcode (protocol 2, as torch.save writes them) and zipped
with zipfile, so every file is exactly as broken as its name says and nothing else. Payloads
that would run code create marker files named DIR/pwned_* : the spec checks none appears.
The spec holds the expectations (which keywords each error must contain); this script only
makes the files.
"""
import io
import json
import os
import struct
import sys
import warnings
import zipfile

# ------------------------------------------------------------------------------------------
# Pickle opcodes


def uni(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def num(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -2**31 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


MARK, TUPLE, TUPLE1, REDUCE, BUILD = b"(", b"t", b"\x85", b"R", b"b"
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE = b"}", b"]", b")"
SETITEM, SETITEMS, APPEND, BINPERSID, NEWFALSE = b"s", b"u", b"a", b"Q", b"\x89"


def pkl(*ops):
    return b"\x80\x02" + b"".join(ops) + b"."


def tup(xs):
    return MARK + b"".join(num(x) for x in xs) + TUPLE


def storage(key="0", numel=4, cls="FloatStorage", location="cpu"):
    return MARK + uni("storage") + glob("torch", cls) + uni(key) + uni(location) + num(numel) + TUPLE + BINPERSID


def tensor(st=None, offset=0, size=(4,), stride=(1,)):
    return (glob("torch._utils", "_rebuild_tensor_v2") + MARK + (st or storage()) + num(offset) + tup(size) +
            tup(stride) + NEWFALSE + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + TUPLE + REDUCE)


def state_dict(*items):
    """OrderedDict of (str, ops) pairs, as torch.save writes a state dict."""
    body = b"".join(uni(k) + v for k, v in items)
    return glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + MARK + body + SETITEMS


F4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)  # a float32 storage of 4 elements


def ckpt(data_pkl, records=None, top="archive", version=b"3\n", byteorder=b"little", extra=(), order=None,
         compress=zipfile.ZIP_STORED):
    """A zip checkpoint: entries <top>/data.pkl, byteorder, data/<key>..., version (+ extra)."""
    records = {"0": F4} if records is None else records
    entries = []
    if data_pkl is not None:
        entries.append(("data.pkl", data_pkl))
    if byteorder is not None:
        entries.append(("byteorder", byteorder))
    entries += [("data/" + k, v) for k, v in records.items()]
    if version is not None:
        entries.append(("version", version))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: intended here
        with zipfile.ZipFile(buf, "w", compress) as z:
            for name, data in entries:
                z.writestr(top + "/" + name, data)
            for name, data in extra:
                z.writestr(name, data)
    return buf.getvalue()


GOOD_PKL = pkl(state_dict(("w", tensor()), ("b", tensor(storage("1", 2), size=(2,)))))
GOOD = ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]})


def one(ops_for_w, records=None, **kw):
    """A state dict {"w": <ops>} in a zip."""
    return ckpt(pkl(state_dict(("w", ops_for_w))), records, **kw)


def flip(data, pos, bit=0x10):
    b = bytearray(data)
    b[pos] ^= bit
    return bytes(b)


def patch_sizes(zip_bytes, name, uncompressed):
    """Rewrites the declared uncompressed size of one entry (local and central headers)."""
    b = bytearray(zip_bytes)
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        info = z.getinfo(name)
    struct.pack_into("<I", b, info.header_offset + 22, uncompressed)
    cd = b.find(b"PK\x01\x02")
    while cd >= 0:
        n = struct.unpack_from("<H", b, cd + 28)[0]
        if bytes(b[cd + 46:cd + 46 + n]) == name.encode():
            struct.pack_into("<I", b, cd + 24, uncompressed)
            break
        cd = b.find(b"PK\x01\x02", cd + 4)
    return bytes(b)


def deflated_record(payload_len, declared):
    """data/0 deflated: `payload_len` zero bytes that claim to be `declared` bytes."""
    z = ckpt(pkl(state_dict(("w", tensor(storage(numel=declared // 4))))), {"0": bytes(payload_len)},
             compress=zipfile.ZIP_DEFLATED)
    return patch_sizes(z, "archive/data/0", declared)


def memo_bomb(leaf_ops, levels):
    """An outer list of levels, level_k = [level_(k-1), level_(k-1)] through the memo: 2^levels
    leaves if a reader copied shared references (the billion-laughs attack on pickles)."""
    ops = [EMPTY_LIST, MARK, leaf_ops, b"q\x00"]
    for k in range(1, levels):
        ops += [EMPTY_LIST, MARK, b"h" + bytes([k - 1]), b"h" + bytes([k - 1]), b"e", b"q" + bytes([k])]
    return pkl(*ops, b"e")


def overlapping(zip_bytes):
    """Points the second central-directory entry at the first local record: two names, one
    range of bytes (how zip bombs multiply their output)."""
    b = bytearray(zip_bytes)
    first = b.find(b"PK\x01\x02")
    second = b.find(b"PK\x01\x02", first + 4)
    struct.pack_into("<I", b, second + 42, 0)
    return bytes(b)


# ------------------------------------------------------------------------------------------
# safetensors


def st(header, data=b"", raw_header=None, length=None, pad=True):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    if pad and raw_header is None:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def st_entry(dtype="F32", shape=(4,), offsets=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


GOOD_ST = st({"a": st_entry(), "b": st_entry("I16", (2,), (16, 20)), "__metadata__": {"k": "v"}}, F4 + b"\1\0\2\0")


# ------------------------------------------------------------------------------------------


def cases(marker_dir):
    def marker(name):
        return os.path.join(marker_dir, "pwned_" + name)

    in_global = GOOD_PKL.find(b"_rebuild_tensor_v2")
    in_string = GOOD_PKL.find(uni("storage")) + 7
    flip_global = GOOD.find(b"_rebuild_tensor_v2") + 3  # a global's name changes
    flip_key = GOOD.find(uni("w")) + 5  # key "w" becomes "g": only the CRC can tell
    c = {
        # --- the container
        "empty.pt": b"",
        "not_zip.pt": b"this is not a checkpoint, just some text\n" * 4,
        "png.pt": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "truncated_half.pt": GOOD[:len(GOOD) // 2],
        "truncated_header.pt": GOOD[:20],
        "truncated_no_eocd.pt": GOOD[:-10],
        "bitflip_pickle_global.pt": flip(GOOD, flip_global),
        "bitflip_pickle_key.pt": flip(GOOD, flip_key),
        "bitflip_central_dir.pt": flip(GOOD, GOOD.rfind(b"PK\x01\x02") + 1),
        "bitflip_eocd_count.pt": flip(GOOD, GOOD.rfind(b"PK\x05\x06") + 10, 0x40),
        "missing_data_pkl.pt": ckpt(None, {"0": F4}),
        "missing_record.pt": ckpt(GOOD_PKL, {"0": F4}),
        "short_record.pt": one(tensor(), {"0": F4[:12]}),
        "long_record.pt": one(tensor(), {"0": F4 + bytes(4)}),
        "wrong_storage_size.pt": one(tensor(storage(numel=1000)), {"0": F4}),
        "deflate_past_size.pt": deflated_record(1 << 20, 16),
        "deflate_lies_4gb.pt": deflated_record(16, 4_000_000_000),
        "duplicate_entry.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("archive/data.pkl", GOOD_PKL)]),
        "dotdot_name.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("archive/../../evil", b"x")]),
        "dotdot_first.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("../archive/data/2", b"x")]),
        "dotdot_record_key.pt": one(tensor(storage(key="../../0")), {"0": F4}),
        "duplicate_record.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("archive/data/0", F4)]),
        "overlapping_entries.pt": overlapping(GOOD),
        "absolute_name.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("/etc/evil", b"x")]),
        "backslash_name.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, extra=[("archive\\data\\2", b"x")]),
        "byteorder_big.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, byteorder=b"big"),
        "version_99.pt": ckpt(GOOD_PKL, {"0": F4, "1": F4[:8]}, version=b"99\n"),
        # --- hostile pickles
        "os_system.pt": ckpt(pkl(glob("os", "system"), uni("touch " + marker("os_system")), TUPLE1, REDUCE)),
        "posix_system.pt": ckpt(pkl(glob("posix", "system"), uni("touch " + marker("posix_system")), TUPLE1, REDUCE)),
        "nt_system.pt": ckpt(pkl(glob("nt", "system"), uni("touch " + marker("nt_system")), TUPLE1, REDUCE)),
        "builtins_eval.pt": ckpt(pkl(glob("builtins", "eval"), uni("open(%r, 'w')" % marker("eval")), TUPLE1, REDUCE)),
        "builtins_exec.pt": ckpt(pkl(glob("builtins", "exec"), uni("open(%r, 'w')" % marker("exec")), TUPLE1, REDUCE)),
        "py2_builtin_eval.pt": ckpt(pkl(glob("__builtin__", "eval"), uni("open(%r, 'w')" % marker("eval2")), TUPLE1,
                                        REDUCE)),
        "builtins_getattr.pt": ckpt(pkl(glob("builtins", "getattr"), MARK, glob("collections", "OrderedDict"),
                                        uni("__init__"), TUPLE, REDUCE)),
        "subprocess_popen.pt": ckpt(pkl(glob("subprocess", "Popen"), MARK, uni("touch"), uni(marker("popen")), TUPLE,
                                        TUPLE1, REDUCE)),
        "torch_load.pt": ckpt(pkl(glob("torch", "load"), uni("/dev/null"), TUPLE1, REDUCE)),
        "hidden_in_state_dict.pt": ckpt(pkl(state_dict(("w", tensor()), ("x", glob("os", "system") +
                                                                          uni("touch " + marker("hidden")) + TUPLE1 +
                                                                          REDUCE)))),
        "stack_global.pt": ckpt(b"\x80\x04" + uni("os") + uni("system") + b"\x93" + uni("touch " + marker("stack")) +
                                TUPLE1 + REDUCE + b"."),
        "inst_opcode.pt": ckpt(b"\x80\x02" + MARK + uni("touch " + marker("inst")) + b"ios\nsystem\n."),
        "unknown_opcode.pt": ckpt(b"\x80\x02\xff."),
        "deep_nesting.pt": ckpt(b"\x80\x02" + EMPTY_LIST * 100_000 + APPEND * 99_999 + b"."),
        "deep_marks.pt": ckpt(b"\x80\x02" + MARK * 100_000 + b"."),
        "memo_missing.pt": ckpt(pkl(EMPTY_DICT, b"h\x07")),
        "memo_bomb.pt": ckpt(memo_bomb(EMPTY_LIST, 60)),
        "memo_bomb_tensors.pt": ckpt(memo_bomb(tensor(storage(numel=4 << 20)), 40), {"0": bytes(16 << 20)}),
        "memo_put_huge_index.pt": ckpt(pkl(EMPTY_LIST, b"r\xff\xff\xff\xff")),
        "memo_self_containing.pt": ckpt(pkl(EMPTY_LIST, b"q\x00h\x00", APPEND)),
        "deep_dicts.pt": ckpt(b"\x80\x02" + (EMPTY_DICT + uni("k")) * 30_000 + EMPTY_DICT + SETITEM * 30_000 + b"."),
        "deep_tuples.pt": ckpt(b"\x80\x02" + EMPTY_LIST + TUPLE1 * 100_000 + b"."),
        "memo_huge_index.pt": ckpt(pkl(EMPTY_DICT, b"j\xff\xff\xff\xff")),
        "setitem_on_list.pt": ckpt(pkl(EMPTY_LIST, uni("k"), num(1), SETITEM)),
        "append_on_dict.pt": ckpt(pkl(EMPTY_DICT, num(1), APPEND)),
        "build_on_list.pt": ckpt(pkl(EMPTY_LIST, EMPTY_DICT, BUILD)),
        "reduce_non_callable.pt": ckpt(pkl(num(3), EMPTY_TUPLE, REDUCE)),
        "list_as_key.pt": ckpt(pkl(EMPTY_DICT, EMPTY_LIST, num(1), SETITEM)),
        "stack_underflow.pt": ckpt(b"\x80\x02" + APPEND + b"."),
        "empty_stack_at_stop.pt": ckpt(b"\x80\x02."),
        "no_stop.pt": ckpt(b"\x80\x02" + EMPTY_DICT),
        "truncated_pickle.pt": ckpt(GOOD_PKL[:-2], {"0": F4, "1": F4[:8]}),  # no SETITEMS, no STOP
        "truncated_in_global.pt": ckpt(GOOD_PKL[:in_global], {"0": F4, "1": F4[:8]}),
        "truncated_in_string.pt": ckpt(GOOD_PKL[:in_string], {"0": F4, "1": F4[:8]}),
        "string_past_end.pt": ckpt(b"\x80\x02X" + struct.pack("<I", 0x7FFFFFF0) + b"abc."),
        "int_too_large.pt": ckpt(pkl(b"\x8a\x10" + bytes(15) + b"\x01")),
        "codecs_not_latin1.pt": ckpt(pkl(glob("_codecs", "encode"), uni("abc"), uni("rot13"), b"\x86", REDUCE)),
        # --- tensors and storages
        "view_past_storage.pt": one(tensor(size=(10,))),
        "offset_past_storage.pt": one(tensor(offset=4, size=(1,))),
        "negative_stride.pt": one(tensor(offset=3, size=(4,), stride=(-1,))),
        "negative_size.pt": one(tensor(size=(-2,), stride=(1,))),
        "negative_offset.pt": one(tensor(offset=-1, size=(1,))),
        "nine_dims.pt": one(tensor(size=(1,) * 9, stride=(1,) * 9)),
        "size_overflow.pt": one(tensor(size=(2**40, 2**40), stride=(2**40, 1))),
        "storage_class_mismatch.pt": ckpt(pkl(state_dict(("w", tensor()), ("v", tensor(storage(cls="LongStorage",
                                                                                               numel=2)))))),
        "unknown_storage_class.pt": one(tensor(storage(cls="ComplexFloatStorage", numel=2))),
        "persid_not_storage.pt": one(tensor(MARK + uni("module") + uni("x") + TUPLE + BINPERSID)),
        "persid_not_tuple.pt": one(tensor(uni("0") + BINPERSID)),
        "negative_numel.pt": one(tensor(storage(numel=-1))),
        "offset_int64_max.pt": one(tensor(offset=2**63 - 1, size=(1,))),
        "view_past_storage_2d.pt": one(tensor(size=(2, 2), stride=(3, 1))),
        "negative_stride_2d.pt": one(tensor(offset=3, size=(2, 2), stride=(-2, 1))),
        "rebuild_bad_args.pt": one(glob("torch._utils", "_rebuild_tensor_v2") + MARK + storage() + num(0) + TUPLE +
                                   REDUCE),
        # --- safetensors
        "st_empty.safetensors": b"",
        "st_short_length.safetensors": b"\x10\x00\x00",
        "st_huge_header.safetensors": st({}, length=1 << 40),
        "st_header_over_limit.safetensors": st({}, length=100_000_008) + bytes(64),
        "st_header_past_eof.safetensors": st(None, raw_header=b'{"a": 1}', length=4096),
        "st_non_utf8.safetensors": st(None, raw_header=b'{"\xff\xfe": {"dtype": "F32", "shape": [4], '
                                                       b'"data_offsets": [0, 16]}}', data=F4),
        "st_utf8_overlong.safetensors": st(None, raw_header=b'{"\xc0\xaf": {"dtype": "F32", "shape": [4], '
                                                            b'"data_offsets": [0, 16]}}', data=F4),
        "st_utf8_surrogate.safetensors": st(None, raw_header=b'{"\xed\xa0\x80": {"dtype": "F32", "shape": [4], '
                                                             b'"data_offsets": [0, 16]}}', data=F4),
        "st_latin1_metadata.safetensors": st(None, raw_header=b'{"__metadata__": {"k": "caf\xe9"}, "a": {"dtype": '
                                                              b'"F32", "shape": [4], "data_offsets": [0, 16]}}', data=F4),
        "st_bad_json.safetensors": st(None, raw_header=b'{"a": {"dtype": "F32",', data=F4),
        "st_not_object.safetensors": st([1, 2, 3]),
        "st_unknown_dtype.safetensors": st({"a": st_entry("Q9")}, F4),
        "st_unsupported_u16.safetensors": st({"a": st_entry("U16", (8,))}, F4),
        "st_unsupported_f8.safetensors": st({"a": st_entry("F8_E4M3", (16,))}, F4),
        "st_overlap.safetensors": st({"a": st_entry(offsets=(0, 16)), "b": st_entry(offsets=(8, 24))}, F4 + F4[:8]),
        "st_gap.safetensors": st({"a": st_entry(offsets=(0, 16)), "b": st_entry(offsets=(20, 36))}, F4 + bytes(4) + F4),
        "st_size_mismatch.safetensors": st({"a": st_entry(shape=(3,))}, F4),
        "st_shape_overflow.safetensors": st({"a": st_entry(shape=(2**62, 2**62, 4), offsets=(0, 16))}, F4),
        "st_negative_shape.safetensors": st({"a": st_entry(shape=(-4,))}, F4),
        "st_trailing_bytes.safetensors": st({"a": st_entry()}, F4 + b"junk"),
        "st_data_truncated.safetensors": st({"a": st_entry(shape=(8,), offsets=(0, 32))}, F4),
        "st_offsets_reversed.safetensors": st({"a": st_entry(offsets=(16, 0))}, F4),
        "st_metadata_not_string.safetensors": st({"a": st_entry(), "__metadata__": {"epoch": 3}}, F4),
        "st_entry_no_offsets.safetensors": st({"a": {"dtype": "F32", "shape": [4]}}, F4),
    }
    return c


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = dict(cases(out))
    files["good.pt"] = GOOD
    files["good.safetensors"] = GOOD_ST
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
