"""Where to run: device, precision, threads and processes, all through Accelerate. Only precision changes the
numerics (`auto` picks bf16 where the hardware computes it natively); everything else leaves the result alone."""
from __future__ import annotations

import os

import torch

from tuneforge.config import RuntimeConfig
from tuneforge.hardware import cpu_has_native_bf16


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(rt: RuntimeConfig):
    """An Accelerator for this process; under torchrun it joins the process group (gloo on CPU, NCCL on GPU)."""
    from accelerate import Accelerator

    has_gpu = torch.cuda.is_available() or (rt.device == "mps" and torch.backends.mps.is_available())
    cpu = rt.device == "cpu" or not has_gpu
    precision = resolve_precision(rt.precision, cpu)
    if cpu:
        # Cores are shared between local processes; oversubscription makes CPU training much slower.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
        torch.set_num_threads(rt.threads or max(1, (os.cpu_count() or 1) // local))
        if rt.lever("reuse_memory"):
            reuse_freed_memory()
        if rt.lever("kernel_cache"):
            bound_kernel_cache()
    return Accelerator(cpu=cpu, mixed_precision="no" if precision == "fp32" else precision)


def resolve_precision(precision: str, cpu: bool) -> str:
    """`auto` → bf16 where the hardware computes it natively (a bf16-capable GPU, or a CPU with avx512_bf16 or
    AMX), else fp32. Other values pass through.

    On this project's avx512_bf16 CPU, bf16 autocast fine-tuned the default model 1.4-1.6× faster than fp32 at
    the same SST-2 dev accuracy within seed noise (500, 2,000 × 3 seeds, 4,000 × 3 seeds and 8,000 rows; the
    figures are in docs/defaults.md). CPUs without native bf16 would emulate it, slower than fp32."""
    if precision != "auto":
        return precision
    if not cpu:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def pin_precision(cfg, accelerator):
    """A run config whose `runtime.precision` is what this accelerator runs, and {"runtime.precision": why} for
    the run's "auto:" lines; unchanged and {} when it was set. config.yaml then records what ran, and a
    `--resume` (which reads it) continues in the same precision on any machine."""
    if cfg.runtime.precision != "auto":
        return cfg, {}
    chosen = "fp32" if str(accelerator.mixed_precision) == "no" else str(accelerator.mixed_precision)
    if accelerator.device.type == "cpu":
        why = "native bf16 on this CPU: avx512_bf16/AMX" if chosen == "bf16" else "no native bf16 on this CPU"
    else:
        why = f"on {accelerator.device.type}"
    other = "fp32" if chosen != "fp32" else "bf16"
    cfg = cfg.model_copy(deep=True)
    cfg.runtime.precision = chosen
    return cfg, {"runtime.precision": f"{chosen} ({why}; --set runtime.precision={other} to change)"}


def reuse_freed_memory() -> bool:
    """glibc: serve large blocks from the heap and stop trimming it, so freed tensors are reused in-process.

    By default glibc maps every block over 32 MB (and, adaptively, smaller ones) with mmap and unmaps it on
    free; the next step maps it again and pays a page fault per 4 KB on first touch. A fine-tuning step of the
    default model did about 12,000 of them. Process-wide; returns False where it does not apply (not glibc).
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


KERNEL_CACHE = 64


def bound_kernel_cache(capacity: int = KERNEL_CACHE) -> None:
    """oneDNN's primitive cache (1,024 by default) holds a compiled kernel, with its packed weights, for every
    matmul shape seen; batches padded to their own length bring new shapes all run long. Fine-tuning
    multilingual-e5-small on 2,000 waimai_10k rows (120 steps): RSS after a trim 1.70 → 1.46 GB with 64, the
    same tokens/s (1,271 vs 1,321; 0 kernels: 965). Read when oneDNN first builds a kernel, so call it before any
    matmul; a value in the environment wins."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def trim_freed_memory() -> bool:
    """glibc: hand the freed pages of every heap back to the system (`malloc_trim(0)`), keeping the address space.
    With `reuse_memory` the heap is never trimmed by glibc itself, so blocks freed in shapes that do not come back
    (evaluation's, varying batch shapes) stayed resident: a one-hour translation run of a 7.7M model reached
    6-8 GB RSS. The loop calls this after each evaluation (the `trim_memory` lever); the pages a step needs again
    are faulted back once. False where it does not apply (not glibc)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


class HeapTrimmer:
    """The `trim_memory` lever in the loop: `trim_freed_memory` after each evaluation, and after any step that leaves
    RSS more than `slack_mb` above where the last trim left it (a bound on heap growth in long runs, where
    reuse_memory keeps every freed block). multilingual-e5-small on 4,000 waimai_10k rows, 125 steps: a 512 MB slack
    trimmed every few steps and cost 9-15% tokens/s (two runs) for a peak 0.2 GB lower, so the default is 1 GB."""

    def __init__(self, on: bool, slack_mb: float = 1024.0):
        self.on, self.slack, self.trims = on, slack_mb, 0
        self.floor = rss_mb() if on else 0.0

    def after_step(self) -> None:
        if self.on and (now := rss_mb()) > self.floor + self.slack:
            self.trim()
            # A step faults its working set back in after a trim; from the high-water mark, only growth beyond
            # what a step needs trims again (a working set over the slack would otherwise trim every step).
            self.floor = now

    def trim(self) -> None:
        if self.on:
            self.trims += trim_freed_memory()
            self.floor = rss_mb()


def rss_mb() -> float:
    """This process's resident memory in MB (0.0 where /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return round(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


def measure_matmul_peak(device=None, dtype: torch.dtype | None = None, size: int = 1024, trials: int = 3,
                        seconds: float = 0.25) -> float:
    """Achieved FLOP/s of a square matmul on this device with the current threads: the MFU denominator.

    Measured, not looked up, because a shared 2-core VM and a datacentre GPU differ by 10,000×. `dtype` is
    the compute dtype (bf16 under bf16 mixed precision). The best of a few short trials, so a neighbour's
    burst of work does not inflate the MFU.
    """
    import time

    device = torch.device(device or "cpu")
    dtype = dtype or torch.float32
    if device.type == "cuda":
        size = max(size, 8192)
    gen = torch.Generator(device=device).manual_seed(0)  # never touch the global RNG: resume must be exact
    a = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b  # warm-up
    sync()
    best = 0.0
    for _ in range(trials):
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or runs < 2:
            a @ b
            runs += 1
        sync()
        best = max(best, 2 * size**3 * runs / (time.perf_counter() - start))
    return best


def compute_dtype(accelerator) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(accelerator.mixed_precision), torch.float32)
