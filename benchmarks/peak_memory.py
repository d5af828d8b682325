"""Peak extra resident memory of a stretch of work, read from /proc/self/status (Linux)."""

from __future__ import annotations

import ctypes


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_baseline() -> int:
    """Return freed heap memory to the system, reset the high-water mark, and give the resident KiB now."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_kib("VmRSS")


def peak_extra_mb(baseline: int) -> float:
    """MB by which the resident high-water mark has risen above `baseline` (from `peak_baseline`)."""
    return (_status_kib("VmHWM") - baseline) / 1024
