"""Choosing each row's next token from its logits under its own settings: repetition penalty, then greedy (argmax) at
temperature 0, else temperature, top-k, top-p and a draw from the row's own seeded generator (so a sequence's
sample does not depend on which other sequences share its batch)."""
from __future__ import annotations

import random

import torch

from tuneforge.generate.settings import GenerationSettings


def make_generator(settings: GenerationSettings, device) -> torch.Generator | None:
    """The row's random source: seeded from settings.seed (a fresh seed when None); None for greedy rows."""
    if settings.greedy:
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**63))
    return gen


def penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> None:
    """In place, as transformers does: a seen token's logit is divided by `penalty` when positive, multiplied when
    negative (so > 1 always makes it less likely)."""
    picked = logits.gather(-1, seen)
    logits.scatter_(-1, seen, torch.where(picked < 0, picked * penalty, picked / penalty))


def sample(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator) -> int:
    """One draw from a (V,) logit row: temperature, then top-k, then top-p (the smallest set of most likely tokens
    whose probability reaches top_p; the most likely token always stays)."""
    x = logits.float() / settings.temperature
    if settings.top_k and settings.top_k < x.shape[-1]:
        kth = torch.topk(x, settings.top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    if settings.top_p < 1.0:
        ordered, order = torch.sort(x, descending=True)
        probs = torch.softmax(ordered, -1)
        drop = (probs.cumsum(-1) - probs) > settings.top_p
        x = x.index_fill(-1, order[drop], float("-inf"))
    probs = torch.softmax(x, -1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def choose(logits: torch.Tensor, rows: list) -> list[int]:
    """Next token of each row of (B, V) logits; `rows[b]` has `.settings`, `.generator` and `.seen` (the prompt and
    output ids so far, for the penalty). Greedy rows share one argmax."""
    penalised = [b for b, r in enumerate(rows) if r.settings.repetition_penalty != 1.0]
    if penalised:
        logits = logits.float().clone()
        for b in penalised:
            seen = torch.tensor(rows[b].seen, device=logits.device)
            penalize(logits[b], seen, rows[b].settings.repetition_penalty)
    out = logits.argmax(-1).tolist()
    for b, row in enumerate(rows):
        if not row.settings.greedy:
            out[b] = sample(logits[b], row.settings, row.generator)
    return out
