"""Parallel text (translation, text-to-text) read into aligned pairs: two line-aligned files or a table with a source
and a target column; train/validation/test from files, file prefixes (PREFIX.en + PREFIX.de) or carved from train.

Alignment is the one thing that must never go wrong silently: a pair is dropped only where it stands (an empty side),
with its line number kept, so line i of the source stays paired with line i of the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneforge.config import DataConfig
from tuneforge.data.sources import _check_utf8, clean_text, first_column, read_table
from tuneforge.errors import UserError, closest


@dataclass
class ParallelSplit:
    source: str  # what the user named (for messages), e.g. "train.en + train.de" or "pairs.jsonl"
    sources: list[str]  # source sentences (NFKC + whitespace clean-up when data.normalize; never lowercased)
    targets: list[str]  # reference sentences, same length
    rows: list[int]  # 1-based line (or data row) number of each kept pair in the source file(s)
    dropped: dict[str, list[int]] = field(default_factory=dict)  # reason → 1-based line numbers left out
    references: list[str] | None = None  # the targets as the file has them (no clean-up): what BLEU is scored on

    def __post_init__(self):
        if self.references is None:
            self.references = list(self.targets)

    def __len__(self) -> int:
        return len(self.sources)

    def take(self, positions, source: str | None = None) -> ParallelSplit:
        """The pairs at `positions` (in that order), with their original line numbers; drops stay with the file."""
        return ParallelSplit(source or self.source, [self.sources[i] for i in positions],
                             [self.targets[i] for i in positions], [self.rows[i] for i in positions], {},
                             [self.references[i] for i in positions])


def _lines(path: Path) -> list[str]:
    """A file's lines, split on '\\n' only: str.splitlines() also breaks at U+2028, U+0085, form feeds ... and one
    such character inside a sentence would shift every later line against the other file. A UTF-8 byte order mark
    and '\\r' line ends are removed; blank lines at the end of the file are not lines."""
    if not path.is_file():
        raise UserError(f"{path}: file not found.")
    _check_utf8(path)
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _pairs(name: str, src: list, tgt: list, rows: list[int], normalize: bool) -> ParallelSplit:
    """Aligned raw values → kept pairs; a pair with an empty side is dropped where it stands and counted."""
    sources, targets, refs, kept = [], [], [], []
    dropped: dict[str, list[int]] = {}
    for s, t, row in zip(src, tgt, rows):
        raw = _text(t, False)
        s, t = _text(s, normalize), _text(t, normalize)
        reason = ("empty" if not t else "empty source") if not s else ("empty target" if not t else None)
        if reason:
            dropped.setdefault(reason, []).append(row)
            continue
        sources.append(s)
        targets.append(t)
        refs.append(raw.strip())
        kept.append(row)
    return ParallelSplit(name, sources, targets, kept, dropped, refs)


def _text(value, normalize: bool) -> str:
    """A cell or line as text: missing values (None, NaN) are empty; whitespace-only is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = value if isinstance(value, str) else str(value)
    if not value.strip():
        return ""
    return clean_text(value) if normalize else value


def read_parallel_files(source_file: str | Path, target_file: str | Path, normalize: bool = True) -> ParallelSplit:
    """Two line-aligned plain-text files (line i of one translates line i of the other)."""
    src_path, tgt_path = Path(source_file), Path(target_file)
    src, tgt = _lines(src_path), _lines(tgt_path)
    if len(src) != len(tgt):
        raise UserError(f"{source_file} has {len(src):,} lines but {target_file} has {len(tgt):,}: the files must be "
                        "line-aligned (line i of one is the translation of line i of the other); fix or remove the "
                        "extra lines.")
    if not src:
        raise UserError(f"{source_file}: the file is empty; add one sentence per line.")
    split = _pairs(f"{source_file} + {target_file}", src, tgt, list(range(1, len(src) + 1)), normalize)
    if not split.sources:
        raise UserError(f"{source_file} + {target_file}: no line has text on both sides; nothing to train or "
                        "score on.")
    return split


def _column(df, path, spec: str, option: str) -> str:
    name = first_column(spec, df.columns)
    if name is None:
        have = ", ".join(map(str, df.columns))
        raise UserError(f"{path}: no column '{spec}' (data.{option}). Columns are: {have}."
                        f"{closest(spec, map(str, df.columns))} Pass the right name with "
                        f"--{option.replace('_', '-')}.")
    return name


def read_parallel_table(path: str | Path, source_column: str, target_column: str,
                        normalize: bool = True) -> ParallelSplit:
    """A CSV/TSV/JSONL/Parquet file (or `datasets` folder) with a source and a target column. `rows` are 1-based
    data rows (the header is not a row)."""
    df = read_table(path)
    src = _column(df, path, source_column, "source_column")
    tgt = _column(df, path, target_column, "target_column")
    if len(df) == 0:
        raise UserError(f"{path}: no data rows. Add rows below the header.")
    split = _pairs(str(path), df[src].tolist(), df[tgt].tolist(), list(range(1, len(df) + 1)), normalize)
    if not split.sources:
        raise UserError(f"{path}: no row has text in both '{src}' and '{tgt}'; nothing to train or score on.")
    return split


