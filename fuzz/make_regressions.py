#!/usr/bin/env python3
"""Hand-made hostile inputs kept as fuzz regression cases (plain Python 3, no torch).

    fuzz/make_regressions.py [DIR]    writes DIR/<harness>/<case> (default: fuzz/regressions)

Each harness (fuzz/fuzz_<harness>.c) gets the nastiest inputs we could think of for its
reader; tests/c/test_fuzz_regressions.c replays them (with whatever libFuzzer ever found, in
fuzz/crashes/) in `make test`, and fuzz/run.sh adds them to the fuzzing corpus. Every input
must load or fail with a message, quickly and in bounded memory, never crash. The files are
committed; rerun this only to change or add cases. Pickle and zip helpers come from
tools/make_bad_files.py.
"""
import importlib.util
import io
import json
import os
import pickle
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bad", os.path.join(HERE, "..", "tools", "make_bad_files.py"))
bad = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bad)

MARK, EMPTY_LIST, EMPTY_DICT, APPEND, APPENDS = b"(", b"]", b"}", b"a", b"e"


def binput(i):
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def binget(i):
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def memo_bomb(levels=60):
    """list_k = [list_{k-1}, list_{k-1}], all kept in one outer list: 2^60 leaves if shared
    references were copied (the reader supports no POP, so the levels live in the list)."""
    ops = [EMPTY_LIST, MARK, EMPTY_LIST, binput(0)]
    for k in range(1, levels):
        ops += [EMPTY_LIST, MARK, binget(k - 1), binget(k - 1), APPENDS, binput(k)]
    return b"\x80\x02" + b"".join(ops) + APPENDS + b"."


def memo_bomb_dicts(levels=60):
    """The same through dict values: d_k = {"a": d_{k-1}, "b": d_{k-1}}."""
    ops = [EMPTY_LIST, MARK, EMPTY_DICT, binput(0)]
    for k in range(1, levels):
        ops += [EMPTY_DICT, MARK, bad.uni("a"), binget(k - 1), bad.uni("b"), binget(k - 1), b"u", binput(k)]
    return b"\x80\x02" + b"".join(ops) + APPENDS + b"."


def memo_bomb_tensors(levels=40):
    """One 16 MB storage's tensor referenced 2^40 times."""
    ops = [EMPTY_LIST, MARK, bad.tensor(bad.storage(numel=4 << 20)), binput(0)]
    for k in range(1, levels):
        ops += [EMPTY_LIST, MARK, binget(k - 1), binget(k - 1), APPENDS, binput(k)]
    return b"\x80\x02" + b"".join(ops) + APPENDS + b"."


def tensor_pickle(offset=0, size=(4,), stride=(1,), numel=4, cls="FloatStorage"):
    return bad.pkl(bad.tensor(bad.storage(numel=numel, cls=cls), offset=offset, size=size, stride=stride))


