"""Masked-LM corruption, checked as statistical properties over ~45k tokens (fixed seeds, so deterministic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneforge.data.masking import IGNORE, Masker, batch_generator

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
VOCAB = 1000
B, T = 96, 512


def make_batch(seed: int = 0) -> torch.Tensor:
    """[CLS] text [SEP] text [SEP] ... [PAD]*: regular ids 5..VOCAB-1 with special ids in realistic places."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    ids[:, 0] = CLS
    seps = torch.rand(B, T, generator=g) < 0.03
    ids[seps] = SEP
    ids[:, -1] = SEP
    pad_len = torch.randint(0, 64, (B,), generator=g)
    for r, n in enumerate(pad_len.tolist()):
        if n:
            ids[r, T - n:] = PAD
    ids[5, 7] = UNK  # an [UNK] in the text is special too
    return ids


def is_special(ids: torch.Tensor) -> torch.Tensor:
    return torch.isin(ids, torch.tensor(SPECIALS))


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return make_batch()


def run(ids, rate=0.15, seed=0, whole_word=False, word_start=None):
    masker = Masker(VOCAB, SPECIALS, MASK, rate, whole_word)
    return masker(ids, torch.Generator().manual_seed(seed), word_start)


@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_selected_rate_matches_mask_rate(ids, rate):
    _, labels = run(ids, rate)
    regular = ~is_special(ids)
    assert regular.sum() > 40_000
    selected = labels != IGNORE
    observed = selected.sum().item() / regular.sum().item()
    assert abs(observed - rate) < 0.01, observed


def test_labels_are_the_original_ids_exactly_on_selected_positions(ids):
    inputs, labels = run(ids)
    selected = labels != IGNORE
    assert selected.any()
    assert torch.equal(labels[selected], ids[selected])
    assert (labels[~selected] == IGNORE).all()
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing outside the selection is corrupted
    assert inputs.shape == ids.shape and inputs.dtype == ids.dtype and labels.dtype == ids.dtype


def test_special_tokens_are_never_selected_or_changed(ids):
    for seed in range(2):
        inputs, labels = run(ids, rate=0.9, seed=seed)
        special = is_special(ids)
        assert (labels[special] == IGNORE).all()
        assert torch.equal(inputs[special], ids[special])
        assert ((labels != IGNORE) == ~special).float().mean() > 0.85  # at rate 0.9 almost all others are selected


def test_special_ids_out_of_vocab_or_none_are_ignored():
    masker = Masker(10, [0, None, 3, 99], mask_id=3)
    assert masker.special.tolist() == [True, False, False, True] + [False] * 6
    assert 3 not in masker.allowed.tolist() and 0 not in masker.allowed.tolist()
    with pytest.raises(ValueError, match="mask token"):
        Masker(10, [0], mask_id=None)


