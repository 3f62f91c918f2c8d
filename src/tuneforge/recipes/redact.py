"""`tuneforge data redact`: one text column of a table with personal data replaced by typed placeholders.

Only that column changes; every other column and every text without PII is written back as it was read. The
output format follows the output file's suffix and the file is written atomically (temp file, then rename).
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from tuneforge.data.pii import PII_TYPES, redact
from tuneforge.data.sources import pick_column, read_table
from tuneforge.errors import UserError

OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")


def _json_value(value):
    """Plain Python for json.dumps: numpy scalars → their item, the NaN pandas puts in missing cells → null."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):  # list cells come back from Parquet as numpy arrays
        return value.tolist()
    return value


def _write(df, path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False) + "\n"
                          for row in df.to_dict(orient="records"))
    elif suffix == ".tsv":
        # The same dialect read_table reads: no quoting, so a tab or newline inside a cell cannot be written.
        try:
            df.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
        except csv.Error:
            raise UserError(f"{path}: a cell holds a tab or line break, which TSV cannot store. "
                            "Write .csv or .jsonl instead.") from None
    else:
        df.to_csv(path, index=False, lineterminator="\n")


def _check_paths(input: Path, output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"{output}: unsupported output type '{output.suffix}'. Use one of {', '.join(OUTPUT_SUFFIXES)}.")
    if output.resolve() == input.resolve():
        raise UserError(f"{output}: the output is the input file. Write to a new file, e.g. "
                        f"{input.with_name(input.stem + '.redacted' + output.suffix)}.")
    if output.is_dir():
        raise UserError(f"{output}: is a folder. Give an output file name ending in {', '.join(OUTPUT_SUFFIXES)}.")


def redact_file(input: str | Path, output: str | Path, text_column: str = "text") -> dict:
    """Redact `text_column` of `input` into `output`; returns counts per type, rows and rows changed."""
    input, output = Path(input), Path(output)
    _check_paths(input, output)
    df = read_table(input)
    text_column = pick_column(df, input, text_column)
    counts = dict.fromkeys(PII_TYPES, 0)
    changed, texts = 0, []
    for value in df[text_column].tolist():
        if isinstance(value, str):  # missing cells and numbers stay as they are
            new, found = redact(value)
            changed += new != value
            for kind, n in found.items():
                counts[kind] += n
            value = new
        texts.append(value)
    df[text_column] = texts
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    try:
        _write(df, tmp, output.suffix.lower())  # the temp name has its own suffix; the format is the output's
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return {"input": str(input), "output": str(output), "rows": len(df), "rows_changed": changed, "counts": counts}