def _read_named(spec: str, data: DataConfig, option: str) -> ParallelSplit:
    """`data.train` (or validation/test): a file PREFIX with the language codes (PREFIX.en + PREFIX.de) when those
    two files exist, else a table file or folder."""
    src_lang, tgt_lang = data.source_lang, data.target_lang
    if src_lang and tgt_lang:
        pair = Path(f"{spec}.{src_lang}"), Path(f"{spec}.{tgt_lang}")
        if pair[0].is_file() and pair[1].is_file():
            return read_parallel_files(pair[0], pair[1], data.normalize)
    if Path(spec).exists():
        return read_parallel_table(spec, data.source_column, data.target_column, data.normalize)
    siblings = _siblings(spec)
    have = f"files named {spec}.*: {', '.join(siblings)}" if siblings else f"no file {spec} or {spec}.*"
    if not (src_lang and tgt_lang) and siblings:
        raise UserError(f"data.{option} '{spec}' is not a file; found {have}. Set --source-lang and --target-lang "
                        f"(data.source_lang/target_lang) to read {spec}.<source_lang> + {spec}.<target_lang> as a "
                        "line-aligned pair.")
    if src_lang and tgt_lang:
        raise UserError(f"data.{option} '{spec}': no files {spec}.{src_lang} and {spec}.{tgt_lang} "
                        f"(source_lang {src_lang}, target_lang {tgt_lang}); {have}. Fix the prefix or the language "
                        "codes.")
    raise UserError(f"data.{option} '{spec}': file not found ({have}).")


def _siblings(spec: str) -> list[str]:
    p = Path(spec)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return []
    return sorted(str(f) for f in parent.glob(f"{p.name}.*") if f.is_file())


def _options(name: str, data: DataConfig) -> tuple[str | None, str | None, str | None]:
    """(source file, target file, data.NAME) of one split, checked: both files or neither, and not with data.NAME."""
    prefix = "" if name == "train" else f"{name}_"
    flag = "" if name == "train" else f"{name}-"
    src_file, tgt_file = getattr(data, f"{prefix}source_file"), getattr(data, f"{prefix}target_file")
    spec = getattr(data, name)
    if bool(src_file) != bool(tgt_file):
        have, miss = ("source", "target") if src_file else ("target", "source")
        raise UserError(f"data.{prefix}{have}_file is set but data.{prefix}{miss}_file is not: give both "
                        f"(--{flag}{have}-file and --{flag}{miss}-file), two line-aligned files.")
    if src_file and spec:
        raise UserError(f"data.{name} and data.{prefix}source_file/{prefix}target_file are both set: give one "
                        f"(a file prefix or table in data.{name}, or the two line-aligned files).")
    return src_file, tgt_file, spec


def _read_split(name: str, data: DataConfig) -> ParallelSplit | None:
    src_file, tgt_file, spec = _options(name, data)
    if src_file:
        return read_parallel_files(src_file, tgt_file, data.normalize)
    if spec:
        return _read_named(spec, data, name)
    return None


def _carve(train: ParallelSplit, fraction: float, seed: int, name: str) -> tuple[ParallelSplit, ParallelSplit]:
    """A seeded random `fraction` of train held out as `name`; both keep their original line numbers, in order."""
    n = len(train)
    held = int(round(fraction * n))
    if held < 1 or n - held < 2:
        raise UserError(f"{train.source}: only {n:,} pairs; too few to hold out a {name} split. Add pairs or give "
                        f"{name} files (--{name}-source-file/--{name}-target-file, or data.{name}).")
    order = np.random.default_rng(seed).permutation(n)
    out, keep = np.sort(order[:held]), np.sort(order[held:])
    rest = train.take(keep.tolist())
    rest.dropped = train.dropped
    return rest, train.take(out.tolist(), f"{train.source}[{name} split]")


def load_parallel_splits(data: DataConfig) -> dict[str, ParallelSplit]:
    """train / validation / (test) pairs. Held-out splits missing their files are carved from train (seeded by
    `data.split_seed`, as the classification splits are): test first by `test_fraction` (0 = no test), then
    validation by `validation_fraction` of the original train size."""
    names = ("train", "validation", "test")
    given = {name: any(_options(name, data)) for name in names}  # every option checked before any file is read
    if not given["train"]:
        raise UserError("no training data: give --source-file and --target-file (two line-aligned files), or --train "
                        "PREFIX with --source-lang/--target-lang (PREFIX.en + PREFIX.de), or --train FILE (a table "
                        "with source/target columns).")
    train, validation, test = (_read_split(name, data) for name in names)
    carved_test = test is None and data.test_fraction > 0
    if carved_test:
        train, test = _carve(train, data.test_fraction, data.split_seed, "test")
    if validation is None:
        frac = data.validation_fraction / (1 - data.test_fraction) if carved_test else data.validation_fraction
        train, validation = _carve(train, frac, data.split_seed + 1, "validation")
    splits = {"train": train, "validation": validation}
    if test is not None:
        splits["test"] = test
    return splits


def split_record(splits: dict[str, ParallelSplit]) -> dict:
    """What goes to split.json: where each split came from, which lines it holds and which were left out."""
    return {name: {"source": s.source, "size": len(s), "rows": s.rows, "dropped": s.dropped}
            for name, s in splits.items()}