def test_80_10_10_split(ids):
    inputs, labels = run(ids)
    selected = labels != IGNORE
    n = selected.sum().item()
    assert n > 5_000
    masked = (inputs == MASK) & selected
    kept = (inputs == ids) & selected
    random_ = selected & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(random_.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02
    replaced = inputs[random_]
    assert not is_special(replaced).any()  # a random replacement is never a special id ([MASK] included)
    assert replaced.unique().numel() > 300  # spread over the vocabulary
    assert ((replaced >= 5) & (replaced < VOCAB)).all()


def test_mask_id_appears_only_on_selected_positions(ids):
    inputs, labels = run(ids)
    assert ((inputs == MASK) <= (labels != IGNORE)).all()


def words_of(word_start: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
    return torch.cumsum((word_start.bool() | special).long(), dim=1) - 1


def make_words(ids: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Word starts: words of 1-4 tokens; every special token starts (and ends) its own word."""
    rng = np.random.default_rng(seed)
    starts = np.zeros(ids.shape, dtype=np.int64)
    for r in range(ids.shape[0]):
        pos = 0
        while pos < ids.shape[1]:
            starts[r, pos] = 1
            pos += int(rng.integers(1, 5))
    word_start = torch.from_numpy(starts)
    special = is_special(ids)
    word_start[special] = 1
    after = torch.zeros_like(special)
    after[:, 1:] = special[:, :-1]
    word_start[after] = 1  # the token after a special one starts a word, as the packed stream has it
    return word_start


def test_whole_word_masks_words_all_or_nothing(ids):
    word_start = make_words(ids)
    _, labels = run(ids, whole_word=True, word_start=word_start)
    selected = (labels != IGNORE).long()
    regular = ~is_special(ids)
    word = words_of(word_start, is_special(ids))
    key = (word + torch.arange(B).unsqueeze(1) * T)[regular]  # a unique id per (row, word) of regular tokens
    sel = selected[regular]
    n_words = int(key.max()) + 1
    lo = torch.full((n_words,), 2).scatter_reduce(0, key, sel, "amin")
    hi = torch.full((n_words,), -1).scatter_reduce(0, key, sel, "amax")
    present = hi >= 0
    assert torch.equal(lo[present], hi[present])  # each word fully in or fully out
    multi = torch.bincount(key, minlength=n_words) > 1
    assert (multi & present).sum() > 5_000
    word_rate = hi[present].float().mean().item()
    assert abs(word_rate - 0.15) < 0.01, word_rate
    # multi-token words really are masked as a whole (not just single-token words)
    assert (hi[multi & present] == 1).sum() > 1000


def test_token_level_masking_splits_words(ids):
    """The control for the test above: without whole_word the same words get partly selected."""
    word_start = make_words(ids)
    for whole_word, ws in ((False, word_start), (True, None)):
        _, labels = run(ids, whole_word=whole_word, word_start=ws)
        selected = (labels != IGNORE).long()
        regular = ~is_special(ids)
        key = (words_of(word_start, is_special(ids)) + torch.arange(B).unsqueeze(1) * T)[regular]
        n_words = int(key.max()) + 1
        lo = torch.full((n_words,), 2).scatter_reduce(0, key, selected[regular], "amin")
        hi = torch.full((n_words,), -1).scatter_reduce(0, key, selected[regular], "amax")
        assert ((lo == 0) & (hi == 1)).sum() > 1000


def test_whole_word_80_10_10_still_holds(ids):
    inputs, labels = run(ids, whole_word=True, word_start=make_words(ids))
    selected = labels != IGNORE
    n = selected.sum().item()
    assert abs(((inputs == MASK) & selected).sum().item() / n - 0.8) < 0.02
    assert abs(((inputs == ids) & selected).sum().item() / n - 0.1) < 0.02
    assert not is_special(inputs[selected & (inputs != ids) & (inputs != MASK)]).any()
    assert torch.equal(inputs[is_special(ids)], ids[is_special(ids)])


def masks_for(ids, seed, epoch, index):
    masker = Masker(VOCAB, SPECIALS, MASK)
    return masker(ids, batch_generator(seed, epoch, index))


def test_batch_generator_is_deterministic():
    small = make_batch()[:8]
    index = np.array([3, 17, 5, 42])
    a = masks_for(small, 7, 2, index)
    b = masks_for(small, 7, 2, index.copy())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for other in (masks_for(small, 7, 3, index), masks_for(small, 8, 2, index), masks_for(small, 7, 2, index + 1)):
        assert not torch.equal(a[1], other[1])
        assert not torch.equal(a[0], other[0])


def test_batch_generator_state_does_not_depend_on_global_rng():
    index = np.arange(4)
    torch.manual_seed(0)
    np.random.seed(0)
    first = torch.rand(5, generator=batch_generator(1, 0, index))
    torch.manual_seed(123)
    np.random.seed(123)
    torch.rand(3)
    assert torch.equal(first, torch.rand(5, generator=batch_generator(1, 0, index)))
