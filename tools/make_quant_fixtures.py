#!/usr/bin/env python3
"""Writes tests/data/quants.safetensors: what tests/gguf_quants.rs checks the host's CPU
reference of GGML's weight formats (examples/host/src/gguf/quant.rs) against.

    python3 -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install gguf numpy
    /tmp/qvenv/bin/python tools/make_quant_fixtures.py [--sdist llama_cpp_python-0.3.36.tar.gz]

Dequantization, for F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K:
random blocks (random bytes, the f16 scale and min fields replaced by finite values: random
magnitudes 1e-4..1 of either sign, plus 0, -0, an f16 subnormal, 1000 and 65504) in
`dequant.<TYPE>.bytes` (u8) and gguf-py's `gguf.quants.dequantize` of them in
`dequant.<TYPE>.values` (f32).

Quantization, for F16, BF16, Q8_0, Q4_0, Q5_0 (gguf-py's `gguf.quants.quantize`) and Q4_K (gguf-py has
no Q4_K quantizer: llama.cpp's `quantize_row_q4_K_ref`, compiled from the llama-cpp-python sdist
with `cc -O2 -ffp-contract=off`): f32 rows, random and edge cases (zeros, exact rounding ties,
equal magnitudes of opposite signs, constant and one-signed sub-blocks, outliers), in
`quant.<TYPE>.input` (f32; f16 values for Q4_K, as HF stores weights) and the quantized bytes in `quant.<TYPE>.bytes` (u8).

With the sdist, the script also checks gguf-py against llama.cpp's C: every dequantization
above against `dequantize_row_*`, and the Q8_0, Q4_0 and Q5_0 bytes against `quantize_row_*_ref`; it
stops on any difference. The file is a plain safetensors file, written here without the
safetensors package.
"""

import argparse
import json
import os
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240611

# Offsets of the f16 scale (and min) fields in each block (ggml-common.h).
HALF_FIELDS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
LEGACY_BLOCKS = 12
K_BLOCKS = 6
K_QUANT_RANDOM = 38
SPECIAL_HALVES = [0.0, -0.0, 3.0e-6, 1000.0, 65504.0]

C_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"

/* The few symbols of ggml.c that ggml-quants.c references (none reached here). */
void ggml_abort(const char * file, int line, const char * fmt, ...) { fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
size_t ggml_type_size(enum ggml_type t) { (void) t; abort(); }
size_t ggml_row_size(enum ggml_type t, int64_t n) { (void) t; (void) n; abort(); }
const char * ggml_type_name(enum ggml_type t) { (void) t; abort(); }

typedef void (*deq_fn)(const void *, float *, int64_t);
typedef void (*q_fn)(const float *, void *, int64_t);
#define DEQ(name) void dequantize_row_##name(const void *, float *, int64_t);
#define Q(name) void quantize_row_##name##_ref(const float *, void *, int64_t);
DEQ(q8_0) DEQ(q4_0) DEQ(q4_1) DEQ(q5_0) DEQ(q5_1) DEQ(q2_K) DEQ(q3_K) DEQ(q4_K) DEQ(q5_K) DEQ(q6_K)
Q(q8_0) Q(q4_0) Q(q5_0) Q(q4_K)

static struct { const char * name; int block_elems, block_bytes; deq_fn deq; q_fn q; } types[] = {
    {"Q8_0", 32, 34, dequantize_row_q8_0, quantize_row_q8_0_ref},
    {"Q4_0", 32, 18, dequantize_row_q4_0, quantize_row_q4_0_ref},
    {"Q4_1", 32, 20, dequantize_row_q4_1, 0},
    {"Q5_0", 32, 22, dequantize_row_q5_0, quantize_row_q5_0_ref},
    {"Q5_1", 32, 24, dequantize_row_q5_1, 0},
    {"Q2_K", 256, 84, dequantize_row_q2_K, 0},
    {"Q3_K", 256, 110, dequantize_row_q3_K, 0},
    {"Q4_K", 256, 144, dequantize_row_q4_K, quantize_row_q4_K_ref},
    {"Q5_K", 256, 176, dequantize_row_q5_K, 0},
    {"Q6_K", 256, 210, dequantize_row_q6_K, 0},
};

/* qref dequantize|quantize TYPE N: N elements, input on stdin, output on stdout. */
int main(int argc, char ** argv) {
    if (argc != 4) return 2;
    long n = atol(argv[3]);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(types[i].name, argv[2])) continue;
        size_t nbytes = n / types[i].block_elems * types[i].block_bytes;
        void * q = malloc(nbytes);
        float * x = malloc(n * sizeof(float));
        if (!strcmp(argv[1], "dequantize")) {
            if (fread(q, 1, nbytes, stdin) != nbytes) return 3;
            types[i].deq(q, x, n);
            fwrite(x, sizeof(float), n, stdout);
        } else {
            if (!types[i].q || fread(x, sizeof(float), n, stdin) != (size_t) n) return 3;
            types[i].q(x, q, n);
            fwrite(q, 1, nbytes, stdout);
        }
        return 0;
    }
    return 4;
}
"""


def build_c_reference(sdist, work):
    """llama.cpp's ggml-quants.c and a tiny driver, built without FMA contraction."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/ggml/" in m.name]
        tar.extractall(work, members=members, filter="data")
    ggml = next(Path(work).glob("*/vendor/llama.cpp/ggml"))
    main = Path(work) / "qref.c"
    main.write_text(C_MAIN)
    exe = Path(work) / "qref"
    flags = ["-O2", "-ffp-contract=off", "-I", str(ggml / "include"), "-I", str(ggml / "src")]
    subprocess.run(["cc", *flags, str(main), str(ggml / "src" / "ggml-quants.c"), "-lm", "-o", str(exe)], check=True)

    def run(mode, name, n, data):
        out = subprocess.run([str(exe), mode, name, str(n)], input=data.tobytes(), capture_output=True, check=True)
        return np.frombuffer(out.stdout, dtype=np.uint8 if mode == "quantize" else np.float32)

    return run


