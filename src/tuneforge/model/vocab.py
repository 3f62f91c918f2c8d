"""Vocabulary extension: add the pieces a tokenizer maps to [UNK], and give them sensible embeddings."""
from __future__ import annotations

from collections import Counter


def extend_vocabulary(tokenizer, model, missing: Counter, max_new: int) -> list[str]:
    """Add the most frequent unknown pieces as tokens; new rows start at the mean embedding.

    Single CJK characters are added as they are (BERT already splits Han text per character). Longer
    unknown words are added whole. Returns the tokens added.
    """
    new = [word for word, _ in missing.most_common(max_new) if word not in tokenizer.get_vocab()]
    if not new:
        return []
    tokenizer.add_tokens(new)
    # mean_resizing initialises new rows from the mean and covariance of the old embeddings, so the
    # new tokens start "in distribution" instead of at random scale.
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return new
