"""Bad inputs to the op, its dense reference and the plan builder raise errors that say what is wrong."""

import numpy as np
import pytest
import torch

from bigbird.ops import block_plan, block_sparse_attention, reference_attention

OPS = [block_sparse_attention, lambda *args: reference_attention(*args)[0]]
PLAN = block_plan(512, 32, 2, 2, seed=1, mode="train")


def qkv(batch=1, dtype=torch.float32):
    return tuple(torch.randn(batch, 2, 512, 8, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_integer_or_mixed_dtypes_are_refused(op):
    q, k, v = qkv()
    with pytest.raises(TypeError, match="one floating-point dtype.*torch.int64"):
        op(q.long(), k.long(), v.long(), PLAN, None)
    with pytest.raises(TypeError, match=r"torch.float32, torch.float64 and torch.float32.*\.to\(torch.float32\)"):
        op(q, k.double(), v, PLAN, None)


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_an_empty_batch_or_head_dim_is_refused(op):
    q, k, v = qkv(batch=0)
    with pytest.raises(ValueError, match=r"at least one sequence.*\(0, 2, 512, 8\)"):
        op(q, k, v, PLAN, None)
    empty = torch.randn(1, 2, 512, 0)
    with pytest.raises(ValueError, match="head_dim of at least 1"):
        op(empty, empty, empty, PLAN, None)


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_something_else_than_a_plan_or_tensors_is_refused(op):
    q, k, v = qkv()
    with pytest.raises(TypeError, match="plan must be a BlockPlan built by bigbird.ops.block_plan.*got str"):
        op(q, k, v, "train", None)
    with pytest.raises(TypeError, match="k must be a torch.Tensor.*got ndarray"):
        op(q, k.numpy(), v, PLAN, None)
    with pytest.raises(TypeError, match="key_padding_mask must be a torch.Tensor.*got list"):
        op(q, k, v, PLAN, [1] * 512)


@pytest.mark.parametrize("value", [2.0, -1.0, 0.5, float("nan")])
@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_a_mask_with_values_other_than_0_and_1_is_refused(op, value):
    q, k, v = qkv(batch=2)
    mask = torch.ones(2, 512)
    mask[1, 7] = value
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1 \(token\).*\.bool\(\)"):
        op(q, k, v, PLAN, mask)


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_bool_integer_and_float_masks_agree(op):
    q, k, v = qkv(batch=2)
    mask = torch.ones(2, 512, dtype=torch.bool)
    mask[1, 400:] = False
    outputs = [op(q, k, v, PLAN, mask.to(dtype)) for dtype in (torch.bool, torch.long, torch.float32)]
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0], atol=0, rtol=0)
    assert (outputs[0][1, :, 400:] == 0).all() and (outputs[0][1, :, :400] != 0).any()


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_tensors_on_different_devices_are_refused(op):
    q, k, v = qkv()
    with pytest.raises(ValueError, match="one device, got cpu, meta and cpu.*to\\(device\\)"):
        op(q, k.to("meta"), v, PLAN, None)
    with pytest.raises(ValueError, match="key_padding_mask is on meta but q, k, v are on cpu"):
        op(q, k, v, PLAN, torch.ones(1, 512, device="meta"))


@pytest.mark.parametrize("op", OPS, ids=["op", "reference"])
def test_shapes_that_disagree_are_named(op):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"\(1, 2, 512, 8\).*\(1, 2, 512, 4\)"):
        op(q, torch.randn(1, 2, 512, 4), v, PLAN, None)
    with pytest.raises(ValueError, match="not a multiple of block_size 32: right-pad"):
        op(*(torch.randn(1, 2, 500, 8),) * 3, PLAN, None)
    with pytest.raises(ValueError, match="built for length 512 and 2 heads"):
        op(*(torch.randn(1, 2, 640, 8),) * 3, PLAN, None)
    with pytest.raises(ValueError, match="built for length 512 and 2 heads"):
        op(*(torch.randn(1, 3, 512, 8),) * 3, PLAN, None)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(batch, length\) = \(1, 512\)"):
        op(q, k, v, PLAN, torch.ones(2, 512))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("512", 32, 2, 2), "seq_len must be an int, got str '512'"),
        ((512.0, 32, 2, 2), "seq_len must be an int, got float"),
        ((512, True, 2, 2), "block_size must be an int, got bool"),
        ((512, 32, np.bool_(True), 2), "num_random_blocks must be an int, got bool"),
        ((512, 32, 2, None), "num_heads must be an int, got NoneType"),
        ((512, 32, 2, 2, 1.5), "seed must be an int, got float"),
    ],
)
def test_plan_arguments_that_are_not_ints_are_refused(arguments, message):
    with pytest.raises(TypeError, match=message):
        block_plan(*arguments)


def test_plan_arguments_out_of_range_are_refused_and_numpy_ints_accepted():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        block_plan(512, 32, 2, 2, seed=-1)
    with pytest.raises(ValueError, match="max_seq_len must be at least 1"):
        block_plan(512, 32, 2, 2, mode="train", max_seq_len=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        block_plan(512, 32, 2, 2, mode=None)
    plan = block_plan(np.int64(512), np.int32(32), 2, 2, seed=np.int64(3), mode="train")
    assert plan is block_plan(512, 32, 2, 2, seed=3, mode="train")
    assert type(plan.seq_len) is int and type(plan.seed) is int
