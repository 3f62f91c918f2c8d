"""Answers generated (greedy) for held-out SFT prompts, beside their references, and their scores: the rows of the
report's side-by-side table and the exact match / label accuracy / ROUGE-L metrics."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tuneforge.data.sft import Chat, prompt_and_reference
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


def _hf_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy `model.generate` over left-padded batches (kept until the generate module's decoder is in place)."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    out: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in index)
        ids = torch.full((len(index), width), pad, dtype=torch.long)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for j, i in enumerate(index):
            ids[j, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[j, width - len(prompts[i]):] = 1
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad)
        for j, i in enumerate(index):
            out[i] = tokenizer.decode(gen[j, width:], skip_special_tokens=True)
    model.train(was_training)
    return out


def generate_answers(model, tokenizer, chats: list[Chat], max_new_tokens: int, labels: list[str] | None,
                     batch_size: int = 16) -> tuple[dict, list[AnswerRow]]:
    """Generate an answer to each chat's last prompt; (metrics, rows)."""
    pairs = [prompt_and_reference(tokenizer, c.messages) for c in chats]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p, _ in pairs]
    generations = [g.strip() for g in _hf_generate(model, tokenizer, ids, max_new_tokens, batch_size)] if ids else []
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
