"""The search space of `tuneforge tune`: dotted config keys with a range or a list of choices, read from a space YAML
or from the flags for the common ones (--lr 1e-5:1e-3:log, --batch-size 16,32 ...), checked against the schema."""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import FinetuneConfig
from tuneforge.config.loader import dotted_keys, validate
from tuneforge.errors import UserError, closest

# --flag → the config key it searches; the flag's text is a range LOW:HIGH[:log] or choices A,B,C.
FLAGS = {"lr": "train.learning_rate", "batch_size": "train.batch_size", "epochs": "train.epochs",
         "warmup": "train.warmup_ratio", "weight_decay": "train.weight_decay", "lora_rank": "lora.rank"}
SPEC_KEYS = ("low", "high", "log", "step", "choices")
NOT_SEARCHABLE = {"output": "each trial writes to its own folder under the search's --output"}


@dataclass(frozen=True)
class Param:
    """One searched config key: a range (`low`..`high`, on a log scale with `log`, integers when `integer`) or
    `choices`."""
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The value an Optuna trial (or Ray's capture of one) draws for this key."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        kind = "integers" if self.integer else "log scale" if self.log else "uniform"
        return f"{self.low:g} to {self.high:g} ({kind}{f', step {self.step:g}' if self.step else ''})"


def _number(value: Any, where: str) -> float | int:
    """YAML reads 1e-5 (no dot) as a string: numbers in any spelling are accepted."""
    if isinstance(value, bool):
        raise UserError(f"{where}: expected a number, got {value!r}.")
    if isinstance(value, (int, float)):
        return value
    try:
        return int(value) if str(value).strip().lstrip("+-").isdigit() else float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected a number, got {value!r}.") from None


def _is_int_field(name: str) -> bool:
    """Whether the schema types `name` as an integer (batch size, LoRA rank ...), not a float."""
    node: Any = FinetuneConfig
    for part in name.split("."):
        node = node.model_fields[part].annotation
    args = typing.get_args(node) if isinstance(node, types.UnionType) or typing.get_origin(node) else (node,)
    return int in args and float not in args


def _check_name(name: str, source: str) -> None:
    valid = [k for k in dotted_keys(FinetuneConfig) if k not in NOT_SEARCHABLE]
    if name in NOT_SEARCHABLE:
        raise UserError(f"{source}: '{name}' cannot be searched: {NOT_SEARCHABLE[name]}.")
    if name not in valid:
        raise UserError(f"{source}: unknown parameter '{name}'.{closest(name, valid)}")


def parse_param(name: str, spec: Any, source: str) -> Param:
    """One space entry: `{low, high[, log][, step]}` or `{choices: [...]}` (a bare list means choices)."""
    _check_name(name, source)
    where = f"{source}: {name}"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}, got {spec!r}.")
    for key in spec:
        if key not in SPEC_KEYS:
            raise UserError(f"{where}: unknown field '{key}'.{closest(str(key), SPEC_KEYS)}")
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise UserError(f"{where}: give either choices or low/high, not both.")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: empty choices; list at least one value.")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise UserError(f"{where}: choices must be plain values (numbers, strings, true/false, null).")
        return Param(name, choices=tuple(dict.fromkeys(choices)))
    return _range(name, spec, where)


def _range(name: str, spec: dict, where: str) -> Param:
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where}: a range needs both low and high (or give choices: [..]).")
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    step = _number(spec["step"], f"{where}.step") if spec.get("step") is not None else None
    log = bool(spec.get("log", False))
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UserError(f"{where}: empty range (low {low:g} must be below high {high:g}).")
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0 (got {low:g}).")
    if step is not None and (step <= 0 or log):
        raise UserError(f"{where}: step must be > 0 and cannot go with log.")
    # Integers when the schema says so, or when both bounds (and any step) are written as integers: epochs 2:6.
    integer = _is_int_field(name) or all(isinstance(v, int) for v in (low, high, step) if v is not None)
    if integer and (low != int(low) or high != int(high)):
        raise UserError(f"{where}: {name} takes whole numbers (got {low:g} to {high:g}).")
    if integer and int(high) - int(low) < (step or 1):
        raise UserError(f"{where}: empty range (no whole step between {low:g} and {high:g}).")
    return Param(name, float(low), float(high), log, float(step) if step else None, integer)


def parse_flag(flag: str, text: str) -> Param:
    """`--lr 1e-5:1e-3:log`, `--epochs 2:6`, `--batch-size 16,32`: a range or choices for the flag's key."""
    name, source = FLAGS[flag], "--" + flag.replace("_", "-")
    parts = [p.strip() for p in text.split(":")]
    if len(parts) in (2, 3) and "," not in text:
        if len(parts) == 3 and parts[2] != "log":
            raise UserError(f"{source} {text}: expected LOW:HIGH or LOW:HIGH:log.")
        low, high = (yaml.safe_load(p) if p else None for p in parts[:2])
        return _range(name, {"low": low, "high": high, "log": len(parts) == 3}, f"{source} {text}: {name}")
    values = [yaml.safe_load(v) for v in text.split(",") if v.strip()]
    if len(values) < 2:
        raise UserError(f"{source} {text}: give a range LOW:HIGH[:log] or two or more choices A,B (a single value "
                        f"is not a search: use --set {name}={text}).")
    return parse_param(name, {"choices": values}, source)


def read_space(path: str | Path) -> list[Param]:
    """A space YAML: a mapping of dotted config keys to ranges or choices."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: space file not found.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)}).") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a space is a mapping of config keys, e.g. train.learning_rate: {{low: 1e-5, "
                        "high: 1e-3, log: true}.")
    return [parse_param(str(k), v, str(path)) for k, v in _flatten(raw).items()]


def _flatten(raw: dict, prefix: str = "") -> dict:
    """`train: {learning_rate: {...}}` is the same as `train.learning_rate: {...}`."""
    out = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not set(value) & set(SPEC_KEYS) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def build_space(space_file: str | Path | None, flags: dict[str, str | None]) -> list[Param]:
    """The space file's params, then the flags' (a flag replaces the same key from the file)."""
    params = {p.name: p for p in (read_space(space_file) if space_file else [])}
    for flag, text in flags.items():
        if text is not None:
            param = parse_flag(flag, str(text))
            params[param.name] = param
    if not params:
        raise UserError("nothing to search: give --space FILE or a range flag (--lr 1e-5:1e-3:log, --batch-size "
                        "16,32, --epochs 2:6, --warmup 0:0.2, --weight-decay 0:0.1, --lora-rank 4,8,16).")
    return list(params.values())


def check_space(params: list[Param], base: dict, source: str) -> None:
    """Every end of every range and every choice must make a valid config with the base: a bad value fails now,
    in one line, not as a failed trial later."""
    for p in params:
        values = p.choices or (p.low, p.high)
        for value in values:
            value = int(value) if p.integer else value
            try:
                validate(with_values(base, {p.name: value}), FinetuneConfig, source)
            except UserError as exc:
                raise UserError(f"{source}: {p.name} = {value!r} is not a valid value "
                                f"({str(exc).split(': ', 1)[-1]})") from None


def with_values(base: dict, values: dict[str, Any]) -> dict:
    """A deep copy of a raw config dict with dotted `values` set."""
    import copy

    raw = copy.deepcopy(base)
    for key, value in values.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise UserError(f"{key}: the config's '{part}' is not a section.")
            node = node[part]
        node[leaf] = value
    return raw
