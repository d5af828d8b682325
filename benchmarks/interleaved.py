"""Timing two implementations on a machine whose speed drifts: round-robin runs, medians per implementation.

Each timed run follows an untimed run of the same call: right after the other implementation, the process's
heap holds that one's pattern of freed blocks, and a first run pays page faults a loop of its own would not
(measured: Transformers' training step 9.2 s right after ours, 7.9 s after itself).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from peak_memory import peak_baseline, peak_extra_mb


class Measurement(NamedTuple):
    wall: float  # median wall seconds
    cpu: float  # median process CPU seconds (all threads): the steadier number on a shared machine
    peak_gb: float  # peak extra resident memory of the first (untimed) run
    result: Any  # what the last run returned


def measure_interleaved(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Measurement]:
    """Run every call `repeats` times in turn (a, b, a, b, ...), each timed run after an untimed one, so that a
    slower or faster stretch of the machine hits all of them alike; medians per call."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    peaks, results = {}, {}
    for i in range(repeats):
        for name, call in calls.items():
            baseline = peak_baseline() if i == 0 else 0
            call()
            if i == 0:
                peaks[name] = peak_extra_mb(baseline) / 1024
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = call()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: Measurement(statistics.median(wall[name]), statistics.median(cpu[name]), peaks[name],
                              results[name]) for name in calls}
