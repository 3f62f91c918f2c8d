"""Unlabelled corpora for pretraining: expand sources, stream their texts, clean, deduplicate and filter.

Text and JSONL files are streamed line by line and `datasets` folders are memory-mapped, so a corpus never
has to fit in RAM. CSV/TSV/Parquet go through `read_table`, which loads the file.
"""
from __future__ import annotations

import glob
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.data.pii import redact
from tuneforge.data.sources import first_column, pick_column, read_table
from tuneforge.errors import UserError

# C0/C1 control characters except tab and newline (those become spaces when whitespace is collapsed).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def expand_sources(patterns: list[str]) -> list[Path]:
    """Globs and paths → existing files/folders, in the given order (each glob sorted); missing ones are errors.

    Files that are not tables (.csv/.tsv/.jsonl/.json/.parquet) are plain text, one text per line, whatever
    their extension (.txt, .raw, .en, ...)."""
    if not patterns:
        raise UserError("no corpus given: pass --corpus FILE [FILE ...] or set data.corpus in the config.")
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UserError(f"{pattern}: no file matches this pattern.")
        for m in matches:
            p = Path(m)
            if not p.exists():
                raise UserError(f"{p}: corpus file not found.")
            found.append(p)
    return found


def clean_line(text: str, normalize: bool = True) -> str:
    if not normalize:
        return text.strip()
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text))
    return " ".join(text.split())


def _stream_text_file(p: Path) -> Iterator[str]:
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{p}:{n}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}). Re-save the file as "
                                "UTF-8, e.g. `iconv -f latin1 -t utf-8`.") from None


def _stream_jsonl(p: Path, column: str) -> Iterator[str]:
    for n, line in enumerate(_stream_text_file(p), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}:{n}: invalid JSON ({exc.msg}). Each line must be one object like "
                            f'{{"{column}": "..."}}.') from None
        name = first_column(column, row) if isinstance(row, dict) else None
        if name is None:
            raise UserError(f"{p}:{n}: no '{column}' field. Pass the right name with --text-column.")
        if isinstance(row[name], str):
            yield row[name]


def _stream_datasets(p: Path, column: str) -> Iterator[str]:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(p))
    except Exception as exc:  # datasets raises several types for a folder that is not a saved dataset
        raise UserError(f"{p}: not a saved `datasets` folder ({exc}).") from None
    if isinstance(ds, DatasetDict):
        ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    column = first_column(column, ds.column_names) or column
    if column not in ds.column_names:
        raise UserError(f"{p}: no column '{column}'. Columns are: {', '.join(ds.column_names)}. Use --text-column.")
    for start in range(0, len(ds), 10_000):  # memory-mapped; read a slice at a time
        yield from (t for t in ds[start:start + 10_000][column] if isinstance(t, str))


def stream_source(p: Path, column: str) -> Iterator[str]:
    suffix = p.suffix.lower()
    if p.is_dir():
        yield from _stream_datasets(p, column)
    elif suffix == ".jsonl":
        yield from _stream_jsonl(p, column)
    elif suffix in {".csv", ".tsv", ".parquet", ".json"}:
        df = read_table(p)
        column = pick_column(df, p, column)
        yield from (t for t in df[column].tolist() if isinstance(t, str))
    else:
        yield from _stream_text_file(p)


@dataclass
class CleanStats:
    read: int = 0
    kept: int = 0
    empty: int = 0
    duplicates: int = 0
    too_short: int = 0
    too_long: int = 0
    chars: int = 0
    per_source: dict = field(default_factory=dict)
    pii: dict = field(default_factory=dict)  # finds per PII type (redact_pii on), over the texts read


def iter_clean_texts(sources: list[Path], column: str = "text", normalize: bool = True, dedup: bool = True,
                     min_chars: int = 1, max_chars: int | None = None, stats: CleanStats | None = None,
                     redact_pii: bool = False) -> Iterator[str]:
    """Cleaned texts of all sources in order. Exact dedup keeps one 8-byte hash per unique text.

    With `redact_pii`, personal data becomes [EMAIL], [PHONE] ... after cleaning and before the length filters and
    dedup, so texts that differ only in an address count as duplicates."""
    stats = stats if stats is not None else CleanStats()
    seen: set[bytes] = set()
    for p in sources:
        kept_before = stats.kept
        for raw in stream_source(p, column):
            stats.read += 1
            text = clean_line(raw, normalize)
            if not text:
                stats.empty += 1
                continue
            if redact_pii:
                text, found = redact(text)
                for kind, n in found.items():
                    stats.pii[kind] = stats.pii.get(kind, 0) + n
            if len(text) < min_chars:
                stats.too_short += 1
                continue
            if max_chars and len(text) > max_chars:
                stats.too_long += 1
                continue
            if dedup:
                key = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
                if key in seen:
                    stats.duplicates += 1
                    continue
                seen.add(key)
            stats.kept += 1
            stats.chars += len(text)
            yield text
        stats.per_source[str(p)] = stats.kept - kept_before
