"""What the machine can compute natively, read without importing torch (standard library only), for the
choices of `auto` precision in training (`train.runtime`) and decoding (`generate.translate`)."""
from __future__ import annotations


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on Linux when the x86 `flags` line lists avx512_bf16 or amx_bf16 (bf16 dot products in hardware).
    Elsewhere False (fp32): macOS and Windows have no /proc/cpuinfo, and ARM CPUs list `Features`, not `flags`
    (ARM's bf16 is not measured here, so it is left out)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
