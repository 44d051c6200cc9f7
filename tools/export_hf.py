#!/usr/bin/env python3
"""Export a Hugging Face model's attentions and hidden states as a visattn dump.

The dump format is ../shared/docs/dump-format.md: one safetensors file per prompt with
`attentions.{l}` [H, Q, K] (post-softmax, eager attention) and `hidden_states.{l}` [T, D]
(the residual input of decoder layer l), plus string metadata (image span, model preset,
tokens, text).

    # LLaVA-1.5 with an image and a question
    python tools/export_hf.py --model llava-hf/llava-1.5-7b-hf --image cat.png \
        --prompt "USER: <image>\\nWhat is on the mat? ASSISTANT:" --output dump.safetensors --dtype f16

    # any causal LM, text only, with a span you declare as the "image"
    python tools/export_hf.py --model path/to/llama --prompt "..." --image-start 5 --image-len 64 \
        --output dump.safetensors

Memory: each layer's tensors are written to disk from forward hooks as the layer runs (cast to
--dtype first), and the header is assembled at the end; only HF's own output tuple keeps more.
"""

import argparse
import json
import os
import re
import struct
import sys
import tempfile

# Which visattn preset a config is, from what the config itself pins down. A preset's D_sink
# belongs to one set of trained weights, so hidden size alone says too little (LLaMA-2-7B,
# LLaMA-3-8B, Mistral-7B and CodeLlama-7B are all 4096 wide): each rule also checks the
# vocabulary, the depth and the RoPE settings of that checkpoint family, and a model the rules
# do not recognise gets no preset at all (then `apply` asks for --preset or --sink-dims).
PRESET_RULES = [
    # preset: what the checkpoint's (text) config must say; `top` narrows the top-level model type.
    ("llava-1.5-7b", dict(text={"llama"}, hidden=4096, layers=32, vocab={32000, 32064}, theta=1e4, positions={4096})),
    ("llava-1.5-13b", dict(text={"llama"}, hidden=5120, layers=40, vocab={32000, 32064}, theta=1e4, positions={4096})),
    ("llama-3-8b", dict(text={"llama"}, hidden=4096, layers=32, vocab={128256}, theta=5e5)),
    ("qwen2-vl-7b", dict(top={"qwen2_vl", "qwen2"}, text={"qwen2", "qwen2_vl", "qwen2_vl_text"}, hidden=3584, layers=28, vocab={152064}, theta=1e6)),
    ("qwen2.5-vl-7b", dict(top={"qwen2_5_vl"}, text={"qwen2_5_vl", "qwen2_5_vl_text"}, hidden=3584, layers=28, vocab={152064}, theta=1e6)),
    ("mistral-7b", dict(text={"mistral"}, hidden=4096, layers=32, vocab={32000}, theta=1e4)),
    ("mixtral-8x7b", dict(text={"mixtral"}, hidden=4096, layers=32, vocab={32000}, theta=1e6, experts=8)),
]

# Words in a checkpoint's name that each point at one family; a name that points elsewhere than
# the rules do means the config is not what it seems (a fine-tune, a re-sized vocabulary), so
# the exporter stays silent rather than guess.
NAME_HINTS = [
    (r"llama-?3", {"llama-3-8b"}),
    (r"qwen2\.5", {"qwen2.5-vl-7b"}),
    (r"qwen2(?!\.5)", {"qwen2-vl-7b"}),
    (r"mixtral", {"mixtral-8x7b"}),
    (r"mistral", {"mistral-7b"}),
    (r"llama-?2|vicuna|llava-v?1\.5", {"llava-1.5-7b", "llava-1.5-13b"}),
    (r"code-?llama|deepseek|yi-", set()),
]


def _rope_theta(text):
    theta = getattr(text, "rope_theta", None)
    params = getattr(text, "rope_parameters", None)  # transformers >= 5 moves it here
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    return float(theta) if theta is not None else 10000.0


def _rope_scaled(text):
    """A RoPE rescaling other than LLaMA-3.1's own long-context recipe (same weights family)."""
    for scaling in (getattr(text, "rope_scaling", None), getattr(text, "rope_parameters", None)):
        if isinstance(scaling, dict):
            kind = scaling.get("rope_type") or scaling.get("type")
            if kind not in (None, "default", "llama3", "mrope"):
                return True
    return False


def _matches(rule, config, text):
    if "top" in rule and getattr(config, "model_type", "") not in rule["top"]:
        return False
    return (
        getattr(text, "model_type", "") in rule["text"]
        and getattr(text, "hidden_size", None) == rule["hidden"]
        and getattr(text, "num_hidden_layers", None) == rule["layers"]
        and getattr(text, "vocab_size", None) in rule["vocab"]
        and abs(_rope_theta(text) - rule["theta"]) <= 1e-6 * rule["theta"]
        and not _rope_scaled(text)
        and ("positions" not in rule or getattr(text, "max_position_embeddings", None) in rule["positions"])
        and (getattr(text, "num_local_experts", None) or None) == rule.get("experts")
    )


def identify_preset(config):
    """The visattn preset name of an HF config, or None when the config does not pin one down."""
    text = getattr(config, "text_config", None) or config
    found = next((name for name, rule in PRESET_RULES if _matches(rule, config, text)), None)
    if found is None:
        return None
    for c in (config, text):
        path = str(getattr(c, "_name_or_path", "") or getattr(c, "name_or_path", "") or "")
        label = os.path.basename(path.rstrip("/")).lower()
        for pattern, names in NAME_HINTS:
            if re.search(pattern, label) and found not in names:
                return None
    return found


