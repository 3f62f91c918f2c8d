"""The word embedding trained as the rows the training data uses: the same AdamW result, a fraction of the work.

Fine-tuning data touches few of a vocabulary's rows: 4,000 SST-2 texts use 6,650 of the default model's 30,522.
PyTorch still fills a dense 30,522 × 384 gradient (47 MB) every step, clipping reads and scales all of it, and
fused AdamW reads and writes four arrays of that size: ~10 ms of a ~200 ms step on the 2-core CPU by the
arithmetic; measured 1.02× per step (interleaved probe) and 1.05× per whole 4,000-row run. Here:

- `row_table(model, ids)` takes the rows the training set uses (every id of every training text, plus the padding
  row) into one compact table for the run. While gradients are on, the embedding looks ids up there, and its
  backward hands the touched rows (ids, summed values, padding row left out, as `nn.Embedding`) to the table
  instead of a dense weight gradient.
- `EmbeddingRowsAdamW` clips with the same global norm as `clip_grad_norm_` (other rows' gradient is 0) and
  updates the compact table with PyTorch's fused AdamW kernel: every used row, every step, as the dense update
  does (rows with momentum keep moving and all decay).
- Rows the training data never uses have zero gradient and zero moments for the whole run, so the dense update
  only decays them: `p ← p · (1 − lr·wd)` per step. That product is kept as one number. `flush()` writes the
  table back into the weight and applies the pending decay to the other rows; the loop calls it before every
  evaluation and checkpoint and at the end of training, so anything that reads or saves the weights sees the
  dense update's values (up to float rounding; the tests compare them step by step).

In memory the optimizer keeps moments for the table's rows only, and `state_dict()` writes them so (AdamW's keys
`step`, `exp_avg`, `exp_avg_sq`, plus the rows' vocabulary ids): written dense, multilingual-e5-small's 250,002 rows
cost 0.77 GB of zeros at every checkpoint. Every optimizer the session builds densifies such an entry on load
(`densify_rows`), so a checkpoint resumes with or without the table.
Used for single-process CPU fine-tuning of an untied `nn.Embedding`; elsewhere the dense path runs.
"""
from __future__ import annotations

from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.adam import adam as adam_update


class RowTable:
    """The training set's embedding rows as one compact tensor, and the gradient its backward sends."""

    def __init__(self, module: nn.Embedding, ids: torch.Tensor):
        self.module, self.weight, self.padding_idx = module, module.weight, module.padding_idx
        self.rows: torch.Tensor | None = None  # taken from the weight at the first use (after a resume's load)
        self.grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.ids = torch.empty(0, dtype=torch.long)
        self.position = torch.full((self.weight.shape[0],), -1, dtype=torch.long)  # vocabulary id → table row
        pad = [self.padding_idx] if self.padding_idx is not None else []
        self.add_rows(torch.cat([ids.reshape(-1).long(), torch.tensor(pad, dtype=torch.long)]))

    def add_rows(self, ids: torch.Tensor) -> None:
        """Widen the table (before training starts: `rows` not taken yet)."""
        assert self.rows is None, "the table is fixed once training has read it"
        self.ids = torch.unique(torch.cat([self.ids, ids.reshape(-1).long()]))
        self.position.fill_(-1)
        self.position[self.ids] = torch.arange(len(self.ids))

    def take(self) -> torch.Tensor:
        """The table's rows, copied from the weight the first time."""
        if self.rows is None:
            self.rows = self.weight.detach()[self.ids].clone()
        return self.rows

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        self.take()
        position = self.position[ids]
        if (position < 0).any():
            raise RuntimeError("a training batch used an embedding row outside the rows taken from the training set")
        return position

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(table rows, summed values) of everything since the last `clear()` (gradient accumulation merged)."""
        if len(self.grads) > 1:
            rows, values = torch.cat([r for r, _ in self.grads]), torch.cat([v for _, v in self.grads])
            uniq, inverse = torch.unique(rows, return_inverse=True)
            self.grads = [(uniq, values.new_zeros(len(uniq), values.shape[1]).index_add_(0, inverse, values))]
        return self.grads[0] if self.grads else None

    def clear(self) -> None:
        self.grads = []

    def release(self) -> None:
        """After training: the embedding looks up its own (flushed) weight again, gradients or not."""
        if "forward" in self.module.__dict__:
            del self.module.forward


class _Rows(torch.autograd.Function):
    """Embedding lookup in the table; the backward sends the touched rows to it (no dense weight gradient).
    `weight` is an input only so that the output requires grad."""

    @staticmethod
    def forward(ctx, ids, weight, table: RowTable):
        position = table.lookup(ids)
        ctx.save_for_backward(ids, position)
        ctx.table = table
        return F.embedding(position, table.rows)

    @staticmethod
    def backward(ctx, grad):
        ids, position = (t.reshape(-1) for t in ctx.saved_tensors)
        grad = grad.reshape(-1, grad.shape[-1])
        if ctx.table.padding_idx is not None:  # nn.Embedding never sends gradient to its padding row
            keep = ids != ctx.table.padding_idx
            position, grad = position[keep], grad[keep]
        uniq, inverse = torch.unique(position, return_inverse=True)
        ctx.table.grads.append((uniq, grad.new_zeros(len(uniq), grad.shape[1]).index_add_(0, inverse, grad)))
        return None, None, None


def row_table(model: nn.Module, train_ids) -> RowTable | None:
    """Route `model`'s input embedding through a `RowTable` of the rows in `train_ids` while gradients are on;
    None (nothing changed) when the embedding is not a plain trainable `nn.Embedding` or is tied to an output."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if type(emb) is not nn.Embedding or emb.max_norm is not None or emb.scale_grad_by_freq or emb.sparse:
        return None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not emb.weight.requires_grad or (out is not None and getattr(out, "weight", None) is emb.weight):
        return None
    if sum(p is emb.weight for _, p in model.named_parameters(remove_duplicate=False)) > 1:
        return None  # shared by several modules (T5's encoder/decoder embed_tokens): not every lookup comes here
    table = RowTable(emb, torch.as_tensor(train_ids))

    def forward(self, ids):
        if torch.is_grad_enabled():
            return _Rows.apply(ids, self.weight, table)
        return F.embedding(ids, self.weight, self.padding_idx)  # evaluation reads the flushed weight

    emb.forward = MethodType(forward, emb)
    return table


