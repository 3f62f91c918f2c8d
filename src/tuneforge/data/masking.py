"""Masked-LM corruption: select `rate` of the tokens (or whole words), then 80% [MASK], 10% random, 10% kept.

Special tokens are never selected, and labels are -100 everywhere except on selected positions. The random
stream comes from an explicit generator, so a resumed run masks every batch exactly as before.
"""
from __future__ import annotations

import numpy as np
import torch

IGNORE = -100


class Masker:
    def __init__(self, vocab_size: int, special_ids: list[int], mask_id: int, rate: float = 0.15,
                 whole_word: bool = False):
        if mask_id is None:
            raise ValueError("the tokenizer has no mask token")
        self.special = torch.zeros(vocab_size, dtype=torch.bool)
        self.special[[i for i in special_ids if i is not None and i < vocab_size]] = True
        self.allowed = torch.nonzero(~self.special).squeeze(1)  # ids a random replacement may take
        self.mask_id, self.rate, self.whole_word = mask_id, rate, whole_word

    def __call__(self, ids: torch.Tensor, generator: torch.Generator,
                 word_start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(corrupted input ids, labels) for a (B, T) batch of ids."""
        special = self.special[ids]
        draw = torch.rand(ids.shape, generator=generator)
        if self.whole_word and word_start is not None:
            # A word is a run of tokens starting at a word start; special tokens always start their own word.
            word = torch.cumsum((word_start.bool() | special).long(), dim=1) - 1
            draw = draw.gather(1, word.clamp(min=0))  # one uniform per word id: a word is in or out as a whole
        selected = (draw < self.rate) & ~special
        labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
        action = torch.rand(ids.shape, generator=generator)
        inputs = ids.clone()
        inputs[selected & (action < 0.8)] = self.mask_id
        randomize = selected & (action >= 0.8) & (action < 0.9)
        picks = torch.randint(len(self.allowed), (int(randomize.sum()),), generator=generator)
        inputs[randomize] = self.allowed[picks]
        return inputs, labels


def batch_generator(seed: int, epoch: int, index: np.ndarray) -> torch.Generator:
    """A generator determined by (seed, epoch, the batch's rows): same batch, same masks — also after resume."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch + 1, *(int(i) for i in index[:8])]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
