#!/usr/bin/env python3
"""Writes the GGUF fixture the host's reader is cross-checked on (tests/gguf_reader.rs): a small
file written by llama.cpp's own writer (gguf-py's GGUFWriter) with metadata of every value
type (arrays of several element types, an array of arrays, strings with non-ASCII text) and a
few tensors (F32, F16, Q8_0 quantized by gguf-py, and a 3-dim F32), plus what the file holds
as JSON: the metadata with its types, and each tensor's type, row-major shape, offsets, size
and bytes as gguf-py's GGUFReader reads them back.

    python3 tools/make_gguf_fixture.py tests/data/gguf

Needs the `gguf` package (tested with gguf 0.19.0 from PyPI and numpy 2.4.6); deterministic (fixed
values, no randomness). The output is committed; tests never run this script.
"""

import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

# (key, value type, value, array element type): every type GGUF has, arrays included.
METADATA = [
    ("test.uint8", V.UINT8, 200, None),
    ("test.int8", V.INT8, -100, None),
    ("test.uint16", V.UINT16, 60000, None),
    ("test.int16", V.INT16, -30000, None),
    ("test.uint32", V.UINT32, 4000000000, None),
    ("test.int32", V.INT32, -2000000000, None),
    ("test.float32", V.FLOAT32, 0.1, None),
    ("test.bool", V.BOOL, True, None),
    ("test.string", V.STRING, "héllo, wörld ✓", None),
    ("test.uint64", V.UINT64, 2**63 + 5, None),
    ("test.int64", V.INT64, -(2**62) - 7, None),
    ("test.float64", V.FLOAT64, -2.5e-300, None),
    ("test.array.uint8", V.ARRAY, [0, 1, 255], V.UINT8),
    ("test.array.int32", V.ARRAY, [-1, 0, 7, 2147483647], V.INT32),
    ("test.array.float32", V.ARRAY, [0.5, -1.25, 3.0e10], V.FLOAT32),
    ("test.array.float64", V.ARRAY, [1.0 / 3.0], V.FLOAT64),
    ("test.array.uint64", V.ARRAY, [2**64 - 1, 0], V.UINT64),
    ("test.array.bool", V.ARRAY, [True, False, True], V.BOOL),
    ("test.array.string", V.ARRAY, ["", "a", "Ġthe", "日本"], V.STRING),
    ("test.array.nested", V.ARRAY, [[1, 2], [3], [-4, 5, 6]], V.ARRAY),
]


def tensors():
    """(name, values as numpy, stored type), in the file's order."""
    f32 = (np.arange(15, dtype=np.float32).reshape(3, 5) - 7) / 4
    f16 = (np.arange(32, dtype=np.float32).reshape(4, 8) / 8 - 2).astype(np.float16)
    q8 = np.sin(np.arange(128, dtype=np.float32) * 0.37).reshape(2, 64) * 3
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * -0.5
    return [
        ("plain.weight", f32, Q.F32),
        ("half.weight", f16, Q.F16),
        ("quant.weight", q8, Q.Q8_0),
        ("blk.0.cube", cube, Q.F32),
    ]


def json_value(value_type, value, elem):
    """The expected value as JSON: type names as gguf-py spells them; an array's element type
    in "elem" (an array of arrays: "inner", the type GGUFWriter gives Python ints, INT32)."""
    if value_type == V.ARRAY and elem == V.ARRAY:
        return {"type": "ARRAY", "elem": "ARRAY", "inner": "INT32", "value": [list(v) for v in value]}
    if value_type == V.ARRAY:
        return {"type": "ARRAY", "elem": elem.name, "value": [json_value(elem, v, None)["value"] for v in value]}
    if value_type == V.FLOAT32:
        value = float(np.float32(value))
    return {"type": value_type.name, "value": value}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "small.gguf")
    writer = gguf.GGUFWriter(path, arch="test")
    for key, value_type, value, elem in METADATA:
        writer.add_key_value(key, value, value_type, sub_type=elem)
    for name, values, qtype in tensors():
        if qtype == Q.Q8_0:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = gguf.GGUFReader(path)
    metadata = [{"key": "general.architecture", "type": "STRING", "value": "test"}]
    for key, value_type, value, elem in METADATA:
        metadata.append({"key": key} | json_value(value_type, value, elem))
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert keys == [m["key"] for m in metadata], keys
    expected = {
        "version": int(reader.fields["GGUF.version"].parts[-1][0]),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "file_size": os.path.getsize(path),
        "metadata": metadata,
        "tensors": [
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "shape": [int(d) for d in reversed(t.shape.tolist())],
                "elements": int(t.n_elements),
                "bytes": int(t.n_bytes),
                "offset": int(t.data_offset - reader.data_offset),
                "file_offset": int(t.data_offset),
                "data": bytes(t.data.tobytes()).hex(),
                "values": gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel().tolist(),
            }
            for t in reader.tensors
        ],
    }
    with open(os.path.join(out_dir, "small.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes, {len(reader.tensors)} tensors, {len(keys)} keys")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/gguf")
