"""`tuneforge data check`: load the splits raw, run the model-free checks, token lengths and suspect labels, write
the data report (Markdown, HTML, PNGs, data_summary.json) and return the summary with its `problems` counts."""
from __future__ import annotations

import math
import time
from pathlib import Path

from tuneforge.errors import UserError, closest

PROBLEM_KINDS = ("duplicates", "near_duplicates", "conflicts", "leakage", "suspects", "empty", "encoding")


def parse_fail_on(value: str | None) -> list[str]:
    """'leakage,conflicts' → ['leakage', 'conflicts']; an unknown kind is a user error listing the valid ones."""
    kinds = [k.strip().replace("-", "_") for k in (value or "").split(",") if k.strip()]
    for kind in kinds:
        if kind not in PROBLEM_KINDS:
            raise UserError(f"--fail-on: unknown problem kind '{kind}'.{closest(kind, PROBLEM_KINDS)} "
                            f"Use a comma list of: {', '.join(PROBLEM_KINDS)}.")
    return kinds


def load_raw(path: str, text_column: str, label_column: str, separator: str | None) -> tuple[list[str], list]:
    """Texts exactly as stored (no NFKC or control-character cleaning, so encoding problems stay visible; empty
    texts are kept, to be counted) and parsed labels. A missing file, column or label is a UserError."""
    from tuneforge.data.labels import read_labels
    from tuneforge.data.sources import pick_column, read_table, require_columns

    try:
        df = read_table(path)
    except UnicodeEncodeError as exc:  # pandas' Arrow strings refuse a lone surrogate (JSON "\ud800")
        raise UserError(f"{path}: a text holds a lone surrogate ({exc.object[exc.start]!r} escape), which no "
                        "table can store. Fix or remove that row.") from None
    text_column = pick_column(df, path, text_column)
    require_columns(df, path, [label_column])
    if len(df) == 0:
        raise UserError(f"{path}: no data rows. Add rows below the header.")
    texts = []
    for value in df[text_column].tolist():
        if isinstance(value, float) and math.isnan(value):
            value = ""
        texts.append(value if isinstance(value, str) else "" if value is None else str(value))
    return texts, read_labels(df[label_column].tolist(), path, label_column, separator)


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with the special tokens, as the model would see it before truncation."""
    lengths = []
    for start in range(0, len(texts), 4096):  # batches keep the fast tokenizer's peak memory bounded
        enc = tokenizer(texts[start:start + 4096], add_special_tokens=True, truncation=False)["input_ids"]
        lengths += [len(ids) for ids in enc]
    return lengths


def length_stats(lengths: list[int], max_length: int) -> dict:
    import numpy as np

    if not lengths:
        return {"count": 0}
    a = np.asarray(lengths)
    return {"count": int(a.size), "mean": round(float(a.mean()), 2), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": int(a.max()),
            "truncated": int((a > max_length).sum()), "truncated_share": round(float((a > max_length).mean()), 4)}


def _lengths(splits: dict, model: str, max_length: int) -> tuple[dict, dict]:
    from tuneforge.data.quality import is_empty
    from tuneforge.model.build import load_tokenizer

    tokenizer = load_tokenizer(model)
    raw = {name: token_lengths(tokenizer, [t for t in texts if not is_empty(t)]) for name, (texts, _) in splits.items()}
    return raw, {name: length_stats(v, max_length) for name, v in raw.items()}


def _suspects(texts: list[str], labels: list, top_k: int) -> dict:
    from tuneforge.data.quality import is_empty
    from tuneforge.evaluate.suspects import find_suspects

    keep = [i for i, t in enumerate(texts) if not is_empty(t)]
    return find_suspects([texts[i] for i in keep], [labels[i] for i in keep], top_k=top_k,
                         rows=[i + 1 for i in keep])


def check_data(train: str, validation: str | None = None, test: str | None = None, text_column: str = "text",
               label_column: str = "label", output: str | Path = "reports/data-check", model: str = "minilm-l6",
               max_length: int = 128, near_threshold: float = 0.8, top_k: int = 20,
               label_separator: str | None = None) -> dict:
    """Check train (and validation/test) and write the data report into `output`; return the summary."""
    from tuneforge.data.quality import check_splits
    from tuneforge.evaluate.data_report import write_data_report, write_summary_json

    if max_length < 1 or top_k < 0:
        raise UserError("--max-length must be ≥ 1 and --top-k ≥ 0.")
    timings, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[f"{name}_seconds"] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    files = {k: v for k, v in {"train": train, "validation": validation, "test": test}.items() if v}
    splits = {name: load_raw(path, text_column, label_column, label_separator) for name, path in files.items()}
    lap("load")
    quality = check_splits(splits, near_threshold=near_threshold)
    lap("quality")
    raw_lengths, lengths = _lengths(splits, model, max_length)
    lap("token_lengths")
    suspects = _suspects(*splits["train"], top_k) if top_k else {"skipped": "--top-k 0", "flagged": 0, "top": []}
    lap("suspects")
    for name, stats in lengths.items():
        quality["splits"][name]["tokens"] = stats
    summary = {"inputs": files, "text_column": text_column, "label_column": label_column, "model": model,
               "max_length": max_length, **{k: v for k, v in quality.items() if k not in ("problems", "timings")},
               "suspects": suspects, "problems": {**quality["problems"], "suspects": suspects.get("flagged", 0)},
               "timings": timings}
    summary["problems"] = {k: summary["problems"][k] for k in PROBLEM_KINDS}
    summary["report"] = str(write_data_report(Path(output), summary, raw_lengths))
    lap("report")
    timings["total_seconds"] = round(sum(timings.values()), 2)
    timings["quality_detail"] = quality["timings"]
    write_summary_json(Path(output), summary)
    return summary
