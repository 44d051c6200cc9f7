#!/usr/bin/env python3
"""Converts the tiny LLaVA's language model (tests/data/tiny-llava) to GGUF with llama.cpp's own
converter, and records what HF transformers makes of the two files, for tests/gguf_tokenizer.rs
and tests/gguf_tiny.rs:

    python3 tools/make_tiny_llava_gguf.py path/to/llama.cpp

(path/to/llama.cpp: the `vendor/llama.cpp` of the PyPI sdist llama_cpp_python-0.3.36, whose
convert_hf_to_gguf.py and gguf-py are used together: its gguf-py goes first on PYTHONPATH.)

1. The language model of the LlavaForConditionalGeneration is saved as a LlamaForCausalLM folder
   in a temporary directory, with the tokenizer files a LLaMA / Vicuna folder carries:
   tokenizer.json, tokenizer_config.json (with `added_tokens_decoder` for <image> and <pad>, as
   llava-hf's folders have) and a SentencePiece `tokenizer.model` written here from the fixture's
   BPE (same pieces and ids; a merged piece scores -(its merge's rank), a character piece below
   every merged one, bytes and control pieces 0, as in LLaMA's tokenizer.model). Without a
   tokenizer.model the converter takes the vocabulary from tokenizer.json and gives every token
   the score -1000, which leaves nothing of the merge order in the file; LLaVA-1.5's Vicuna files
   carry real scores, and those are what the GGUF `llama` tokenizer derives its merges from.
2. convert_hf_to_gguf.py writes tests/data/tiny-llava-gguf/lm-f32.gguf (--outtype f32) and
   lm-q8_0.gguf (--outtype q8_0: the 2-D weights in Q8_0, norms in F32).
3. HF transformers loads each file (AutoModelForCausalLM / AutoTokenizer.from_pretrained(dir,
   gguf_file=...), dequantized to f32) and the script writes tests/data/tiny-llava-gguf/
   expected.safetensors: `prompt_ids` (i64), `logits_f32` / `logits_q8_0` (f32 [T, vocab], every
   prompt position), `greedy_f32` / `greedy_q8_0` (i64, NEW_TOKENS greedy tokens), and in the
   metadata `tokens` (JSON: the ids, with add_special_tokens, and the decodes of STRINGS; both
   files' tokenizers give the same, checked here) and the prompt and answers as text.

Needs the pinned venv's torch 2.15.0, transformers 5.24.0, gguf 0.19.0 and accelerate, plus
`sentencepiece` (0.2.3 here): the converter imports it before it looks for tokenizer.model, so it
fails without it even on a folder with only a tokenizer.json. Deterministic; the outputs are
committed and tests never run this script.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, LlavaForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCE = os.path.join(ROOT, "tests", "data", "tiny-llava")
DEST = os.path.join(ROOT, "tests", "data", "tiny-llava-gguf")
PROMPT = "USER: what is in the picture? ASSISTANT:"
NEW_TOKENS = 8
STRINGS = [
    "a cat sits on a red mat",
    " a cat sits on a red mat",
    "  two leading spaces",
    "trailing spaces   ",
    "a  b   c    d",
    "the picture shows a bowl of fruit",
    "What is in the picture?",
    "USER: describe the image ASSISTANT:",
    "tabs\tand\nnewlines\n\n",
    "\n",
    "",
    " ",
    "1234567890 and 3.14159",
    "naïve café résumé",
    "Straße, Größe",
    "日本語のテキスト",
    "Привет, мир!",
    "emoji 🙂🚀👩‍💻",
    "def f(x):\n    return x ** 2  # square",
    'fn main() { println!("{}", 1 + 2); }',
    "<s>",
    "</s>",
    "<unk>",
    "<s>USER: hi</s>",
    "text<s>more",
    " <s> spaced </s> ",
    "<image>\nwhat is this?",
    "<pad><pad>",
    "<0x41> is a byte token's name",
    "▁already▁metaspace",
    "\u00a0non-breaking\u2009thin space",
    "zero\u200bwidth",
    "x" * 40,
    "the dog runs across the green field. " * 3,
]


def tokenizer_model(tok_json):
    """A SentencePiece BPE ModelProto (serialized by hand: the venv has no protobuf package) with
    the fixture's pieces and ids, scores from its merge order."""
    model = tok_json["model"]
    vocab = model["vocab"]
    merges = [m if isinstance(m, list) else m.split(" ") for m in model["merges"]]
    rank = {a + b: r for r, (a, b) in reversed(list(enumerate(merges)))}
    specials = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    pieces = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in pieces] == list(range(len(pieces))), "the model's ids are 0..n"
    chars = 0

    def varint(n):
        out = b""
        while True:
            b, n = n & 0x7F, n >> 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def field(num, wire, payload):
        key = varint(num << 3 | wire)
        if wire == 0:
            return key + varint(payload)
        if wire == 5:
            return key + struct.pack("<f", payload)
        return key + varint(len(payload)) + payload

    proto = b""
    for piece, i in pieces:
        if piece == "<unk>":
            kind, score = 2, 0.0  # UNKNOWN
        elif piece in ("<s>", "</s>"):
            kind, score = 3, 0.0  # CONTROL
        elif piece.startswith("<0x") and len(piece) == 6:
            kind, score = 6, 0.0  # BYTE
        elif piece in rank:
            kind, score = 1, -float(rank[piece])
        else:
            kind, score = 1, -float(len(merges) + chars)
            chars += 1
        assert piece not in specials or specials[piece] == i
        proto += field(1, 2, field(1, 2, piece.encode()) + field(2, 5, score) + field(3, 0, kind))
    trainer = (
        field(3, 0, 2)  # model_type BPE
        + field(4, 0, len(pieces))
        + field(25, 0, 1)  # split_digits, as LLaMA's
        + field(26, 0, 1)  # allow_whitespace_only_pieces
        + field(35, 0, 1)  # byte_fallback
        + field(40, 0, 0)
        + field(41, 0, 1)
        + field(42, 0, 2)
        + field(43, 0, (1 << 64) - 1)  # pad_id -1
    )
    normalizer = field(1, 2, b"identity") + field(3, 0, 1) + field(4, 0, 0) + field(5, 0, 1)
    return proto + field(2, 2, trainer) + field(3, 2, normalizer)


