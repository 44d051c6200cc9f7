#!/usr/bin/env python3
"""Makes the tiny LLaVA's mmproj GGUF (CLIP tower + projector) with llama.cpp's own legacy scripts,
a picture of exactly the model's image size, and what HF transformers computes for it, for the
`--model lm.gguf --mmproj mmproj.gguf` path (issue #35):

    python3 tools/make_tiny_llava_mmproj.py path/to/llama.cpp

(path/to/llama.cpp: the `vendor/llama.cpp` of the PyPI sdist llama_cpp_python-0.3.36; its gguf-py
goes first on PYTHONPATH for the converter, as in tools/make_tiny_llava_gguf.py.) Writes, in
tests/data/tiny-llava-gguf/:

- mmproj-f32.gguf, mmproj-f16.gguf: the legacy route of tools/mtmd/legacy-models, as
  docs/multimodal/llava.md gives it:
  1. `llava_surgery_v2.py -C -m DIR` on a temporary copy of tests/data/tiny-llava (the shards
     model-0000N-of-00005.safetensors match its `*model*.safetensors` glob as they are). It
     writes DIR/llava.clip (the `vision_tower.*` tensors, names kept: they hold no
     `vision_model.`) and DIR/llava.projector (the four `multi_modal_projector.*` tensors, as
     f32). It does not rewrite the shards (-C drops the tower in memory only).
  2. A CLIPVisionModel folder made from llava.clip: `vision_tower.` renamed `vision_model.` (the
     key layout of transformers 4.x's CLIPVisionModel, which the converter loads), config.json =
     the tiny's vision_config + architectures [CLIPVisionModel], preprocessor_config.json = the
     tiny's (CLIPImageProcessor). The folder is named tiny-llava-clip, which becomes
     general.name.
  3. `convert_image_encoder_to_gguf.py -m CLIPDIR --llava-projector DIR/llava.projector
     --output-dir OUT --clip-model-is-vision [--use-f32]`. It needs transformers 4.x (it reads
     CLIPVisionModel.vision_model, gone in 5.x): transformers 4.57.6 + tokenizers 0.22.2 +
     huggingface_hub 0.36.2 are pip-installed (--no-deps, the venv has the rest) under
     ~/.cache/visattn/transformers-4.57 once and put first on PYTHONPATH for this step only.
  What the converter does, read from it and checked here tensor by tensor against the HF
  weights: the last encoder layer is popped and clip.vision.block_count = num_hidden_layers - 1
  = 2 (config.json has no vision_feature_layer, so no clip.vision.feature_layer);
  post_layernorm is skipped; fc1 is stored as `ffn_down` and fc2 as `ffn_up` (clip.cpp swaps
  them back when ffn_down's ne[0] == n_embd); linear_1/linear_2 become mm.0/mm.2;
  clip.use_gelu = (hidden_act == "gelu") = false, i.e. quick_gelu; image_mean/std are the
  converter's CLIP defaults (--clip-model-is-vision loads no processor), equal to the tiny's
  (asserted). Types: with --use-f32 every tensor is F32 except v.patch_embd.weight (4-D:
  always F16) and mm.0.weight / mm.2.weight (the projector's 2-D tensors: always F16); without
  it every 2-D `.weight` and the patch embedding are F16, the rest (biases, norms,
  v.class_embd) F32 -- v.position_embd.weight is F16 there.
- picture28.png: 28 x 28 RGB, a gradient with a disc, a square and a line, drawn from formulas.
  Neither side resizes or pads it (llama.cpp's img_tool::resize copies an image already of the
  target size; PIL's resize to the same size is a copy, and the centre crop of 28 from 28 takes
  all).
- expected-mmproj.safetensors, recorded with HF transformers 5.24 from tests/data/tiny-llava
  (f32). Tensors:
  pixel_values [3, 28, 28]: HF's processor (CLIPImageProcessorPil). pixel_values_llamacpp
  [3, 28, 28]: llama.cpp's preprocessing of the same file, computed here in float32 as clip.cpp
  does it (below). image_features [16, 64]: the projector's output for pixel_values.
  ids_before, ids_after (i64): the text chunks llama.cpp tokenizes around the image (below);
  prompt_ids (i64 [T]): ids_before + 16 x 400 (<image>, a placeholder: those rows are the
  image features) + ids_after. logits [T, 402]: the full LLaVA's, every position, fed as
  inputs_embeds = embed_tokens(prompt_ids) with the 16 image rows replaced by image_features.
  greedy (i64 [8]): 8 greedy tokens after the prompt (argmax each step, recomputed on the whole
  sequence, no stop at </s>). The same three for the weights exactly as each mmproj file holds
  them (HF's model with the file's tensors, F16 ones widened to f32, put in its vision tower and
  projector): image_features_mmproj_f32 / logits_mmproj_f32 / greedy_mmproj_f32 and
  ..._mmproj_f16. The quantized pair: image_features_q8_0_mmproj_f16 / logits_q8_0_mmproj_f16 /
  greedy_q8_0_mmproj_f16, HF's LLaVA holding exactly lm-q8_0.gguf's language model (every tensor
  dequantized to f32 by gguf-py, the q/k row permutation of the converter undone: equal to
  what transformers' GGUF loader gives, checked) and mmproj-f16.gguf's tower and projector
  (the features equal image_features_mmproj_f16; the logits are to be compared with
  logits_mmproj_f16, the same mmproj under the f32 language model). hf_processor_ids (i64): what HF's LlavaProcessor gives for the same prompt
  with <image>. cli_vicuna_ids_before / cli_vicuna_ids_after: the chunks of llama-mtmd-cli's own
  prompt (below). image_features_llamacpp_graph / greedy_llamacpp_graph: see "llama.cpp's
  graph" below. Metadata: the prompts, the answers as text (answer, answer_mmproj_f32, ...,
  answer_q8_0_mmproj_f16), margin / margin_<same suffix>: the smallest gap between the top two
  logits along that run's greedy steps (what a host's rounding must stay under to pick the
  same tokens), versions.

llama.cpp's image preprocessing for a LLaVA-1.5 mmproj (projector_type mlp, no
image_grid_pinpoints), in the sdist's tools/mtmd:
- mtmd.cpp, mtmd_context::init_vision: PROJECTOR_TYPE_MLP without pinpoints ->
  mtmd_image_preprocessor_fixed_size (with pinpoints, i.e. LLaVA-1.6: llava_uhd).
- mtmd-image.cpp, mtmd_image_preprocessor_fixed_size::preprocess: img_tool::resize(img, {S, S},
  hparams.image_resize_algo, hparams.image_resize_pad, hparams.image_pad_color), S =
  clip.vision.image_size; then mtmd_image_preproc_out::append -> clip_image_f32::from_u8 +
  normalize.
- clip.cpp, clip_model_loader::load_hparams, case PROJECTOR_TYPE_MLP: image_pad_color =
  {122, 116, 104}; image_resize_algo and image_resize_pad keep clip-model.h's defaults,
  RESIZE_ALGO_BICUBIC and PAD_CEIL.
- mtmd-image.cpp, img_tool::resize: an image already S x S is copied (no resampling). Otherwise
  (PAD_CEIL) scale = min(S / w, S / h) in float, new size = min(ceil(w * scale), S) x
  min(ceil(h * scale), S), resized by img_tool::resize_pillow, pasted at ((S - nw) / 2,
  (S - nh) / 2) (integer division) on an S x S canvas filled with (122, 116, 104) -- i.e.
  letterboxed to a square, the mean colour of CLIP, not cropped.
- img_tool::resize_pillow: a port of Pillow's Resample.c: separable, horizontal pass then
  vertical pass (always in that order; Pillow picks the order by which dimension shrinks more),
  each pass rounding to uint8; bicubic with a = -0.5 (Pillow's, not PyTorch's -0.75), support 2
  widened by the scale when downsampling, weights normalized to sum 1 and converted to 22-bit
  fixed point (+-0.5 then truncation), accumulators start at 1 << 21, result >> 22 clamped to
  [0, 255].
- clip-impl.h, clip_image_f32::from_u8: v = (float) u8 / 255.0f; normalize: (v - mean[c]) /
  std[c] in float32, mean/std = clip.vision.image_mean / image_std from the GGUF (f32). The
  interleaved RGB buffer becomes planar [3, S, S] in clip.cpp (clip_image_batch_encode, the
  "inp_raw" input).
- The file is decoded by mtmd-helper (stb_image) to 8-bit RGB.
HF's CLIPImageProcessor (llava-hf's preprocessor_config.json): convert to RGB (alpha composited
onto white), resize the shortest edge to S keeping the aspect ratio (PIL bicubic, Pillow's own
pass order, output size rounded by transformers' get_resize_output_image_size), centre crop
S x S (so a non-square picture loses its ends; llama.cpp keeps them and pads), rescale by
1/255 (numpy: u8 * (1/255) in float64, then float32) and normalize in float32. The two agree
only on pictures already S x S, and there bit for bit: u8 * (1/255) in float64 rounded to
float32 equals (float) u8 / 255.0f for all 256 byte values, and the normalization is the same
float32 arithmetic (pixel_values == pixel_values_llamacpp, asserted). (HF's torchvision
backend, absent from this venv, fuses rescale and normalize and may differ by an ulp.)
LLaVA-1.5's own code (llava's process_images with image_aspect_ratio "pad") pads to a square
with the mean colour before a resize, which is what llama.cpp mimics; llava-hf's processor
does not.

The token layout of llama.cpp's LLaVA-1.5 path (mtmd.cpp, mtmd_tokenizer): the prompt is split
on the media marker "<__media__>" (mtmd_default_marker); each text part is tokenized on its
own by mtmd_tokenize_text_internal with add_special = false, parse_special as given; BOS
(tokenizer.ggml.add_bos_token) is inserted at the front of the first text chunk
(mtmd_tokenizer::tokenize, when add_special). The image chunk is n_patches = (S / P)^2 = 16
embeddings at consecutive positions. The llama (SPM) tokenizer (src/llama-vocab.cpp,
llama_vocab::impl::tokenize, LLAMA_VOCAB_TYPE_SPM) prepends a space to every raw-text fragment
that starts a tokenize call or follows a special token (add_space_prefix is true for
tokenizer.ggml.model "llama" unless the file says otherwise; lm-f32.gguf has no
tokenizer.ggml.add_space_prefix key), so the text after the image starts with "▁" before its
"\n": "USER: <__media__>\nWhat is in the picture? ASSISTANT:" -> [<s>] + tok(" USER: ") + image
+ tok(" \nWhat is in the picture? ASSISTANT:"). HF's LlavaProcessor tokenizes the whole prompt
in one go, <image> a special token expanded to 16; the tiny's tokenizer.json is LLaMA's legacy
layout (normalizer Prepend "▁" + Replace, run on each piece between special tokens), so it too
puts "▁" after <image>: hf_processor_ids == prompt_ids here (asserted). A tokenizer without
that normalizer (Metaspace prepend_scheme "first", legacy=false) would not; and text that
already starts with a space gets a second "▁" from llama.cpp only (printed: HF's tokenizer of
lm-f32.gguf vs llama.cpp on " two  spaces"). llama-mtmd-cli builds yet another prompt:
with `--chat-template vicuna` and -p QUESTION it puts the marker in front of the question
(mtmd-cli.cpp, main) and formats "USER: <__media__>QUESTION\nASSISTANT:" (src/llama-chat.cpp,
LLM_CHAT_TEMPLATE_VICUNA): cli_vicuna_ids_*. The tokenizer is re-implemented here from
llm_tokenizer_spm_session (bigram merges by score from the GGUF, ties to the left, byte
fallback) and checked against HF's tokenizer of lm-f32.gguf on every chunk.

llama.cpp's graph (tools/mtmd/models/llava.cpp, clip_graph_llava::build, and clip.cpp,
clip_image_batch_encode's inputs for PROJECTOR_TYPE_MLP) differs from HF's LLaVA in two ways
that are reported upstream (ggml-org/llama.cpp issues #25814 and #25817, closed as stale, with
PRs #25844 / #25845 unmerged; the sdist's code has both):
- the class embedding is concatenated after the patches (ggml_concat(inp, class_embedding, 1))
  while "positions" is 0..n_patches and "patches" is 1..n_patches: each patch gets the next
  one's position embedding, the CLS token gets the last, patch 0's output is dropped and the
  CLS output becomes the last image token;
- it runs il < n_layer - 1 layers, n_layer being clip.vision.block_count, which the legacy
  converter already set to num_hidden_layers - 1: one layer fewer than HF's
  vision_feature_layer -2 (here 1 layer, not 2). The file's last stored layer (v.blk.1) is
  loaded and never run.
- also, the projector's GELU is ggml_gelu: the tanh approximation, on the CPU through an f16
  table (input and output rounded to f16), where HF's "gelu" is the exact erf one.
image_features_llamacpp_graph / greedy_llamacpp_graph are a torch simulation of that graph with
mmproj-f32.gguf's weights (f32 arithmetic, the f16 GELU table emulated; not a llama.cpp run),
to show what a host copying llama.cpp's graph would compute; everything else here is HF's
model. The simulation, set to HF's order and layer count with the erf GELU, reproduces HF's
image features (checked).

Needs the pinned venv (torch 2.15.0, transformers 5.24.0, gguf 0.19.0, pillow 13.0.0,
safetensors) and network access once for the transformers 4.57 install. Deterministic; the
outputs are committed and tests never run this script.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save, save_file
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCE = os.path.join(ROOT, "tests", "data", "tiny-llava")
DEST = os.path.join(ROOT, "tests", "data", "tiny-llava-gguf")
TF4 = os.path.expanduser("~/.cache/visattn/transformers-4.57")
TF4_PINS = ["transformers==4.57.6", "tokenizers==0.22.2", "huggingface_hub==0.36.2"]
CLIP_DIR_NAME = "tiny-llava-clip"
QUESTION = "What is in the picture?"
HF_PROMPT = "USER: <image>\n" + QUESTION + " ASSISTANT:"
MARKER = "<__media__>"
LLAMA_PROMPT = HF_PROMPT.replace("<image>", MARKER)
CLI_VICUNA_PROMPT = "USER: " + MARKER + QUESTION + "\n" + "ASSISTANT:"
NEW_TOKENS = 8
# The converter's defaults (convert_image_encoder_to_gguf.py), used with --clip-model-is-vision.
CONVERTER_MEAN = [0.48145466, 0.4578275, 0.40821073]
CONVERTER_STD = [0.26862954, 0.26130258, 0.27577711]


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)


def ensure_transformers4():
    if os.path.isdir(os.path.join(TF4, "transformers-4.57.6.dist-info")):
        return
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", TF4] + TF4_PINS)


def picture():
    """28 x 28 RGB: a diagonal gradient, a disc, a square and a line; every channel varies."""
    y, x = np.mgrid[0:28, 0:28].astype(np.float64)
    r = 30 + 7 * x
    g = 40 + 5 * y + 2 * x
    b = 200 - 4 * x - 3 * y
    img = np.stack([r, g, b], axis=-1)
    disc = (x - 18.5) ** 2 + (y - 9.5) ** 2 <= 5.2**2
    img[disc] = [250, 220, 30]
    square = (x >= 3) & (x <= 11) & (y >= 15) & (y <= 23)
    img[square] = [20, 90, 160]
    line = np.abs(y - (27 - x)) < 0.8
    img[line] = [255, 255, 255]
    img[14, 14] = [0, 0, 0]
    return Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8), "RGB")


def hf_to_gguf_name(name):
    """convert_image_encoder_to_gguf.py's get_tensor_name, from the LLaVA folder's names."""
    if name.startswith("multi_modal_projector"):
        return name.replace("multi_modal_projector", "mm").replace("linear_1", "0").replace("linear_2", "2")
    name = name.replace("vision_tower.", "vision_model.", 1)
    for a, b in [
        ("vision_model", "v"),
        ("encoder.layers", "blk"),
        ("embeddings.", ""),
        ("_proj", ""),
        ("self_attn.", "attn_"),
        ("layer_norm", "ln"),
        ("layernorm", "ln"),
        ("mlp.fc1", "ffn_down"),
        ("mlp.fc2", "ffn_up"),
        ("embedding", "embd"),
        ("final", "post"),
        ("layrnorm", "ln"),
    ]:
        name = name.replace(a, b)
    return name


def make_mmproj(llama_cpp, tmp):
    llava = os.path.join(tmp, "llava")
    shutil.copytree(SOURCE, llava)
    run([sys.executable, os.path.join(llama_cpp, "tools", "mtmd", "legacy-models", "llava_surgery_v2.py"), "-C", "-m", llava])
    clip = torch.load(os.path.join(llava, "llava.clip"), map_location="cpu")
    projector = torch.load(os.path.join(llava, "llava.projector"), map_location="cpu")
    print(f"surgery: llava.clip {len(clip)} tensors, llava.projector {sorted(projector)}")
    assert all(k.startswith("vision_tower.") for k in clip), sorted(clip)[:4]

    clip_dir = os.path.join(tmp, CLIP_DIR_NAME)
    os.makedirs(clip_dir)
    save_file(
        {k.replace("vision_tower.", "vision_model.", 1): v.contiguous() for k, v in clip.items()},
        os.path.join(clip_dir, "model.safetensors"),
        metadata={"format": "pt"},
    )
    with open(os.path.join(SOURCE, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    vision = dict(config["vision_config"], architectures=["CLIPVisionModel"])
    with open(os.path.join(clip_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(vision, f, indent=2)
    shutil.copy(os.path.join(SOURCE, "preprocessor_config.json"), clip_dir)
    with open(os.path.join(SOURCE, "preprocessor_config.json"), encoding="utf-8") as f:
        pre = json.load(f)
    assert pre["image_mean"] == CONVERTER_MEAN and pre["image_std"] == CONVERTER_STD, "pass --image-mean/--image-std"

    ensure_transformers4()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TF4, os.path.join(llama_cpp, "gguf-py"), os.environ.get("PYTHONPATH", "")]))
    convert = os.path.join(llama_cpp, "tools", "mtmd", "legacy-models", "convert_image_encoder_to_gguf.py")
    out = {}
    for kind, flags in [("f32", ["--use-f32"]), ("f16", [])]:
        out_dir = os.path.join(tmp, "out-" + kind)
        run(
            [sys.executable, convert, "-m", clip_dir, "--llava-projector", os.path.join(llava, "llava.projector"),
             "--output-dir", out_dir, "--clip-model-is-vision"] + flags,
            env=env,
        )
        dest = os.path.join(DEST, f"mmproj-{kind}.gguf")
        shutil.copy(os.path.join(out_dir, f"mmproj-model-{kind}.gguf"), dest)
        out[kind] = dest
    return out


def read_gguf(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        meta[key] = field.contents()
    tensors = {}
    for t in reader.tensors:
        data = np.array(t.data)
        tensors[t.name] = (t.tensor_type.name, [int(n) for n in t.shape], data)
    return meta, tensors


def check_mmproj(path, state):
    """Every tensor of the file is the HF weight of the same name, cast to the file's type; and
    which HF weights it leaves out."""
    meta, tensors = read_gguf(path)
    names = {hf_to_gguf_name(k): k for k in state if k.startswith(("vision_tower.", "multi_modal_projector."))}
    weights = {}
    for name, (ty, ne, data) in tensors.items():
        hf = state[names[name]]
        dtype = {"F32": np.float32, "F16": np.float16}[ty]
        want = hf.numpy().astype(dtype)
        got = data.reshape(want.shape)
        assert np.array_equal(got, want), f"{name} differs from {names[name]}"
        weights[names[name]] = torch.from_numpy(got.astype(np.float32))
    missing = sorted(set(names) - set(tensors))
    return meta, tensors, weights, missing


def gguf_dump(llama_cpp, path):
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(
        [sys.executable, os.path.join(llama_cpp, "gguf-py", "gguf", "scripts", "gguf_dump.py"), path],
        env=env, check=True, capture_output=True, text=True,
    )
    print(res.stdout)


class SpmTokenizer:
    """llama.cpp's SPM tokenizer (src/llama-vocab.cpp: llm_tokenizer_spm_session and the
    LLAMA_VOCAB_TYPE_SPM branch of llama_vocab::impl::tokenize) for plain text fragments, with
    add_special = false: a space prepended (add_space_prefix), spaces escaped to U+2581, bigrams
    merged by the vocabulary's score (the highest first, ties to the leftmost), symbols that are
    no token resegmented through their merges or written as <0xXX> bytes."""

    def __init__(self, gguf_path):
        meta, _ = read_gguf(gguf_path)
        assert meta["tokenizer.ggml.model"] == "llama"
        self.add_space_prefix = meta.get("tokenizer.ggml.add_space_prefix", True)
        self.tokens = meta["tokenizer.ggml.tokens"]
        self.scores = meta["tokenizer.ggml.scores"]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.bos = meta["tokenizer.ggml.bos_token_id"]
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", True)

    def encode(self, text):
        if self.add_space_prefix:
            text = " " + text
        data = text.replace(" ", "\u2581").encode("utf-8")
        # utf-8 characters as symbols: [start, length, prev, next]
        syms, offs = [], 0
        while offs < len(data):
            c = data[offs]
            n = 1 if c < 0x80 else 2 if c >> 5 == 6 else 3 if c >> 4 == 14 else 4
            n = min(n, len(data) - offs)
            syms.append([offs, n, len(syms) - 1, -1])
            offs += n
        for i in range(len(syms) - 1):
            syms[i][3] = i + 1
        queue, rev = [], {}

        def text_of(i, n=None):
            return data[syms[i][0] : syms[i][0] + (syms[i][1] if n is None else n)]

        def add_bigram(left, right):
            if left == -1 or right == -1:
                return
            piece = data[syms[left][0] : syms[left][0] + syms[left][1] + syms[right][1]]
            tid = self.ids.get(piece.decode("utf-8", "surrogateescape"))
            if tid is None:
                return
            queue.append((self.scores[tid], left, right, len(piece)))
            rev[piece] = (left, right)

        for i in range(1, len(syms)):
            add_bigram(i - 1, i)
        while queue:
            best = max(range(len(queue)), key=lambda k: (queue[k][0], -queue[k][1]))
            _, left, right, size = queue.pop(best)
            if syms[left][1] == 0 or syms[right][1] == 0 or syms[left][1] + syms[right][1] != size:
                continue
            syms[left][1] += syms[right][1]
            syms[right][1] = 0
            syms[left][3] = syms[right][3]
            if syms[right][3] >= 0:
                syms[syms[right][3]][2] = left
            add_bigram(syms[left][2], left)
            add_bigram(left, syms[left][3])
        out = []

        def resegment(i):
            piece = text_of(i)
            tid = self.ids.get(piece.decode("utf-8", "surrogateescape"))
            if tid is not None:
                out.append(tid)
            elif piece in rev:
                resegment(rev[piece][0])
                resegment(rev[piece][1])
            else:
                out.extend(self.ids[f"<0x{b:02X}>"] for b in piece)

        i = 0 if syms else -1
        while i != -1:
            resegment(i)
            i = syms[i][3]
        return out

    def mtmd_chunks(self, prompt):
        """mtmd_tokenizer::tokenize with add_special = true: text parts around MARKER, tokenized
        one by one; BOS at the front of the first text chunk."""
        parts = prompt.split(MARKER)
        assert len(parts) == 2, "one image"
        before = self.encode(parts[0]) if parts[0] else []
        after = self.encode(parts[1]) if parts[1] else []
        if self.add_bos:
            before = [self.bos] + before
        return before, after


def clip_features(w, pixel_values, cls_first, n_layers, gelu, heads, eps):
    """The CLIP tower + LLaVA projector from a weight dict of HF names (the tiny's vision_tower.*
    and multi_modal_projector.*), in f32. cls_first / n_layers / gelu switch between HF's model
    (True, vision_feature_layer -2 layers, erf) and llama.cpp's graph (False, block_count - 1,
    'ggml': tanh through an f16 table)."""
    v = "vision_tower."
    x = torch.nn.functional.conv2d(pixel_values[None], w[v + "embeddings.patch_embedding.weight"], stride=w[v + "embeddings.patch_embedding.weight"].shape[-1])
    x = x.flatten(2)[0].T  # [n_patches, d], row-major patches
    cls = w[v + "embeddings.class_embedding"][None]
    x = torch.cat([cls, x]) if cls_first else torch.cat([x, cls])
    x = x + w[v + "embeddings.position_embedding.weight"][: x.shape[0]]
    x = torch.nn.functional.layer_norm(x, x.shape[-1:], w[v + "pre_layrnorm.weight"], w[v + "pre_layrnorm.bias"], eps)
    n, d = x.shape
    hd = d // heads
    for il in range(n_layers):
        p = f"{v}encoder.layers.{il}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        h = torch.nn.functional.layer_norm(x, (d,), w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj").view(n, heads, hd).transpose(0, 1)
        k = lin(h, "self_attn.k_proj").view(n, heads, hd).transpose(0, 1)
        vv = lin(h, "self_attn.v_proj").view(n, heads, hd).transpose(0, 1)
        att = torch.softmax(q @ k.transpose(1, 2) / hd**0.5, dim=-1) @ vv
        x = x + lin(att.transpose(0, 1).reshape(n, d), "self_attn.out_proj")
        h = torch.nn.functional.layer_norm(x, (d,), w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], eps)
        h = lin(h, "mlp.fc1")
        h = h * torch.sigmoid(1.702 * h)
        x = x + lin(h, "mlp.fc2")
    x = x[1:]  # HF: drop CLS (row 0); llama.cpp: "patches" = rows 1..n_patches
    m = "multi_modal_projector."
    h = x @ w[m + "linear_1.weight"].T + w[m + "linear_1.bias"]
    if gelu == "erf":
        h = torch.nn.functional.gelu(h)
    else:
        t = h.half().float()
        g = torch.nn.functional.gelu(t, approximate="tanh").half().float()
        h = torch.where(h <= -10, torch.zeros_like(h), torch.where(h >= 10, h, g))
    return h @ w[m + "linear_2.weight"].T + w[m + "linear_2.bias"]


def gguf_lm_weights(path, text_config):
    """The language model of an LM GGUF (llama arch) as HF LlamaForCausalLM weights, dequantized
    with gguf-py (gguf.quants.dequantize: Q8_0 -> f32, the same call transformers' GGUF loader
    makes) and with the converter's q/k row permutation (convert_hf_to_gguf.py,
    LlamaModel.permute: rows grouped [n_head, 2, head_dim / 2] -> [n_head, head_dim / 2, 2], for
    llama.cpp's interleaved RoPE) undone. Keys as in LlamaForCausalLM's state dict."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    def unpermute(w, n_head):
        return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    blk = {
        "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    top = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    out, types = {}, {}
    for t in GGUFReader(path).tensors:
        stem, suffix = t.name.rsplit(".", 1)
        parts = stem.split(".")
        name = f"model.layers.{parts[1]}.{blk[parts[2]]}" if parts[0] == "blk" else top[stem]
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(n) for n in reversed(t.shape)])
        if stem.endswith("attn_q"):
            w = unpermute(w, text_config.num_attention_heads)
        elif stem.endswith("attn_k"):
            w = unpermute(w, text_config.num_key_value_heads)
        out[f"{name}.{suffix}"] = torch.from_numpy(np.ascontiguousarray(w))
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return out, types