def pickle_cases():
    return {
        "memo_bomb_lists.pkl": memo_bomb(),
        "memo_bomb_dicts.pkl": memo_bomb_dicts(),
        # a bomb of tensors: one 16 MB storage referenced 2^40 times
        "memo_bomb_tensors.pkl": memo_bomb_tensors(),
        "memo_put_4g.pkl": b"\x80\x02" + EMPTY_LIST + b"r\xff\xff\xff\xff" + b".",
        "memo_get_4g.pkl": b"\x80\x02" + b"j\xfe\xff\xff\xff" + b".",
        "memo_get_before_put.pkl": b"\x80\x02" + EMPTY_LIST + binget(0) + b".",
        "self_append.pkl": b"\x80\x02" + EMPTY_LIST + binput(0) + binget(0) + APPEND + b".",
        "self_setitem.pkl": b"\x80\x02" + EMPTY_DICT + binput(0) + bad.uni("k") + binget(0) + b"s" + b".",
        "self_in_tuple.pkl": b"\x80\x02" + EMPTY_LIST + binput(0) + binget(0) + b"\x85" + APPEND + b".",
        "nest_lists_100k.pkl": b"\x80\x02" + EMPTY_LIST * 100_000 + APPEND * 99_999 + b".",
        "nest_dicts_30k.pkl": b"\x80\x02" + (EMPTY_DICT + bad.uni("k")) * 30_000 + EMPTY_DICT + b"s" * 30_000 + b".",
        "nest_marks_100k.pkl": b"\x80\x02" + MARK * 100_000 + b"t" * 100_000 + b".",
        "nest_tuple1_100k.pkl": b"\x80\x02" + EMPTY_LIST + b"\x85" * 100_000 + b".",
        "pop_mark_without_mark.pkl": b"\x80\x02" + b"1" + b".",
        "binunicode_4g.pkl": b"\x80\x02X\xff\xff\xff\xffabc.",
        "long4_4g.pkl": b"\x80\x02\x8b\xff\xff\xff\xff\x01.",
        "binbytes8_2e63.pkl": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 63) + b"xyz.",
        "frame_2e62.pkl": b"\x80\x04\x95" + struct.pack("<Q", 1 << 62) + b"}.",
        "long1_255_bytes.pkl": b"\x80\x02\x8a\xff" + b"\xff" * 255 + b".",
        "tensor_negative_stride.pkl": tensor_pickle(offset=3, stride=(-1,)),
        "tensor_stride_overflow.pkl": tensor_pickle(size=(2, 2), stride=(2**62, 2**62)),
        "tensor_view_past_storage.pkl": tensor_pickle(size=(5,)),
        "tensor_offset_int64_max.pkl": tensor_pickle(offset=2**63 - 1, size=(1,)),
        "tensor_zero_stride_huge.pkl": tensor_pickle(size=(2**40,), stride=(0,)),
        "storage_numel_2e62.pkl": tensor_pickle(numel=2**62),
        "storage_numel_int64_min.pkl": tensor_pickle(numel=-2**63),
        "storage_class_not_allowed.pkl": tensor_pickle(cls="ComplexDoubleStorage"),
        "global_os_system.pkl": bad.pkl(bad.glob("os", "system"), bad.uni("true"), b"\x85", b"R"),
        "stack_global_not_str.pkl": b"\x80\x04" + bad.num(1) + bad.num(2) + b"\x93.",
        "global_no_newline.pkl": b"\x80\x02ctorch._utils _rebuild_tensor_v2",
    }


