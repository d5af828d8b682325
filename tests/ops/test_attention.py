"""The block-sparse op against its dense twin and against Transformers' BigBirdBlockSparseAttention module."""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import BigBirdConfig, BigBirdModel
from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

from bigbird.ops import block_plan, block_sparse_attention, reference_attention
from bigbird.ops import block_sparse, parts
from bigbird.ops.parts import Parts


def random_inputs(batch, heads, length, head_dim, dtype=torch.float32, padded=()):
    q, k, v = (torch.randn(batch, heads, length, head_dim, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.ones(batch, length)
    for row, count in enumerate(padded):
        if count:
            mask[row, length - count :] = 0
    return q, k, v, mask


def grads(out, inputs, seed=0):
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.dtype)
    return torch.autograd.grad(out, inputs, upstream)


CASES = [
    # length, block size, r, heads, mode, padded tokens per batch row
    (256, 16, 2, 3, "eval", (0, 37)),
    (256, 16, 2, 3, "train", (5, 0)),
    (512, 32, 3, 2, "eval", (0, 100)),
    (512, 32, 3, 2, "train", (0, 100)),
    (512, 32, 3, 2, "paper", (31, 0)),
    (1024, 64, 3, 2, "train", (0, 64)),
    (3072, 128, 1, 1, "train", (0, 0)),
    (96, 16, 0, 2, "eval", (0, 20)),
    (96, 16, 0, 2, "train", (0, 20)),
    (80, 8, 2, 2, "train", (0, 9)),
    (80, 8, 1, 1, "eval", (3, 0)),
    (640, 128, 0, 1, "eval", (0, 200)),
]


@pytest.mark.parametrize("length, block_size, r, heads, mode, padded", CASES)
def test_op_equals_the_dense_reference_forward_and_backward(length, block_size, r, heads, mode, padded):
    plan = block_plan(length, block_size, r, heads, seed=3, mode=mode)
    q, k, v, mask = random_inputs(len(padded), heads, length, 16, padded=padded)
    out = block_sparse_attention(q, k, v, plan, mask)
    expected, _ = reference_attention(*(x.double() for x in (q, k, v)), plan, mask.double())
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=0)
    for got, want in zip(grads(out, (q, k, v)), grads(expected, (q, k, v))):
        torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["fused projection", "head_dim strided"])
@pytest.mark.parametrize("batch", [1, 2])
def test_strided_inputs_equal_the_reference(layout, batch):
    """Views into a fused (batch, length, 3, heads, head_dim) projection are read in place; a head_dim that is not
    contiguous is copied first (the kernel needs it contiguous)."""
    heads, length, head_dim = 2, 512, 16
    plan = block_plan(length, 32, 2, heads, seed=1, mode="train")
    if layout == "fused projection":
        fused = torch.randn(batch, length, 3, heads, head_dim, requires_grad=True)
        q, k, v = fused.permute(2, 0, 3, 1, 4).unbind(0)
    else:
        fused = torch.randn(3, batch, heads, head_dim, length, requires_grad=True)
        q, k, v = fused.transpose(-1, -2).unbind(0)
    assert q.stride(-1) != 1 or not q.is_contiguous()
    mask = torch.ones(batch, length)
    mask[-1, -40:] = 0
    out = block_sparse_attention(q, k, v, plan, mask)
    expected, _ = reference_attention(*(x.detach().double() for x in (q, k, v)), plan, mask.double())
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=0)
    fused64 = fused.detach().double().requires_grad_()
    q64, k64, v64 = (fused64.permute(2, 0, 3, 1, 4) if layout == "fused projection" else
                     fused64.transpose(-1, -2)).unbind(0)
    expected, _ = reference_attention(q64, k64, v64, plan, mask.double())
    (got,), (want,) = grads(out, (fused,)), grads(expected, (fused64,))
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("length, block_size, r, heads, mode, padded",
                         [CASES[0], CASES[3], CASES[5], (1152, 16, 2, 2, "eval", (0, 50))])
def test_rows_processed_in_chunks_equal_the_reference(length, block_size, r, heads, mode, padded, monkeypatch):
    monkeypatch.setattr(parts, "CHUNK_BYTES", 1)  # one middle row at a time
    test_op_equals_the_dense_reference_forward_and_backward(length, block_size, r, heads, mode, padded)


