"""Answers generated (greedy) for held-out SFT prompts, beside their references, and their scores: the rows of the
report's side-by-side table and the exact match / label accuracy / ROUGE-L metrics."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tuneforge.data.sft import Chat, prompt_and_reference
from tuneforge.generate.decode import generate
from tuneforge.generate.settings import GenerationSettings
from tuneforge.evaluate.text_metrics import answer_scores


@dataclass
class AnswerRow:
    row: int  # source row
    prompt: str  # the last user message (what a reader recognises; the model saw the rendered chat)
    earlier_turns: int  # messages before it (system prompt, earlier turns)
    reference: str
    generation: str
    exact_match: bool = False
    rouge_l: float = 0.0
    label: str | None = None  # the label read from the generation (label tasks)


def pick_chats(chats: list[Chat], n: int, seed: int) -> list[Chat]:
    """`n` chats of the split (all when it has fewer), a seeded sample in source order."""
    if n >= len(chats):
        return list(chats)
    keep = np.sort(np.random.default_rng(seed).choice(len(chats), size=n, replace=False))
    return [chats[i] for i in keep]


def generate_answers(model, tokenizer, chats: list[Chat], max_new_tokens: int, labels: list[str] | None,
                     batch_size: int = 16) -> tuple[dict, list[AnswerRow]]:
    """Generate an answer to each chat's last prompt; (metrics, rows)."""
    pairs = [prompt_and_reference(tokenizer, c.messages) for c in chats]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p, _ in pairs]
    settings = GenerationSettings(max_new_tokens=max_new_tokens)  # greedy
    generations = [c.text.strip() for c in generate(model, tokenizer, ids, settings, batch_size)] if ids else []
    references = [r for _, r in pairs]
    scores = answer_scores(generations, references, labels)
    rows = []
    for chat, ref, gen, s in zip(chats, references, generations, scores.pop("per_row", [])):
        answer = max(i for i, m in enumerate(chat.messages) if m["role"] == "assistant")
        last_user = max((i for i, m in enumerate(chat.messages[:answer]) if m["role"] == "user"), default=0)
        rows.append(AnswerRow(chat.row, chat.messages[last_user]["content"], last_user, ref, gen, **s))
    return scores, rows


def rows_json(rows: list[AnswerRow]) -> list[dict]:
    return [asdict(r) for r in rows]
