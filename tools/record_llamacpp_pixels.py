#!/usr/bin/env python3
"""Records llama.cpp's own preprocessing of pictures for a LLaVA-1.5 mmproj (issue #35), computed
by llama.cpp's C++ code compiled from the llama-cpp-python sdist, so that the host's Rust port
(examples/host/src/image.rs, `llama_cpp_pixels`) is checked against llama.cpp itself rather than
against a Python re-implementation:

    ~/.cache/visattn/torch-venv/bin/python tools/record_llamacpp_pixels.py \
        [--sdist ~/.cache/visattn/dl/llama_cpp_python-0.3.36.tar.gz]

Writes tests/data/tiny-llava-gguf/llamacpp-pixels.safetensors, and, only where they do not exist
yet, three new pictures in tests/data/llava-pictures/ (the recorded values belong to the bytes of
each file, so an existing picture is never rewritten: a JPEG encoder of another version would
give other bytes):

- small.jpg: 45 x 30, baseline JPEG, 4:2:0 chroma subsampling (PIL quality 85, not optimized, not
  progressive), drawn from formulas: colour gradients, a red disc and blue bars with sharp edges
  (chroma edges that the upsampling of 4:2:0 blurs), odd sizes (partial 16 x 16 MCUs).
- onecol.png: 1 x 28, 8-bit RGB. At size 28 it is not resampled at all (scale = min(28/1, 28/28)
  = 1: resize_pillow is a copy) and only padded; at 56 it is upscaled to 2 x 56.
- palette.png: 9 x 6, 8-bit palette with a tRNS chunk (entries fully transparent, half
  transparent and opaque; the transparent entries have vivid colours), upscaled to 28 x 19.

Pictures and sizes (S = the mmproj's clip.vision.image_size): tests/data/tiny-llava/picture.png
(94 x 71), tests/data/tiny-llava-gguf/picture28.png (28 x 28: copied, neither resized nor
padded), tests/data/llava-pictures/{alpha,grey16,tall,thin}.png (RGBA, 16-bit grey, 37 x 120,
3 x 400) and the three above, all at S = 28 (the tiny mmproj's); tall and picture also at S = 56
(both still downscaled there), and picture28, small and onecol at S = 56 (upscaled).

How the values are made. A C++ driver (written to a temporary directory) is compiled against the
sdist's vendor/llama.cpp with `g++ -std=c++17 -O3 -DNDEBUG -ffp-contract=off` (cmake's Release
flags, plus no FMA contraction: the filter weights are computed in double) and
`-I vendor -I tools/mtmd -I ggml/include -I include`. It #includes llama.cpp's own files:
`stb/stb_image.h` with STB_IMAGE_IMPLEMENTATION (as tools/mtmd/mtmd-helper.cpp does, nothing
else defined) and `tools/mtmd/mtmd-image.cpp` (img_tool::resize, resize_pillow,
mtmd_image_preprocessor_fixed_size, mtmd_image_preproc_out::append; through mtmd-image.h it
includes clip-model.h and clip-impl.h: clip_image_u8, clip_image_f32::from_u8 and normalize).
Link stubs, the only symbols the linker asks for: `clip_get_hparams` (clip.cpp's returns the
model's hparams; the stub returns the driver's clip_hparams, filled as below), `g_logger_state`
(clip.cpp's definition, copied) and `ggml_abort` (prints and aborts). No ggml, no clip.cpp.
For each picture and S the driver:
1. reads the file into memory and decodes it with `stbi_load_from_memory(buf, len, &nx, &ny,
   &nc, 3)`, as mtmd_helper_bitmap_init_from_file / _from_buf do (requested channels 3);
2. copies the 8-bit RGB into a clip_image_u8 (set_size + cpy_buf, as mtmd.cpp's
   mtmd_tokenize does with the bitmap);
3. runs `mtmd_image_preprocessor_fixed_size::preprocess` (the preprocessor mtmd.cpp picks for
   PROJECTOR_TYPE_MLP without image_grid_pinpoints, i.e. LLaVA-1.5) with clip_hparams as
   clip.cpp's load_hparams leaves them for that projector: image_size = S, image_pad_color =
   {122, 116, 104}, image_resize_algo and image_resize_pad at clip-model.h's defaults
   (RESIZE_ALGO_BICUBIC, PAD_CEIL), image_mean = {0.48145466f, 0.4578275f, 0.40821073f},
   image_std = {0.26862954f, 0.26130258f, 0.27577711f} (the floats that tests/data/tiny-llava-gguf
   mmproj-f32.gguf holds as clip.vision.image_mean/std: checked here with gguf-py);
4. also calls `img_tool::resize` with the same arguments as preprocess does, for the 8-bit
   resized and padded picture before from_u8/normalize;
5. writes the decoded picture, the 8-bit S x S picture, the f32 values (interleaved RGB per
   pixel, as llama.cpp holds them) and the fit size / offset (img_tool::resize's PAD_CEIL
   formula, copied) to stdout.
Here the f32 values are stored channels first, [3, S, S], as clip.cpp's clip_image_batch_encode
lays them out for "inp_raw" and as the host's llama_cpp_pixels returns them.

Checks made before writing (the script stops on any failure): stb's decode of alpha.png is its
RGBA's first three channels, of grey16.png the high byte of each 16-bit sample replicated, of
palette.png the palette colours of its indices, of the RGB PNGs PIL's RGB; the same driver built
three ways gives identical bytes: the flags above; -O0 with -ffunction-sections
-Wl,--gc-sections (the linker drops clip-impl.h's unused helpers that call gguf/ggml, which -O0
emits); -O3 with -DSTBI_NO_SIMD (stb's scalar JPEG IDCT, colour conversion and upsampling instead
of SSE2 on x86-64: the path of ARM builds, where stb uses NEON only if STBI_NEON is defined); the
f32 values equal numpy's float32 ((rgb / 255) - mean) / std of the 8-bit picture; pixels outside
the fitted box are the pad colour; picture28 at 28 is the decoded picture and its values equal
expected-mmproj.safetensors' pixel_values_llamacpp.

The file is written by the script itself (header keys sorted, so that reruns give the same
bytes) and read back with the safetensors package. Tensors, per picture NAME (the file's stem) and size S:
- NAME.S{S}.pixels: f32 [3, S, S], llama.cpp's normalised values.
- NAME.S{S}.rgb: u8 [S, S, 3], the resized and padded 8-bit picture.
- NAME.decoded: u8 [h, w, 3], stb_image's decode (requested channels 3).
Metadata (strings): "pictures": JSON, per NAME: path (in the repository), sha256 of the file,
width/height as stb decodes them, channels (stb's count in the file), sizes, and per S the fitted
size and offset ("fit": [w, h], "offset": [x, y]), plus, for information only,
"pil_rgb_max_abs_diff" / "pil_rgb_pixels_differing": how far PIL's Image.convert("RGB") of the
same file is from stb's decode, and "hf_rgb_...": the same for transformers' convert_to_rgb (the
RGB HF's processor starts from: transparency composited onto white). Also "llama_cpp" (sdist and
its sha256), "stb_image" (version), "compiler", "flags", "stubs", "hparams", "pillow",
"numpy", "script".

What stb_image does that PIL / HF's convert_to_rgb do not (the Rust side must load pictures
like this for the llama.cpp path):
- alpha (RGBA, grey+alpha PNG): dropped (stbi__convert_format 4 -> 3 copies R, G, B), not
  composited onto white as transformers' convert_to_rgb does: a fully transparent pixel keeps
  its stored colour.
- palette PNG with tRNS: expanded through the palette to RGB, the tRNS alphas dropped (the
  transparent entries keep their palette colour). A grey/RGB PNG's tRNS colour key likewise
  only adds an alpha that is dropped.
- 16-bit PNG: each sample's high byte (v >> 8), after grey is replicated to RGB; PIL opens
  16-bit grey as I;16 and clips at 255 on conversion to RGB (so grey16.png differs a lot).
- grey 1/2/4-bit PNG: scaled by 255 / 85 / 17 to 8 bits, then replicated to R, G, B.
- JPEG: stb's own decoder (integer IDCT, its YCbCr -> RGB in 20-bit fixed point, its "fancy"
  4:2:0 upsampling (3 * near + far + 8) >> 4 both ways), not libjpeg(-turbo): a few units of
  difference from PIL's decode (see pil_rgb_max_abs_diff of small). EXIF orientation is not
  applied (neither does PIL's plain open; transformers' load_image does apply it).
- no gamma / ICC / sRGB chunk handling (PIL's RGB conversion ignores them too).

Needs g++ (tested with Debian's g++ 12.2), numpy, safetensors, pillow, gguf and transformers
(~/.cache/visattn/torch-venv: numpy 2.4.6, safetensors 0.8.0, pillow 13.0.0, gguf 0.19.0,
transformers 5.24.0).
Deterministic for the committed pictures; the output is committed and tests never run this
script.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
PICS = ROOT / "tests" / "data" / "llava-pictures"
GGUF_DIR = ROOT / "tests" / "data" / "tiny-llava-gguf"
OUT = GGUF_DIR / "llamacpp-pixels.safetensors"
SDIST = Path.home() / ".cache" / "visattn" / "dl" / "llama_cpp_python-0.3.36.tar.gz"

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PAD = (122, 116, 104)

# (name, path in the repository, sizes)
PICTURES = [
    ("picture", "tests/data/tiny-llava/picture.png", [28, 56]),
    ("picture28", "tests/data/tiny-llava-gguf/picture28.png", [28, 56]),
    ("alpha", "tests/data/llava-pictures/alpha.png", [28]),
    ("grey16", "tests/data/llava-pictures/grey16.png", [28]),
    ("tall", "tests/data/llava-pictures/tall.png", [28, 56]),
    ("thin", "tests/data/llava-pictures/thin.png", [28]),
    ("small", "tests/data/llava-pictures/small.jpg", [28, 56]),
    ("onecol", "tests/data/llava-pictures/onecol.png", [28, 56]),
    ("palette", "tests/data/llava-pictures/palette.png", [28]),
]

CXX = ["g++", "-std=c++17"]
FLAGS = ["-O3", "-DNDEBUG", "-ffp-contract=off"]
# -O0 keeps clip-impl.h's unused static helpers, which call gguf/ggml functions: their sections
# are dropped by the linker instead of stubbing more symbols.
VARIANTS = {
    "main": FLAGS,
    "O0": ["-O0", "-ffp-contract=off", "-ffunction-sections", "-Wl,--gc-sections"],
    "no-simd": FLAGS + ["-DSTBI_NO_SIMD"],
}

DRIVER = r"""
// llama.cpp's picture loading (mtmd-helper.cpp: stb_image) and LLaVA-1.5 preprocessing
// (mtmd-image.cpp), compiled from the sdist's own files.
#define STB_IMAGE_IMPLEMENTATION
#include "stb/stb_image.h"
#include "mtmd-image.cpp"

