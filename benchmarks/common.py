"""What the benchmark scripts share: paths, where a result came from (git sha, dirty tree, environment), the one
rule for writing into benchmarks/results/, SST-2 reading, the child-process protocol, the fine-tune benchmark's
shared setup, the target judgements the scripts and the README table both use, model folders, and `tuneforge
serve` subprocesses.

Run every script as a module from the repository root (`python -m benchmarks.bench_finetune ...`); no script edits
the import path, and nothing under benchmarks/ imports tests/ (or the other way round).

Results policy (one place: `guard_output` / `write_result`):
- every result JSON records `git_sha`, `git_dirty` and the environment it ran in;
- a script refuses to write into benchmarks/results/ from a dirty git tree (tracked or untracked changes outside
  benchmarks/results/ itself) unless given `--allow-dirty`, and then the file says `"git_dirty": true` (the README
  table marks such rows "(dirty tree)"); anywhere else (`--out /tmp/x.json`) is always allowed;
- the tree is checked when the script starts (so a long run is refused before it begins) and again when it writes:
  a tree that changed during the run counts as dirty.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
SST2 = SHARED_DATA / "sst2"


# ----------------------------------------------------------------------------------------------- where it ran

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], check=False, capture_output=True, text=True).stdout
    except OSError:
        return ""


def git_state() -> dict:
    """`git_sha` (None outside a git checkout) and `git_dirty`: any tracked or untracked (not ignored) change outside
    benchmarks/results/ (results files are outputs, not code). No sha counts as dirty: nothing proves the code."""
    sha = _git("rev-parse", "HEAD").strip() or None
    changed = [ln[3:] for ln in _git("status", "--porcelain", "--untracked-files=normal", "--", ".",
                                     ":(exclude)benchmarks/results").splitlines() if ln.strip()]
    state = {"git_sha": sha, "git_dirty": sha is None or bool(changed)}
    if changed:
        state["git_dirty_paths"] = changed[:20] + ([f"... {len(changed) - 20} more"] if len(changed) > 20 else [])
    return state


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                platform.processor() or platform.machine())


def load_average() -> list[float]:
    """1/5/15-minute load: above the core count, another process was competing for the CPU."""
    return [round(x, 2) for x in os.getloadavg()]


PACKAGES = ("tuneforge", "torch", "transformers", "tokenizers", "accelerate", "safetensors", "datasets", "numpy")


def environment(threads: int | None = None, extra: tuple[str, ...] = ()) -> dict:
    """Package versions (PACKAGES plus `extra`; missing ones left out), CPU model, cores, threads and the load when
    called. The git state is not here: `write_result` records it at the top level of every result."""
    versions = {}
    for name in (*PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"versions": versions, "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "python": platform.python_version(), "load_average_at_start": load_average()}


# ----------------------------------------------------------------------------------------------- results policy

def add_output_args(ap: argparse.ArgumentParser, default: str | Path | None, what: str = "the result JSON") -> None:
    """`--out PATH` (default `default`; None: the script names the file under benchmarks/results/) and
    `--allow-dirty`."""
    ap.add_argument("--out", default=str(default) if default is not None else None,
                    help=f"where to write {what} (default: {default or 'a name under benchmarks/results/'}); "
                         "outside benchmarks/results/ a dirty tree is fine")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="write into benchmarks/results/ from a git tree with uncommitted changes (the file is then "
                         'marked "git_dirty": true and the README table shows "(dirty tree)")')


def in_results(path: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(RESULTS.resolve())


def guard_output(paths: str | Path | Iterable[str | Path], allow_dirty: bool) -> dict:
    """The git state at the start of a run; SystemExit when any of `paths` (files or folders) is inside
    benchmarks/results/ and the tree is dirty, unless `allow_dirty`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    state = git_state()
    if state["git_dirty"] and not allow_dirty and any(in_results(p) for p in paths):
        shown = ", ".join(state.get("git_dirty_paths", [])[:5]) or "no git sha"
        raise SystemExit(f"refusing to write into {RESULTS.relative_to(ROOT)}/ from a dirty git tree ({shown}): "
                         "commit first, write elsewhere with --out /tmp/..., or pass --allow-dirty (the result is "
                         'then marked "git_dirty": true)')
    return state


