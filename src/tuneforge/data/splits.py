"""Load the labelled train/validation/test splits, splitting train (stratified, seeded) when files are missing."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneforge.config import DataConfig
from tuneforge.data.labels import read_labels
from tuneforge.data.pii import PII_TYPES, redact_texts
from tuneforge.data.sources import column_texts, pick_column, read_table, require_columns
from tuneforge.errors import UserError


@dataclass
class Split:
    name: str
    texts: list[str]
    labels: list  # str or list[str] per row
    source: str  # file path, or "train[split]" when carved out of train
    rows: list[int] = field(default_factory=list)  # row numbers (0-based) in the source file
    pii: dict[str, int] = field(default_factory=dict)  # finds per PII type when data.redact_pii is on; {} when off


def _read(path: str, cfg: DataConfig, name: str) -> Split:
    df = read_table(path)
    text_column = pick_column(df, path, cfg.text_column)
    require_columns(df, path, [cfg.label_column])
    texts = column_texts(df, path, text_column, cfg.normalize)
    labels = read_labels(df[cfg.label_column].tolist(), path, cfg.label_column, cfg.label_separator)
    return Split(name, texts, labels, path, list(range(len(texts))))


def redact_split(split: Split) -> Split:
    """Replace personal data in the texts with [EMAIL], [PHONE] ... and record the counts (every type, 0 included)."""
    split.texts, counts = redact_texts(split.texts)
    split.pii = {kind: counts[kind] for kind in PII_TYPES}
    return split


def load_labelled(path: str, cfg: DataConfig, name: str) -> Split:
    split = _read(path, cfg, name)
    return redact_split(split) if cfg.redact_pii else split


def _stratify_key(labels: list, fraction: float):
    """Stratify on the label (first label for multi-label) when every class can be split; else None."""
    keys = np.array([x[0] if isinstance(x, list) and x else str(x) for x in labels])
    _, counts = np.unique(keys, return_counts=True)
    n_holdout = int(round(fraction * len(labels)))
    if counts.min() < 2 or n_holdout < len(counts):
        return None
    return keys


def _carve(split: Split, fraction: float, seed: int, name: str) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(split.texts))
    if int(round(fraction * len(idx))) < 1 or len(idx) - int(round(fraction * len(idx))) < 2:
        raise UserError(f"{split.source}: only {len(idx)} rows; too few to hold out a {name} split. "
                        f"Add rows or pass --{name} FILE.")
    keep, held = train_test_split(idx, test_size=fraction, random_state=seed,
                                  stratify=_stratify_key(split.labels, fraction))
    keep, held = sorted(keep), sorted(held)

    def pick(ids, new_name, source):
        return Split(new_name, [split.texts[i] for i in ids], [split.labels[i] for i in ids], source,
                     [split.rows[i] for i in ids])

    return pick(keep, split.name, split.source), pick(held, name, f"{split.source}[{name} split]")


def load_splits(cfg: DataConfig) -> dict[str, Split]:
    """train / validation / (test) splits. Held-out splits are carved from train when their file is missing."""
    if not cfg.train:
        raise UserError("no training data: pass --train FILE or set data.train in the config.")
    train = _read(cfg.train, cfg, "train")  # redacted after carving, so each split counts only its own finds
    splits: dict[str, Split] = {}
    if cfg.test:
        splits["test"] = load_labelled(cfg.test, cfg, "test")
    elif cfg.test_fraction > 0:
        train, splits["test"] = _carve(train, cfg.test_fraction, cfg.split_seed, "test")
    if cfg.validation:
        splits["validation"] = load_labelled(cfg.validation, cfg, "validation")
    else:
        frac = cfg.validation_fraction / max(1e-9, 1 - (0 if cfg.test else cfg.test_fraction))
        train, splits["validation"] = _carve(train, frac, cfg.split_seed + 1, "validation")
    splits = {"train": train, **splits}
    if cfg.redact_pii:
        for split in splits.values():
            if not split.pii:  # files given as --validation/--test were redacted by load_labelled
                redact_split(split)
    return splits


def split_record(splits: dict[str, Split]) -> dict:
    """What goes to split.json: where each split came from and which source rows it holds."""
    return {name: {"source": s.source, "size": len(s.texts), "rows": s.rows} for name, s in splits.items()}
