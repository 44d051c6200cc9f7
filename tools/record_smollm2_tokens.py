"""Records what HF transformers makes of SmolLM2-135M-Instruct's GGUF tokenizer, for
tests/gguf_tokenizer.rs: the ids of 40 strings (spaces, digits, unicode, code, chat markup,
control tokens) and the chat-templated ids of a question.

    VISATTN_PYTHON=... $VISATTN_PYTHON tools/record_smollm2_tokens.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Needs transformers (5.24.0, the pinned venv's), gguf and accelerate. Writes
tests/data/smollm2/tokens.json.
"""
import json
import os
import sys

import transformers
from transformers import AutoTokenizer

path = sys.argv[1]
tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
STRINGS = [
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\n",
    "\n\n\n",
    "",
    " ",
    "The capital of France is Paris.",
    "What is the capital of France?",
    "1234567890",
    "3.14159 and 2,718,281",
    "year 2026, 12:45pm",
    "don't won't I'm you're we've they'll he'd",
    "DON'T SHOUT",
    "naïve café résumé",
    "Straße, Größe, Ölfeld",
    "日本語のテキスト",
    "中文分词测试",
    "한국어 문장",
    "Привет, мир!",
    "emoji 🙂🚀👩‍💻",
    "mixed 日本 and English 123",
    "def f(x):\n    return x ** 2  # square",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "<html><body class=\"a\">hi</body></html>",
    "a  b   c    d",
    "!!! ??? ...",
    "email: someone@example.com, url: https://example.com/a?b=c",
    "<|im_start|>user\nHi<|im_end|>",
    "<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|im_end|>more",
    "<repo_name>visattn<file_sep>",
    "Ĥello",
    "\u00a0non-breaking\u2009thin space",
    "zero\u200bwidth",
    "ÀÁÂÃÄÅ àáâãäå",
    "x" * 50,
    "The quick brown fox jumps over the lazy dog. " * 3,
]
question = "What is the capital of France?"
chat = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
out = {
    "transformers": transformers.__version__,
    "strings": [{"text": s, "ids": tok.encode(s, add_special_tokens=True)} for s in STRINGS],
    "chat": {"question": question, "text": chat, "ids": tok.encode(chat, add_special_tokens=True)},
}
dest = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "smollm2", "tokens.json")
with open(dest, "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
print(f"wrote {len(STRINGS)} strings and the chat prompt to {dest}")
