"""waimai_10k (Chinese food-delivery reviews, binary) side by side: TuneForge's defaults with the automatic model
choice, TF-IDF char n-grams + logistic regression, minilm-l6 with vocabulary extension, and the stock Hugging Face
Trainer on multilingual-e5-small (issue 20).

Usage (from the repository root):
    python -m benchmarks.waimai_sidebyside                                  # all 9,589 train rows (hours on 2 cores)
    python -m benchmarks.waimai_sidebyside --rows 300 --eval-rows 200 --out /tmp/w.json   # smoke: 10-26 min
    python -m benchmarks.waimai_sidebyside --rows 1000 --eval-rows 400 --systems auto,auto_pooler_identity \
        --set train.max_steps=120 --set train.seed=43 --out /tmp/p.json     # the pooler probe (a named variant)

Split: ../shared/data/waimai10k/waimai_10k.csv (11,987 rows), stratified 80/10/10 with seed 13 (sklearn
`train_test_split` twice), written to <work>/data/{train,validation,test}.csv (columns text,label; `review` renamed
`text`) with <work>/data/split.json (the source row numbers of each part): the rows of the SFT set's waimai files
(benchmarks/data/build_instruction_sets.py, same seed). `--rows N` keeps a stratified seed-13
sample of N train rows; `--eval-rows N` caps validation and test the same way (smoke runs only: the full benchmark
scores all 1,199 test rows). Every system trains on the same train rows and is scored on the same test rows:
  auto                  `tuneforge finetune` with no model and no hyperparameters given (model.name auto: picks
                        multilingual-e5-small for this Chinese text; the model and its reason are recorded), with the
                        validation file for early stopping, as a user with a validation split gets
  tfidf                 `tuneforge baseline` (TF-IDF char 1-3-grams for Chinese + logistic regression) on train
  minilm_vocab          `tuneforge finetune --model minilm-l6`, defaults (its [UNK] rate on Chinese triggers the
                        vocabulary extension)
  trainer_e5            the stock HF Trainer: AutoModelForSequenceClassification from the converted
                        multilingual-e5-small folder, TrainingArguments defaults (lr 5e-5, 3 epochs, batch 8, no
                        warm-up, no weight decay, seed 42), DataCollatorWithPadding, final weights (no validation, no
                        best-checkpoint pick); only checkpoint saving, tqdm and reporting are switched off (they do not
                        change the training)
  auto_pooler_identity  (not in the default list) `auto` with the pooler's dense layer set to the identity and zero
                        bias after loading: the pooler starts as tanh([CLS]) instead of a random projection (the
                        converted e5 folder has no pooler weights)
Each system runs in its own child process (peak RSS = ru_maxrss of that process; the parent only splits the data).
Reported per system: test accuracy and macro-F1, train seconds (TuneForge: the loop's train time, evaluations
excluded; Trainer: train_runtime; TF-IDF: the fit), train rows/s and real (non-pad) tokens/s over the rows trained
(tokens of each model's own tokenizer, so compare tokens/s only between runs of the same tokenizer), peak RSS, wall
seconds of the child. The goal of issue 20: auto ≥ TF-IDF + 3 points in both accuracy and macro-F1 (`goal`).
`--set KEY=VALUE` goes to every TuneForge system and makes the run a named variant (`"default_path": false`).
Writes benchmarks/results/waimai_sidebyside_<rows>.json (or --out); work files in runs/bench-waimai-<rows>/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    ROOT,
    SHARED_DATA,
    add_output_args,
    emit,
    environment,
    guard_output,
    invocation,
    load_average,
    module_cmd,
    run_marked,
    shown,
    write_result,
)

WAIMAI = SHARED_DATA / "waimai10k" / "waimai_10k.csv"
SYSTEMS = ("auto", "tfidf", "minilm_vocab", "trainer_e5")
EXTRA_SYSTEMS = ("auto_pooler_identity",)
GOAL_POINTS = 3.0
E5 = "multilingual-e5-small"


# ----------------------------------------------------------------------------------------------- data

def split_data(folder: Path, seed: int, rows: int, eval_rows: int) -> dict:
    """Stratified 80/10/10 of waimai_10k (seed `seed`), optional stratified caps; CSVs + split.json in `folder`."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(WAIMAI, dtype={"label": str}, keep_default_na=False).rename(columns={"review": "text"})
    df = df[df.text.str.strip() != ""]
    train, rest = train_test_split(df, test_size=0.2, stratify=df.label, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest.label, random_state=seed)
    parts = {"train": cap(train, rows, seed), "validation": cap(val, eval_rows, seed),
             "test": cap(test, eval_rows, seed)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        part[["text", "label"]].to_csv(folder / f"{name}.csv", index=False)
    facts = {"source": str(WAIMAI), "source_rows": len(df), "seed": seed,
             "rows": {n: len(p) for n, p in parts.items()},
             "labels": {n: p.label.value_counts().sort_index().to_dict() for n, p in parts.items()},
             "capped": {"train": rows or None, "validation_and_test": eval_rows or None}}
    record = {**facts, "source_row_numbers": {n: sorted(int(i) for i in p.index) for n, p in parts.items()}}
    (folder / "split.json").write_text(json.dumps(record))
    return facts


def cap(part, rows: int, seed: int):
    """A stratified seeded sample of `rows` rows (0 or more than there are: all)."""
    from sklearn.model_selection import train_test_split

    if not rows or rows >= len(part):
        return part
    kept, _ = train_test_split(part, train_size=rows, stratify=part.label, random_state=seed)
    return kept


def read(work: Path, name: str):
    import pandas as pd

    return pd.read_csv(work / "data" / f"{name}.csv", dtype={"label": str}, keep_default_na=False)


# ----------------------------------------------------------------------------------------------- children

def tuneforge_cmd(work: Path, name: str, threads: int, sets: list[str]) -> list[str]:
    """`tuneforge finetune` arguments of a TuneForge system: data, output, threads, the model when named, and the
    `--set` overrides given to this script (none on the default path)."""
    data = work / "data"
    cmd = ["finetune", "--train", str(data / "train.csv"), "--validation", str(data / "validation.csv"),
           "--test", str(data / "test.csv"), "--output", str(work / name), "--overwrite",
           "--set", "runtime.progress=false", "--set", f"runtime.threads={threads}"]
    cmd += [x for s in sets for x in ("--set", s)]
    return cmd + (["--model", "minilm-l6"] if name == "minilm_vocab" else [])  # auto: no --model


def identity_pooler(load):
    """Wrap a classifier loader: after loading, the pooler's dense layer is the identity with zero bias."""
    def wrapped(*a, **kw):
        import torch

        model = load(*a, **kw)
        dense = getattr(getattr(model, model.base_model_prefix), "pooler").dense
        with torch.no_grad():
            dense.weight.copy_(torch.eye(dense.weight.shape[0]))
            dense.bias.zero_()
        return model
    return wrapped


def child_tuneforge(args) -> None:
    """`python -m tuneforge finetune ...` in this process (the CLI entry point), so ru_maxrss is the run's own."""
    work, name = Path(args.work), args.child
    if name == "auto_pooler_identity":
        import tuneforge.recipes.finetune as recipe

        recipe.load_classifier = identity_pooler(recipe.load_classifier)
    sys.argv = ["tuneforge", *tuneforge_cmd(work, name, args.threads, args.set)]
    from tuneforge.cli import main

    main()
    run = work / name
    summary = json.loads((run / "summary.json").read_text())
    config = (run / "config.yaml").read_text()
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    test = summary["metrics"]["test"]
    emit({"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "train_seconds": summary["train_seconds"],
          "train_rows_per_s": summary["samples_per_s"], "train_tokens_per_s": summary["tokens_per_s"],
          "train_tokens": summary["tokens"], "steps": summary["steps"], "best_step": summary["best_step"],
          "stop_reason": summary["stop_reason"], "vocab_added": summary["vocab_added"],
          "coverage": summary["coverage"], **_model_choice(config),
          "validation_curve": [{"step": r["step"], "accuracy": r.get("accuracy")} for r in log
                               if r.get("split") == "validation"],
          "command": "tuneforge " + " ".join(sys.argv[1:]), "resolved_config": config})


def _model_choice(config_yaml: str) -> dict:
    """The concrete model the run used and, when it was chosen automatically, why (the resolved config.yaml)."""
    import yaml

    model = yaml.safe_load(config_yaml).get("model") or {}
    return {"model": model.get("name"), "auto_reason": model.get("auto_reason")}


def child_tfidf(args) -> None:
    """`tuneforge baseline` on the same files (TF-IDF + LR; char n-grams for Chinese), scored on test."""
    from tuneforge.config import DataConfig
    from tuneforge.recipes.baseline import baseline

    work = Path(args.work)
    data = DataConfig(train=str(work / "data" / "train.csv"), validation=str(work / "data" / "validation.csv"),
                      test=str(work / "data" / "test.csv"))
    out = baseline(data, work / "tfidf")
    test = out["metrics"]["test"]
    emit({"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "train_seconds": test["fit_seconds"],
          "train_rows_per_s": round(test["train_rows"] / max(test["fit_seconds"], 1e-9), 1),
          "train_tokens_per_s": None, "analyzer": out["analyzer"], "command": "tuneforge baseline (Python API)"})


def child_trainer(args) -> None:
    """The stock HF Trainer on the converted multilingual-e5-small folder (module doc)."""
    import datasets
    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from tuneforge.model.resolve import resolve_model

    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    work, path = Path(args.work), resolve_model(E5)
    tokenizer = AutoTokenizer.from_pretrained(path)
    train, test = read(work, "train"), read(work, "test")
    names = sorted(set(train.label))

    def encode(df):
        ds = datasets.Dataset.from_dict({"text": df.text.tolist(), "label": [names.index(x) for x in df.label]})
        return ds.map(lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text"])

    train_ds, test_ds = encode(train), encode(test)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names))
    kw = {"output_dir": str(work / "trainer_e5"), "use_cpu": True, "save_strategy": "no", "report_to": "none",
          "disable_tqdm": True}
    targs = TrainingArguments(**kw)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer))
    result = trainer.train()
    pred = np.argmax(trainer.predict(test_ds).predictions, axis=-1)
    gold = np.array(test_ds["label"])
    seconds, epochs = result.metrics["train_runtime"], targs.num_train_epochs
    tokens = sum(len(x) for x in train_ds["input_ids"]) * epochs
    emit({"accuracy": float(accuracy_score(gold, pred)), "macro_f1": float(f1_score(gold, pred, average="macro")),
          "train_seconds": round(seconds, 2), "train_rows_per_s": round(len(train) * epochs / seconds, 2),
          "train_tokens_per_s": round(tokens / seconds, 1), "train_tokens": int(tokens), "steps": result.global_step,
          "model": E5, "training_arguments": {"given": kw, "learning_rate": targs.learning_rate,
                                             "num_train_epochs": targs.num_train_epochs,
                                             "per_device_train_batch_size": targs.per_device_train_batch_size,
                                             "warmup_steps": targs.warmup_steps, "weight_decay": targs.weight_decay,
                                             "seed": targs.seed, "lr_scheduler_type": str(targs.lr_scheduler_type)},
          "torch_threads": torch.get_num_threads()})