#include <cstdio>
#include <cstdlib>
#include <cstdarg>
#include <cstring>

// --- link stubs (the only symbols the linker asks for) ---
static clip_hparams g_hparams;
const clip_hparams * clip_get_hparams(const struct clip_ctx *) { return &g_hparams; }
struct clip_logger_state g_logger_state = {clip_log_callback_default, NULL};  // as clip.cpp
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d: ", file, line);
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fputc('\n', stderr);
    abort();
}

static void put(const void * p, size_t n) {
    if (fwrite(p, 1, n, stdout) != n) { fprintf(stderr, "write failed\n"); exit(3); }
}
static void put_i32(int v) { put(&v, 4); }

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: driver PICTURE SIZE\n"); return 2; }
    const char * fname = argv[1];
    const int S = atoi(argv[2]);

    // mtmd_helper_bitmap_init_from_file: the whole file into a buffer.
    FILE * f = fopen(fname, "rb");
    if (!f) { perror(fname); return 2; }
    std::vector<unsigned char> buf;
    fseek(f, 0, SEEK_END);
    long file_size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf.resize(file_size);
    if (fread(buf.data(), 1, file_size, f) != (size_t) file_size) { fprintf(stderr, "short read\n"); return 2; }
    fclose(f);

    // mtmd_helper_bitmap_init_from_buf: stb_image, 3 channels requested.
    int nx, ny, nc;
    unsigned char * data = stbi_load_from_memory(buf.data(), (int) buf.size(), &nx, &ny, &nc, 3);
    if (!data) { fprintf(stderr, "stb_image: %s\n", stbi_failure_reason()); return 4; }
    std::vector<uint8_t> rgb(data, data + (size_t) nx * ny * 3);  // mtmd_bitmap_init's copy
    stbi_image_free(data);

    // mtmd_tokenize: bitmap -> clip_image_u8.
    clip_image_u8 img_u8;
    img_u8.set_size({nx, ny}, false);
    img_u8.cpy_buf(rgb);

    // clip.cpp load_hparams, PROJECTOR_TYPE_MLP without pinpoints.
    g_hparams.image_size = S;
    g_hparams.patch_size = 14;
    g_hparams.image_pad_color = {122, 116, 104};
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    for (int i = 0; i < 3; i++) { g_hparams.image_mean[i] = mean[i]; g_hparams.image_std[i] = stdv[i]; }
    if (g_hparams.image_resize_algo != RESIZE_ALGO_BICUBIC || g_hparams.image_resize_pad != PAD_CEIL) {
        fprintf(stderr, "clip-model.h's defaults are not BICUBIC / PAD_CEIL\n");
        return 5;
    }

    mtmd_image_preprocessor_fixed_size pre(nullptr);
    mtmd_image_preproc_out out = pre.preprocess(img_u8);
    if (out.entries.size() != 1 || out.entries[0].nx() != S || out.entries[0].ny() != S) {
        fprintf(stderr, "unexpected preprocess output\n");
        return 5;
    }
    const std::vector<float> & f32 = out.entries[0].get_ro_buf();

    // The 8-bit picture preprocess normalises: the same img_tool::resize call.
    clip_image_u8 resized;
    img_tool::resize(img_u8, resized, {S, S}, g_hparams.image_resize_algo, g_hparams.image_resize_pad,
                     g_hparams.image_pad_color);

    // img_tool::resize's PAD_CEIL fit and offset (its formula, copied), for locating mismatches.
    int fw = nx, fh = ny, ox = 0, oy = 0;
    if (!(nx == S && ny == S)) {
        float scale_w = static_cast<float>(S) / nx;
        float scale_h = static_cast<float>(S) / ny;
        float scale = std::min(scale_w, scale_h);
        fw = std::min(static_cast<int>(std::ceil(nx * scale)), S);
        fh = std::min(static_cast<int>(std::ceil(ny * scale)), S);
        ox = (S - fw) / 2;
        oy = (S - fh) / 2;
    }

    put_i32(nx); put_i32(ny); put_i32(nc);
    put_i32(fw); put_i32(fh); put_i32(ox); put_i32(oy);
    put(rgb.data(), rgb.size());
    put(resized.get_ro_buf().data(), (size_t) S * S * 3);
    put(f32.data(), f32.size() * sizeof(float));
    return 0;
}
"""


def save_safetensors(tensors, path, metadata):
    """A safetensors file with its header's keys sorted (the safetensors package writes the
    metadata from a hash map, in an order that changes from run to run)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    back = load_file(str(path))
    assert sorted(back) == sorted(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_pictures():
    """The new pictures, each written only if absent."""
    made = []
    jpg = PICS / "small.jpg"
    if not jpg.exists():
        h, w = 30, 45
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 40 + 4.5 * x
        g = 220 - 6 * y
        b = 90 + 80 * np.sin(x / 3.0 + y / 5.0)
        img = np.stack([r, g, b], axis=-1)
        disc = (x - 14) ** 2 + (y - 15) ** 2 < 8**2
        img[disc] = [230, 20, 30]
        bars = (x >= 30) & (x < 42) & ((y // 3) % 2 == 0)
        img[bars] = [20, 40, 220]
        img[(y == 26) & (x > 3) & (x < 40)] = [250, 250, 250]
        Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8), "RGB").save(
            jpg, quality=85, subsampling=2, optimize=False, progressive=False
        )
        made.append(jpg)
    col = PICS / "onecol.png"
    if not col.exists():
        y = np.arange(28, dtype=np.float64)
        img = np.stack([(y * 9) % 256, 127 + 120 * np.sin(y / 2.0), np.where(y % 7 < 3, 250, 10)], axis=-1)
        Image.fromarray(img.astype(np.uint8).reshape(28, 1, 3), "RGB").save(col)
        made.append(col)
    pal = PICS / "palette.png"
    if not pal.exists():
        h, w = 6, 9
        y, x = np.mgrid[0:h, 0:w]
        idx = ((x + 2 * y) % 8).astype(np.uint8)
        palette = [
            (255, 0, 255),  # 0: transparent magenta
            (0, 255, 0),  # 1: transparent green
            (200, 30, 30),  # 2: half transparent
            (30, 200, 30),
            (30, 30, 200),
            (250, 250, 250),
            (10, 10, 10),
            (128, 64, 192),
        ]
        im = Image.fromarray(idx, "P")
        im.putpalette([c for rgb in palette for c in rgb])
        im.save(pal, transparency=bytes([0, 0, 128, 255, 255, 255, 255, 200]))
        made.append(pal)
    for p in made:
        print(f"wrote {p.relative_to(ROOT)}", file=sys.stderr)


def check_pictures():
    im = Image.open(PICS / "small.jpg")
    from PIL import JpegImagePlugin

    assert im.format == "JPEG" and im.size == (45, 30) and im.mode == "RGB", (im.format, im.size, im.mode)
    assert not im.info.get("progressive") and not im.info.get("progression"), im.info
    assert JpegImagePlugin.get_sampling(im) == 2, "not 4:2:0"
    im = Image.open(PICS / "onecol.png")
    assert im.size == (1, 28) and im.mode == "RGB"
    im = Image.open(PICS / "palette.png")
    assert im.size == (9, 6) and im.mode == "P" and "transparency" in im.info, (im.mode, im.info)


def extract(sdist, work):
    with tarfile.open(sdist) as tar:
        keep = ("/vendor/llama.cpp/tools/mtmd/", "/vendor/llama.cpp/vendor/stb/", "/vendor/llama.cpp/ggml/include/",
                "/vendor/llama.cpp/include/")
        members = [m for m in tar.getmembers() if any(k in m.name for k in keep)]
        tar.extractall(work, members=members, filter="data")
    return next(Path(work).glob("*/vendor/llama.cpp"))


def build(llama, work, name, flags):
    src = Path(work) / "driver.cpp"
    src.write_text(DRIVER)
    exe = Path(work) / f"driver-{name}"
    inc = ["-I", str(llama / "vendor"), "-I", str(llama / "tools" / "mtmd"), "-I", str(llama / "ggml" / "include"),
           "-I", str(llama / "include")]
    cmd = ["nice", "-n", "10", *CXX, *flags, *inc, str(src), "-o", str(exe)]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return exe


def run_driver(exe, path, size):
    out = subprocess.run([str(exe), str(path), str(size)], capture_output=True, check=True).stdout
    head = np.frombuffer(out[:28], dtype="<i4")
    nx, ny, nc, fw, fh, ox, oy = (int(v) for v in head)
    o = 28
    decoded = np.frombuffer(out[o : o + nx * ny * 3], dtype=np.uint8).reshape(ny, nx, 3)
    o += nx * ny * 3
    rgb = np.frombuffer(out[o : o + size * size * 3], dtype=np.uint8).reshape(size, size, 3)
    o += size * size * 3
    f32 = np.frombuffer(out[o:], dtype="<f4")
    assert f32.size == size * size * 3, (f32.size, size)
    return out, dict(nx=nx, ny=ny, nc=nc, fit=[fw, fh], offset=[ox, oy], decoded=decoded, rgb=rgb,
                     interleaved=f32.reshape(size, size, 3))


def hf_rgb(path):
    """transformers' convert_to_rgb of what PIL opens (HF's processor input), for information."""
    from transformers.image_transforms import convert_to_rgb

    return convert_to_rgb(Image.open(path), return_numpy=True)


def check_stb_rules(name, path, decoded):
    """stb's decode of the PNGs follows the rules the docstring gives (read from the file with
    PIL's raw modes, which keep the stored samples)."""
    im = Image.open(path)
    if name == "alpha":  # RGBA: the alpha channel dropped, not composited
        assert im.mode == "RGBA"
        assert np.array_equal(decoded, np.asarray(im)[..., :3]), name
    elif name == "grey16":  # 16-bit grey: high byte, replicated
        raw = np.asarray(im)
        assert raw.dtype == np.uint16, raw.dtype
        assert np.array_equal(decoded, np.repeat((raw >> 8).astype(np.uint8)[..., None], 3, axis=-1)), name
    elif name == "palette":  # palette + tRNS: palette colours, alphas dropped
        idx = np.asarray(im)
        pal = np.array(im.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
        assert np.array_equal(decoded, pal[idx]), name
    elif im.format == "PNG":
        assert im.mode == "RGB" and np.array_equal(decoded, np.asarray(im)), name


def check_gguf_mean_std():
    import gguf

    r = gguf.GGUFReader(str(GGUF_DIR / "mmproj-f32.gguf"))

    def arr(key):
        f = r.fields[key]
        return np.array([f.parts[i][0] for i in f.data], dtype=np.float32)

    mean, std = arr("clip.vision.image_mean"), arr("clip.vision.image_std")
    size = int(r.fields["clip.vision.image_size"].parts[-1][0])
    assert np.array_equal(mean, np.array(MEAN, np.float32)), mean
    assert np.array_equal(std, np.array(STD, np.float32)), std
    assert size == 28, size
    return gguf.__version__ if hasattr(gguf, "__version__") else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", default=str(SDIST))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    make_pictures()
    check_pictures()
    check_gguf_mean_std()
    mean32, std32 = np.array(MEAN, np.float32), np.array(STD, np.float32)
    ref28 = load_file(str(GGUF_DIR / "expected-mmproj.safetensors"))["pixel_values_llamacpp"]

    tensors, meta_pics = {}, {}
    with tempfile.TemporaryDirectory() as work:
        llama = extract(args.sdist, work)
        exes = {name: build(llama, work, name, flags) for name, flags in VARIANTS.items()}
        stb_version = (llama / "vendor" / "stb" / "stb_image.h").read_text().split("\n", 1)[0].strip("/* ").split(" - ")[1]
        for name, rel, sizes in PICTURES:
            path = ROOT / rel
            pil = np.asarray(Image.open(path).convert("RGB"))
            entry = {"path": rel, "sha256": sha256(path), "sizes": sizes}
            for s in sizes:
                raw, res = run_driver(exes["main"], path, s)
                for v, exe in exes.items():
                    if v != "main":
                        assert run_driver(exe, path, s)[0] == raw, f"{name} S={s}: build {v} differs"
                rgb, inter = res["rgb"], res["interleaved"]
                # The f32 values are from_u8 + normalize of the 8-bit picture, in float32.
                want = (rgb.astype(np.float32) / np.float32(255) - mean32) / std32
                assert np.array_equal(want, inter), f"{name} S={s}: f32 is not normalize(from_u8(rgb))"
                fw, fh = res["fit"]
                ox, oy = res["offset"]
                mask = np.ones((s, s), bool)
                mask[oy : oy + fh, ox : ox + fw] = False
                assert (rgb[mask] == np.array(PAD, np.uint8)).all(), f"{name} S={s}: padding"
                if (res["nx"], res["ny"]) == (s, s):
                    assert np.array_equal(rgb, res["decoded"]), f"{name} S={s}: not a copy"
                if name == "picture28" and s == 28:
                    assert np.array_equal(inter.transpose(2, 0, 1), ref28), "picture28 vs pixel_values_llamacpp"
                tensors[f"{name}.S{s}.pixels"] = np.ascontiguousarray(inter.transpose(2, 0, 1))
                tensors[f"{name}.S{s}.rgb"] = np.ascontiguousarray(rgb)
                entry[f"S{s}"] = {"fit": res["fit"], "offset": res["offset"]}
                print(f"{name} {res['nx']}x{res['ny']} (nc {res['nc']}) S={s}: fit {fw}x{fh} at ({ox}, {oy})",
                      file=sys.stderr)
            tensors[f"{name}.decoded"] = np.ascontiguousarray(res["decoded"])
            entry.update(width=res["nx"], height=res["ny"], channels=res["nc"])
            assert pil.shape == res["decoded"].shape, (name, pil.shape, res["decoded"].shape)
            check_stb_rules(name, path, res["decoded"])
            for key, other in (("pil_rgb", pil), ("hf_rgb", hf_rgb(path))):
                diff = np.abs(other.astype(np.int16) - res["decoded"].astype(np.int16))
                entry[f"{key}_max_abs_diff"] = int(diff.max())
                entry[f"{key}_pixels_differing"] = int((diff.max(axis=-1) > 0).sum())
                print(f"  stb vs {key}: max |diff| {diff.max()}, {entry[f'{key}_pixels_differing']} "
                      f"of {diff.shape[0] * diff.shape[1]} pixels differ", file=sys.stderr)
            meta_pics[name] = entry
        cc = subprocess.run(CXX[:1] + ["--version"], capture_output=True, text=True).stdout.split("\n")[0]

    meta = {
        "pictures": json.dumps(meta_pics, sort_keys=True),
        "llama_cpp": f"{Path(args.sdist).name} (sha256 {sha256(args.sdist)}): vendor/llama.cpp "
        "tools/mtmd/mtmd-image.cpp, clip-impl.h, clip-model.h; vendor/stb/stb_image.h",
        "stb_image": stb_version,
        "compiler": cc,
        "flags": " ".join(CXX + FLAGS) + " (identical output checked for: "
        + "; ".join(f"{k}: {' '.join(v)}" for k, v in VARIANTS.items() if k != "main") + ")",
        "stubs": "clip_get_hparams (returns the driver's clip_hparams), g_logger_state (clip.cpp's), ggml_abort",
        "hparams": json.dumps({"image_pad_color": list(PAD), "image_resize_algo": "RESIZE_ALGO_BICUBIC (default)",
                               "image_resize_pad": "PAD_CEIL (default)", "image_mean": MEAN, "image_std": STD}),
        "layout": "NAME.S{S}.pixels f32 [3,S,S] (llama.cpp's interleaved RGB transposed to channels first); "
        "NAME.S{S}.rgb u8 [S,S,3]; NAME.decoded u8 [h,w,3]",
        "pillow": PIL.__version__,
        "transformers": __import__("transformers").__version__,
        "numpy": np.__version__,
        "script": "tools/record_llamacpp_pixels.py: stb_image decode (3 channels) + "
        "mtmd_image_preprocessor_fixed_size::preprocess (img_tool::resize, resize_pillow, from_u8, normalize) "
        "compiled from llama.cpp's own sources",
    }
    save_safetensors(tensors, args.out, meta)
    print(f"wrote {args.out}: {len(tensors)} tensors, {os.path.getsize(args.out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