class EmbeddingRowsAdamW(torch.optim.AdamW):
    """Fused AdamW; the word embedding is trained through `table` (see the module doc).

    `state_dict()` holds the embedding's moments for the table's rows only, with their vocabulary ids; loading
    densifies them first (`densify_rows`), then keeps the table's rows, so either form resumes here or in plain
    AdamW (another device, several processes).
    """

    def __init__(self, params, table: RowTable, **kwargs):
        super().__init__(params, fused=True, **kwargs)
        self.table = table
        # By position: load_state_dict replaces the group dicts, and the schedule sets lr on the new ones.
        self.table_group = next(i for i, g in enumerate(self.param_groups)
                                if any(p is table.weight for p in g["params"]))
        self.buffer: torch.Tensor | None = None  # the table's gradient: zero except during a step

    def _state(self) -> dict:
        state = self.state[self.table.weight]
        if not state:
            rows = (len(self.table.ids), self.table.weight.shape[1])
            state.update(step=torch.tensor(0.0), exp_avg=self.table.weight.new_zeros(rows),
                         exp_avg_sq=self.table.weight.new_zeros(rows),
                         pending_decay=torch.ones((), dtype=self.table.weight.dtype))  # Π (1 − lr·wd) since flush
        return state

    def _index(self) -> int:
        """The embedding weight's index in `state_dict()["state"]` (parameters numbered in group order)."""
        params = [p for g in self.param_groups for p in g["params"]]
        return next(i for i, p in enumerate(params) if p is self.table.weight)

    def state_dict(self) -> dict:
        out = super().state_dict()
        index = self._index()
        state = out["state"].get(index)
        if state:
            # Compact: the table's rows only, with their vocabulary ids. Written dense, a 250,002-row vocabulary
            # (multilingual-e5-small) cost two 384 MB zero-filled arrays at every checkpoint.
            extra = {"pending_decay": state["pending_decay"]} if float(state["pending_decay"]) != 1.0 else {}
            out["state"][index] = {"step": state["step"], "exp_avg": state["exp_avg"].clone(),
                                   "exp_avg_sq": state["exp_avg_sq"].clone(), ROW_IDS: self.table.ids.clone(),
                                   ROWS_OF: torch.tensor(self.table.weight.shape[0]), **extra}
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # compact entries arrive dense (`densify_rows`, a load pre-hook)
        state = self.state[self.table.weight]
        if state and state["exp_avg"].shape[0] == self.table.weight.shape[0]:  # dense: this form or plain AdamW's
            moved = (state["exp_avg"] != 0).any(1) | (state["exp_avg_sq"] != 0).any(1)
            self.table.add_rows(moved.nonzero().squeeze(1))  # rows with momentum stay in every step's update
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state[key][self.table.ids].clone()
        if state and "pending_decay" not in state:
            state["pending_decay"] = torch.ones((), dtype=self.table.weight.dtype)

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """`torch.nn.utils.clip_grad_norm_` over every parameter's gradient, the embedding's rows included."""
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        rows = self.table.gradient()
        total = torch.nn.utils.get_total_norm([p.grad for p in params] + ([rows[1]] if rows is not None else []))
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        if rows is not None:
            rows[1].mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))  # the same factor as clip_grads_with_norm_
        return total

    @torch.no_grad()
    def step(self, closure=None):
        if self.table.weight.grad is not None:
            raise RuntimeError("the embedding got a dense gradient: something looked it up outside its module")
        loss = super().step(closure)  # every other parameter (the embedding's .grad is None, so it is skipped)
        table, group, state = self.table, self.param_groups[self.table_group], self._state()
        grad = table.gradient()
        table.clear()
        rows = table.take()  # taken already unless no training forward ran (an empty step)
        if self.buffer is None:
            self.buffer = torch.zeros_like(rows)
        if grad is not None:
            self.buffer.index_copy_(0, *grad)
        beta1, beta2 = group["betas"]
        adam_update([rows], [self.buffer], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                    fused=True, decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                    weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        if grad is not None:
            self.buffer.index_fill_(0, grad[0], 0.0)
        state["pending_decay"] *= 1.0 - group["lr"] * group["weight_decay"]
        return loss

    @torch.no_grad()
    def flush(self) -> None:
        """Write the table into the weight and decay the other rows as the dense steps would have."""
        table, state = self.table, self.state[self.table.weight]
        if table.rows is None or not state:
            return
        table.weight.mul_(state["pending_decay"])
        table.weight.index_copy_(0, table.ids, table.rows)
        state["pending_decay"].fill_(1.0)


ROW_IDS, ROWS_OF = "row_ids", "rows_of"  # a compact embedding entry: its rows' vocabulary ids, the vocabulary size


def densify_rows(optimizer, state_dict: dict) -> dict:
    """A load_state_dict pre-hook for every optimizer the session builds: a compact embedding entry (written by
    `EmbeddingRowsAdamW.state_dict`) becomes the dense AdamW entry it stands for (zeros for the other rows), so a
    checkpoint resumes with the table or without it (plain AdamW: several processes, another device)."""
    entries = state_dict.get("state", {})
    if not any(isinstance(e, dict) and ROW_IDS in e for e in entries.values()):
        return state_dict
    state_dict = {**state_dict, "state": dict(entries)}
    for key, entry in entries.items():
        if isinstance(entry, dict) and ROW_IDS in entry:
            entry = dict(entry)
            ids, rows = entry.pop(ROW_IDS).long(), int(entry.pop(ROWS_OF))
            for name in ("exp_avg", "exp_avg_sq"):
                compact = entry[name]
                entry[name] = compact.new_zeros((rows, *compact.shape[1:])).index_copy_(0, ids, compact)
            state_dict["state"][key] = entry
    return state_dict


def _table_optimizer(optimizer) -> EmbeddingRowsAdamW | None:
    inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's AcceleratedOptimizer wraps it
    return inner if isinstance(inner, EmbeddingRowsAdamW) else None


def clip_gradients(accelerator, model, optimizer, max_norm: float) -> None:
    """Clip the global gradient norm: Accelerate's `clip_grad_norm_`, or the table optimizer's own, which also
    counts the embedding rows its table holds outside `.grad`."""
    table_optimizer = _table_optimizer(optimizer)
    if table_optimizer is not None:
        table_optimizer.clip_grad_norm_(max_norm)
    else:
        accelerator.clip_grad_norm_(model.parameters(), max_norm)


def flush(optimizer) -> None:
    """Bring the model's weights up to date with an optimizer that holds part of them apart (Accelerate's wrapper
    or not); a no-op for any other optimizer."""
    table_optimizer = _table_optimizer(optimizer)
    if table_optimizer is not None:
        table_optimizer.flush()