CHILDREN = {"auto": child_tuneforge, "minilm_vocab": child_tuneforge, "auto_pooler_identity": child_tuneforge,
            "tfidf": child_tfidf, "trainer_e5": child_trainer}


# ----------------------------------------------------------------------------------------------- parent

def goal(systems: dict) -> dict | None:
    """Issue 20's goal: auto ≥ TF-IDF + 3 points in test accuracy and in macro-F1."""
    auto, tfidf = systems.get("auto"), systems.get("tfidf")
    if not (auto and tfidf):
        return None
    points = {k: round(100 * (auto[k] - tfidf[k]), 2) for k in ("accuracy", "macro_f1")}
    return {"what": f"auto >= TF-IDF + {GOAL_POINTS:g} points in test accuracy and macro-F1",
            "points_over_tfidf": points, "met": all(v >= GOAL_POINTS for v in points.values())}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=0, help="train rows (stratified seeded sample; 0 = all 9,589)")
    ap.add_argument("--eval-rows", type=int, default=0, help="cap validation and test rows (smoke only; 0 = all)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"comma-separated, from {', '.join(SYSTEMS + EXTRA_SYSTEMS)}")
    ap.add_argument("--seed", type=int, default=13, help="split seed")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--work", default=None, help="work folder (default runs/bench-waimai-<rows>)")
    ap.add_argument("--set", action="append", default=[],
                    help="KEY=VALUE override for the TuneForge systems (a named variant, not the defaults)")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    add_output_args(ap, None)
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.child:
        CHILDREN[args.child](args)
        return
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(CHILDREN))
    if unknown:
        raise SystemExit(f"--systems: unknown {', '.join(unknown)} (choose from {', '.join(CHILDREN)})")
    tag = f"{args.rows or 'full'}" + (f"_eval{args.eval_rows}" if args.eval_rows else "")
    tag += "_variant" if args.set else ""
    out = args.out or RESULTS / f"waimai_sidebyside_{tag}.json"
    started = guard_output(out, args.allow_dirty)
    work = Path(args.work or ROOT / "runs" / f"bench-waimai-{tag}")
    result = {"benchmark": "waimai_sidebyside", "command": invocation("waimai_sidebyside"),
              "split": split_data(work / "data", args.seed, args.rows, args.eval_rows),
              "overrides": args.set, "default_path": not args.set, "threads": args.threads,
              "environment": environment(args.threads, extra=("scikit-learn",)), "systems": {}}
    for name in systems:
        cmd = module_cmd("waimai_sidebyside", "--child", name, "--work", str(work), "--threads", str(args.threads),
                         *(x for s in args.set for x in ("--set", s)))
        result["systems"][name] = run_marked(cmd, work / "logs" / f"{name}.log", name)
    result["goal"] = goal(result["systems"])
    result["load_average_at_end"] = load_average()
    path = write_result(out, result, started, args.allow_dirty)
    for name, r in result["systems"].items():
        tps = r.get("train_tokens_per_s")
        print(f"{name:22s} acc {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  train {r['train_seconds']:.0f} s  "
              f"tokens/s {tps if tps is not None else '-'}  peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"goal: {json.dumps(result['goal'], ensure_ascii=False)}")
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()
