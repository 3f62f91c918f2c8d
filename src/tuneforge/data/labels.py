"""Label spaces: string or int labels, single- or multi-label, mapped to ids in a stable order."""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import UserError


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_label(value, separator: str | None):
    """One cell → a label (str) or a list of labels (multi-label)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value]
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and float(value).is_integer()):
        return str(int(value))
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return [str(v).strip() for v in parsed]
        except json.JSONDecodeError:
            pass
    if separator is not None:
        return [part.strip() for part in text.split(separator) if part.strip()]
    return text


def read_labels(values: list, path: str | Path, column: str, separator: str | None) -> list:
    """Parse a label column; a missing label is a user error naming the row."""
    out = []
    for i, value in enumerate(values):
        if _is_missing(value):
            raise UserError(f"{path}: row {i + 1} has no label in column '{column}'. Fill it in or remove the row.")
        out.append(parse_label(value, separator))
    return out


def _sort_key(name: str):
    # Int labels sort numerically (0, 1, 2, 10), strings alphabetically.
    return (0, int(name), name) if re.fullmatch(r"-?[0-9]+", name) else (1, 0, name)


@dataclass(frozen=True)
class LabelSpace:
    names: tuple[str, ...]
    multi_label: bool

    @classmethod
    def from_labels(cls, labels: list, multi_label: bool | None = None) -> LabelSpace:
        is_multi = any(isinstance(x, list) for x in labels) if multi_label is None else multi_label
        flat = [n for x in labels for n in (x if isinstance(x, list) else [x])]
        names = tuple(sorted(set(flat), key=_sort_key))
        if len(names) < 2 and not is_multi:
            raise UserError(f"the training data has only one label ({names[0] if names else 'none'}); "
                            "a classifier needs at least two.")
        return cls(names=names, multi_label=is_multi)

    @classmethod
    def from_model_config(cls, config) -> LabelSpace:
        id2label = {int(k): v for k, v in config.id2label.items()}
        multi = getattr(config, "problem_type", None) == "multi_label_classification"
        return cls(names=tuple(id2label[i] for i in range(len(id2label))), multi_label=multi)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def encode(self, labels: list, path: str | Path = "data") -> np.ndarray:
        """Ids (N,) for single-label, or a multi-hot float matrix (N, C) for multi-label."""
        index = self.label2id
        unknown = Counter(n for x in labels for n in (x if isinstance(x, list) else [x]) if n not in index)
        if unknown:
            name, count = unknown.most_common(1)[0]
            raise UserError(f"{path}: label '{name}' ({count} rows) was never seen in training. "
                            f"Known labels: {', '.join(self.names)}. Fix or drop those rows.")
        if self.multi_label:
            out = np.zeros((len(labels), len(self.names)), dtype=np.float32)
            for i, x in enumerate(labels):
                for n in (x if isinstance(x, list) else [x]):
                    out[i, index[n]] = 1.0
            return out
        if any(isinstance(x, list) for x in labels):
            raise UserError(f"{path}: found a list of labels but the model is single-label.")
        return np.array([index[x] for x in labels], dtype=np.int64)

    def class_counts(self, encoded: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return encoded.sum(axis=0)
        return np.bincount(encoded, minlength=len(self.names)).astype(np.float64)
