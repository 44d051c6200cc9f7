#!/usr/bin/env python3
"""Builds the tiny LLaVA-1.5 test model: a randomly initialised LlavaForConditionalGeneration
(small CLIP vision tower + small LLaMA) with HF transformers, saved in HF's folder layout
(config.json, sharded *.safetensors + index, tokenizer.json, preprocessor_config.json), plus
what the Rust host must reproduce: HF's preprocessing of a fixed picture, the prompt's token
ids, the logits of every prompt position (VAR off) and the greedy continuation.

    python3 tools/make_tiny_llava.py tests/data/tiny-llava

Needs torch, transformers and pillow (tested with torch 2.15.0, transformers 5.24.0,
pillow 13.0.0). Deterministic: a fixed seed, a picture drawn from a formula, a tokenizer
trained here on a fixed corpus. The output is committed; tests never run this script.
"""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlamaTokenizerFast,
)

PROMPT = "What is in the picture?"
TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"
NEW_TOKENS = 12

CORPUS = [
    "a cat sits on a red mat near the window",
    "the dog runs across the green field",
    "what is in the picture? there is a small house with a blue door",
    "USER: describe the image ASSISTANT: a bird flies over the sea",
    "two people walk along the road under a grey sky",
    "the picture shows a bowl of fruit on a wooden table",
]


def tokenizer():
    """A LLaMA-style tokenizer: SentencePiece-like BPE over metaspace pieces with byte
    fallback, <s> added in front by the post-processor, <image> an added special token."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>"]
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials + bytes_, show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.add_special_tokens(["<image>", "<pad>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return LlamaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", add_bos_token=True
    )


def picture(size=71, seed=3):
    """A deterministic RGB picture, not square, so resize and crop both matter."""
    h, w = size, size + 23
    y, x = np.mgrid[0:h, 0:w]
    r = (127 + 120 * np.sin(x / 7.0 + seed)).astype(np.uint8)
    g = (127 + 120 * np.cos(y / 5.0)).astype(np.uint8)
    b = ((x * y) % 251).astype(np.uint8)
    return Image.fromarray(np.stack([r, g, b], axis=-1), "RGB")


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    tok = tokenizer()
    image_token = tok.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        image_size=28, patch_size=7, projection_dim=32, hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    cfg = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token,
        projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=16,
    )
    model = LlavaForConditionalGeneration(cfg).eval()
    # Random init is small; widen it so the logits are not all near zero and greedy choices
    # are far from ties.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0 if p.dim() > 1 else 1.0)
        # The answer in words: byte and special tokens get zero logits (</s> included, so the
        # greedy answer runs its full length), the word pieces' margins are widened so f16
        # weights keep the same greedy choices.
        head = model.get_output_embeddings().weight
        for i in range(len(tok)):
            piece = tok.convert_ids_to_tokens(i)
            head[i] *= 0.0 if piece.startswith("<") and piece.endswith(">") else 4.0
    model.save_pretrained(out, safe_serialization=True, max_shard_size="300KB")
    tok.save_pretrained(out)
    proc = CLIPImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, do_center_crop=True,
        resample=3, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    proc.save_pretrained(out)

    img = picture()
    img.save(os.path.join(out, "picture.png"))
    pixel_values = proc(images=img, return_tensors="pt")["pixel_values"]
    text_ids = tok(TEMPLATE.format(prompt=PROMPT), return_tensors="pt")["input_ids"][0]
    patches = (vision.image_size // vision.patch_size) ** 2
    ids = []
    for t in text_ids.tolist():
        ids.extend([image_token] * patches if t == image_token else [t])
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=pixel_values).logits[0]
        generated = model.generate(
            input_ids=input_ids, pixel_values=pixel_values, max_new_tokens=NEW_TOKENS, do_sample=False
        )[0, input_ids.shape[1]:]
    save_file(
        {
            "pixel_values": pixel_values[0].contiguous().float(),
            "text_ids": text_ids.to(torch.int64).contiguous(),
            "input_ids": input_ids[0].to(torch.int64).contiguous(),
            "logits": logits.contiguous().float(),
            "generated": generated.to(torch.int64).contiguous(),
        },
        os.path.join(out, "expected.safetensors"),
        metadata={
            "prompt": PROMPT,
            "template": TEMPLATE,
            "answer": tok.decode(generated, skip_special_tokens=True),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
    )
    print(json.dumps({"tokens": len(ids), "vocab": len(tok), "answer": tok.decode(generated, skip_special_tokens=True)}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny-llava")
