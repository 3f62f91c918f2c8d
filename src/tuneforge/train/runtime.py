"""Where to run: device, precision, threads and processes, all through Accelerate. Never changes the science."""
from __future__ import annotations

import os

import torch

from tuneforge.config import RuntimeConfig


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(rt: RuntimeConfig):
    """An Accelerator for this process; under torchrun it joins the process group (gloo on CPU, NCCL on GPU)."""
    from accelerate import Accelerator

    has_gpu = torch.cuda.is_available() or (rt.device == "mps" and torch.backends.mps.is_available())
    cpu = rt.device == "cpu" or not has_gpu
    precision = rt.precision
    if precision == "auto":
        precision = "bf16" if not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if cpu:
        # Cores are shared between local processes; oversubscription makes CPU training much slower.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
        torch.set_num_threads(rt.threads or max(1, (os.cpu_count() or 1) // local))
    return Accelerator(cpu=cpu, mixed_precision="no" if precision == "fp32" else precision)
