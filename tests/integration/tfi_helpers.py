"""Helpers shared by the integration tests: run the CLI, check one-line user errors, a cached trained run.

The fixtures and data helpers of tests/conftest.py are loaded by file path under a private module name, so this
module does not depend on which `conftest` module pytest last put into sys.modules.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
_spec = importlib.util.spec_from_file_location("_tuneforge_tests_root_conftest", _ROOT_CONFTEST)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

make_rows = _root.make_rows
write_csv = _root.write_csv
build_tiny_model = _root.build_tiny_model
POSITIVE, NEGATIVE, FILLER = _root.POSITIVE, _root.NEGATIVE, _root.FILLER

# The tiny model learns the toy task in a few seconds with these. One torch thread: the tests share two cores
# (often with other work), and oversubscribed threads make tiny-model training several times slower. CPU even where
# a GPU exists: the exact-equality checks (reproducibility, resume) rely on deterministic CPU kernels.
FAST = ["--set", "train.epochs=8", "--set", "train.learning_rate=0.003", "--set", "train.early_stopping_patience=0",
        "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.device=cpu"]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Wide terminal for rich, so a long one-line error is never wrapped by the terminal width.
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """`python -m tuneforge ARGS` in `cwd`, offline; returns the completed process (text stdout/stderr)."""
    return subprocess.run([sys.executable, "-m", "tuneforge", *map(str, args)], cwd=cwd, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, exactly one non-empty stderr line starting with 'error:', no traceback, needles in it."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, describe(proc)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, describe(proc)
    assert len(lines) == 1, f"expected one stderr line:\n{describe(proc)}"
    line = lines[0]
    assert line.startswith("error:"), describe(proc)
    for needle in needles:
        assert needle in line, f"{needle!r} missing from the error line: {line!r}"
    return line


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def training_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) of the training lines of metrics.jsonl (those have no 'split')."""
    return [(r["step"], r["loss"]) for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "split" not in r]


def validation_records(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if r.get("split") == "validation"]


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    import torch

    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        if atol:
            assert torch.allclose(wa[key], wb[key], atol=atol, rtol=0), key
        else:
            assert torch.equal(wa[key], wb[key]), f"{key}: max diff {(wa[key] - wb[key]).abs().max().item()}"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_toy_data(folder: Path) -> dict[str, Path]:
    """The same train/validation/test files as the `toy_csv` fixture, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"train": write_csv(folder / "train.csv", make_rows(160, 1)),
            "validation": write_csv(folder / "val.csv", make_rows(40, 2)),
            "test": write_csv(folder / "test.csv", make_rows(40, 3))}


_TRAINED: dict[str, dict] = {}


def trained_run(tmp_path_factory, tiny_model: Path) -> dict:
    """One fine-tune of the tiny model on the toy data through the CLI, shared by every test module.

    Returns {"dir": folder with the data, "run": run folder, "final": final/, "data": paths, "proc": process,
    "args": the CLI arguments (relative to "dir")}.
    """
    if "toy" not in _TRAINED:
        base = tmp_path_factory.mktemp("trained")
        data = write_toy_data(base)
        args = ["finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv",
                "--model", str(tiny_model), *FAST]
        proc = run_cli([*args, "--output", "run"], cwd=base)
        assert_ok(proc)
        _TRAINED["toy"] = {"dir": base, "run": base / "run", "final": base / "run" / "final", "data": data,
                           "proc": proc, "args": args}
    return _TRAINED["toy"]


def build_encoder(folder: Path, layers: int, dropout: float | None = None) -> Path:
    """The conftest tiny model, with `layers` layers and optionally dropout set (e.g. 0.0 for exact comparisons)."""
    build_tiny_model(folder)
    if layers != 2 or dropout is not None:
        import torch
        from transformers import BertConfig, BertModel

        config = BertConfig.from_pretrained(folder)
        config.num_hidden_layers = layers
        if dropout is not None:
            config.hidden_dropout_prob = dropout
            config.attention_probs_dropout_prob = dropout
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    return folder