def random_blocks(rng, qtype, n_blocks):
    elems, size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for i in range(n_blocks):
        for k, at in enumerate(HALF_FIELDS[qtype]):
            if i < len(SPECIAL_HALVES) and k == 0:
                v = SPECIAL_HALVES[i]
            else:
                v = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-4, 0)
            blocks[i, at : at + 2] = np.array([v], dtype=np.float16).view(np.uint8)
    return blocks.reshape(-1)


def random_halves(rng, n, exp_bits, mant_bits):
    """Random 16-bit patterns of a float format, its all-ones exponent (inf, NaN) excluded."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32)
    exp_mask = ((1 << exp_bits) - 1) << mant_bits
    bits = np.where((bits & exp_mask) == exp_mask, bits & ~np.uint32(1 << mant_bits), bits)
    return bits.astype(np.uint16).view(np.uint8)


def legacy_rows(rng):
    """Blocks of 32 for Q8_0 and Q4_0: random rows and rounding edge cases."""
    rows = [
        rng.standard_normal(32) * 0.02,
        rng.standard_normal(32),
        rng.standard_normal(32) * 300.0,
        rng.standard_normal(32) * 1e-6,
        np.zeros(32),
        # Q8_0 with d = 1: exact .5 ties (rounded away from zero).
        np.concatenate([[127.0, -127.0], np.arange(-14.5, 15.5, 1.0)]),
        # Q4_0 with d = 1 (max -8): values on the truncation edges.
        np.concatenate([[-8.0, 7.5, -7.5, 0.5, -0.5], np.linspace(-8, 7.5, 27)]),
        # Equal magnitudes of both signs: the first one sets the sign of d.
        np.concatenate([[3.0, -3.0], rng.uniform(-3, 3, 30)]),
        np.concatenate([[-3.0, 3.0], rng.uniform(-3, 3, 30)]),
        np.abs(rng.standard_normal(32)),
        -np.abs(rng.standard_normal(32)),
        np.full(32, 0.1),
    ]
    return np.concatenate(rows).astype(np.float32)


def k_rows(rng):
    """Super-blocks of 256 for Q4_K: edge cases, then random rows of the scales HF weights have
    (f16 values, as HF stores them: fewer mantissa bits make rounding ties likelier)."""
    mixed = rng.standard_normal(256) * np.repeat(10.0 ** rng.uniform(-3, 0, 8), 32)
    zero_sub = rng.standard_normal(256) * 0.05
    zero_sub[64:96] = 0.0
    outlier = rng.standard_normal(256) * 0.02
    outlier[77] = 4.0
    rows = [
        rng.standard_normal(256) * 0.02,
        rng.standard_normal(256) * 0.02,
        rng.standard_normal(256),
        mixed,
        rng.uniform(0.0, 1.0, 256),
        -rng.uniform(0.0, 1.0, 256),
        np.full(256, 0.5),
        zero_sub,
        outlier,
        np.zeros(256),
    ]
    for _ in range(K_QUANT_RANDOM):
        rows.append(rng.standard_normal(256) * 10.0 ** rng.uniform(-2.5, 0))
    return np.concatenate(rows).astype(np.float16)


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}[arr.dtype]
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", default=os.path.expanduser("~/.cache/visattn/dl/llama_cpp_python-0.3.36.tar.gz"))
    ap.add_argument("--out", default=str(ROOT / "tests/data/quants.safetensors"))
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    work = tempfile.mkdtemp(prefix="quant-fixtures-")
    c_ref = build_c_reference(args.sdist, work)
    tensors = {}

    # Dequantization.
    plain = {
        T.F32: np.concatenate([
            rng.standard_normal(60).astype(np.float32),
            np.array([0.0, -0.0, 1e-40, -3e38], dtype=np.float32),
        ]).view(np.uint8),
        T.F16: random_halves(rng, 64, 5, 10),
        T.BF16: random_halves(rng, 64, 8, 7),
    }
    for qtype, raw in plain.items():
        tensors[f"dequant.{qtype.name}.bytes"] = raw
        tensors[f"dequant.{qtype.name}.values"] = dequantize(raw, qtype).astype(np.float32)
    for qtype in HALF_FIELDS:
        elems, _ = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = K_BLOCKS if elems == 256 else LEGACY_BLOCKS
        raw = random_blocks(rng, qtype, n_blocks)
        values = dequantize(raw, qtype)
        assert values.dtype == np.float32 and values.size == n_blocks * elems and np.isfinite(values).all()
        from_c = c_ref("dequantize", qtype.name, values.size, raw)
        if from_c.view(np.uint32).tolist() != values.view(np.uint32).tolist():
            raise SystemExit(f"{qtype.name}: gguf-py's dequantize differs from llama.cpp's dequantize_row")
        tensors[f"dequant.{qtype.name}.bytes"] = raw
        tensors[f"dequant.{qtype.name}.values"] = values

    # Quantization.
    half_input = np.concatenate([
        rng.standard_normal(56).astype(np.float32),
        np.array([65519.0, 65520.0, 1e-8, 3e-8, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, -0.0, 1e30], dtype=np.float32),
    ])
    with np.errstate(over="ignore"):  # 65520 and 1e30 are infinities in f16
        legacy = [(T.F16, half_input), (T.BF16, half_input), (T.Q8_0, legacy_rows(rng)), (T.Q4_0, legacy_rows(rng))]
        quantized = [np.asarray(quantize(data, qtype)).view(np.uint8).reshape(-1) for qtype, data in legacy]
    for (qtype, data), q in zip(legacy, quantized):
        if qtype in (T.Q8_0, T.Q4_0) and c_ref("quantize", qtype.name, data.size, data).tolist() != q.tolist():
            raise SystemExit(f"{qtype.name}: gguf-py's quantize differs from llama.cpp's quantize_row_ref")
        tensors[f"quant.{qtype.name}.input"] = data
        tensors[f"quant.{qtype.name}.bytes"] = q
    data = k_rows(rng)
    tensors["quant.Q4_K.input"] = data
    tensors["quant.Q4_K.bytes"] = c_ref("quantize", "Q4_K", data.size, data.astype(np.float32))
    # Q5_0 last (the random draws above stay as they were): llama.cpp's fallback for Q4_K rows
    # that are not whole super-blocks.
    data = legacy_rows(rng)
    q = np.asarray(quantize(data, T.Q5_0)).view(np.uint8).reshape(-1)
    if c_ref("quantize", "Q5_0", data.size, data).tolist() != q.tolist():
        raise SystemExit("Q5_0: gguf-py's quantize differs from llama.cpp's quantize_row_ref")
    tensors["quant.Q5_0.input"] = data
    tensors["quant.Q5_0.bytes"] = q

    metadata = {
        "generator": "tools/make_quant_fixtures.py",
        "seed": str(SEED),
        "gguf": getattr(gguf, "__version__", "") or _dist_version("gguf"),
        "numpy": np.__version__,
        "llama_cpp": Path(args.sdist).name + " (ggml-quants.c, cc -O2 -ffp-contract=off)",
        "q4_k_expected": "llama.cpp quantize_row_q4_K_ref",
    }
    write_safetensors(args.out, tensors, metadata)
    print(f"{args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes; gguf-py agrees with llama.cpp's C")


def _dist_version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
