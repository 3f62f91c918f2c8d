"""Cross-lingual retrieval, English ↔ Chinese: top-1 accuracy of `tuneforge embed` vectors, multilingual-e5-small
against the English model minilm-l6.

Usage:  python -m benchmarks.crosslingual_retrieval [--pairs FILE] [--threads N] [--out PATH] [--allow-dirty]

Data: benchmarks/data/en_zh_pairs.tsv (120 hand-written pairs; its header says how they were made). Each side is
embedded through the code `tuneforge embed` runs (`recipes.predict.embed_file`: mean pooling, the folder's prefix
for --role query, the default), the vectors are L2-normalised, and every English sentence looks for its Chinese
pair among all N Chinese sentences by cosine (EN→ZH), and the other way round (ZH→EN). Reported per system: top-1,
top-5, mean reciprocal rank, the mean cosine of the true pairs and of the best wrong candidate; chance top-1 is 1/N.

Systems: the two models by name; `auto` (no --model: each file gets the model `choose_encoder` picks for it, so
the English file and the Chinese file may be embedded by different models); `auto, one file` (both sides in one
input file, so one model embeds both). Variants of multilingual-e5-small through `tuneforge.load(...).embed`: no
prefix at all, and query→passage roles (the searching side as "query: ", the searched side as "passage: ").
Writes benchmarks/results/crosslingual_retrieval.json.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, ROOT, add_output_args, environment, guard_output, invocation, shown, write_result

PAIRS = ROOT / "benchmarks" / "data" / "en_zh_pairs.tsv"
ENGLISH, MULTILINGUAL = "minilm-l6", "multilingual-e5-small"
SHOWN_MISSES = 10


def read_pairs(path: Path) -> tuple[list[str], list[str]]:
    """(English, Chinese) sentences of a TSV with header `en<TAB>zh`; lines starting with # are comments."""
    with open(path, encoding="utf-8", newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#") and ln.strip()]
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != ["en", "zh"] or any(len(r) != 2 for r in rows[1:]):
        raise SystemExit(f"{path}: expected a header `en<TAB>zh` and two tab-separated columns on every line")
    return [r[0] for r in rows[1:]], [r[1] for r in rows[1:]]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def retrieval(queries: np.ndarray, targets: np.ndarray) -> tuple[dict, np.ndarray]:
    """Row i of `queries` should find row i of `targets` among all targets by cosine: the metrics, and for each
    query the index of the target it ranked first."""
    sim = _unit(queries) @ _unit(targets).T
    true = np.diag(sim)
    rank = (sim > true[:, None]).sum(1)  # 0: the true pair came first (ties count for it)
    wrong = sim.copy()
    np.fill_diagonal(wrong, -np.inf)
    metrics = {"top1": round(float((rank == 0).mean()), 4), "top5": round(float((rank < 5).mean()), 4),
               "mrr": round(float((1 / (rank + 1)).mean()), 4),
               "mean_true_cosine": round(float(true.mean()), 4),
               "mean_best_wrong_cosine": round(float(wrong.max(1).mean()), 4)}
    return metrics, sim.argmax(1)


def both_ways(en_query, zh_target, zh_query, en_target, en: list[str], zh: list[str]) -> dict:
    """EN→ZH and ZH→EN retrieval, each with up to SHOWN_MISSES misses (the query, its pair, what was found)."""
    en_zh, en_found = retrieval(en_query, zh_target)
    zh_en, zh_found = retrieval(zh_query, en_target)
    return {"en_to_zh": {**en_zh, "misses": _misses(en, zh, en_found)},
            "zh_to_en": {**zh_en, "misses": _misses(zh, en, zh_found)}}


def _misses(queries: list[str], targets: list[str], found: np.ndarray) -> list[dict]:
    wrong = [{"query": queries[i], "expected": targets[i], "found": targets[j]} for i, j in enumerate(found) if j != i]
    return wrong[:SHOWN_MISSES]


def embed_command(model: str | None, texts: list[str], work: Path, name: str, role: str = "query"):
    """What `tuneforge embed --model MODEL --input name.txt --role ROLE` writes (model None: left out), and the
    lines it printed."""
    from tuneforge.recipes.predict import embed_file

    path, out, said = work / f"{name}.txt", work / f"{name}.npy", []
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    embed_file(model, str(path), str(out), role=role, say=said.append)
    return np.load(out), said


def by_name(model: str, en: list[str], zh: list[str], work: Path) -> dict:
    start = time.perf_counter()
    en_v, said_en = embed_command(model, en, work, f"{model}-en")
    zh_v, said_zh = embed_command(model, zh, work, f"{model}-zh")
    return {"command": f"tuneforge embed --model {model} --input <side>.txt --output <side>.npy",
            "printed": said_en + said_zh, **both_ways(en_v, zh_v, zh_v, en_v, en, zh),
            "seconds": round(time.perf_counter() - start, 1)}


def chosen(said: list[str]) -> str:
    """The model named in embed's "model: NAME (auto: ...)" line."""
    return next(line.split()[1] for line in said if line.startswith("model: "))


def auto(en: list[str], zh: list[str], work: Path) -> dict:
    """No --model: one file per language (each file chosen on its own), and both languages in one file."""
    en_v, said_en = embed_command(None, en, work, "auto-en")
    zh_v, said_zh = embed_command(None, zh, work, "auto-zh")
    both, said_both = embed_command(None, en + zh, work, "auto-both")
    separate = {"models": {"en": chosen(said_en), "zh": chosen(said_zh)}, "printed": said_en + said_zh,
                **both_ways(en_v, zh_v, zh_v, en_v, en, zh)}
    if separate["models"]["en"] != separate["models"]["zh"]:
        separate["note"] = ("the two files were embedded by different models: their vectors live in unrelated "
                            "spaces (of the same width), so the cosines mean nothing; embed both languages with one "
                            "--model, or in one file")
    en_b, zh_b = both[: len(en)], both[len(en):]
    one_file = {"models": {"both": chosen(said_both)}, "printed": said_both,
                **both_ways(en_b, zh_b, zh_b, en_b, en, zh)}
    return {"auto (one file per language)": separate, "auto (both languages in one file)": one_file}


def e5_variants(en: list[str], zh: list[str]) -> dict:
    """multilingual-e5-small without prefixes, and with query→passage roles, through the Python API."""
    import tuneforge

    plain = tuneforge.load(MULTILINGUAL, prefixes={})
    en_v, zh_v = plain.embed(en), plain.embed(zh)
    out = {f"{MULTILINGUAL}, no prefix": {"api": f"tuneforge.load('{MULTILINGUAL}', prefixes={{}}).embed(texts)",
                                         **both_ways(en_v, zh_v, zh_v, en_v, en, zh)}}
    model = tuneforge.load(MULTILINGUAL)
    eq, ep = model.embed(en, role="query"), model.embed(en, role="passage")
    zq, zp = model.embed(zh, role="query"), model.embed(zh, role="passage")
    out[f"{MULTILINGUAL}, query→passage"] = {
        "api": "the searching side embed(texts, role='query'), the searched side embed(texts, role='passage')",
        **both_ways(eq, zp, zq, ep, en, zh)}
    return out


def unk_rates(zh: list[str]) -> dict:
    """Each model's tokenizer's [UNK] rate on the Chinese side: why the English model cannot match it."""
    from tuneforge.data.coverage import measure_coverage
    from tuneforge.model.build import load_tokenizer

    return {m: round(measure_coverage(load_tokenizer(m), zh).unk_rate, 4) for m in (ENGLISH, MULTILINGUAL)}


def run(args) -> dict:
    en, zh = read_pairs(Path(args.pairs))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    systems = {}
    with tempfile.TemporaryDirectory(prefix="xling-") as tmp:
        for model in (MULTILINGUAL, ENGLISH):
            print(f"  {model} ...", flush=True)
            systems[model] = by_name(model, en, zh, Path(tmp))
        print("  auto ...", flush=True)
        systems.update(auto(en, zh, Path(tmp)))
    print("  e5 variants ...", flush=True)
    systems.update(e5_variants(en, zh))
    pairs_file = Path(args.pairs)
    return {"benchmark": "crosslingual_retrieval", "command": invocation("crosslingual_retrieval"),
            "data": {"file": shown(pairs_file), "pairs": len(en),
                     "sha256": hashlib.sha256(pairs_file.read_bytes()).hexdigest()},
            "chance_top1": round(1 / len(en), 4), "chinese_unk_rate": unk_rates(zh), "systems": systems,
            "e5_minus_minilm_top1_points": {
                d: round(100 * (systems[MULTILINGUAL][d]["top1"] - systems[ENGLISH][d]["top1"]), 1)
                for d in ("en_to_zh", "zh_to_en")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=str(PAIRS), help="TSV with header en<TAB>zh (# lines are comments)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    add_output_args(ap, RESULTS / "crosslingual_retrieval.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    result = run(args)
    path = write_result(args.out, result, started, args.allow_dirty, environment(args.threads))
    width = max(len(name) for name in result["systems"])
    print(f"{'system':<{width}}  EN→ZH top-1  ZH→EN top-1  (chance {result['chance_top1']:.3f})")
    for name, r in result["systems"].items():
        print(f"{name:<{width}}  {r['en_to_zh']['top1']:>11.3f}  {r['zh_to_en']['top1']:>11.3f}")
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()