def write_result(path: str | Path, result: dict, started: dict, allow_dirty: bool,
                 env: dict | None = None) -> Path:
    """Write `result` as JSON with `git_sha`, `git_dirty` (dirty at the start or now, or a commit made during the
    run) and, when the result holds no environment yet, `environment` (`env` or a fresh one). A tree that became
    dirty during the run is refused for benchmarks/results/ as at the start: the JSON goes to a temp file instead."""
    now = git_state()
    dirty = started["git_dirty"] or now["git_dirty"] or now["git_sha"] != started["git_sha"]
    out = {**result, "git_sha": started["git_sha"], "git_dirty": dirty}
    paths = started.get("git_dirty_paths") or now.get("git_dirty_paths")
    if paths:
        out["git_dirty_paths"] = paths
    if now["git_sha"] != started["git_sha"]:
        out["git_sha_at_end"] = now["git_sha"]
    if not any(k in out for k in ("environment", "machine", "versions")):
        out["environment"] = env or environment()
    path = Path(path)
    if dirty and not allow_dirty and in_results(path):
        path = Path(tempfile.mkdtemp(prefix="bench-dirty-")) / path.name
        path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        raise SystemExit(f"the git tree changed during the run; not writing into {RESULTS.relative_to(ROOT)}/. "
                         f"The result is in {path} (git_dirty: true)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def run_and_write(args, result: dict, started: dict, benchmark, prefix: str) -> None:
    """Run `benchmark(args, work_folder)` in `args.work` (kept) or a temp folder, add its fields and the load average
    at the end to `result`, and write it to `args.out` (the dirty-tree guard of `write_result` applies)."""
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
        result.update(benchmark(args, Path(args.work)))
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            result.update(benchmark(args, Path(tmp)))
    result["load_average_at_end"] = load_average()
    print(f"wrote {shown(write_result(args.out, result, started, args.allow_dirty))}")


def shown(path: str | Path) -> str:
    """`path` relative to the repository root when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def result_git(result: dict) -> tuple[str | None, bool | None]:
    """(git sha, git dirty) of a results file of any age: top level, or under `machine` in older files."""
    machine = result.get("machine") or {}
    sha = result.get("git_sha") or machine.get("git_sha")
    dirty = result.get("git_dirty", machine.get("git_dirty"))
    return sha, dirty


# ----------------------------------------------------------------------------------------------- SST-2

def read_sst2(split: str, rows: int | None = None) -> tuple[list[str], list[str]]:
    """(sentences, labels) of ../shared/data/sst2/<split>.tsv: header `sentence\\tlabel` (dev) or `text\\tlabel`
    (train), no quoting; the first `rows` when given."""
    csv.field_size_limit(1 << 20)
    with open(SST2 / f"{split}.tsv", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        pairs = [(r[0], r[1]) for r in reader]
    pairs = pairs[:rows] if rows else pairs
    return [p[0] for p in pairs], [p[1] for p in pairs]


def sst2_frames():
    """(train, dev) as pandas frames, both with columns `text` and `label` (strings)."""
    import pandas as pd

    kw = {"sep": "\t", "quoting": csv.QUOTE_NONE, "dtype": str, "keep_default_na": False}
    train = pd.read_csv(SST2 / "train.tsv", **kw)
    dev = pd.read_csv(SST2 / "dev.tsv", **kw).rename(columns={"sentence": "text"})
    return train, dev


def sst2_subset(train, rows: int, seed: int):
    """The seeded train subset every benchmark uses (`rows` 0: all rows): pandas `sample(n=rows, random_state=seed)`."""
    return train.sample(n=rows, random_state=seed) if rows else train


def prepare_sst2(rows: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """folder/train.csv (the seeded subset) and folder/dev.csv (all 872 dev rows), columns text,label."""
    train, dev = sst2_frames()
    folder.mkdir(parents=True, exist_ok=True)
    sst2_subset(train, rows, seed).to_csv(folder / "train.csv", index=False)
    dev.to_csv(folder / "dev.csv", index=False)
    return folder / "train.csv", folder / "dev.csv"


# ----------------------------------------------------------------------------------------------- child processes

MARK = "BENCH_JSON "
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def module_cmd(module: str, *args: str) -> list[str]:
    """`python -m benchmarks.<module> args...` (run with cwd = the repository root)."""
    return [sys.executable, "-m", f"benchmarks.{module}", *args]


def invocation(module: str) -> str:
    """This process's command line as a user types it: `python -m benchmarks.<module> <arguments>`."""
    return " ".join([f"python -m benchmarks.{module}", *sys.argv[1:]])


def emit(payload: dict) -> None:
    """A child's one result line: its payload plus its own peak RSS (ru_maxrss is KiB on Linux)."""
    import resource

    payload["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)
    print(MARK + json.dumps(payload), flush=True)


def run_marked(cmd: list[str], log: Path, label: str) -> dict:
    """Run one child process (offline, cwd = the repository root), keep its output in `log`, return the JSON of its
    last result line plus its wall seconds; a failed child stops the benchmark with its output's tail."""
    env = {**os.environ, **OFFLINE_ENV}
    print(f"  {label} ...", end="", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          cwd=ROOT)
    wall = time.perf_counter() - start
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode or not lines:
        print(proc.stdout[-3000:])
        raise SystemExit(f"child {label} failed (exit {proc.returncode}); log: {log}")
    print(f" {wall:.0f} s")
    return {**json.loads(lines[-1][len(MARK):]), "wall_seconds": round(wall, 1)}


# ----------------------------------------------------------------------------------------------- fine-tune setup

# bench_finetune and probes.probe_levers: the same rows, hyperparameters and `tuneforge finetune` arguments
HP = {"max_length": 128, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "weight_decay": 0.01,
      "seed": 42, "device": "cpu", "model": "minilm-l6"}
VALIDATION_ROWS = 128


def prepare_finetune_data(train_rows: int, data_seed: int, folder: Path, dev_rows: int = 0,
                          eval_rows: Iterable[int] = (1,)) -> dict:
    """train subset (`sst2_subset`), dev, validation (128 train rows outside the subset) and eval_<n>.csv files;
    returns their facts."""
    eval_rows = list(eval_rows)
    train, dev = sst2_frames()
    subset = sst2_subset(train, train_rows, data_seed)
    rest = train.drop(subset.index).sample(frac=1, random_state=data_seed)
    folder.mkdir(parents=True, exist_ok=True)
    subset.to_csv(folder / "train.csv", index=False)
    dev = dev.head(dev_rows) if dev_rows else dev
    dev.to_csv(folder / "dev.csv", index=False)
    held_out = len(rest) >= VALIDATION_ROWS + max(eval_rows)
    pool = rest if held_out else train.sample(frac=1, random_state=data_seed)
    pool.head(VALIDATION_ROWS).to_csv(folder / "validation.csv", index=False)
    evals = pool.iloc[VALIDATION_ROWS:] if held_out else pool
    for n in eval_rows:
        evals.head(n).to_csv(folder / f"eval_{n}.csv", index=False)
    source = "SST-2 train rows outside the training subset" if held_out else "SST-2 train rows (subset = all rows)"
    return {"train_rows": len(subset), "dev_rows": len(dev), "validation_rows": VALIDATION_ROWS,
            "validation_and_eval_source": source, "data_seed": data_seed, "folder": str(folder)}


def tuneforge_args(work: Path, epochs: float, threads: int, seed: int = HP["seed"], precision: str = "fp32",
                   output: Path | None = None, levers: str | None = None) -> list[str]:
    """`tuneforge finetune` arguments: the shared hyperparameters, one evaluation (at the end), no early stop;
    `levers`: a `runtime.levers` value (default: the config's default, all)."""
    data, sets = work / "data", {
        "data.max_length": HP["max_length"], "train.batch_size": HP["batch_size"],
        "train.learning_rate": HP["learning_rate"], "train.epochs": epochs, "train.warmup_ratio": HP["warmup_ratio"],
        "train.weight_decay": HP["weight_decay"], "train.seed": seed, "train.early_stopping_patience": 0,
        "eval.every_steps": 10**9, "runtime.precision": precision, "runtime.device": HP["device"],
        "runtime.threads": threads, "runtime.progress": "false", "model.extend_vocab": "never"}
    if levers is not None:
        sets["runtime.levers"] = levers
    out = ["finetune", "--train", str(data / "train.csv"), "--validation", str(data / "validation.csv"),
           "--test", str(data / "dev.csv"), "--model", HP["model"], "--output", str(output or work / "tuneforge"),
           "--overwrite"]
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


# ----------------------------------------------------------------------------------------------- targets
# The scripts judge their targets with these, and benchmarks/table.py re-judges older files with the same rules, so a
# file written before a rule changed shows what it measured under today's rule.

FINETUNE_TARGETS = {"throughput_vs_run_glue_style": 3.0, "throughput_vs_trainer_strongest": 1.3,
                    "accuracy_within_points": 0.5, "mfu": 0.45, "tuneforge_peak_rss_mb": 2000, "eval_rss_ratio": 1.15}
PAIRED = "min over paired seeds"


def _spread(values: list[float]) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "mean": round(statistics.fmean(values), 3)}


def paired_ratios(runs: dict, seeds: list[int]) -> dict:
    """Per repeat k: the Trainer run's train seconds ÷ the TuneForge run's of the same repeat (same seed, same
    rows: the samples/s ratio, > 1 = TuneForge faster), for each Trainer style; and min / median / mean over the
    pairs. `runs[name]["repeats"]` are in repeat order, `seeds[k]` the seed of repeat k."""
    tf = runs["tuneforge"]["repeats"]
    out = {}
    for key, name in (("vs_run_glue_style", "trainer-runglue"), ("vs_trainer_strongest", "trainer-strongest")):
        other = runs[name]["repeats"]
        pairs = [{"repeat": k + 1, "seed": t.get("seed", seeds[k] if k < len(seeds) else None),
                  "ratio": round(o["train_seconds"] / t["train_seconds"], 3)}
                 for k, (t, o) in enumerate(zip(tf, other))]
        if any(t.get("seed") != o.get("seed") for t, o in zip(tf, other)):
            raise ValueError(f"{name}: repeats are not paired by seed")
        out[key] = {"per_seed": pairs, **_spread([p["ratio"] for p in pairs])}
    return out


def judge_finetune(result: dict) -> dict:
    """bench_finetune's targets, each {value, target, met, judged_on}, and `all`. Throughput: the minimum over
    paired seeds; accuracy: the mean over seeds; peak RSS: the largest TuneForge run; MFU: executed FLOPs when
    the file records them (older files: the nominal 6N count, said so in judged_on)."""
    t = FINETUNE_TARGETS
    runs = result["runs"]
    paired = result.get("paired") or paired_ratios(runs, result.get("seeds") or [])
    tf, rg, st = runs["tuneforge"], runs["trainer-runglue"], runs["trainer-strongest"]

    def at_least(value, target, judged_on):
        return {"value": value, "target": f">= {target}", "met": value is not None and value >= target,
                "judged_on": judged_on}

    def at_most(value, target, judged_on):
        return {"value": value, "target": f"<= {target}", "met": value is not None and value <= target,
                "judged_on": judged_on}

    points = {n: round(100 * (tf["dev_accuracy"] - r["dev_accuracy"]), 2) for n, r in (("rg", rg), ("st", st))}
    eff = result.get("efficiency") or {}
    executed = "mfu_executed" in eff
    mfu = eff.get("mfu_executed", eff.get("mfu"))
    rss = max((r["peak_rss_mb"] for r in tf.get("repeats") or [tf]), default=tf["peak_rss_mb"])
    eval_ratio = (result.get("eval_memory") or {}).get("rss_ratio_largest_to_smallest")
    met = {
        "throughput_vs_run_glue_style": at_least(paired["vs_run_glue_style"]["min"],
                                                 t["throughput_vs_run_glue_style"], PAIRED),
        "throughput_vs_trainer_strongest": at_least(paired["vs_trainer_strongest"]["min"],
                                                    t["throughput_vs_trainer_strongest"], PAIRED),
        "accuracy_vs_run_glue_style": at_least(points["rg"], -t["accuracy_within_points"],
                                               "mean dev accuracy over seeds, points"),
        "accuracy_vs_trainer_strongest": at_least(points["st"], -t["accuracy_within_points"],
                                                  "mean dev accuracy over seeds, points"),
        "mfu": at_least(mfu, t["mfu"], "executed FLOPs (first-token last layer), median TuneForge run" if executed
                        else "nominal 6 x non-embedding params x real tokens (file predates executed FLOPs)"),
        "tuneforge_peak_rss": at_most(rss, t["tuneforge_peak_rss_mb"], "largest TuneForge run, MB"),
        "eval_memory_flat": at_most(eval_ratio, t["eval_rss_ratio"], "tuneforge evaluate RSS, largest / smallest"),
    }
    return {**met, "all": all(v["met"] for v in met.values())}


# bench_infer: each target is checked on the path a user gets by default; variants meeting it are named as such.
# (ratio key prefix, bound on the ratio pipeline ÷ TuneForge for latency / TuneForge ÷ pipeline for throughput)
INFER_TARGETS = {
    "batch1_p50_eager_le_0.5x_pipeline": {
        "what": "PyTorch eager batch-1 p50 <= 0.5x the pipeline's", "key": "p50_batch1_{}", "bound": 2.0,
        "latency": True, "default": ("eager", "eager fp32"),  # tuneforge.load(folder)
        "variants": {"eager_bf16": "eager bf16", "eager_int8": "eager int8"}},
    "batch1_p50_onnx_le_0.33x_pipeline": {
        "what": "ONNX batch-1 p50 <= 0.33x the pipeline's, interleaved", "key": "p50_batch1_{}", "bound": 3.0,
        "latency": True, "default": ("onnx_fp32", "onnx fp32"),  # `tuneforge export` without --quantize
        "variants": {"onnx_int8": "onnx int8", "onnx_int8_dedicated": "onnx int8 in its own process",
                     "onnx_int8_spinning_off_dedicated": "onnx int8 spinning off, own process"}},
    "throughput_batch32_eager_ge_2x_pipeline": {
        "what": "batch-32 sentences/s >= 2x the pipeline's", "key": "throughput_batch32_{}", "bound": 2.0,
        "latency": False, "default": ("eager", "eager fp32"),
        "variants": {"eager_bf16": "eager bf16", "eager_int8": "eager int8", "onnx_fp32": "onnx fp32",
                     "onnx_int8": "onnx int8"}},
}


def judge_infer(ratios: dict) -> dict:
    """bench_infer's targets on the default paths: {what, default_path, value, met, variants_meeting}; `value` is
    TuneForge ÷ pipeline (latency: ≤ bound is good; throughput: ≥ bound). `met` None when the default path was not
    measured (--no-onnx). `all` is over the default paths only."""
    out = {}
    for name, spec in INFER_TARGETS.items():
        def value(variant: str):
            r = ratios.get(spec["key"].format(variant))
            if r is None:
                return None
            return round(1 / r, 2) if spec["latency"] else r

        def ok(variant: str):
            r = ratios.get(spec["key"].format(variant))
            return None if r is None else r >= spec["bound"]

        bound = round(1 / spec["bound"], 2) if spec["latency"] else spec["bound"]
        default, label = spec["default"]
        out[name] = {"what": spec["what"], "default_path": label, "value": value(default),
                     "bound": f"{'<=' if spec['latency'] else '>='} {bound}", "met": ok(default),
                     "variants_meeting": {lbl: value(v) for v, lbl in spec["variants"].items() if ok(v)}}
    return {**out, "all": all(v["met"] is True for v in out.values())}


# ----------------------------------------------------------------------------------------------- model folders

def is_classifier(folder: Path) -> bool:
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


CLASSIFIER_PATTERNS = ("runs/bench-sst2-*/run/final", "runs/evidence/*/final")
QUICK_MODEL = ROOT / "runs" / "bench-infer-model"


def find_classifier(prefer: str | None = None) -> str | None:
    """`prefer` (a folder under the repository root) when it is a classifier, else the newest classifier among
    the benchmark runs (by config.json's modification time)."""
    if prefer and is_classifier(ROOT / prefer):
        return str(ROOT / prefer)
    found = [p for pattern in CLASSIFIER_PATTERNS for p in ROOT.glob(pattern) if is_classifier(p)]
    return str(max(found, key=lambda p: (p / "config.json").stat().st_mtime)) if found else None


def quick_classifier() -> tuple[str, list[str] | None]:
    """A 30-step fine-tune of the default model on 500 SST-2 train rows (reused when it exists): the fallback when
    no benchmark run left a classifier. Returns the final/ folder and the command (None when reused)."""
    final = QUICK_MODEL / "final"
    if is_classifier(final):
        return str(final), None
    QUICK_MODEL.mkdir(parents=True, exist_ok=True)
    texts, labels = read_sst2("train", 500)
    data = QUICK_MODEL.parent / "bench-infer-train500.csv"
    with open(data, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("sentence", "label"), *zip(texts, labels)])
    cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(data), "--text-column", "sentence",
           "--label-column", "label", "--output", str(QUICK_MODEL), "--overwrite", "--set", "train.max_steps=30",
           "--set", "runtime.progress=false"]
    print("no fine-tuned SST-2 model found; fine-tuning a quick one:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return str(final), cmd[2:]


def export_onnx(model: str, work: Path, kinds: tuple[str, ...] = ("onnx_fp32", "onnx_int8")) -> dict:
    """`tuneforge export` fp32 and/or int8 (parity-checked on the bundled demo reviews); folders and timings."""
    out = {}
    for name, extra in (("onnx_fp32", []), ("onnx_int8", ["--quantize", "int8"])):
        if name not in kinds:
            continue
        folder = work / name
        cmd = [sys.executable, "-m", "tuneforge", "export", "--model", model, "--output", str(folder), *extra]
        print("$", " ".join(cmd[2:]), flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        out[name] = {"folder": str(folder), "seconds": round(time.time() - t0, 1), "command": " ".join(cmd[2:]),
                     "mb": round((folder / "model.onnx").stat().st_size / 1e6, 1)}
    return out


# ----------------------------------------------------------------------------------------------- tuneforge serve

SERVE_PACKAGES = ("fastapi", "uvicorn", "starlette", "pydantic")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, batching: bool, args, extra: Iterable[str] = ()) -> subprocess.Popen:
    """`tuneforge serve` on a loopback port (args: max_wait_ms, max_batch_size, threads, forward_batch_size);
    returns once /ready answers 200."""
    cmd = [sys.executable, "-m", "tuneforge", "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port),
           "--max-wait-ms", str(args.max_wait_ms), "--max-batch-size", str(args.max_batch_size),
           "--log-level", "warning"]
    cmd += [] if batching else ["--no-batching"]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--forward-batch-size", str(args.forward_batch_size)] if args.forward_batch_size else []
    cmd += list(extra)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # The server's log goes to a file: a pipe nobody reads during the run could fill up and stall the server.
    log = tempfile.NamedTemporaryFile("w+", prefix="tuneforge-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=ROOT)
    proc.log_path = log.name
    log.close()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {stop_server(proc)[1][-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("server not ready within 180 s")


def stop_server(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM and wait; returns the exit status and the server's log. uvicorn shuts down gracefully, then
    re-raises the signal: -15 is a clean stop."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    log = Path(proc.log_path).read_text(encoding="utf-8", errors="replace")
    Path(proc.log_path).unlink(missing_ok=True)
    return code, log


def serve_model(model: str | None) -> str:
    """`model`, else the full SST-2 benchmark run's classifier, else the newest benchmark classifier, else a quick
    30-step one (`quick_classifier`)."""
    return model or find_classifier("runs/bench-sst2-full/run/final") or quick_classifier()[0]