DTYPES = {"f32": ("F32", "float32"), "f16": ("F16", "float16"), "bf16": ("BF16", "bfloat16")}


class StreamingWriter:
    """Writes tensors to a data file as they come, then prepends the safetensors header."""

    def __init__(self, path, st_dtype, torch_dtype):
        self.path = path
        self.st_dtype = st_dtype
        self.torch_dtype = torch_dtype
        self.data = tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(path)) or ".", delete=False)
        self.header = {}
        self.offset = 0

    def add(self, name, tensor):
        import torch

        t = tensor.detach().to("cpu", dtype=self.torch_dtype).contiguous()
        if t.dim() >= 1 and t.shape[0] == 1 and name.startswith(("attentions.", "hidden_states.")):
            t = t[0]
        if not torch.isfinite(t.float()).all():
            raise SystemExit(f"error: {name} holds NaN or Inf (try --dtype f32)")
        raw = t.view(torch.uint8).numpy().tobytes() if self.torch_dtype == torch.bfloat16 else t.numpy().tobytes()
        self.data.write(raw)
        self.header[name] = {"dtype": self.st_dtype, "shape": list(t.shape), "data_offsets": [self.offset, self.offset + len(raw)]}
        self.offset += len(raw)

    def finish(self, metadata):
        self.data.close()
        header = dict(self.header)
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * ((8 - len(blob) % 8) % 8)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as out, open(self.data.name, "rb") as data:
            out.write(struct.pack("<Q", len(blob)))
            out.write(blob)
            while True:
                chunk = data.read(1 << 24)
                if not chunk:
                    break
                out.write(chunk)
        os.replace(tmp, self.path)
        os.unlink(self.data.name)


def decoder_layers(model):
    for path in ("language_model.model.layers", "model.language_model.layers", "model.layers", "language_model.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise SystemExit("error: cannot find the decoder layers of this model")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--image")
    ap.add_argument("--image-start", type=int)
    ap.add_argument("--image-len", type=int)
    ap.add_argument("--output", required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    try:
        import torch
        import transformers
    except ImportError as e:
        raise SystemExit(f"error: the exporter needs torch and transformers ({e})")

    st_dtype, torch_name = DTYPES[args.dtype]
    torch_dtype = getattr(torch, torch_name)
    config = transformers.AutoConfig.from_pretrained(args.model)
    is_llava = getattr(config, "model_type", "") == "llava"
    load = dict(attn_implementation="eager", torch_dtype=torch.float32 if args.dtype == "f32" else torch_dtype)
    if is_llava:
        from PIL import Image

        model = transformers.LlavaForConditionalGeneration.from_pretrained(args.model, **load)
        processor = transformers.AutoProcessor.from_pretrained(args.model)
        if not args.image:
            raise SystemExit("error: a LLaVA model needs --image")
        inputs = processor(images=Image.open(args.image).convert("RGB"), text=args.prompt, return_tensors="pt")
        tokenizer = processor.tokenizer
        text_config = config.text_config
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model, **load)
        tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
        inputs = tokenizer(args.prompt, return_tensors="pt")
        text_config = config
    model.to(args.device).eval()
    inputs = {k: v.to(args.device) for k, v in inputs.items()}
    ids = inputs["input_ids"][0].tolist()

    # The image span: the run of image-token ids (LLaVA expands <image> to one id per patch).
    metadata = {"text": args.prompt, "tokens": " ".join(t.replace(" ", "\u2581") for t in tokenizer.convert_ids_to_tokens(ids))}
    if args.image_start is not None and args.image_len is not None:
        metadata["image_start"], metadata["image_len"] = args.image_start, args.image_len
    elif is_llava:
        image_id = getattr(config, "image_token_index", None) or getattr(config, "image_token_id", None)
        where = [i for i, t in enumerate(ids) if t == image_id]
        if not where:
            raise SystemExit("error: no image tokens in the processed prompt (does it contain <image>?)")
        metadata["image_start"], metadata["image_len"] = where[0], len(where)
    preset = identify_preset(config)
    if preset:
        metadata["model"] = preset
    else:
        print(
            f"note: no visattn preset matches this model ({getattr(text_config, 'model_type', '?')}, hidden "
            f"{getattr(text_config, 'hidden_size', '?')}, vocab {getattr(text_config, 'vocab_size', '?')}); the dump has "
            "no `model` key, so `visattn apply` needs --preset or --sink-dims (`visattn discover` suggests them)",
            file=sys.stderr,
        )
    layers = decoder_layers(model)
    metadata.update(layers=len(layers), heads=text_config.num_attention_heads, hidden=text_config.hidden_size)

    writer = StreamingWriter(args.output, st_dtype, torch_dtype)
    hooks = []
    for index, layer in enumerate(layers):
        def pre(module, hook_args, hook_kwargs, index=index):
            hidden = hook_args[0] if hook_args else hook_kwargs["hidden_states"]
            writer.add(f"hidden_states.{index}", hidden)

        def post(module, hook_args, output, index=index):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise SystemExit("error: no attention weights: the model must run with eager attention")
            writer.add(f"attentions.{index}", weights)

        hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(layer.self_attn.register_forward_hook(post))
    with torch.no_grad():
        model(**inputs, output_attentions=True, use_cache=False)
    for h in hooks:
        h.remove()
    writer.finish(metadata)
    print(f"wrote {args.output}: {len(layers)} layers, {len(ids)} tokens, dtype {args.dtype}", file=sys.stderr)


if __name__ == "__main__":
    main()
