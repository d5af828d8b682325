"""The op in bfloat16 (and float16) against float64: within 2x of the same computation done plainly in that dtype.

flash-attn's rule: on the same low-precision inputs, the op's error against a float64 reference is at most twice
the error of the dense twin (`reference_attention`) run in the low-precision dtype itself, forward and backward.
Block size 64 and up exercises the grouped-query calls the op makes in low precision (see `cpu_op._query_groups`).
"""

import pytest
import torch

from bigbird.ops import block_plan, block_sparse_attention, reference_attention
from bigbird.ops import cpu_op

CASES = [
    # length, block size, r, heads, mode, padded tokens per batch row
    (1024, 64, 3, 2, "eval", (0, 100)),
    (1024, 64, 3, 2, "train", (0, 100)),
    (768, 64, 2, 3, "train", (37, 0)),
    (2048, 64, 3, 2, "paper", (0, 64)),
    (1024, 128, 1, 2, "train", (0, 0)),
    (640, 64, 0, 2, "eval", (0, 10)),
]


def low_precision_inputs(batch, heads, length, dtype, padded, head_dim=64):
    """q, k, v with attention logits of a realistic spread (std about 2), a 0/1 key mask, an upstream gradient."""
    generator = torch.Generator().manual_seed(length + heads)
    q, k, v, upstream = (torch.randn(batch, heads, length, head_dim, generator=generator).mul(scale).to(dtype)
                         for scale in (1.5, 1.5, 1.0, 1.0))
    mask = torch.ones(batch, length)
    for row, count in enumerate(padded):
        if count:
            mask[row, length - count:] = 0
    return q, k, v, upstream, mask


def forward_backward(attention, inputs, mask, upstream):
    """Output and (dq, dk, dv) of `attention(q, k, v, mask)` for `upstream`, on leaf copies of `inputs`."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    out = attention(*leaves, mask)
    return (out, *torch.autograd.grad(out, leaves, upstream.to(out.dtype)))


def max_error(got, exact, keep):
    return (got.double() - exact).abs()[keep].max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("length, block_size, r, heads, mode, padded", CASES)
def test_low_precision_op_within_twice_the_plain_computation(dtype, length, block_size, r, heads, mode, padded):
    plan = block_plan(length, block_size, r, heads, seed=2, mode=mode)
    q, k, v, upstream, mask = low_precision_inputs(len(padded), heads, length, dtype, padded)
    ours = forward_backward(lambda *a: block_sparse_attention(*a[:3], plan, a[3]), (q, k, v), mask, upstream)
    plain = forward_backward(lambda *a: reference_attention(*a[:3], plan, a[3])[0], (q, k, v), mask, upstream)
    exact = forward_backward(lambda *a: reference_attention(*a[:3], plan, a[3].double())[0],
                             [x.double() for x in (q, k, v)], mask, upstream.double())
    rows = mask.bool()[:, None, :, None].expand_as(q)  # padded query rows output 0 in every implementation
    everywhere = torch.ones_like(rows)
    for name, got, base, want, keep in zip(("output", "dq", "dk", "dv"), ours, plain, exact,
                                           (rows, rows, everywhere, everywhere)):
        assert got.dtype == dtype
        assert max_error(got, want, keep) <= 2 * max_error(base, want, keep), name


def test_low_precision_calls_split_blocks_into_query_groups():
    """bf16/fp16 blocks of 64+ rows are split into groups of 32 query rows sharing their keys; fp32 stays whole."""
    block = torch.empty(2, 3, 64, 16)
    assert cpu_op._query_groups(block.bfloat16()) == 2
    assert cpu_op._query_groups(block.half()) == 2
    assert cpu_op._query_groups(torch.empty(2, 3, 128, 16, dtype=torch.bfloat16)) == 4
    assert cpu_op._query_groups(block) == 1
    assert cpu_op._query_groups(block.double()) == 1
    assert cpu_op._query_groups(torch.empty(2, 3, 32, 16, dtype=torch.bfloat16)) == 1
    assert cpu_op._query_groups(torch.empty(2, 3, 80, 16, dtype=torch.bfloat16)) == 1


def test_grouped_and_whole_calls_give_the_same_bf16_output(monkeypatch):
    plan = block_plan(1024, 64, 3, 2, seed=4, mode="train")
    q, k, v, _, mask = low_precision_inputs(2, 2, 1024, torch.bfloat16, (0, 70))
    grouped = block_sparse_attention(q, k, v, plan, mask)
    monkeypatch.setattr(cpu_op, "GROUP_ROWS", 10**6)
    whole = block_sparse_attention(q, k, v, plan, mask)
    torch.testing.assert_close(grouped, whole, atol=0, rtol=0)


def test_masks_stay_float32_in_low_precision():
    """Log-multiplicities (log 4 in the eval plan) and padding are added in float32, not rounded to bf16."""
    plan = block_plan(640, 64, 3, 2)
    q = torch.empty(1, 2, 640, 16, dtype=torch.bfloat16)
    parts, global_mask, _ = cpu_op._setup(q, torch.ones(1, 640), (64, 3, 0, "eval", 0))
    assert parts.global_mask().dtype == torch.float32
    assert parts.window_mask().dtype == torch.float32
    assert global_mask.dtype == torch.float32
    assert parts.global_mask().max().item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), abs=1e-7)


def test_autocast_runs_the_op_in_bf16():
    """Under CPU autocast the op takes what the bf16 projections give and returns bf16, forward and backward."""
    plan = block_plan(1024, 64, 3, 2, seed=1, mode="train")
    x = torch.randn(1, 1024, 128, requires_grad=True)
    projection = torch.nn.Linear(128, 3 * 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = projection(x).view(1, 1024, 3, 2, 64).permute(2, 0, 3, 1, 4).unbind(0)
        out = block_sparse_attention(q, k, v, plan)
    assert out.dtype == torch.bfloat16
    out.float().square().mean().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