def save_sorted(tensors, path, metadata):
    """safetensors.torch.save_file, with the header's keys sorted: its metadata is a hash map in
    safetensors' Rust core, written in a different order on each run."""
    buf = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.dumps(json.loads(buf[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + buf[8 + n :])


def main():
    llama_cpp = os.path.abspath(sys.argv[1])
    os.makedirs(DEST, exist_ok=True)
    torch.manual_seed(0)

    pic_path = os.path.join(DEST, "picture28.png")
    picture().save(pic_path)

    model = LlavaForConditionalGeneration.from_pretrained(SOURCE, dtype=torch.float32)
    model.eval()
    state = {k.removeprefix("model."): v.detach().clone() for k, v in model.state_dict().items()}
    state = {k: v for k, v in state.items() if k.startswith(("vision_tower.", "multi_modal_projector."))}
    vcfg = model.config.vision_config

    with tempfile.TemporaryDirectory() as tmp:
        files = make_mmproj(llama_cpp, tmp)

    sys.path.insert(0, os.path.join(llama_cpp, "gguf-py"))
    mmproj = {}
    for kind, path in files.items():
        print(f"==== gguf_dump.py {os.path.relpath(path, ROOT)} ====")
        gguf_dump(llama_cpp, path)
        meta, tensors, weights, missing = check_mmproj(path, state)
        print(f"{os.path.basename(path)}: every tensor equals the HF weight cast to its type; not in the file: {missing}")
        mmproj[kind] = (meta, weights)
    meta = mmproj["f32"][0]
    assert meta["clip.vision.block_count"] == vcfg.num_hidden_layers - 1
    assert "clip.vision.feature_layer" not in meta

    # (a) pixels
    img = Image.open(pic_path)
    assert img.mode == "RGB" and img.size == (vcfg.image_size, vcfg.image_size)
    # The folder has no processor_config.json: LlavaProcessor gets what llava-hf's LLaVA-1.5
    # processor_config.json says (patch size, strategy "default", num_additional_image_tokens 1
    # for the CLS token that "default" then drops), which expands <image> to (28 / 7)^2 = 16.
    processor = AutoProcessor.from_pretrained(
        SOURCE,
        patch_size=vcfg.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=1,
    )
    pixel_values = processor.image_processor(images=img, return_tensors="pt").pixel_values[0].float()
    u8 = np.asarray(img, dtype=np.uint8).astype(np.float32)
    mean = np.array(meta["clip.vision.image_mean"], dtype=np.float32)
    std = np.array(meta["clip.vision.image_std"], dtype=np.float32)
    llamacpp_pixels = ((u8 / np.float32(255.0)) - mean) / std  # clip_image_f32::from_u8 + normalize, f32
    pixel_values_llamacpp = torch.from_numpy(np.ascontiguousarray(llamacpp_pixels.transpose(2, 0, 1)))
    pix_diff = (pixel_values - pixel_values_llamacpp).abs().max().item()
    print(f"pixel_values: HF vs llama.cpp's arithmetic max |diff| {pix_diff:.3g} "
          f"({(pixel_values != pixel_values_llamacpp).sum().item()} of {pixel_values.numel()} differ)")
    assert torch.equal(pixel_values, pixel_values_llamacpp)

    # token layouts
    spm = SpmTokenizer(os.path.join(DEST, "lm-f32.gguf"))
    gguf_tok = AutoTokenizer.from_pretrained(DEST, gguf_file="lm-f32.gguf")
    ids_before, ids_after = spm.mtmd_chunks(LLAMA_PROMPT)
    cli_before, cli_after = spm.mtmd_chunks(CLI_VICUNA_PROMPT)
    for part in LLAMA_PROMPT.split(MARKER) + CLI_VICUNA_PROMPT.split(MARKER) + ["a cat sits on a red mat", "two  spaces\n\nend"]:
        # HF's tokenizer of the GGUF also prepends the space (a Metaspace, prepend "first").
        hf = gguf_tok.encode(part, add_special_tokens=False)
        assert spm.encode(part) == hf, (part, spm.encode(part), hf)
    # Where they part: text that already starts with a space. llama.cpp prepends another one
    # unconditionally; HF's Metaspace does not prepend to text starting with U+2581.
    lead = " two  spaces"
    print(f"{lead!r}: llama.cpp {spm.encode(lead)}, HF's tokenizer of the GGUF {gguf_tok.encode(lead, add_special_tokens=False)}")
    image_token = model.config.image_token_index
    n_img = (vcfg.image_size // vcfg.patch_size) ** 2
    prompt_ids = ids_before + [image_token] * n_img + ids_after
    hf_ids = processor(text=HF_PROMPT, images=img, return_tensors="pt").input_ids[0].tolist()
    assert hf_ids.count(image_token) == n_img, hf_ids
    assert hf_ids == prompt_ids, "HF's processor and llama.cpp's chunks differ"
    show = lambda ids: [spm.tokens[i] for i in ids]
    print(f"llama.cpp chunks: {ids_before} {show(ids_before)} | image x{n_img} | {ids_after} {show(ids_after)}")
    print(f"HF processor:     {hf_ids} {show(hf_ids)}")
    print(f"mtmd-cli vicuna:  {cli_before} {show(cli_before)} | image x{n_img} | {cli_after} {show(cli_after)}")

    embed = model.get_input_embeddings()
    img_pos = torch.tensor(prompt_ids) == image_token

    def answer(features):
        with torch.no_grad():
            emb = embed(torch.tensor(prompt_ids)).clone()
            emb[img_pos] = features
            logits = model(inputs_embeds=emb[None]).logits[0].float()
            seq, greedy, margin = emb, [], float("inf")
            for _ in range(NEW_TOKENS):
                last = model(inputs_embeds=seq[None]).logits[0, -1].float()
                top = last.topk(2).values
                margin = min(margin, (top[0] - top[1]).item())
                tok = int(last.argmax())
                greedy.append(tok)
                seq = torch.cat([seq, embed(torch.tensor([tok]))])
        return logits, torch.tensor(greedy, dtype=torch.int64), margin

    with torch.no_grad():
        features = model.model.get_image_features(pixel_values=pixel_values[None]).pooler_output[0].float()
        heads, eps = vcfg.num_attention_heads, vcfg.layer_norm_eps
        n_hf = vcfg.num_hidden_layers + model.config.vision_feature_layer + 1
        sim = clip_features(state, pixel_values, True, n_hf, "erf", heads, eps)
        print(f"image features {tuple(features.shape)}; re-implementation vs HF max |diff| {(sim - features).abs().max().item():.3g}")
        assert (sim - features).abs().max().item() < 1e-5
    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "pixel_values_llamacpp": pixel_values_llamacpp,
        "image_features": features.contiguous(),
        "ids_before": torch.tensor(ids_before, dtype=torch.int64),
        "ids_after": torch.tensor(ids_after, dtype=torch.int64),
        "prompt_ids": torch.tensor(prompt_ids, dtype=torch.int64),
        "hf_processor_ids": torch.tensor(hf_ids, dtype=torch.int64),
        "cli_vicuna_ids_before": torch.tensor(cli_before, dtype=torch.int64),
        "cli_vicuna_ids_after": torch.tensor(cli_after, dtype=torch.int64),
    }
    answers, margins = {}, {}
    logits, greedy, margin = answer(features)
    margins["margin"] = margin
    tensors.update(logits=logits.contiguous(), greedy=greedy)
    answers["answer"] = gguf_tok.decode(greedy)
    print(f"HF weights: {len(prompt_ids)} positions, max |logit| {logits.abs().max().item():.4f}, greedy {greedy.tolist()} "
          f"{answers['answer']!r}, smallest greedy margin {margin:.4g}")

    for kind, (_, weights) in mmproj.items():
        w = dict(state, **weights)
        with torch.no_grad():
            # HF's model with the file's weights (its vision tower and projector replaced).
            m_state = {("model." + k): v for k, v in weights.items()}
            saved = {k: v.detach().clone() for k, v in model.state_dict().items() if k in m_state}
            model.load_state_dict(m_state, strict=False)
            f = model.model.get_image_features(pixel_values=pixel_values[None]).pooler_output[0].float()
            model.load_state_dict(saved, strict=False)
            check = clip_features(w, pixel_values, True, n_hf, "erf", heads, eps)
            assert (check - f).abs().max().item() < 1e-5
        lg, gr, mg = answer(f)
        tensors[f"image_features_mmproj_{kind}"] = f.contiguous()
        tensors[f"logits_mmproj_{kind}"] = lg.contiguous()
        tensors[f"greedy_mmproj_{kind}"] = gr
        answers[f"answer_mmproj_{kind}"] = gguf_tok.decode(gr)
        margins[f"margin_mmproj_{kind}"] = mg
        print(f"mmproj-{kind} weights: features max |diff| vs HF {(f - features).abs().max().item():.3g}, logits max |diff| "
              f"{(lg - logits).abs().max().item():.3g}, greedy {gr.tolist()} {answers[f'answer_mmproj_{kind}']!r}, margin {mg:.4g}")

    # llama.cpp's graph, simulated with mmproj-f32.gguf's weights.
    w = dict(state, **mmproj["f32"][1])
    with torch.no_grad():
        ggml = clip_features(w, pixel_values_llamacpp, False, meta["clip.vision.block_count"] - 1, "ggml", heads, eps)
    lg, gr, mg = answer(ggml)
    tensors["image_features_llamacpp_graph"] = ggml.contiguous()
    tensors["greedy_llamacpp_graph"] = gr
    answers["answer_llamacpp_graph"] = gguf_tok.decode(gr)
    margins["margin_llamacpp_graph"] = mg
    cos = torch.nn.functional.cosine_similarity(ggml, tensors["image_features_mmproj_f32"], dim=-1)
    print(f"llama.cpp graph (simulated): features max |diff| vs HF (same weights) "
          f"{(ggml - tensors['image_features_mmproj_f32']).abs().max().item():.3g}, per-row cosine "
          f"min {cos.min().item():.3f} mean {cos.mean().item():.3f}; last-prompt-position logits max |diff| "
          f"{(lg[-1] - tensors['logits_mmproj_f32'][-1]).abs().max().item():.3g}; greedy {gr.tolist()} {answers['answer_llamacpp_graph']!r}")

    # The quantized pair: HF's LLaVA holding exactly lm-q8_0.gguf's language model (dequantized)
    # and mmproj-f16.gguf's tower and projector.
    tcfg = model.config.text_config
    q8, q8_types = gguf_lm_weights(os.path.join(DEST, "lm-q8_0.gguf"), tcfg)
    hf_q8 = transformers.AutoModelForCausalLM.from_pretrained(DEST, gguf_file="lm-q8_0.gguf", dtype=torch.float32).state_dict()
    assert sorted(hf_q8) == sorted(q8), (sorted(set(hf_q8) ^ set(q8)))
    for k, v in q8.items():
        assert torch.equal(hf_q8[k], v), f"{k}: transformers' GGUF loader and gguf-py's dequantization differ"
    lm_keys = {k: ("lm_head.weight" if k == "lm_head.weight" else "model.language_model." + k.removeprefix("model.")) for k in q8}
    full = model.state_dict()
    assert all(full[lm_keys[k]].shape == v.shape for k, v in q8.items())
    assert sum(1 for k in full if not k.startswith(("model.vision_tower.", "model.multi_modal_projector."))) == len(q8)
    q8_err = max((full[lm_keys[k]] - v).abs().max().item() for k, v in q8.items())
    print(f"lm-q8_0.gguf: {len(q8)} tensors {q8_types}, equal to transformers' GGUF loader's; max |weight - f32 weight| {q8_err:.3g}")
    with torch.no_grad():
        m_state = {lm_keys[k]: v for k, v in q8.items()}
        m_state.update({("model." + k): v for k, v in mmproj["f16"][1].items()})
        saved = {k: v.detach().clone() for k, v in model.state_dict().items() if k in m_state}
        model.load_state_dict(m_state, strict=False)
        f = model.model.get_image_features(pixel_values=pixel_values[None]).pooler_output[0].float()
    lg, gr, mg = answer(f)
    with torch.no_grad():
        model.load_state_dict(saved, strict=False)
    assert torch.equal(f, tensors["image_features_mmproj_f16"])
    tensors["image_features_q8_0_mmproj_f16"] = f.contiguous()
    tensors["logits_q8_0_mmproj_f16"] = lg.contiguous()
    tensors["greedy_q8_0_mmproj_f16"] = gr
    answers["answer_q8_0_mmproj_f16"] = gguf_tok.decode(gr)
    margins["margin_q8_0_mmproj_f16"] = mg
    print(f"lm-q8_0 + mmproj-f16 weights: logits max |diff| vs the f32 LM's (same mmproj) "
          f"{(lg - tensors['logits_mmproj_f16']).abs().max().item():.3g}, vs HF's weights {(lg - logits).abs().max().item():.3g}; "
          f"greedy {gr.tolist()} {answers['answer_q8_0_mmproj_f16']!r}, margin {mg:.4g}")

    meta_out = dict(
        answers,
        **{k: repr(v) for k, v in margins.items()},
        hf_prompt=HF_PROMPT,
        llamacpp_prompt=LLAMA_PROMPT,
        cli_vicuna_prompt=CLI_VICUNA_PROMPT,
        image_token=str(image_token),
        n_image_tokens=str(n_img),
        transformers=transformers.__version__,
        torch=torch.__version__,
        llama_cpp="llama_cpp_python-0.3.36 sdist, vendor/llama.cpp",
    )
    save_sorted(tensors, os.path.join(DEST, "expected-mmproj.safetensors"), meta_out)
    for name in ["mmproj-f32.gguf", "mmproj-f16.gguf", "picture28.png", "expected-mmproj.safetensors"]:
        print(f"wrote {name}: {os.path.getsize(os.path.join(DEST, name))} bytes")


if __name__ == "__main__":
    main()
