"""Running an exported ONNX graph: the ONNX Runtime session settings (threads, spinning) and a numpy forward.

One place for them, so the export recipe's parity check and the served `OnnxPredictor` (serve/onnx_backend.py)
run a graph the same way: parity measures what users get."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tuneforge.errors import UserError

ONNX_FILE = "model.onnx"  # the graph an export folder serves (int8 exports ship only this one)


def default_threads() -> int:
    """Intra-op threads: the cores this process may use (OMP_NUM_THREADS caps it, as for torch), at most 4.

    On the 2-core target that is both cores. Beyond ~4, a batch of short sentences through a small encoder
    stops getting faster while everything else on the machine slows down.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    return max(1, min(4, cores))


SPINNING = ("call", "always", "off")


def spinning_mode(value: str | None, label: str | None = None) -> str:
    """`value` as one of SPINNING (None → "call", any case); a UserError naming `label` (default: spinning 'value')
    otherwise. The old bool setting gets a hint."""
    if isinstance(value, bool):  # the setting was a bool before it had three values
        raise UserError(f"spinning={value}: use one of {', '.join(SPINNING)} (True is now 'always', False 'off').")
    mode = (value or "call").lower()
    if mode not in SPINNING:
        raise UserError(f"{label or f'spinning {value!r}'}: use one of {', '.join(SPINNING)} (call is the default).")
    return mode


def open_session(path: str | Path, threads: int | None = None, spinning: str | None = None):
    """A CPU InferenceSession with all graph optimizations and a fixed, small thread pool.

    `spinning` says when idle intra-op threads spin instead of sleeping:
    - "call" (default): while a call runs, then they sleep (ONNX Runtime's `session.force_spinning_stop`). Inside a
      call the second thread picks up each op's work without a wake-up, and between calls the cores are free.
      SST-2 int8 classifier at batch 1, 2 threads: see benchmarks/results/probe_batch1.json for the p50 of each mode and
      what each costs a PyTorch pipeline interleaved beside it.
    - "always": ONNX Runtime's own default; spinning goes on between calls, so the cores stay busy (in an
      interleaved benchmark, PyTorch work beside it ran 2.5× slower).
    - "off": threads always sleep; every parallel op pays a wake-up, so two threads are no faster than one."""
    import onnxruntime as ort

    spinning = spinning_mode(spinning)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spinning == "off" else "1")
    if spinning == "call":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_forward(session):
    """A numpy → numpy forward of the session's one output (the candidate side of the parity check)."""
    output = session.get_outputs()[0].name

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run([output], {"input_ids": ids, "attention_mask": mask})[0]

    return run
