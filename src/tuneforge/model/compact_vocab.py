"""Train with only the vocabulary rows the run's text uses; the saved model gets its whole vocabulary back.

multilingual-e5-small's word embedding is 250,002 × 384 floats (384 MB of its 470 MB), and a fine-tuning run reads
a few percent of it: waimai_10k's train, validation and test texts use 5,340 rows (2.1%). transformers maps the weights
file into memory and reads a page only when something touches it, so the untouched rows cost nothing, until a
whole-table operation (a dense gradient, weight decay over every row) touches them all. `compact_vocabulary` swaps
the embedding for a small one of just the rows the texts use (plus the tokenizer's special tokens) and renumbers
the encoded texts to match; training, its evaluations and checkpoints work on the small table, and the full one is
left as loaded. `CompactVocab.expand` writes the trained rows into the full table (private pages: the file on
disk is never changed) and puts it back before final/ is saved, so the saved model has the vocabulary it was
loaded with and loads in plain transformers.

The result equals training the whole table, with one difference: a row no text of the run uses comes back as it
was loaded. AdamW would have shrunk it by its weight decay (× (1 − lr · wd) per step: 0.06% over a default run),
since it never gets a gradient. Rows used only by validation or test texts are in the small table and decay as
before. Only for an untied `nn.Embedding` of a model that does not also predict tokens (a classifier), and only when
the table is big enough to matter (`MIN_BYTES`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tuneforge.data.encode import Encoded

MIN_BYTES = 64 << 20  # below this (minilm-l6: 47 MB) there is little to save


@dataclass
class CompactVocab:
    ids: torch.Tensor  # vocabulary ids kept, ascending: compact id i stands for vocabulary id ids[i]
    full: torch.Tensor  # the full table, as loaded

    def compact_id(self, vocab_id: int) -> int:
        return int(torch.searchsorted(self.ids, vocab_id))

    @property
    def vocab_rows(self) -> int:
        return self.full.shape[0]

    def expand(self, model: nn.Module) -> None:
        """The full table back in `model`, with the trained rows written into it."""
        small = model.get_input_embeddings()
        full = self.full  # on the CPU where it was loaded, also when the model went to a GPU
        with torch.no_grad():
            full.index_copy_(0, self.ids, small.weight.detach().to(full.device, full.dtype))
            full = full.to(small.weight.device)
        pad = None if small.padding_idx is None else int(self.ids[small.padding_idx])
        big = nn.Embedding(full.shape[0], full.shape[1], padding_idx=pad, _weight=full, _freeze=True)
        big.weight.requires_grad_(small.weight.requires_grad)
        model.set_input_embeddings(big)
        model.config.vocab_size = full.shape[0]


def compact_vocabulary(model: nn.Module, encoded: dict[str, Encoded], keep_ids,
                       min_bytes: int | None = None) -> CompactVocab | None:
    """Swap `model`'s word embedding for the rows `encoded` (every split) and `keep_ids` (special tokens) use, and
    renumber `encoded` in place; ids the model's config names keep their numbers. None (nothing changed) when the
    table is under `min_bytes`, would not shrink by half, or is not a plain untied `nn.Embedding`. `min_bytes`:
    default `MIN_BYTES`."""
    min_bytes = MIN_BYTES if min_bytes is None else min_bytes

    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if type(emb) is not nn.Embedding or emb.max_norm is not None or emb.sparse or emb.scale_grad_by_freq:
        return None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is not None and getattr(out, "weight", None) is emb.weight:
        return None
    if sum(p is emb.weight for _, p in model.named_parameters(remove_duplicate=False)) > 1:
        return None
    weight = emb.weight
    if weight.numel() * weight.element_size() < min_bytes:
        return None
    used = torch.zeros(weight.shape[0], dtype=torch.bool)
    used[torch.tensor([i for data in encoded.values() for row in data.input_ids for i in row], dtype=torch.long)] = True
    kept = [i for i in keep_ids if isinstance(i, int) and 0 <= i < weight.shape[0]]
    used[torch.tensor(kept, dtype=torch.long)] = True
    # Ids the model itself reads (its config's pad/bos/eos/sep/cls tokens: a decoder classifier finds each row's last
    # token by the pad id; the embedding's padding row, which RoBERTa-style position ids count from) must keep their
    # numbers: every id up to the largest of them stays, so each maps to itself. A model whose such ids sit at the
    # end of its vocabulary thus keeps it all (no compaction).
    config = getattr(model, "config", None)
    fixed = [getattr(config, f"{name}_token_id", None) for name in ("pad", "bos", "eos", "sep", "cls")]
    fixed = [i for i in [*fixed, emb.padding_idx] if isinstance(i, int) and 0 <= i < weight.shape[0]]
    if fixed:
        used[:max(fixed) + 1] = True
    ids = used.nonzero().squeeze(1)
    if 2 * len(ids) > weight.shape[0]:
        return None
    position = torch.full((weight.shape[0],), -1, dtype=torch.long)
    position[ids] = torch.arange(len(ids))
    pad = None if emb.padding_idx is None else int(position[emb.padding_idx])
    with torch.no_grad():
        small = nn.Embedding(len(ids), weight.shape[1], padding_idx=pad, _weight=weight.detach()[ids].clone(),
                             device=weight.device, dtype=weight.dtype)
    small.weight.requires_grad_(weight.requires_grad)
    model.set_input_embeddings(small)
    model.config.vocab_size = len(ids)
    table = position.tolist()
    for data in encoded.values():
        data.input_ids = [[table[i] for i in row] for row in data.input_ids]
    return CompactVocab(ids, weight.detach())
