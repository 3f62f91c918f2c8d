"""The batch's key/value cache: per layer one preallocated (rows, kv_heads, capacity, head_dim) tensor, every row
right-aligned at the same column `length` (shorter rows are left-padded; the engine masks the padding). Rows join by
joining caches, leave by selecting the rest (dropping the padding columns nobody needs any more), and a decode
step writes one column in place. `hf_cache` lends it to a transformers model as a `Cache`."""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class KVStore:
    """Keys and values of the active rows. Tensors are allocated at the first write (their shapes come from the
    model) with `capacity` columns; `length` columns are filled."""

    def __init__(self, layers: int, capacity: int):
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers
        self.capacity = capacity
        self.length = 0

    @property
    def rows(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[0]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (rows, heads, q, dim) keys/values at columns [length, length+q) of `layer`; return the filled views
        [0, length+q). `advance(q)` moves `length` once every layer has written."""
        end = self.length + k.shape[2]
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(*k.shape[:2], max(self.capacity, end), k.shape[3])
            self.values[layer] = v.new_zeros(*v.shape[:2], max(self.capacity, end), v.shape[3])
        elif end > self.keys[layer].shape[2]:  # the engine sizes capacity ahead; this is the safety net
            self.keys[layer] = _grow(self.keys[layer], end)
            self.values[layer] = _grow(self.values[layer], end)
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, q: int) -> None:
        self.length += q

    @staticmethod
    def joined(stores: list[KVStore], capacity: int) -> KVStore:
        """A new store with the rows of `stores` in order, right-aligned at the longest length; shorter ones get left
        padding (zeros, masked by the engine). Returns it with each input's padding added, in order."""
        length = max(s.length for s in stores)
        out = KVStore(len(stores[0].keys), max(capacity, length))
        out.length = length
        for i in range(len(out.keys)):
            out.keys[i] = _stack([(s.keys[i], s.length) for s in stores], length, out.capacity)
            out.values[i] = _stack([(s.values[i], s.length) for s in stores], length, out.capacity)
        return out

    def selected(self, rows: list[int], drop: int, capacity: int) -> KVStore:
        """A new store with only `rows`, without the first `drop` columns (padding every kept row has)."""
        out = KVStore(len(self.keys), max(capacity, self.length - drop))
        out.length = self.length - drop
        index = torch.tensor(rows, device=self.keys[0].device)
        for i in range(len(self.keys)):
            for src, dst in ((self.keys, out.keys), (self.values, out.values)):
                kept = src[i].index_select(0, index)[:, :, drop:self.length]
                dst[i] = kept.new_zeros(*kept.shape[:2], out.capacity, kept.shape[3])
                dst[i][:, :, :out.length] = kept
        return out


def _grow(t: torch.Tensor, need: int) -> torch.Tensor:
    out = t.new_zeros(*t.shape[:2], max(need, 2 * t.shape[2]), t.shape[3])
    out[:, :, :t.shape[2]] = t
    return out


def _stack(parts: list[tuple[torch.Tensor, int]], length: int, capacity: int) -> torch.Tensor:
    first = parts[0][0]
    out = first.new_zeros(sum(t.shape[0] for t, _ in parts), first.shape[1], capacity, first.shape[3])
    row = 0
    for t, used in parts:
        out[row:row + t.shape[0], :, length - used:length] = t[:, :, :used]
        row += t.shape[0]
    return out


class StoreLayer(DynamicLayer):
    """One layer of `hf_cache`: reads and writes its layer of the store."""

    def __init__(self, store: KVStore, index: int):
        super().__init__()
        self.store, self.index = store, index
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        return self.store.write(self.index, key_states, value_states)

    def get_seq_length(self) -> int:
        return self.store.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.store.length + query_length, 0


def hf_cache(store: KVStore) -> Cache:
    """A transformers `Cache` whose layers read and write `store` (transformers 5: attention layers call
    `cache.update(k, v, layer_idx)`, and masks are sized from `get_mask_sizes`/`get_seq_length`)."""
    return Cache(layers=[StoreLayer(store, i) for i in range(len(store.keys))])
