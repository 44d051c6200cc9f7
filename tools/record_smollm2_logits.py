"""Records HF transformers' answers for SmolLM2-135M-Instruct's GGUF (which transformers
dequantizes to f32), for tests/gguf_model.rs and tests/smollm2_prompts.rs.

    $VISATTN_PYTHON tools/record_smollm2_logits.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Needs transformers 5.24.0 (the pinned venv's), gguf and accelerate. Writes

- tests/data/smollm2/logits.safetensors (tests/gguf_model.rs): the chat-templated prompt of
  "What is the capital of France?" (input_ids i64), the logits of its last position
  (last_logits f32 [vocab]) and the greedy answer (greedy i64).
- tests/data/smollm2/prompts.safetensors (tests/smollm2_prompts.rs): five chat-templated
  prompts, each with HF's greedy answer (at most 12 new tokens) and the logits of every
  position of prompt + answer from one forward over the whole sequence (teacher forcing),
  stored compactly (the vocabulary is 49152 wide): for prompt k,
    p{k}.ids           i64 [T]      prompt then answer
    p{k}.prompt_len    i64 [1]
    p{k}.top_ids       i64 [T, 16]  each row's 16 largest logits' ids, largest first
    p{k}.top_logits    f32 [T, 16]  and their logits
    p{k}.sample_logits f32 [T, 256] the logits at sample_ids
    p{k}.max_abs       f32 [T]      each row's largest |logit| (the tolerance's scale)
    p{k}.margin        f32 [T]      each row's top-1 minus top-2 logit
  and sample_ids i64 [256]: a fixed set of vocabulary ids (torch seed 0, sorted). Metadata:
  the prompts, the answers and the transformers version.

The script checks that the teacher-forced forward's argmax at every answer position is the
answer's next token (the greedy answer, as `generate` made it with its KV cache).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

TOP = 16
SAMPLES = 256
MAX_NEW = 12
PROMPTS = [
    "What is the capital of France?",
    "What is 10 minus 3?",
    "What is a noun? Answer briefly.",
    "Translate 'cat' into German.",
    "List the first five prime numbers.",
]

path = sys.argv[1]
d, f = os.path.dirname(path), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
model.eval()
data = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "smollm2")


def chat_ids(question):
    text = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
    return torch.tensor([tok.encode(text)])


# The France question's last prompt position and greedy answer (tests/gguf_model.rs).
question = PROMPTS[0]
ids = chat_ids(question)
with torch.no_grad():
    logits = model(ids).logits[0, -1].float()
    out = model.generate(ids, max_new_tokens=16, do_sample=False)
greedy = out[0, ids.shape[1]:]
dest = os.path.join(data, "logits.safetensors")
save_file(
    {"input_ids": ids[0].to(torch.int64), "last_logits": logits.contiguous(), "greedy": greedy.to(torch.int64)},
    dest,
    metadata={"question": question, "answer": tok.decode(greedy), "transformers": transformers.__version__},
)
print(f"{dest}: {ids.shape[1]} prompt tokens, answer {tok.decode(greedy)!r}")

# Five prompts, every position's logits over prompt + answer (tests/smollm2_prompts.rs).
vocab = model.config.vocab_size
sample_ids = torch.randperm(vocab, generator=torch.Generator().manual_seed(0))[:SAMPLES].sort().values
tensors = {"sample_ids": sample_ids.to(torch.int64)}
answers = []
for k, question in enumerate(PROMPTS):
    ids = chat_ids(question)
    p = ids.shape[1]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=MAX_NEW, do_sample=False)
        seq = out[:, :]
        rows = model(seq).logits[0].float()
    answer = seq[0, p:]
    answers.append(tok.decode(answer))
    # Teacher forcing reproduces the greedy answer: argmax at p-1 .. T-2 is the next token.
    forced = rows[p - 1 : -1].argmax(-1)
    assert torch.equal(forced, answer), f"{question!r}: teacher-forced argmax {forced.tolist()} vs generate's {answer.tolist()}"
    top = rows.topk(TOP, dim=-1)
    two = rows.topk(2, dim=-1).values
    tensors |= {
        f"p{k}.ids": seq[0].to(torch.int64).contiguous(),
        f"p{k}.prompt_len": torch.tensor([p], dtype=torch.int64),
        f"p{k}.top_ids": top.indices.to(torch.int64).contiguous(),
        f"p{k}.top_logits": top.values.contiguous(),
        f"p{k}.sample_logits": rows[:, sample_ids].contiguous(),
        f"p{k}.max_abs": rows.abs().amax(-1).contiguous(),
        f"p{k}.margin": (two[:, 0] - two[:, 1]).contiguous(),
    }
    margins = (two[p - 1 :, 0] - two[p - 1 :, 1]) / rows[p - 1 :].abs().amax(-1)
    print(f"prompt {k}: {p} + {len(answer)} tokens, smallest answer margin {margins.min():.4g} x max|logit|, {question!r} -> {answers[-1]!r}")
dest = os.path.join(data, "prompts.safetensors")
save_file(
    tensors,
    dest,
    metadata={
        "prompts": json.dumps(PROMPTS),
        "answers": json.dumps(answers),
        "top": str(TOP),
        "samples": str(SAMPLES),
        "transformers": transformers.__version__,
    },
)
print(f"{dest}: {os.path.getsize(dest)} bytes, {sum(len(tensors[f'p{k}.ids']) for k in range(len(PROMPTS)))} tokens")
