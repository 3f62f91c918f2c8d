"""The step-level batched decoder (continuous batching): sequences join at any step (prefilled alone, then their
cache joined to the batch's, left-padded), decode together one token per step with their own settings, and leave
when they finish (EOS, a stop string, their token budget) or are cancelled. `serve`, `generate` and evaluation all
drive this one engine."""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field

import torch

from tuneforge.errors import UserError
from tuneforge.generate.chat import context_length
from tuneforge.generate.forward import layer_count, pick_forward
from tuneforge.generate.kv import KVStore
from tuneforge.generate.sampling import choose, make_generator
from tuneforge.generate.settings import GenerationSettings
from tuneforge.generate.text import TextTracker


@dataclass
class Event:
    """What one sequence produced in one step: new text (possibly empty while a character or a possible stop string
    is incomplete), the new token ids, and whether and why it finished ("stop": EOS or a stop string, "length":
    max_new_tokens or the context, "cancelled")."""

    seq_id: int
    text_delta: str
    token_ids: list[int]
    finished: bool = False
    finish_reason: str | None = None


@dataclass(eq=False)
class _Seq:
    id: int
    prompt: list[int]
    settings: GenerationSettings
    budget: int  # new tokens it may produce: max_new_tokens, or fewer where the context ends first
    tracker: TextTracker
    generator: torch.Generator | None = None
    output: list[int] = field(default_factory=list)
    pad: int = 0  # leading padding columns of its row in the batch cache

    @property
    def seen(self) -> list[int]:
        return self.prompt + self.output

    @property
    def remaining(self) -> int:
        return self.budget - len(self.output)


class Engine:
    """Step-level batched decoding over one causal LM (in eval mode). `add` queues a prompt and returns its id;
    each `step()` admits queued sequences (up to `max_batch` in the batch), runs one decode step for the batch and
    returns the events. `add` and `cancel` may be called from another thread than `step`. `fast` picks the fused
    Llama-family forward where the model is one (same math, fewer operations)."""

    def __init__(self, model, tokenizer, max_batch: int = 16, fast: bool = True):
        self.model, self.tokenizer, self.max_batch = model, tokenizer, max_batch
        self.device = next(model.parameters()).device
        self.forward = pick_forward(model, fast)
        self.layers = layer_count(model)
        self.context = context_length(model)
        self.eos = eos_ids(model, tokenizer)
        self.rows: list[_Seq] = []
        self.store: KVStore | None = None
        self._pending: deque[_Seq] = deque()
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        """Sequences not finished yet: decoding or waiting to join."""
        with self._lock:
            return len(self.rows) + len(self._pending)

    def add(self, prompt_ids: list[int], settings: GenerationSettings) -> int:
        if not prompt_ids:
            raise UserError("the prompt is empty; give some text to continue.")
        budget = settings.max_new_tokens
        if self.context is not None:
            if len(prompt_ids) >= self.context:
                raise UserError(f"the prompt is {len(prompt_ids)} tokens; the model's context is {self.context}: "
                                "shorten the prompt.")
            budget = min(budget, self.context - len(prompt_ids))
        seq = _Seq(next(self._ids), list(prompt_ids), settings, budget,
                   TextTracker(self.tokenizer, prompt_ids, settings.stop), make_generator(settings, self.device))
        with self._lock:
            self._pending.append(seq)
        return seq.id

    def cancel(self, seq_id: int) -> None:
        """Stop a sequence; its last event (finish_reason "cancelled") comes with the next step. Unknown or finished
        ids are ignored."""
        with self._lock:
            self._cancelled.add(seq_id)

    def step(self) -> list[Event]:
        events: dict[int, Event] = {}
        with torch.inference_mode():
            self._drop_cancelled(events)
            self._admit(events)
            if self.rows:
                self._decode(events)
        return list(events.values())

    # ------------------------------------------------------------------------------------------------ the steps

    def _drop_cancelled(self, events: dict[int, Event]) -> None:
        with self._lock:
            cancelled, self._cancelled = self._cancelled, set()
            gone = [s for s in self._pending if s.id in cancelled]
            self._pending = deque(s for s in self._pending if s.id not in cancelled)
        gone += [s for s in self.rows if s.id in cancelled]
        for seq in gone:
            events[seq.id] = Event(seq.id, "", [], True, "cancelled")
        if any(s.id in cancelled for s in self.rows):
            self._keep([s for s in self.rows if s.id not in cancelled])

    def _admit(self, events: dict[int, Event]) -> None:
        """Prefill waiting sequences alone (no padding in a prefill), sample their first token, and join the caches
        of those still going to the batch's."""
        joined, stores = [], []
        while len(self.rows) + len(joined) < self.max_batch:
            with self._lock:
                if not self._pending:
                    break
                seq = self._pending.popleft()
            store = KVStore(self.layers, len(seq.prompt) + seq.remaining)
            ids = torch.tensor([seq.prompt], device=self.device)
            positions = torch.arange(len(seq.prompt), device=self.device)[None]
            logits = self.forward(ids, positions, None, store)
            if not self._take(seq, choose(logits, [seq])[0], events):
                joined.append(seq)
                stores.append(store)
        if not joined:
            return
        everyone = self.rows + joined
        parts = ([self.store] if self.rows else []) + stores
        length = max(s.length for s in parts)
        for seq, part in zip(everyone, [self.store] * len(self.rows) + stores):
            seq.pad += length - part.length
        self.store = KVStore.joined(parts, length + max(s.remaining for s in everyone))
        self.rows = everyone

    def _decode(self, events: dict[int, Event]) -> None:
        store, rows = self.store, self.rows
        ids = torch.tensor([[s.output[-1]] for s in rows], device=self.device)
        pads = torch.tensor([s.pad for s in rows], device=self.device)
        positions = (store.length - pads)[:, None]
        mask = None
        if any(s.pad for s in rows):
            mask = torch.arange(store.length + 1, device=self.device)[None] >= pads[:, None]
        logits = self.forward(ids, positions, mask, store)
        finished = [self._take(seq, token, events) for seq, token in zip(rows, choose(logits, rows))]
        if any(finished):
            self._keep([s for s, done in zip(rows, finished) if not done])

    def _take(self, seq: _Seq, token: int, events: dict[int, Event]) -> bool:
        """Record `token` for `seq` and its event; True when the sequence is finished."""
        seq.output.append(token)
        reason = None
        if token in self.eos:
            delta, _ = seq.tracker.finish()
            reason = "stop"
        else:
            delta, stopped = seq.tracker.push(token)
            if stopped:
                reason = "stop"
            elif seq.remaining <= 0:
                rest, stopped = seq.tracker.finish()
                delta, reason = delta + rest, "stop" if stopped else "length"
        event = events.setdefault(seq.id, Event(seq.id, "", []))
        event.text_delta += delta
        event.token_ids.append(token)
        event.finished, event.finish_reason = reason is not None, reason
        return reason is not None

    def _keep(self, rows: list[_Seq]) -> None:
        """Only `rows` stay in the batch; padding columns every remaining row has are dropped."""
        if not rows:
            self.rows, self.store = [], None
            return
        index = [self.rows.index(s) for s in rows]
        drop = min(s.pad for s in rows)
        for seq in rows:
            seq.pad -= drop
        capacity = self.store.length - drop + max(s.remaining for s in rows)
        self.store = self.store.selected(index, drop, capacity)
        self.rows = rows


def eos_ids(model, tokenizer) -> set[int]:
    """Token ids that end a sequence: the generation config's eos_token_id (one or a list) and the tokenizer's."""
    found: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(v for v in value if isinstance(v, int))
    return found
