"""What a run sends its experiment trackers, as named numbers: the resolved config flattened to dotted keys, each
metrics.jsonl record (train/<name>, <split>/<name>, system/<name>) and the summary (final/..., summary/...)."""
from __future__ import annotations

import json

SYSTEM = ("samples_per_s", "tokens_per_s", "mfu", "rss_mb")  # logged as system/<name>


def flat_config(cfg) -> dict:
    """The resolved config as {"train.learning_rate": 3e-5, ...}: numbers, strings and booleans as they are; lists
    as JSON, None as "null" (TensorBoard's hparams and MLflow's params take scalars only)."""
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif value is None:
                out[prefix + key] = "null"
            elif isinstance(value, (list, tuple)):
                out[prefix + key] = json.dumps(value, ensure_ascii=False)
            else:
                out[prefix + key] = value
    walk(cfg.model_dump(mode="json"), "")
    return out


def tracker_values(record: dict) -> dict:
    """A metrics.jsonl record as tracker metrics: train/<name> or <split>/<name>, throughput as system/<name>;
    numbers only (step and split are the coordinates)."""
    prefix = record.get("split", "train")
    out = {}
    for key, value in record.items():
        if key in ("step", "split") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[f"system/{key}" if key in SYSTEM else f"{prefix}/{key}"] = value
    if "split" not in record and "rss_mb" not in record:  # the loop's train records carry it
        out["system/rss_mb"] = round(_rss_bytes() / 2**20, 1)
    return out


def summary_values(summary) -> dict:
    """The run's end: final/<split>/<metric> (or final/<metric> for one held-out set) and summary/<counter>."""
    out = {}
    for key, value in (summary.metrics or {}).items():
        if isinstance(value, dict):
            out.update({f"final/{key}/{k}": v for k, v in value.items() if _number(v)})
        elif _number(value):
            out[f"final/{key}"] = value
    for key in ("steps", "best_step", "train_seconds", "samples_per_s", "tokens", "tokens_per_s", "mfu"):
        if _number(getattr(summary, key, None)):
            out[f"summary/{key}"] = getattr(summary, key)
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss
