"""Activation functions by the names config.json uses (`hidden_act`, `activation_function`)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": _tanh_gelu,
    "gelu_fast": _tanh_gelu,
    "gelu_pytorch_tanh": _tanh_gelu,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "mish": F.mish,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called `name` in config.json; "gelu_new" is GELU's tanh approximation."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} in the config: use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
