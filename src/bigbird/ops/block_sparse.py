"""Block-sparse attention as pure functions over a `BlockPlan`.

Query blocks 0 and n-1 attend every key; each query block i in 1..n-2 attends three parts of the keys (see
`parts`): the global key blocks 0 and n-1, the window i-1, i, i+1 and its random blocks. On CPU the op is the
custom op of `cpu_op` (flash kernels merged by log-sum-exp; torch.compile and torch.export trace it as one node);
on CUDA the Triton kernel of `triton_kernel` (a custom op as well) where triton imports and the kernel takes the
inputs. Elsewhere, whenever the probabilities are asked for, and while torch.onnx.export runs (ONNX has no
translation of our custom ops), the parts are concatenated along the key axis and attended in one call: plain ATen
ops, with the plan's tables as constants. Nothing of size L x L is built unless the probabilities are asked for.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import torch
import torch.nn.functional as F

from .cpu_op import PADDING_PENALTY, cpu_block_sparse_attention
from .inputs import check_attention_inputs
from .layout import BlockPlan
from .parts import Parts

BACKENDS = ("cpu", "sdpa", "triton")


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                           key_padding_mask: torch.Tensor | None = None, *, return_probs: bool = False,
                           backend: str | None = None):
    """BigBird attention of q over k, v following `plan`, with Transformers' numerics.

    q, k, v: (batch, heads, length, head_dim), length a multiple of the plan's block size.
    key_padding_mask: (batch, length), 1 (or True) for tokens, 0 for padding; padded keys get -10000
    added to their scores and padded query rows output exactly 0.
    backend: None picks the best implementation for the tensors' device (CPU: "cpu"; CUDA: "triton" where
    triton imports and the kernel takes the inputs, else "sdpa"; other devices, and any device while
    torch.onnx.export runs: "sdpa"). "cpu" is the CPU flash path, "sdpa" the device-generic path (the parts
    concatenated, one scaled_dot_product_attention), "triton" the Triton kernel (CUDA tensors, or CPU tensors
    under TRITON_INTERPRET=1).
    Returns the output (batch, heads, length, head_dim), or `(output, probs)` with probs
    (batch, heads, length, length) when `return_probs` is True (an eager-only explicit path, whatever the backend).
    """
    check_attention_inputs(q, k, v, plan, key_padding_mask)
    implementation = _implementation(backend, q.device)
    if return_probs:
        return _concatenated_attention(q, k, v, plan, key_padding_mask, return_probs=True)
    return implementation(q, k, v, plan, key_padding_mask)


def _implementation(backend: str | None, device: torch.device) -> Callable:
    """The function (q, k, v, plan, key_padding_mask) -> output that `backend` names for tensors on `device`."""
    if backend is None:
        if torch.onnx.is_in_onnx_export():  # ONNX knows no custom op: the exported graph gets the ATen path
            return _sdpa_attention
        return {"cpu": cpu_block_sparse_attention, "cuda": _best_on_cuda}.get(device.type, _sdpa_attention)
    if backend == "cpu":
        if device.type != "cpu":
            raise ValueError(f"backend='cpu' runs PyTorch's CPU flash kernel and needs CPU tensors, got {device}: "
                             f"use backend=None (the best for the device) or 'sdpa'")
        return cpu_block_sparse_attention
    if backend == "sdpa":
        return _sdpa_attention
    if backend == "triton":
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"backend='triton' runs Triton kernels, which need a CUDA device or TRITON_INTERPRET=1 "
                             f"(the interpreter, for CPU tensors); got {device} tensors: use backend=None or 'cpu'")
        return _triton_kernel().triton_block_sparse_attention
    raise ValueError(f"backend must be None or one of {BACKENDS}, got {backend!r}")


def _triton_kernel():
    """The Triton kernel's module, imported on first use; an ImportError naming the alternatives if it cannot be."""
    name = f"{__package__}.triton_kernel"
    try:
        import bigbird.ops.triton_kernel as kernel  # an import statement: torch.compile traces it, not importlib
    except ModuleNotFoundError as error:
        if error.name not in ("triton", name):
            raise
        missing = "the triton package" if error.name == "triton" else f"the module {name}"
        raise ImportError(f"backend='triton' needs {missing}, which does not import here: install triton "
                          f"(pip install triton) or use backend=None or 'sdpa' ('cpu' on CPU)") from error
    return kernel


def _best_on_cuda(q, k, v, plan: BlockPlan, key_padding_mask):
    """The Triton kernel where it imports and takes these inputs, the device-generic path otherwise."""
    try:
        kernel = _triton_kernel()
    except ImportError:
        return _sdpa_attention(q, k, v, plan, key_padding_mask)
    if plan.block_size in kernel.BLOCK_SIZES and q.dtype in kernel.DTYPES and q.shape[-1] <= kernel.MAX_HEAD_DIM:
        return kernel.triton_block_sparse_attention(q, k, v, plan, key_padding_mask)
    return _sdpa_attention(q, k, v, plan, key_padding_mask)


