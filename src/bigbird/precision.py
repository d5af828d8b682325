"""Which floating-point dtype a model runs in: the names, what the machine computes natively, and `auto`.

`auto` picks bfloat16 where it is the fast path: on a CUDA GPU that supports it, and on a CPU with native bf16
matrix units (Intel AMX-BF16 or AVX512-BF16, Arm's BF16 extension), where a bf16 matmul runs several times
faster than a float32 one. Everywhere else it picks float32: on a CPU without native bf16, bf16 matmuls are
emulated and slower than float32. float16 is refused on a CPU without native fp16 arithmetic (AMX-FP16,
AVX512-FP16, Arm FP16) for the same reason. The Python classes' default stays float32, as in Transformers.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CHOICES = ("auto", *DTYPES)  # what a --dtype option offers
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # /proc/cpuinfo: x86 `flags`, Arm `Features`
FP16_FLAGS = ("amx_fp16", "avx512_fp16", "fphp", "asimdhp")


@dataclasses.dataclass(frozen=True)
class CpuSupport:
    """What this CPU computes natively: `bf16` and `fp16` arithmetic, and the flags that say so."""

    bf16: bool
    fp16: bool
    flags: tuple[str, ...] = ()

    def describe(self) -> str:
        """"AMX-BF16, AVX512-BF16" or "no native bf16/fp16 flags": what benchmarks and `auto` record."""
        return ", ".join(flag.upper().replace("_", "-") for flag in self.flags) or "no native bf16/fp16 flags"


@functools.lru_cache(maxsize=1)
def cpu_support() -> CpuSupport:
    """Probe the CPU once: PyTorch's own checks where it has them, the kernel's CPU flags (Linux) otherwise."""
    flags = set(_cpuinfo_flags())
    if _torch_cpu_check("_is_amx_tile_supported"):
        flags.add("amx_bf16")
    if _torch_cpu_check("_is_avx512_bf16_supported"):
        flags.add("avx512_bf16")
    if _torch_cpu_check("_is_amx_fp16_supported"):
        flags.add("amx_fp16")
    found = tuple(flag for flag in BF16_FLAGS + FP16_FLAGS if flag in flags)
    return CpuSupport(bf16=any(flag in flags for flag in BF16_FLAGS),
                      fp16=any(flag in flags for flag in FP16_FLAGS), flags=found)


def _torch_cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)  # private probes of torch.cpu; absent on some builds
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def _cpuinfo_flags() -> list[str]:
    """The feature words of /proc/cpuinfo's first `flags` (x86) or `Features` (Arm) line; none elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return value.split()
    except OSError:
        pass
    return []


def resolve_dtype(name: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype:
    """The torch dtype `name` stands for on `device` (default: the CPU).

    `name`: "auto", "float32", "bfloat16", "float16" (or "fp32", "bf16", "fp16", or a torch dtype); None is
    float32, the default of the Python classes. "auto" is bfloat16 on a CUDA GPU that supports it and on a CPU
    with native bf16 matrix units, float32 otherwise. Raises ValueError for an unknown name, and for float16
    on a CPU without native fp16 arithmetic (or bfloat16 on a CUDA GPU without it) — before any weights load.
    """
    device = torch.device("cpu" if device is None else device)
    if name is None:
        return torch.float32
    if isinstance(name, torch.dtype):
        dtype = name
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {', '.join(CHOICES)}, got {dtype}")
    elif not isinstance(name, str) or ALIASES.get(name.lower(), name.lower()) not in CHOICES:
        valid = ", ".join(CHOICES + tuple(ALIASES))
        raise ValueError(f"unknown dtype {name!r}: use one of {valid}")
    elif name.lower() == "auto":
        return _auto(device)
    else:
        dtype = DTYPES[ALIASES.get(name.lower(), name.lower())]
    _check_supported(dtype, device)
    return dtype


def _auto(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_support().bf16:
        return torch.bfloat16
    return torch.float32


def _check_supported(dtype: torch.dtype, device: torch.device) -> None:
    if device.type == "cpu" and dtype == torch.float16 and not cpu_support().fp16:
        raise ValueError("float16 on this CPU is emulated, not native (no AMX-FP16, AVX512-FP16 or Arm FP16): "
                         "it would be slower than float32; use --dtype auto, bfloat16 or float32")
    if device.type == "cuda" and dtype == torch.bfloat16 and torch.cuda.is_available() \
            and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU has no bfloat16 support: use float16 or float32")


def describe_choice(dtype: torch.dtype, requested: str | torch.dtype | None, device=None) -> str:
    """What a report shows: "bfloat16 (auto: CPU with AMX-BF16, AVX512-BF16)", or just the dtype's name."""
    name = str(dtype).removeprefix("torch.")
    if not (isinstance(requested, str) and requested.lower() == "auto"):
        return name
    device = torch.device("cpu" if device is None else device)
    reason = f"CPU with {cpu_support().describe()}" if device.type == "cpu" else device.type
    return f"{name} (auto: {reason})"