def language_model_folder(dest):
    """The tiny LLaVA's LLaMA as a LlamaForCausalLM folder with LLaMA's tokenizer files."""
    llava = LlavaForConditionalGeneration.from_pretrained(SOURCE, dtype=torch.float32)
    lm = LlamaForCausalLM(llava.config.text_config)
    state = {"model." + k: v for k, v in llava.model.language_model.state_dict().items()}
    state["lm_head.weight"] = llava.lm_head.weight
    lm.load_state_dict(state, strict=True)
    lm.save_pretrained(dest)
    AutoTokenizer.from_pretrained(SOURCE).save_pretrained(dest)
    with open(os.path.join(dest, "tokenizer.json"), encoding="utf-8") as f:
        tok_json = json.load(f)
    with open(os.path.join(dest, "tokenizer.model"), "wb") as f:
        f.write(tokenizer_model(tok_json))
    config_path = os.path.join(dest, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["added_tokens_decoder"] = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in tok_json["added_tokens"]
        if t["id"] >= len(tok_json["model"]["vocab"])
    }
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    # The SentencePiece model says what the BPE says on the fixture's own kind of text.
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(dest, "tokenizer.model"))
    hf = AutoTokenizer.from_pretrained(SOURCE)
    for s in ["a cat sits on a red mat near the window", "what is in the picture?", PROMPT]:
        print(f"sentencepiece {sp.encode(s)} / tokenizer.json {hf.encode(s, add_special_tokens=False)}: {s!r}")
    return lm


def convert(llama_cpp, folder, outtype, dest):
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(
        [sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), folder, "--outtype", outtype, "--outfile", dest],
        env=env,
        check=True,
    )


def main():
    llama_cpp = sys.argv[1]
    os.makedirs(DEST, exist_ok=True)
    files = {"f32": "lm-f32.gguf", "q8_0": "lm-q8_0.gguf"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "tiny-llama")
        original = language_model_folder(folder)
        for outtype, name in files.items():
            convert(llama_cpp, folder, outtype, os.path.join(DEST, name))

    tensors, meta, tokens = {}, {}, None
    for outtype, name in files.items():
        tok = AutoTokenizer.from_pretrained(DEST, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(DEST, gguf_file=name, dtype=torch.float32)
        model.eval()
        recorded = [
            {
                "text": s,
                "ids": (ids := tok.encode(s, add_special_tokens=True)),
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            }
            for s in STRINGS
        ]
        if tokens is None:
            tokens = recorded
            backend = json.loads(tok.backend_tokenizer.to_str())
            print("HF's tokenizer of the GGUF:", {k: backend[k] for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")})
            print("  BPE:", {k: v for k, v in backend["model"].items() if k not in ("vocab", "merges")}, len(backend["model"]["merges"]), "merges")
        assert recorded == tokens, f"{name}'s tokenizer differs from lm-f32.gguf's"
        ids = torch.tensor([tok.encode(PROMPT)])
        with torch.no_grad():
            logits = model(ids).logits[0].float()
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
            if outtype == "f32":
                # The converter and HF's GGUF loader (q/k rows permuted there and back) lose nothing.
                reference = original(ids).logits[0].float()
                print(f"f32 GGUF vs the HF folder: max |logit difference| {(logits - reference).abs().max().item():.3g}")
            # How far each greedy step's best logit is above the second: what a host's rounding
            # must stay under to pick the same tokens.
            full = model(out).logits[0, ids.shape[1] - 1 : -1].float()
            top = full.topk(2, dim=-1).values
            margin = (top[:, 0] - top[:, 1]).min().item()
        greedy = out[0, ids.shape[1] :]
        tensors["prompt_ids"] = ids[0].to(torch.int64)
        tensors[f"logits_{outtype}"] = logits.contiguous()
        tensors[f"greedy_{outtype}"] = greedy.to(torch.int64).contiguous()
        meta[f"answer_{outtype}"] = tok.decode(greedy)
        print(
            f"{name}: {ids.shape[1]} prompt tokens, max |logit| {logits.abs().max().item():.4f}, "
            f"answer {greedy.tolist()} {tok.decode(greedy)!r}, smallest greedy margin {margin:.4g}"
        )
    meta.update(prompt=PROMPT, tokens=json.dumps(tokens, ensure_ascii=False), transformers=transformers.__version__)
    save_file(tensors, os.path.join(DEST, "expected.safetensors"), metadata=meta)
    print(f"wrote {DEST}: {', '.join(sorted(os.listdir(DEST)))}")


if __name__ == "__main__":
    main()
