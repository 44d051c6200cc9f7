"""Records HF transformers' answer for SmolLM2-135M-Instruct's GGUF (which transformers
dequantizes to f32), for tests/gguf_model.rs: the chat-templated prompt of a question, the
logits of its last position, and the greedy answer.

    $VISATTN_PYTHON tools/record_smollm2_logits.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Needs transformers 5.24.0 (the pinned venv's), gguf and accelerate. Writes
tests/data/smollm2/logits.safetensors (input_ids i64, last_logits f32 [vocab], greedy i64).
"""
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1]
d, f = os.path.dirname(path), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
model.eval()
question = "What is the capital of France?"
text = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
ids = torch.tensor([tok.encode(text)])
with torch.no_grad():
    logits = model(ids).logits[0, -1].float()
    out = model.generate(ids, max_new_tokens=16, do_sample=False)
greedy = out[0, ids.shape[1]:]
dest = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "smollm2", "logits.safetensors")
save_file(
    {"input_ids": ids[0].to(torch.int64), "last_logits": logits.contiguous(), "greedy": greedy.to(torch.int64)},
    dest,
    metadata={"question": question, "answer": tok.decode(greedy), "transformers": transformers.__version__},
)
print(f"{dest}: {ids.shape[1]} prompt tokens, answer {tok.decode(greedy)!r}")
