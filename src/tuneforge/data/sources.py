"""Read labelled or unlabelled tables (CSV, TSV, JSONL, Parquet, txt, `datasets` folders) into a DataFrame."""
from __future__ import annotations

import csv
import hashlib
import json
import unicodedata
from pathlib import Path

import pandas as pd

from tuneforge.errors import UserError

TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of every file in a folder (sorted), for the run manifest."""
    p = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _check_utf8(path: Path) -> None:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}). "
                        "Re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`.") from None


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table file or a saved `datasets` folder. Every user mistake becomes a UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: file not found.")
    if p.is_dir():
        return _read_datasets_folder(p)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{p}: unsupported file type '{suffix}'. Use one of {', '.join(sorted(TABLE_SUFFIXES))} or a `datasets` folder.")
    if suffix == ".parquet":
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises many types for a corrupt file
            raise UserError(f"{p}: cannot read Parquet ({exc}).") from None
    _check_utf8(p)
    if suffix == ".json":
        return _read_json(p)
    if suffix == ".jsonl":
        return _read_jsonl(p)
    if suffix == ".txt":
        lines = p.read_text(encoding="utf-8").splitlines()
        return pd.DataFrame({"text": [ln for ln in lines if ln.strip()]})
    try:
        # TSV is read like GLUE's files: no quoting. Keep "NA"/"null" as text, not missing values.
        kwargs = {"sep": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
        return pd.read_csv(p, dtype=str, keep_default_na=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: the file is empty; add a header row and data rows.") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{p}: cannot parse ({str(exc).strip()}).") from None


def _read_jsonl(p: Path) -> pd.DataFrame:
    rows = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{p}:{n}: invalid JSON ({exc.msg}).") from None
            if not isinstance(row, dict):
                raise UserError(f"{p}:{n}: each line must be a JSON object like {{\"text\": ..., \"label\": ...}}.")
            if "\\u" in line:
                _reject_surrogates(row, p, n)
            rows.append(row)
    return pd.DataFrame(rows)


def _reject_surrogates(row: dict, p: Path, n: int) -> None:
    """A `\\ud800`-style escape decodes to half a character, which no tokenizer or file writer accepts."""
    for key, value in row.items():
        if isinstance(value, str) and any("\ud800" <= ch <= "\udfff" for ch in value):
            raise UserError(f"{p}:{n}: field '{key}' holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                            "valid text. Fix or drop that row.")


def _read_json(p: Path) -> pd.DataFrame:
    """A JSON array of objects; files that are really JSON lines are read as such."""
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(p)
    if isinstance(data, dict):
        return _read_jsonl(p)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{p}: expected a JSON array of objects like [{{\"text\": ..., \"label\": ...}}].")
    return pd.DataFrame(data)


def _read_datasets_folder(p: Path) -> pd.DataFrame:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(p))
    except Exception as exc:  # datasets raises FileNotFoundError or its own errors
        raise UserError(f"{p}: not a saved `datasets` folder ({exc}).") from None
    if isinstance(ds, DatasetDict):
        split = "train" if "train" in ds else next(iter(ds))
        ds = ds[split]
    assert isinstance(ds, Dataset)
    return ds.to_pandas()


def require_columns(df: pd.DataFrame, path: str | Path, columns: list[str], flag: str = "--text-column") -> None:
    for col in columns:
        if col not in df.columns:
            have = ", ".join(map(str, df.columns))
            raise UserError(f"{path}: no column '{col}'. Columns are: {have}. Pass the right name with {flag}/--label-column.")


def first_column(spec: str, available) -> str | None:
    """`spec` is a column name or comma-separated alternatives (`text,sentence`): the first one in `available`
    (a table's columns, a JSON object's keys), or None. Alternatives let one setting cover sources whose headers
    differ (SST-2: `text` in train, `sentence` in dev)."""
    if spec in available:
        return spec
    return next((n for n in _choices(spec) if n in available), None)


def _choices(spec: str) -> list[str]:
    return [n.strip() for n in spec.split(",") if n.strip()]


def pick_column(df: pd.DataFrame, path: str | Path, spec: str, flag: str = "--text-column") -> str:
    """`first_column` of a table, or a one-line UserError naming every alternative and the file's columns."""
    name = first_column(spec, df.columns)
    if name is not None:
        return name
    have = ", ".join(map(str, df.columns))
    wanted = " or ".join(f"'{n}'" for n in _choices(spec)) or f"'{spec}'"
    raise UserError(f"{path}: no column {wanted}. Columns are: {have}. Pass the right name with {flag} "
                    "(comma-separated alternatives, e.g. text,sentence, cover files with different headers).")


def clean_text(text: str) -> str:
    """NFKC (full-width → half-width, ligatures) and collapsed whitespace; keeps case and punctuation."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def column_texts(df: pd.DataFrame, path: str | Path, column: str, normalize: bool = True) -> list[str]:
    """One text column (or the first of comma-separated alternatives), checked: the column exists, the table has
    rows, and no row is empty."""
    column = pick_column(df, path, column)
    if len(df) == 0:
        raise UserError(f"{path}: no data rows. Add rows below the header.")
    texts = []
    for i, value in enumerate(df[column].tolist()):
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{path}: row {i + 1} has no text in column '{column}'. Fill it in or remove the row.")
        texts.append(clean_text(value) if normalize else value)
    return texts


def read_texts(path: str | Path, text_column: str, normalize: bool = True) -> list[str]:
    """Texts of one column of a file, with a clear error for a missing column or an empty text."""
    return column_texts(read_table(path), path, text_column, normalize)
