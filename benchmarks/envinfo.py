"""Where a benchmark ran: git commit, package versions, CPU model, cores and threads (shared by bench_*.py)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git() -> dict:
    def out(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], check=False, capture_output=True, text=True).stdout.strip()

    return {"git_sha": out("rev-parse", "HEAD") or None,
            "git_dirty": bool(out("status", "--porcelain", "--untracked-files=no"))}


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                platform.processor() or platform.machine())


def environment(threads: int, extra: tuple[str, ...] = ()) -> dict:
    from tuneforge.model.artifact import package_versions

    versions = package_versions()
    for name in extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {**git(), "versions": versions, "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "threads": threads, "load_average_at_start": load_average()}


def load_average() -> list[float]:
    """1/5/15-minute load: above the core count, another process was competing for the CPU."""
    return [round(x, 2) for x in os.getloadavg()]
