"""Instruction-tuning (SFT) sets from ../shared/data, as prompt/response JSON lines, seeded and reproducible.

Usage:  python -m benchmarks.data.build_instruction_sets --out runs/instruction-sets [--seed 13]
        [--sst2-train-rows 2000] [--waimai-train-rows 0] [--multi30k-train-rows 2000]

- sst2_train.jsonl: a seeded sample of SST-2 train (`common.sst2_subset`, pandas `sample(n, random_state=seed)`);
  sst2_dev.jsonl: all 872 dev rows (the quality target's test set). Prompt: "Classify the sentiment of this movie
  review. Answer with one word: positive or negative." + the review; response: positive (label 1) / negative (0).
- waimai_{train,validation,test}.jsonl: waimai_10k has no official split, so a seeded split stratified by label,
  80/10/10 (sklearn `train_test_split`, random_state=seed, twice). Chinese prompt ("判断这条外卖评价的情感，只回答
  “好评”或“差评”。") + the review; response 好评 (label 1) / 差评 (0): Chinese answers, so exact match and ROUGE-L
  are measured on Chinese text, as a Chinese product team would ship it.
- multi30k_{train,validation,test}.jsonl: English → German, "Translate this English sentence into German." + the
  sentence; response the German line. train: a seeded sample of the 29,000 pairs; validation: val (1,014);
  test: test_2016_flickr (1,000).
- build_info.json: the seed, row counts, prompts, and the sha256 of every source file read.
Texts are kept as the sources have them, except SST-2's trailing space before the tab, which is stripped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from benchmarks.common import SHARED_DATA, sst2_frames, sst2_subset

SST2_PROMPT = ("Classify the sentiment of this movie review. Answer with one word: positive or negative.\n\n"
               "Review: {text}")
WAIMAI_PROMPT = "判断这条外卖评价的情感，只回答“好评”或“差评”。\n\n评价：{text}"
MULTI30K_PROMPT = "Translate this English sentence into German.\n\n{text}"
SST2_ANSWERS = {"1": "positive", "0": "negative"}
WAIMAI_ANSWERS = {1: "好评", 0: "差评"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_jsonl(path: Path, rows: list[dict]) -> int:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def sst2(out: Path, rows: int, seed: int) -> dict:
    train, dev = sst2_frames()
    counts = {}
    for name, frame in (("sst2_train", sst2_subset(train, rows, seed)), ("sst2_dev", dev)):
        counts[name] = write_jsonl(out / f"{name}.jsonl", [
            {"prompt": SST2_PROMPT.format(text=t.strip()), "response": SST2_ANSWERS[y]}
            for t, y in zip(frame["text"], frame["label"])])
    return {"rows": counts, "prompt": SST2_PROMPT, "answers": SST2_ANSWERS,
            "sources": {f: _sha256(SHARED_DATA / "sst2" / f) for f in ("train.tsv", "dev.tsv")}}


def waimai(out: Path, train_rows: int, seed: int) -> dict:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    source = SHARED_DATA / "waimai10k" / "waimai_10k.csv"
    df = pd.read_csv(source)
    train, rest = train_test_split(df, test_size=0.2, random_state=seed, stratify=df["label"])
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest["label"])
    if train_rows:
        train = train.sample(n=train_rows, random_state=seed)
    counts = {}
    for name, frame in (("waimai_train", train), ("waimai_validation", val), ("waimai_test", test)):
        counts[name] = write_jsonl(out / f"{name}.jsonl", [
            {"prompt": WAIMAI_PROMPT.format(text=str(t).strip()), "response": WAIMAI_ANSWERS[int(y)]}
            for t, y in zip(frame["review"], frame["label"])])
    return {"rows": counts, "prompt": WAIMAI_PROMPT, "answers": {str(k): v for k, v in WAIMAI_ANSWERS.items()},
            "split": "stratified 80/10/10, sklearn train_test_split(random_state=seed) twice",
            "sources": {source.name: _sha256(source)}}


def _pairs(stem: str) -> list[tuple[str, str]]:
    folder = SHARED_DATA / "multi30k"
    en = (folder / f"{stem}.en").read_text(encoding="utf-8").splitlines()
    de = (folder / f"{stem}.de").read_text(encoding="utf-8").splitlines()
    assert len(en) == len(de), stem
    return list(zip(en, de))


def multi30k(out: Path, train_rows: int, seed: int) -> dict:
    import random

    train = _pairs("train")
    if train_rows:
        train = [train[i] for i in sorted(random.Random(seed).sample(range(len(train)), train_rows))]
    counts = {}
    for name, pairs in (("multi30k_train", train), ("multi30k_validation", _pairs("val")),
                        ("multi30k_test", _pairs("test_2016_flickr"))):
        counts[name] = write_jsonl(out / f"{name}.jsonl", [
            {"prompt": MULTI30K_PROMPT.format(text=en.strip()), "response": de.strip()} for en, de in pairs])
    files = [f"{s}.{lang}" for s in ("train", "val", "test_2016_flickr") for lang in ("en", "de")]
    return {"rows": counts, "prompt": MULTI30K_PROMPT, "train_sample": "random.Random(seed).sample, in source order",
            "sources": {f: _sha256(SHARED_DATA / "multi30k" / f) for f in files}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the JSONL files and build_info.json")
    ap.add_argument("--seed", type=int, default=13, help="seed of every sample and split")
    ap.add_argument("--sst2-train-rows", type=int, default=2000, help="SST-2 train sample (0 = all 67,349)")
    ap.add_argument("--waimai-train-rows", type=int, default=0, help="sample of the 80%% train split (0 = all 9,589)")
    ap.add_argument("--multi30k-train-rows", type=int, default=2000, help="Multi30k train sample (0 = all 29,000)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"seed": args.seed, "sst2": sst2(out, args.sst2_train_rows, args.seed),
            "waimai": waimai(out, args.waimai_train_rows, args.seed),
            "multi30k": multi30k(out, args.multi30k_train_rows, args.seed)}
    (out / "build_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    for name, part in info.items():
        if isinstance(part, dict):
            print(name, ", ".join(f"{k} {v:,}" for k, v in part["rows"].items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
