"""A tiny chat LM for the SFT tests: a byte-level BPE tokenizer (~400 tokens, English and Chinese, ChatML template,
`<|im_end|>` as end of turn, like SmolLM2's) and MODELS' `tiny` Llama preset (hidden 64, 2 layers), saved as a
Hugging Face folder in well under a second; plus a learnable prompt → label task and chat rows."""
from __future__ import annotations

import json
import random
from pathlib import Path

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
POSITIVE = ["good", "great", "lovely", "superb", "happy", "nice"]
NEGATIVE = ["bad", "awful", "poor", "broken", "sad", "slow"]
FILLER = ["the", "food", "service", "was", "really", "very", "and", "it", "app", "delivery"]
CORPUS = [" ".join(POSITIVE + NEGATIVE + FILLER), "Classify the review: positive negative", "外卖很好吃，送餐很快。",
          "差评，太慢了。好评！", "user assistant system hello thanks order refund", "0123456789 .,!?:"]


def build_tiny_chat_lm(folder: Path, chat_template: bool = True, seed: int = 0) -> Path:
    """The tiny LM and its tokenizer in `folder`; `chat_template=False` leaves the tokenizer without one."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tuneforge.model.causal import build_causal_lm

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|im_end|>")
    if chat_template:
        tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    model = build_causal_lm("tiny", tokenizer, max_position=512)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
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
