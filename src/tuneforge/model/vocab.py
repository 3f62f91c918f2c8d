"""Vocabulary extension: add the pieces a tokenizer maps to [UNK], and give them sensible embeddings."""
from __future__ import annotations

from collections import Counter


def extend_vocabulary(tokenizer, model, missing: Counter, max_new: int) -> list[str]:
    """Add the most frequent unknown pieces as tokens; new rows start at the mean embedding.

    Single CJK characters are added as they are (BERT already splits Han text per character). Longer
    unknown words are added whole. Returns the tokens added.
    """
    vocab = tokenizer.get_vocab()  # once: a fast tokenizer builds the whole dict on every call
    new = [word for word, _ in missing.most_common(max_new) if word not in vocab]
    if not new:
        return []
    old_size = len(tokenizer)
    tokenizer.add_tokens(new)
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        # mean_resizing initialises new rows from the mean and covariance of the old embeddings, so the
        # new tokens start "in distribution" instead of at random scale.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    # Some models keep spare (untrained) rows past the vocabulary, e.g. DeBERTa-v3; new ids landing there
    # are initialised the same way instead of inheriting padding garbage.
    spare = range(old_size, min(rows, len(tokenizer)))
    if len(spare):
        _init_rows(model.get_input_embeddings().weight, list(spare), old_size)
    return new


def _init_rows(weight, ids: list[int], n_old: int) -> None:
    import torch

    with torch.no_grad():
        old = weight[:n_old].float()
        mean, std = old.mean(0), old.std(0)
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn((len(ids), weight.shape[1]), generator=gen)
        weight[ids] = (mean + noise * std).to(weight.dtype)
