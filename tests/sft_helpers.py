"""The SFT tests' tiny chat LM (tests/conftest.py's `build_tiny_causal`: a Llama of hidden 32, byte-level BPE of ~400
pieces, ChatML template, `<|im_end|>` as end of turn, like SmolLM2's), optionally without its chat template, and a
learnable prompt → label task."""
from __future__ import annotations

import json
import random
from pathlib import Path

POSITIVE = ["good", "great", "lovely", "superb", "happy", "nice"]
NEGATIVE = ["bad", "awful", "poor", "broken", "sad", "slow"]
FILLER = ["the", "food", "service", "was", "really", "very", "and", "it", "app", "delivery"]
# The tiny model's widths, for the floating-point tolerances of the tests that use it (conftest.build_tiny_causal).
HIDDEN, FFN, VOCAB = 32, 64, 400


def build_tiny_chat_lm(folder: Path, chat_template: bool = True) -> Path:
    """conftest's tiny Llama + ChatML tokenizer in `folder`; `chat_template=False` removes the template."""
    from conftest import build_tiny_causal

    build_tiny_causal(folder)
    if not chat_template:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.chat_template = None
        (folder / "chat_template.jinja").unlink(missing_ok=True)
        tokenizer.save_pretrained(folder)
    return folder


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """prompt/response rows the tiny LM learns in a few dozen steps: the answer follows the sentiment words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, 3) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append({"prompt": "Classify: " + " ".join(words), "response": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