def zipped(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def overlapping_zip():
    """Two directory entries share one local record: the classic zip-bomb overlap."""
    z = bytearray(bad.GOOD)
    cd = z.find(b"PK\x01\x02")
    offsets = []
    p = cd
    while p >= 0:
        offsets.append(p)
        p = z.find(b"PK\x01\x02", p + 4)
    # point the second directory entry at the first local header
    struct.pack_into("<I", z, offsets[1] + 42, 0)
    return bytes(z)


def eocd(z):
    return z.rfind(b"PK\x05\x06")


def patched(data, pos, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def checkpoint_cases():
    G = bad.GOOD
    e = eocd(G)
    return {
        "overlapping_entries.pt": overlapping_zip(),
        "dotdot_entry.pt": bad.ckpt(bad.GOOD_PKL, {"0": bad.F4, "1": bad.F4[:8]},
                                    extra=[("archive/../../../../tmp/moontorch_evil", b"x")]),
        "dotdot_record.pt": bad.ckpt(bad.pkl(bad.state_dict(("w", bad.tensor(bad.storage("../../0"))))),
                                     {"0": bad.F4}),
        "duplicate_record.pt": bad.ckpt(bad.GOOD_PKL, {"0": bad.F4, "1": bad.F4[:8]},
                                        extra=[("archive/data/0", bad.F4)]),
        "eocd_65535_entries.pt": patched(patched(G, e + 8, "<H", 0xFFFF), e + 10, "<H", 0xFFFF),
        "eocd_cd_offset_past_eof.pt": patched(G, e + 16, "<I", 0xFFFFFFF0),
        "eocd_cd_size_huge.pt": patched(G, e + 12, "<I", 0xFFFFFFF0),
        "eocd_comment_past_eof.pt": patched(G, e + 20, "<H", 0xFFFF),
        "zip64_sizes_without_extra.pt": bad.patch_sizes(G, "archive/data/0", 0xFFFFFFFF),
        "deflate_claims_4gb.pt": bad.deflated_record(16, 4_000_000_000),
        "deflate_bomb_1mb_as_16.pt": bad.deflated_record(1 << 20, 16),
        "memo_bomb_pickle.pt": bad.ckpt(memo_bomb(), {}),
        "nest_100k_pickle.pt": bad.ckpt(b"\x80\x02" + EMPTY_LIST * 100_000 + APPEND * 99_999 + b".", {}),
        "shared_storage_different_dtypes.pt": bad.ckpt(bad.pkl(bad.state_dict(
            ("w", bad.tensor()), ("v", bad.tensor(bad.storage(cls="DoubleStorage", numel=2), size=(2,))))),
            {"0": bad.F4}),
        "only_eocd.pt": b"PK\x05\x06" + bytes(18),
        "nested_zip_as_pickle.pt": bad.ckpt(G, {}),
    }


def st(header_bytes, data=b"", length=None):
    return struct.pack("<Q", len(header_bytes) if length is None else length) + header_bytes + data


def st_json(obj, data=b""):
    return st(json.dumps(obj).encode(), data)


def entry(dtype="F32", shape=(4,), offsets=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def safetensors_cases():
    F4 = bad.F4
    good = b'"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    return {
        "utf8_overlong_slash.safetensors": st(b'{"\xc0\xaf": {' + good, F4),
        "utf8_surrogate.safetensors": st(b'{"\xed\xa0\x80": {' + good, F4),
        "utf8_lone_continuation.safetensors": st(b'{"a\x80b": {' + good, F4),
        "utf8_truncated_sequence.safetensors": st(b'{"a\xe2\x82": {' + good, F4),
        "utf8_above_10ffff.safetensors": st(b'{"\xf4\x90\x80\x80": {' + good, F4),
        "latin1_metadata_value.safetensors": st(b'{"__metadata__": {"k": "caf\xe9"}, "a": {' + good, F4),
        "nul_escape_in_key.safetensors": st(b'{"a\\u0000b": {' + good, F4),
        "header_len_u64_max.safetensors": st(b"{}", length=2**64 - 1),
        "header_len_2e63.safetensors": st(b"{}", length=2**63),
        "json_nest_100k.safetensors": st(b"[" * 100_000 + b"]" * 100_000),
        "json_nest_in_metadata.safetensors": st(b'{"__metadata__": ' + b'{"k": ' * 20_000 + b'"v"' + b"}" * 20_001),
        "shape_30k_dims.safetensors": st_json({"a": entry(shape=(1,) * 30_000)}, F4),
        "offsets_above_2e53.safetensors": st(b'{"a": {"dtype": "F32", "shape": [4], '
                                             b'"data_offsets": [9007199254740993, 9007199254741009]}}', F4),
        "offsets_near_2e64.safetensors": st(b'{"a": {"dtype": "F32", "shape": [4], '
                                            b'"data_offsets": [18446744073709551600, 18446744073709551616]}}', F4),
        "offsets_float.safetensors": st(b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0.5, 16.5]}}', F4),
        "offsets_1e308.safetensors": st(b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1e308]}}', F4),
        "shape_product_wraps.safetensors": st_json({"a": entry(shape=(2**32, 2**32, 1), offsets=(0, 16))}, F4),
        "shape_zero_times_huge.safetensors": st_json({"a": entry(shape=(0, 2**62), offsets=(0, 0))}),
        "duplicate_key.safetensors": st(b'{"a": {' + good[:-1] + b', "a": {' + good, F4),
        "duplicate_field.safetensors": st(b'{"a": {"dtype": "F32", "dtype": "I32", "shape": [4], '
                                          b'"data_offsets": [0, 16]}}', F4),
        "three_offsets.safetensors": st_json({"a": entry(offsets=(0, 8, 16))}, F4),
        "dtype_not_string.safetensors": st_json({"a": {"dtype": 7, "shape": [4], "data_offsets": [0, 16]}}, F4),
        "shape_not_list.safetensors": st_json({"a": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}, F4),
        "metadata_deep_object.safetensors": st_json({"__metadata__": {"k": {"x": "y"}}, "a": entry()}, F4),
        "header_all_spaces.safetensors": st(b" " * 4096),
        "many_empty_tensors.safetensors": st_json({"t%d" % i: entry(shape=(0,), offsets=(0, 0)) for i in range(3000)}),
    }


