"""Generation settings: one frozen record of how a sequence is decoded (length, sampling, penalty, seed, stop strings),
checked once where it enters (CLI flags, `TextGenerator` keywords, a server request)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tuneforge.errors import UserError, closest


@dataclass(frozen=True)
class GenerationSettings:
    """How one sequence is decoded. temperature 0 is greedy (top_p/top_k/seed are then unused); top_k 0 is off;
    repetition_penalty 1.0 is off (>1 discourages tokens already in the prompt or the output, as transformers'
    RepetitionPenaltyLogitsProcessor does); seed None draws a fresh one; stop strings end the output and are trimmed
    from it."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def check(self) -> GenerationSettings:
        """self, or UserError naming the setting and its allowed range."""
        def bad(name: str, rule: str):
            raise UserError(f"{name}={getattr(self, name)!r}: {rule}.")

        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            bad("max_new_tokens", "use a whole number of at least 1")
        if not _number(self.temperature) or self.temperature < 0:
            bad("temperature", "use 0 (greedy) or a positive number such as 0.7")
        if not _number(self.top_p) or not 0 < self.top_p <= 1:
            bad("top_p", "use a number in (0, 1]; 1 keeps every token")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            bad("top_k", "use a whole number >= 0; 0 keeps every token")
        if not _number(self.repetition_penalty) or self.repetition_penalty <= 0:
            bad("repetition_penalty", "use a positive number; 1.0 is off, 1.1-1.3 discourages repeats")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            bad("seed", "use a whole number >= 0, or leave it unset")
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) for s in self.stop):
            bad("stop", "use a list of strings")
        if any(s == "" for s in self.stop):
            bad("stop", "an empty stop string would end every output at once; drop it")
        return self


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


FIELDS = tuple(f.name for f in dataclasses.fields(GenerationSettings))


def make_settings(base: GenerationSettings | None = None, **changes) -> GenerationSettings:
    """`base` (default settings when None) with `changes`, checked. None values are ignored (an unset CLI flag or JSON
    field keeps the base value); `stop` may be one string or a list. Unknown names are a UserError."""
    for name in changes:
        if name not in FIELDS:
            raise UserError(f"unknown generation setting '{name}'.{closest(name, FIELDS)} "
                            f"Settings: {', '.join(FIELDS)}.")
    changes = {k: v for k, v in changes.items() if v is not None}
    if "stop" in changes:
        stop = changes["stop"]
        changes["stop"] = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, (list, tuple)) else stop
    return dataclasses.replace(base or GenerationSettings(), **changes).check()
