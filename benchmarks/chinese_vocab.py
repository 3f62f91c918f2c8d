"""Chinese text on the English default model: no remedy vs. vocabulary extension vs. TF-IDF char n-grams.

Usage:  python -m benchmarks.chinese_vocab [--out PATH] [--allow-dirty]
Data: the Chinese rows of the bundled demo reviews (3 labels), split 70/15/15 stratified with a fixed seed.
Writes benchmarks/results/chinese_vocab.json.
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import re
import subprocess
import sys
import time

import pandas as pd
from sklearn.model_selection import train_test_split

from benchmarks.common import RESULTS, ROOT, add_output_args, guard_output, shown, write_result

HAN = re.compile(r"[\u4e00-\u9fff]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_args(ap, RESULTS / "chinese_vocab.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    demo = importlib.resources.files("tuneforge.resources.demo") / "reviews.csv"
    df = pd.read_csv(str(demo), keep_default_na=False)
    zh = df[df.text.map(lambda t: bool(HAN.search(t)))].reset_index(drop=True)
    train, rest = train_test_split(zh, test_size=0.3, stratify=zh.label, random_state=0)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest.label, random_state=0)
    work = ROOT / "runs" / "bench-chinese"
    work.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_csv(work / f"{name}.csv", index=False)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(train.text), train.label)
    results = {"benchmark": "chinese_vocab", "rows": {"train": len(train), "validation": len(val), "test": len(test)},
               "tfidf_char_lr_test_accuracy": float((clf.predict(vec.transform(test.text)) == test.label).mean()),
               "runs": {}}
    variants = {
        "stock_trainer_like": ["model.extend_vocab=never", "train.learning_rate=5e-5", "train.batch_size=32", "train.epochs=1"],
        "auto_no_vocab_extension": ["model.extend_vocab=never"],
        "vocab_extension_lr_1e-4": ["train.learning_rate=1e-4"],
        "auto_with_vocab_extension": [],
    }
    for name, sets in variants.items():
        cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(work / "train.csv"), "--validation",
               str(work / "val.csv"), "--test", str(work / "test.csv"), "--output", str(work / name), "--overwrite",
               "--set", "runtime.progress=false"]
        for s in sets:
            cmd += ["--set", s]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        summary = json.loads((work / name / "summary.json").read_text())
        results["runs"][name] = {"overrides": sets, "test_accuracy": summary["metrics"]["test"]["accuracy"],
                                 "coverage": summary["coverage"], "vocab_added": summary["vocab_added"],
                                 "steps": summary["steps"], "wall_seconds": round(time.time() - t0, 1),
                                 "messages": [ln for ln in proc.stderr.splitlines() if ln.startswith(("warning", "vocabulary", "auto"))]}
    path = write_result(args.out, results, started, args.allow_dirty)
    print(json.dumps({k: v for k, v in results.items()}, indent=2, ensure_ascii=False))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()