@pytest.mark.parametrize("length, block_size, r, heads, mode, padded", CASES[:6])
def test_device_generic_path_equals_the_reference(length, block_size, r, heads, mode, padded):
    plan = block_plan(length, block_size, r, heads, seed=3, mode=mode)
    q, k, v, mask = random_inputs(len(padded), heads, length, 16, padded=padded)
    batch = len(padded)
    bias = (1 - mask) * block_sparse.PADDING_PENALTY
    flat = [x.reshape(batch * heads, length, 16) for x in (q, k, v)]
    key_parts = Parts(plan, plan.tables("cpu"), bias, batch, heads, torch.float32)
    middle = block_sparse._middle_concatenated(*flat, key_parts).view(batch, heads, -1, 16)
    expected, _ = reference_attention(q, k, v, plan, mask)
    keep = mask[:, None, block_size:-block_size, None]
    torch.testing.assert_close(middle * keep, expected[:, :, block_size:-block_size], atol=1e-5, rtol=0)


def test_probabilities_are_exact_rows_sum_to_one_and_duplicates_accumulate():
    plan = block_plan(512, 32, 3, 2, mode="eval")
    q, k, v, mask = random_inputs(2, 2, 512, 8, padded=(0, 40))
    out, probs = block_sparse_attention(q, k, v, plan, mask, return_probs=True)
    expected_out, expected_probs = reference_attention(q, k, v, plan, mask)
    torch.testing.assert_close(probs, expected_probs, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 512), atol=1e-5, rtol=0)
    # key block 0 enters the softmax of query block 5 four times (itself plus three random picks in eval mode):
    # its mass is four times that of a single copy at the same scores.
    scores = (q[0, 0, 5 * 32] @ k[0, 0].T) / np.sqrt(8)
    blocks = [0, 4, 5, 6, 15]
    weights = torch.cat([torch.exp(scores[b * 32 : (b + 1) * 32]) * (4 if b == 0 else 1) for b in blocks])
    torch.testing.assert_close(probs[0, 0, 5 * 32, :32].sum(), weights[:32].sum() / weights.sum(), atol=1e-6, rtol=0)


def test_probabilities_with_a_training_plan_match_the_reference():
    plan = block_plan(2048, 64, 3, 2, seed=4, mode="train")
    q, k, v, mask = random_inputs(1, 2, 2048, 8, padded=(70,))
    out, probs = block_sparse_attention(q, k, v, plan, mask, return_probs=True)
    expected_out, expected_probs = reference_attention(q, k, v, plan, mask)
    torch.testing.assert_close(probs, expected_probs, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=0)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for item in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return result


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_no_length_squared_tensor_unless_probabilities_are_asked_for(mode):
    length, heads = 2048, 2
    plan = block_plan(length, 32, 3, heads, seed=1, mode=mode)
    q, k, v, mask = random_inputs(1, heads, length, 8, padded=(30,))
    with LargestTensor() as watch:
        out = block_sparse_attention(q, k, v, plan, mask)
        out.sum().backward()
    assert watch.largest < heads * length * length / 4
    with LargestTensor() as watch:
        block_sparse_attention(q, k, v, plan, mask, return_probs=True)
    assert watch.largest >= heads * length * length


def transformers_module_and_inputs(length, block_size, r, heads, head_dim, training, padded, dtype=torch.float32):
    config = BigBirdConfig(hidden_size=heads * head_dim, num_attention_heads=heads, block_size=block_size,
                           num_random_blocks=r, max_position_embeddings=4096, attention_probs_dropout_prob=0.0)
    module = BigBirdBlockSparseAttention(config, seed=2).train(training).to(dtype)
    hidden = torch.randn(len(padded), length, heads * head_dim, dtype=dtype, requires_grad=True)
    mask = torch.ones(len(padded), length, dtype=dtype)
    for row, count in enumerate(padded):
        if count:
            mask[row, length - count :] = 0
    return module, hidden, mask


