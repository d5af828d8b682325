"""Argument checks shared by the block-sparse op and its dense reference: cheap, and run before any computation."""

from __future__ import annotations

import torch

from .layout import BlockPlan

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                           key_padding_mask: torch.Tensor | None) -> None:
    """Raise a TypeError or ValueError saying what is wrong, and what to do, when q, k, v (batch, heads, length,
    head_dim), the plan and the key padding mask (batch, length) do not fit together."""
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan must be a BlockPlan built by bigbird.ops.block_plan(length, block_size, "
                        f"num_random_blocks, num_heads, ...), got {type(plan).__name__}")
    _check_qkv(q, k, v)
    batch, heads, length, _ = q.shape
    if length % plan.block_size:
        raise ValueError(
            f"length {length} is not a multiple of block_size {plan.block_size}: right-pad q, k, v to "
            f"{-(-length // plan.block_size) * plan.block_size} tokens and mark the padding in key_padding_mask"
        )
    if (length, heads) != (plan.seq_len, plan.num_heads):
        raise ValueError(
            f"the plan was built for length {plan.seq_len} and {plan.num_heads} heads, but q, k, v have length "
            f"{length} and {heads} heads: build it with block_plan({length}, {plan.block_size}, "
            f"{plan.num_random_blocks}, {heads}, ...)"
        )
    if key_padding_mask is not None:
        _check_mask(key_padding_mask, batch, length, q.device)


def _check_qkv(q, k, v) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (batch, heads, length, head_dim), "
                            f"got {type(x).__name__}")
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k and v must all have shape (batch, heads, length, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)} and {tuple(v.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype or q.dtype not in FLOAT_DTYPES:
        raise TypeError(f"q, k and v must share one floating-point dtype (float32, bfloat16, float16 or float64), "
                        f"got {q.dtype}, {k.dtype} and {v.dtype}: convert them, e.g. with .to(torch.float32)")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device} and {v.device}: "
                         f"move them with .to(device)")
    if q.shape[0] == 0 or q.shape[-1] == 0:
        raise ValueError(f"q, k and v need at least one sequence and a head_dim of at least 1, got shape "
                         f"{tuple(q.shape)} (batch, heads, length, head_dim)")


def _check_mask(mask, batch: int, length: int, device: torch.device) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"key_padding_mask must be a torch.Tensor of shape (batch, length) or None, "
                        f"got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"key_padding_mask must have shape (batch, length) = ({batch}, {length}), "
                         f"got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"key_padding_mask is on {mask.device} but q, k, v are on {device}: "
                         f"move it with key_padding_mask.to(q.device)")
    if mask.dtype.is_complex:
        raise TypeError(f"key_padding_mask must be bool, integer or floating point, got {mask.dtype}")
    if mask.dtype != torch.bool and not _tracing():
        _check_zeros_and_ones(mask)


def _tracing() -> bool:
    """Whether torch.compile, torch.export or torch.jit is tracing: values are unknown (or a read of them would
    break the graph) then, so value checks are left to the eager calls."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _check_zeros_and_ones(mask: torch.Tensor) -> None:
    message = ("key_padding_mask must hold only 0 (padding) and 1 (token), or be a bool tensor; pass "
               "attention_mask.bool() or (attention_mask > 0) for other values")
    valid = ((mask == 0) | (mask == 1)).all()
    if mask.device.type == "cpu":
        if not valid:
            raise ValueError(message)
    else:  # no host sync on accelerators: the device raises instead
        torch._assert_async(valid, message)
