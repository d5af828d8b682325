"""One line describing the machine a benchmark ran on: CPU model, native bf16/fp16 flags, threads, load, versions."""

from __future__ import annotations

import os
import platform

import torch

from bigbird.precision import cpu_support


def cpu_model() -> str:
    """/proc/cpuinfo's `model name` (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    import transformers

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{cpu_model()}, {os.cpu_count()} cores ({cpu_support().describe()}), {torch.get_num_threads()} torch "
            f"threads, load average {load}; torch {torch.__version__}, transformers {transformers.__version__}")