def transformers_forward(module, hidden, mask, block_size):
    blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(mask, block_size)
    out, _ = module(hidden, band_mask=band, from_mask=from_mask, to_mask=to_mask, from_blocked_mask=blocked,
                    to_blocked_mask=blocked)
    return out


def our_forward(module, hidden, mask, block_size, r, mode):
    batch, length, width = hidden.shape
    heads = module.num_attention_heads

    def project(linear):
        return linear(hidden).view(batch, length, heads, -1).transpose(1, 2)

    plan = block_plan(length, block_size, r, heads, seed=2, mode=mode, max_seq_len=4096)
    out = block_sparse_attention(project(module.query), project(module.key), project(module.value), plan, mask)
    return out.transpose(1, 2).reshape(batch, length, width)


@pytest.mark.parametrize(
    "length, block_size, r, training, padded",
    [
        (512, 32, 3, False, (0, 45)),
        (512, 32, 3, True, (0, 45)),
        (1024, 64, 2, True, (0, 100)),
        (1024, 64, 3, False, (13, 0)),
        (448, 32, 1, True, (0,)),
        (2112, 64, 3, True, (0,)),
    ],
)
def test_op_equals_transformers_block_sparse_module(length, block_size, r, training, padded):
    module, hidden, mask = transformers_module_and_inputs(length, block_size, r, 2, 16, training, padded)
    expected = transformers_forward(module, hidden, mask, block_size)
    got = our_forward(module, hidden, mask, block_size, r, "train" if training else "eval")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    upstream = torch.randn_like(got)
    (want_grad,) = torch.autograd.grad(expected, hidden, upstream)
    (got_grad,) = torch.autograd.grad(got, hidden, upstream)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("training", [False, True])
def test_low_precision_error_is_within_twice_transformers_error(dtype, training):
    torch.manual_seed(1)
    length, block_size, r = 512, 32, 3
    module, hidden, mask = transformers_module_and_inputs(length, block_size, r, 2, 32, training, (0, 60), dtype)
    hidden = hidden.detach()
    mode = "train" if training else "eval"
    with torch.no_grad():
        exact = our_reference(module, hidden, mask, block_size, r, mode)
        theirs = transformers_forward(module, hidden, mask, block_size).double()
        ours = our_forward(module, hidden, mask, block_size, r, mode).double()
    keep = mask.bool()
    their_error = (theirs - exact).abs()[keep].max()
    our_error = (ours - exact).abs()[keep].max()
    assert our_error <= 2 * their_error, (our_error, their_error)


def our_reference(module, hidden, mask, block_size, r, mode):
    """The fp64 dense reference on the low-precision module's own projections."""
    batch, length, width = hidden.shape
    heads = module.num_attention_heads

    def project(linear):
        return linear(hidden).double().view(batch, length, heads, -1).transpose(1, 2)

    plan = block_plan(length, block_size, r, heads, seed=2, mode=mode)
    out, _ = reference_attention(project(module.query), project(module.key), project(module.value), plan,
                                 mask.double())
    return out.transpose(1, 2).reshape(batch, length, width)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_backward_runs_and_tracks_fp32(dtype):
    plan = block_plan(256, 16, 2, 2, seed=1, mode="train")
    q, k, v, mask = random_inputs(1, 2, 256, 16, padded=(20,))
    low = [x.detach().to(dtype).requires_grad_() for x in (q, k, v)]
    out = block_sparse_attention(*low, plan, mask)
    assert out.dtype == dtype
    out.float().square().sum().backward()
    exact = block_sparse_attention(q, k, v, plan, mask)
    exact.square().sum().backward()
    for got, want in zip(low, (q, k, v)):
        assert got.grad.dtype == dtype
        torch.testing.assert_close(got.grad.float(), want.grad, atol=0.1, rtol=0.05)


def test_any_batch_and_head_dim_and_non_contiguous_inputs():
    plan = block_plan(320, 32, 1, 3, seed=0, mode="train")
    hidden = torch.randn(3, 320, 3 * 24)
    q, k, v = (hidden.view(3, 320, 3, 24).transpose(1, 2) for _ in range(3))
    out = block_sparse_attention(q, k, v, plan)
    expected, _ = reference_attention(q.contiguous(), k.contiguous(), v.contiguous(), plan)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
