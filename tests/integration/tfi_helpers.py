"""Helpers shared by the integration tests: run the CLI, check one-line user errors, a cached trained run.

`run_cli` runs the command in this process, through `tuneforge.cli.main` (the `tuneforge` entry point): the same
argument parsing and the same mapping of user errors to one stderr line and exit code 2, with stdout, stderr and the
exit code captured, and without the 3-4 s of importing torch and transformers that a fresh process pays.
`run_subprocess` is the real `python -m tuneforge` process, for the few tests that are about the process itself
(the entry point, kill -9 and resume, SIGTERM, torchrun).

The fixtures and data helpers of tests/conftest.py are loaded by file path under a private module name, so this
module does not depend on which `conftest` module pytest last put into sys.modules.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
_spec = importlib.util.spec_from_file_location("_tuneforge_tests_root_conftest", _ROOT_CONFTEST)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

make_rows = _root.make_rows
write_csv = _root.write_csv
build_tiny_model = _root.build_tiny_model
fp_tolerance = _root.fp_tolerance
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


def run_subprocess(args: list[str], cwd: Path, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """`python -m tuneforge ARGS` in `cwd` as a real process, offline; returns the completed process (text
    stdout/stderr)."""
    return subprocess.run([sys.executable, "-m", "tuneforge", *map(str, args)], cwd=cwd, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


# Python's default warning filters (no -W, no PYTHONWARNINGS), as a fresh `python -m tuneforge` has them: pytest's
# own filters (which hide DeprecationWarning and FutureWarning) must not hide what the process would print.
_PROCESS_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, None),
                            ("ignore", PendingDeprecationWarning, None), ("ignore", ImportWarning, None),
                            ("ignore", ResourceWarning, None)]


def _refuse_to_serve(*args, **kwargs):
    raise RuntimeError("run_cli runs in the test process and cannot serve: use run_subprocess for a live server")


@contextlib.contextmanager
def _log_to(stream):
    """Log records reach `stream` as in a fresh process: pytest's capturing handlers leave the root logger (so
    Python's last-resort handler prints warnings to the current sys.stderr), and stream handlers that libraries
    bound to the process's stderr (transformers' own) write to `stream`."""
    import logging

    root = logging.getLogger()
    stderrs = {id(sys.__stderr__), id(sys.stderr)}
    loggers = [root, *(x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger))]
    moved = [h for lg in loggers for h in lg.handlers
             if type(h) is logging.StreamHandler and id(getattr(h, "stream", None)) in stderrs]
    saved_root = root.handlers[:]
    root.handlers = [h for h in saved_root if h in moved]
    old_streams = [h.stream for h in moved]
    for h in moved:
        h.setStream(stream)
    try:
        yield
    finally:
        for h, old in zip(moved, old_streams):
            h.setStream(old)
        root.handlers = saved_root


@contextlib.contextmanager
def _process_state(cwd: Path, env: dict[str, str]):
    """What a command may change in this process, put back afterwards: cwd, os.environ, sys.argv, torch's thread
    count, the random generators, transformers' verbosity, Accelerate's process state, log levels."""
    import logging

    import numpy as np
    import torch
    import transformers
    from accelerate.state import AcceleratorState, GradientState

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    threads = torch.get_num_threads()
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    verbosity = transformers.logging.get_verbosity()
    progress = transformers.utils.logging.is_progress_bar_enabled()
    levels = {name: logging.getLogger(name).level for name in (None, "accelerate.utils.other")}
    AcceleratorState._reset_state(reset_partial_state=True)  # a fresh process has no Accelerate state
    GradientState._reset_state()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        torch.set_num_threads(threads)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        transformers.logging.set_verbosity(verbosity)
        (transformers.logging.enable_progress_bar if progress else transformers.logging.disable_progress_bar)()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def run_cli(args: list[str], cwd: Path, timeout: float | None = None, **env) -> subprocess.CompletedProcess:
    """`tuneforge ARGS` in `cwd`, run in this process through `tuneforge.cli.main` (what the `tuneforge` entry point
    and `python -m tuneforge` call): returns a CompletedProcess with the exit code, stdout and stderr that the
    process would have had. SystemExit gives the exit code; an exception that escapes `main` is printed as a
    traceback with exit code 1, as Python does. Warnings are printed to stderr under Python's default filters.
    test_bad_input.py::test_in_process_runs_match_the_real_process compares it with run_subprocess.
    `timeout` is accepted as run_subprocess takes it, and not enforced (`serve` is refused: it would block)."""
    import types

    import uvicorn

    from tuneforge import cli

    # As `python -m tuneforge` sees itself: click names the program in usage lines from __main__ and sys.argv[0].
    argv = [str(Path(cli.__file__).with_name("__main__.py")), *map(str, args)]
    as_main = types.ModuleType("__main__")
    as_main.__package__ = "tuneforge"
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _process_state(Path(cwd), cli_env(**env)), warnings.catch_warnings(record=True) as caught, _log_to(err), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.resetwarnings()
        for action, category, module in reversed(_PROCESS_WARNING_FILTERS):
            warnings.filterwarnings(action, category=category, module=module or "")
        real_run, uvicorn.run = uvicorn.run, _refuse_to_serve
        real_main, sys.modules["__main__"] = sys.modules["__main__"], as_main
        sys.argv = argv
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        finally:
            uvicorn.run = real_run
            sys.modules["__main__"] = real_main
            sys.stdout.flush()
            sys.stderr.flush()
    stderr = err.getvalue() + "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                                      for w in caught)
    return subprocess.CompletedProcess(["tuneforge", *argv[1:]], code, out.getvalue(), stderr)


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
    """The evaluation records, without their training-clock reading (a resumed run's clock differs)."""
    return [{k: v for k, v in r.items() if k != "train_seconds"}
            for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if r.get("split") == "validation"]


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, reduction: int = 0) -> None:
    """Bitwise equal weights (resume, reproducibility: the same deterministic CPU computation). With `reduction`
    (for runs that compute the same math in another order), equal within `fp_tolerance(dtype, reduction)`, absolute
    at each tensor's magnitude."""
    import torch

    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        if reduction:
            tol = fp_tolerance(wa[key].dtype, reduction)
            assert torch.allclose(wa[key], wb[key], atol=tol * wa[key].abs().max().item(), rtol=tol), key
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


def interrupt_after_checkpoints(monkeypatch, n: int) -> list[Path]:
    """Make the n-th checkpoint save raise KeyboardInterrupt right after it completed (a deterministic Ctrl-C).
    Returns the list the saved checkpoint paths are appended to; `monkeypatch.undo()` restores the real save."""
    import tuneforge.train.loop as loop

    real = loop.save_checkpoint
    saved: list[Path] = []

    def save_then_interrupt(*args, **kwargs):
        path = real(*args, **kwargs)
        saved.append(path)
        if len(saved) == n:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    return saved
