#!/usr/bin/env python3
"""The torch anchor of `llava --bench`: HF transformers' LLaMA language model on this machine's
CPU, timed as the Rust host times its own: a prefill of the prompt (its embeddings given, the
image's features among them: no vision tower), logits of the last position, then greedy decode
steps through the KV cache. VAR is not in HF, so this is the VAR-off baseline.

    python3 tools/bench_llava_torch.py '{"model": "tests/data/tiny-llava", "prompt": 35, ...}'

The one argument is JSON: either "gguf" (a GGUF language model, which transformers dequantizes
to f32, with "ids": the prompt's token ids), "model" (a HF LLaVA folder: its language model and LM
head as saved) or the shape ("hidden", "intermediate", "layers", "heads", "kv_heads", "vocab": random
weights), and "prompt" (tokens), "decode" (steps), "repeats", "threads", "dtype" ("float32" or
"float16": the weights' and the sums' dtype, as torch runs it on a CPU). Prints one JSON line:
median seconds of the prefill and of the decode steps, and the versions. With "matmuls" ([m, k,
count] triples) and "tokens" instead, it times f32 matmuls at those shapes (the bench's prefill
GFLOPS anchor).
"""

import json
import statistics
import sys
import time

import torch


def matmuls(spec):
    """f32 x [tokens, k] @ W [m, k]^T for each (m, k, count) of spec["matmuls"]: the prefill's
    matmuls at `llava --bench`'s shapes. Up to 4 distinct matrices of a shape are cycled through
    (a model's matrices are distinct; all of a 7B model would not fit in memory). Prints the
    GFLOPS of the whole set: its FLOPs over the sum of each shape's median time."""
    n, repeats = spec["tokens"], spec.get("repeats", 3)
    flops, seconds = 0.0, 0.0
    with torch.inference_mode():
        for m, k, count in spec["matmuls"]:
            ws = [torch.randn(m, k) * 0.02 for _ in range(min(count, 4))]
            x = torch.randn(n, k)
            torch.nn.functional.linear(x, ws[0])
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for i in range(count):
                    torch.nn.functional.linear(x, ws[i % len(ws)])
                times.append(time.perf_counter() - t0)
            flops += 2.0 * n * m * k * count
            seconds += statistics.median(times)
    print(json.dumps({"gflops": flops / seconds / 1e9, "seconds": seconds, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


def main(spec):
    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    if "matmuls" in spec:
        return matmuls(spec)
    dtype = getattr(torch, spec.get("dtype", "float32"))
    torch.manual_seed(0)
    if "gguf" in spec:
        import os

        from transformers import AutoModelForCausalLM

        path = spec["gguf"]
        full = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32)
        lm, head = full.model, full.lm_head
    elif "model" in spec:
        from transformers import LlavaForConditionalGeneration

        full = LlavaForConditionalGeneration.from_pretrained(spec["model"], dtype=torch.float32)
        lm, head = full.model.language_model, full.lm_head
    else:
        from transformers import LlamaConfig, LlamaModel

        cfg = LlamaConfig(
            hidden_size=spec["hidden"], intermediate_size=spec["intermediate"], num_hidden_layers=spec["layers"],
            num_attention_heads=spec["heads"], num_key_value_heads=spec["kv_heads"], vocab_size=spec["vocab"],
            max_position_embeddings=4096, rms_norm_eps=1e-5,
        )
        # Random weights without HF's init pass (minutes for 7B shapes on two cores).
        with torch.device("meta"):
            lm = LlamaModel(cfg)
        lm = lm.to_empty(device="cpu")
        for p in lm.parameters():
            p.data.uniform_(-0.02, 0.02) if p.dim() > 1 else p.data.fill_(1.0)
        lm.rotary_emb.__init__(cfg)
        head = torch.nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        head.weight.data.uniform_(-0.02, 0.02)
    lm, head = lm.to(dtype).eval(), head.to(dtype).eval()
    d = head.in_features
    prompt, steps, repeats = spec["prompt"], spec["decode"], spec.get("repeats", 3)
    embeds = (torch.randn(1, prompt, d) * 0.02).to(dtype)
    ids = torch.tensor([spec["ids"]]) if "ids" in spec else None
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = lm(input_ids=ids, use_cache=True) if ids is not None else lm(inputs_embeds=embeds, use_cache=True)
            logits = head(out.last_hidden_state[:, -1])
            token = logits.argmax(-1)
            prefill.append(time.perf_counter() - t0)
            cache = out.past_key_values
            t1 = time.perf_counter()
            for _ in range(steps):
                out = lm(input_ids=token[:, None], past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                token = head(out.last_hidden_state[:, -1]).argmax(-1)
            decode.append(time.perf_counter() - t1)
    print(json.dumps({
        "prefill_s": statistics.median(prefill), "decode_s": statistics.median(decode), "steps": steps,
        "threads": torch.get_num_threads(), "dtype": str(dtype), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