def graph(nodes, inputs=(0,), outputs=(1,), constants=None, **extra):
    g = {"format": "moontorch.traced", "version": 1, "inputs": list(inputs), "outputs": list(outputs),
         "constants": constants or {}, "nodes": nodes}
    g.update(extra)
    return pickle.dumps(g, protocol=2)


def node(kind, ins, outs, **attrs):
    return {"op": kind, "inputs": list(ins), "outputs": list(outs), "attrs": attrs}


def graph_cases():
    tanh = lambda i, o: node("unary", [i], [o], op="tanh")  # noqa: E731
    chain = [tanh(i, i + 1) for i in range(1000)]
    return {
        "use_before_definition.pkl": graph([tanh(2, 1), tanh(0, 2)]),
        "cycle.pkl": graph([tanh(1, 2), tanh(2, 1)]),
        "defined_twice.pkl": graph([tanh(0, 1), tanh(0, 1)]),
        "output_is_input.pkl": graph([], outputs=(0,)),
        "output_never_defined.pkl": graph([tanh(0, 1)], outputs=(7,)),
        "input_listed_twice.pkl": graph([tanh(0, 1)], inputs=(0, 0)),
        "id_int64_max.pkl": graph([tanh(0, 2**63 - 1)], outputs=(2**63 - 1,)),
        "id_negative.pkl": graph([tanh(0, -1)], outputs=(-1,)),
        "unknown_op.pkl": graph([node("system", [0], [1], cmd="true")]),
        "unknown_unary.pkl": graph([node("unary", [0], [1], op="__import__")]),
        "too_many_inputs.pkl": graph([node("unary", [0, 0, 0], [1], op="tanh")]),
        "no_outputs.pkl": graph([node("unary", [0], [], op="tanh")]),
        "softmax_dim_2e40.pkl": graph([node("softmax", [0], [1], dim=2**40)]),
        "reshape_huge.pkl": graph([node("reshape", [0], [1], shape=[2**31, 2**31, 2**31])]),
        "attrs_deep.pkl": graph([node("unary", [0], [1], op=[[[[[[[["tanh"]]]]]]]])]),
        "unknown_top_key.pkl": graph([tanh(0, 1)], payload="os.system"),
        "wrong_format.pkl": pickle.dumps({"format": "torchscript", "version": 1}, protocol=2),
        "version_99.pkl": graph([tanh(0, 1)], version=99),
        "constant_not_tensor.pkl": graph([node("linear", [0, 5, 6], [1])], constants={5: "weight", 6: 1.5}),
        "chain_1000.pkl": graph(chain, outputs=(1000,)),
        "chain_1000_unused_outputs.pkl": graph(chain, outputs=tuple(range(1, 1001))),
        "nodes_not_list.pkl": graph({"op": "unary"}),
        "not_a_dict.pkl": pickle.dumps(["moontorch.traced", 1], protocol=2),
        "zip_cycle.pt": bad.ckpt(graph([tanh(1, 2), tanh(2, 1)]), {}),
        "zip_memo_bomb.pt": bad.ckpt(memo_bomb(), {}),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "regressions")
    for harness, cases in (("pickle", pickle_cases()), ("checkpoint", checkpoint_cases()),
                           ("safetensors", safetensors_cases()), ("graph", graph_cases())):
        d = os.path.join(out, harness)
        os.makedirs(d, exist_ok=True)
        for name, data in cases.items():
            assert len(data) <= 256 * 1024, name
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
