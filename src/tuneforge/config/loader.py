"""Load YAML configs, apply dotted `--set` overrides, and turn validation errors into one-line user errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tuneforge.errors import UserError, closest

C = TypeVar("C", bound=BaseModel)


def dotted_keys(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every valid dotted key of a schema, e.g. ['train.epochs', ...]."""
    keys = []
    for name, field in schema.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += dotted_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: config file not found.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)}).") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of sections (data:, model:, train: ...).")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str], schema: type[BaseModel]) -> dict[str, Any]:
    """Apply `key.sub=value` strings (values parsed as YAML) to a raw config dict."""
    valid = dotted_keys(schema)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=3.")
        if key not in valid:
            raise UserError(f"--set {key}: unknown config key.{closest(key, valid)}")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _parse_value(value)
    return raw


def _parse_value(value: str):
    """YAML typing for --set values (3 → int, null → None, [a, b] → list); anything YAML would mangle or
    reject — like '|' or 'a: b' — stays the literal string."""
    if not value.strip():
        return None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if parsed == "" or isinstance(parsed, dict) else parsed


def validate(raw: dict[str, Any], schema: type[C], source: str = "config") -> C:
    """Validate a raw dict; the first problem becomes a one-line UserError naming the field."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise UserError(f"{source}: unknown key '{key}'.{closest(key, dotted_keys(schema))}") from None
        raise UserError(f"{source}: {key}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r}).") from None


def load_config(path: str | Path | None, schema: type[C], overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> C:
    """YAML file (optional) + a base dict of CLI flags + dotted overrides, validated into `schema`."""
    raw: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for section, values in (base or {}).items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
        elif values is not None:
            raw[section] = values
    raw = apply_overrides(raw, overrides or [], schema)
    return validate(raw, schema, source=str(path) if path else "config")


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
