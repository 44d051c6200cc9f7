#!/usr/bin/env python3
"""Builds the tiny LLaVA-1.5 test model: a randomly initialised LlavaForConditionalGeneration
(small CLIP vision tower + small LLaMA) with HF transformers, saved in HF's folder layout
(config.json, sharded *.safetensors + index, tokenizer.json, preprocessor_config.json), plus
what the Rust host must reproduce: HF's preprocessing of a fixed picture, the prompt's token
ids, the logits of every prompt position (VAR off) and the greedy continuation, once with the
weights as saved (f32) and once with every weight rounded to f16 (computed in f32, as a
host with f16 weights and f32 accumulation computes).

The random model gets what trained LLaMAs have and VAR works on (see plant_sinks): a
massive-activation dimension (SINK_DIM) on BOS and on the image patches where one projector
unit fires hardest, and attention heads whose queries find the tokens that carry it.

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
# The planted massive-activation dimension of the language model, and a feature every token
# carries (what lets queries find the sinks whatever the token), both as in Sun et al. 2024:
# a fixed dim, huge on BOS and on a few image patches.
SINK_DIM = 11
CONST_DIM = 37
# About 2.5x a random embedding's entries: enough for queries to read, too little to make
# every token alike.
CONST_VALUE = 0.15
# VAR's flags that find those sinks in a 64-wide model (phi <= sqrt(64) = 8).
VAR_FLAGS = ["--sink-dims", str(SINK_DIM), "--tau-rel", "0.5"]

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


def plant_sinks(model, bos, pixel_values, heads, head_dim):
    """Massive activations and the heads that attend to them, planted into a random model.

    - BOS's embedding carries a large value in SINK_DIM; projector row SINK_DIM reads the one
      mid unit that is most peaked over this picture's patches (centred on its median), so
      the few patches where it fires carry SINK_DIM too. The residual stream keeps it in
      every layer: those tokens are sinks (phi > tau) in layers 2..L-1.
    - Every token carries CONST_DIM (embedding column, projector bias), and in each layer the
      queries of heads 0..H-2 read it into the lowest RoPE frequency pair (dims hd/2 - 1 and
      hd - 1, which barely rotate over 128 positions) while the keys read SINK_DIM into the
      same pair: q.k is large for sink keys whatever the query, so those heads soak attention
      into the sinks, with strengths that differ per head. The last head is left plain.
    """
    lm = model.model.language_model
    projector = model.model.multi_modal_projector
    with torch.no_grad():
        emb = lm.embed_tokens.weight
        emb[:, CONST_DIM] = CONST_VALUE
        emb[bos, SINK_DIM] = 6.0
        seen = {}
        hook = projector.act.register_forward_hook(lambda m, i, o: seen.setdefault("mid", o.detach()[0]))
        model.model.get_image_features(pixel_values=pixel_values, vision_feature_layer=-2, vision_feature_select_strategy="default")
        hook.remove()
        mid = seen["mid"]  # [patches, mid]
        med = mid.median(dim=0).values
        spread = (mid - med).abs()
        peak = spread.max(dim=0).values / (spread.median(dim=0).values + 1e-3)
        unit = int(peak.argmax())
        w2 = projector.linear_2
        w2.weight[SINK_DIM] = 0.0
        w2.weight[CONST_DIM] = 0.0
        scale = 6.0 / float(spread[:, unit].max())
        w2.weight[SINK_DIM, unit] = scale
        w2.bias[SINK_DIM] = -scale * float(med[unit])
        w2.bias[CONST_DIM] = CONST_VALUE
        pair = (head_dim // 2 - 1, head_dim - 1)
        for layer in lm.layers:
            attn = layer.self_attn
            for h in range(heads - 1):
                gain = 1.5 * (1.0 - h / (heads - 1))
                for r in pair:
                    attn.q_proj.weight[h * head_dim + r, CONST_DIM] = gain
            for g in range(lm.config.num_key_value_heads):
                for r in pair:
                    attn.k_proj.weight[g * head_dim + r, SINK_DIM] = 1.0
    return unit


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
        vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=6,
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
    proc = CLIPImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, do_center_crop=True,
        resample=3, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    img = picture()
    pixel_values = proc(images=img, return_tensors="pt")["pixel_values"]
    unit = plant_sinks(model, tok.bos_token_id, pixel_values, text.num_attention_heads, text.head_dim)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="300KB")
    tok.save_pretrained(out)
    proc.save_pretrained(out)
    img.save(os.path.join(out, "picture.png"))

    text_ids = tok(TEMPLATE.format(prompt=PROMPT), return_tensors="pt")["input_ids"][0]
    patches = (vision.image_size // vision.patch_size) ** 2
    ids = []
    for t in text_ids.tolist():
        ids.extend([image_token] * patches if t == image_token else [t])
    input_ids = torch.tensor([ids])

    def run(m):
        with torch.no_grad():
            out_ = m(input_ids=input_ids, pixel_values=pixel_values, output_hidden_states=True)
            generated = m.generate(
                input_ids=input_ids, pixel_values=pixel_values, max_new_tokens=NEW_TOKENS, do_sample=False
            )[0, input_ids.shape[1]:]
        return out_.logits[0], generated, out_.hidden_states

    logits, generated, hidden = run(model)
    # Every weight rounded to f16, the sums still in f32: what a host with f16 weights and f32
    # accumulation must reproduce.
    logits_f16, generated_f16, _ = run(model.half().float())
    save_file(
        {
            "pixel_values": pixel_values[0].contiguous().float(),
            "text_ids": text_ids.to(torch.int64).contiguous(),
            "input_ids": input_ids[0].to(torch.int64).contiguous(),
            "logits": logits.contiguous().float(),
            "generated": generated.to(torch.int64).contiguous(),
            "logits_f16_weights": logits_f16.contiguous().float(),
            "generated_f16_weights": generated_f16.to(torch.int64).contiguous(),
        },
        os.path.join(out, "expected.safetensors"),
        metadata={
            "prompt": PROMPT,
            "template": TEMPLATE,
            "answer": tok.decode(generated, skip_special_tokens=True),
            "sink_dim": str(SINK_DIM),
            "var_flags": " ".join(VAR_FLAGS),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
    )
    # What the planting did, per layer: phi of BOS, the image's largest, the text's largest
    # other than BOS, against tau.
    tau = 0.5 * text.hidden_size ** 0.5
    start = ids.index(image_token)
    for l, h in enumerate(hidden[:-1]):
        x = h[0]
        phi = (x[:, SINK_DIM] / (x.pow(2).mean(-1) + 1e-6).sqrt()).abs()
        img_phi = phi[start:start + patches]
        print(f"layer {l}: phi BOS {phi[0]:.2f}, image max {img_phi.max():.2f} ({int((img_phi > tau).sum())} > tau {tau:.2f}), "
              f"text max {torch.cat([phi[1:start], phi[start + patches:]]).max():.2f}", file=sys.stderr)
    print(f"projector unit {unit}, max |logits - logits_f16| {float((logits - logits_f16).abs().max()):.3e}", file=sys.stderr)
    print(json.dumps({"tokens": len(ids), "vocab": len(tok), "answer": tok.decode(generated, skip_special_tokens=True)}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny-llava")