def _sdpa_attention(q, k, v, plan: BlockPlan, key_padding_mask):
    return _concatenated_attention(q, k, v, plan, key_padding_mask, return_probs=False)


def _concatenated_attention(q, k, v, plan: BlockPlan, key_padding_mask, return_probs: bool):
    """The device-generic path: global rows over all keys, middle rows over their concatenated parts."""
    batch, heads, length, head_dim = q.shape
    bs = plan.block_size
    key_bias = None if key_padding_mask is None else (1 - key_padding_mask.to(q.dtype)) * PADDING_PENALTY
    q, k, v = (x.reshape(batch * heads, length, head_dim) for x in (q, k, v))
    # The window part views k and v through as_strided, which ONNX export translates as if they were contiguous.
    k, v = k.contiguous(), v.contiguous()
    parts = Parts(plan, plan.tables(q.device), key_bias, batch, heads, q.dtype)
    global_mask = None if key_bias is None else key_bias.repeat_interleave(heads, 0)[:, None, None, :]
    global_q = torch.cat([q[:, :bs], q[:, -bs:]], dim=1)[:, None]
    if return_probs:
        global_out, global_probs = _attention_with_probs(global_q, k[:, None], v[:, None], global_mask)
        middle_out, middle_probs = _middle_with_probs(q, k, v, parts)
    else:
        global_out = F.scaled_dot_product_attention(global_q, k[:, None], v[:, None], attn_mask=global_mask)
        middle_out = _middle_concatenated(q, k, v, parts)
    out = torch.cat([global_out[:, 0, :bs], middle_out, global_out[:, 0, bs:]], dim=1)
    if key_padding_mask is not None:
        out = out * key_padding_mask.to(q.dtype).repeat_interleave(heads, 0)[:, :, None]
    out = out.view(batch, heads, length, head_dim)
    if not return_probs:
        return out
    probs = _dense_probs(global_probs[:, 0], middle_probs, parts).view(batch, heads, length, length)
    return out, probs


def _attention_with_probs(q, k, v, mask):
    """Softmax attention that also returns its probabilities: (..., q_len, d) -> output, (..., q_len, k_len)."""
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(dim=-1)
    return probs @ v, probs


def _concatenate_parts(q, k, v, parts: Parts):
    """Middle queries (BH, n-2, bs, d) with their parts' keys, values and masks joined along the key axis."""
    queries, part_list = parts.all(q, k, v)
    rows = queries.shape[1]
    keys = [pk.expand(-1, rows, -1, -1) for pk, _, _ in part_list]
    values = [pv.expand(-1, rows, -1, -1) for _, pv, _ in part_list]
    masks = [
        mask.reshape(mask.shape[0], rows, queries.shape[2], -1) if pk.shape[1] == 1 and mask.shape[2] > 1 else mask
        for pk, _, mask in part_list
    ]
    query_rows = max(mask.shape[2] for mask in masks)
    masks = [mask.expand(queries.shape[0], rows, query_rows, -1) for mask in masks]
    return queries, torch.cat(keys, 2), torch.cat(values, 2), torch.cat(masks, -1)


def _middle_concatenated(q, k, v, parts: Parts):
    """Middle rows in one fused attention over the gathered parts: the path for devices without the CPU kernel."""
    return F.scaled_dot_product_attention(*_concatenate_parts(q, k, v, parts)).flatten(1, 2)


def _middle_with_probs(q, k, v, parts: Parts):
    """Explicit middle rows: output (BH, (n-2) * bs, d) and probabilities (BH, n-2, bs, parts' key length)."""
    out, probs = _attention_with_probs(*_concatenate_parts(q, k, v, parts))
    return out.flatten(1, 2), probs


def _dense_probs(global_probs, middle_probs, parts: Parts):
    """(batch * heads, L, L) probabilities: global rows as they are, middle rows scattered by key block."""
    bs, n = parts.bs, parts.n
    bh, rows = middle_probs.shape[:2]
    dense = middle_probs.new_zeros(bh, rows, bs, n, bs)
    blocks = middle_probs.unflatten(-1, (-1, bs))
    dense[:, :, :, 0] += blocks[:, :, :, 0]
    dense[:, :, :, n - 1] += blocks[:, :, :, 1]
    row = torch.arange(rows, device=dense.device)
    for shift in range(3):
        dense[:, row, :, row + shift] += blocks[:, :, :, 2 + shift].transpose(0, 1)
    if parts.has_extra:
        index = parts.extra_index() % n
        extra = blocks[:, :, :, 5:]
        dense.scatter_add_(3, index[:, :, None, :, None].expand_as(extra), extra)
    dense = dense.reshape(bh, rows * bs, n * bs)
    return torch.cat([global_probs[:, :bs], dense, global_probs[:, bs:]], dim=1)
