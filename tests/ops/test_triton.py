"""The Triton block-sparse kernel against the dense reference, on CUDA, or on CPU tensors by Triton's interpreter
(conftest sets TRITON_INTERPRET=1 where there is no GPU)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from torch._dynamo.utils import counters

from bigbird.ops import block_plan, block_sparse, block_sparse_attention, reference_attention
from bigbird.ops import triton_kernel
from bigbird.ops.triton_kernel import (INTERPRETED, _tables, triton_attention_backward_op,
                                       triton_attention_op, triton_block_sparse_attention)

if not INTERPRETED and not torch.cuda.is_available():
    pytest.skip("the Triton kernels were compiled for a GPU (TRITON_INTERPRET was off when bigbird.ops.triton_kernel "
                "was first imported) and there is none", allow_module_level=True)
DEVICE = torch.device("cpu" if INTERPRETED else "cuda")


def padding_mask(length, pads):
    """(batch, length) mask with (left, right) padded tokens per batch row."""
    mask = torch.ones(len(pads), length, device=DEVICE)
    for row, (left, right) in enumerate(pads):
        mask[row, :left] = 0
        mask[row, length - right :] = 0
    return mask


def attention_and_grads(fn, inputs, plan, mask, upstream):
    """fn's output and its gradients in q, k, v for an upstream gradient."""
    inputs = [x.detach().requires_grad_() for x in inputs]
    out = fn(*inputs, plan, mask)
    out = out[0] if isinstance(out, tuple) else out
    return out.detach(), torch.autograd.grad(out, inputs, upstream)


def random_case(plan, batch, head_dim, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, plan.num_heads, plan.seq_len, head_dim)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(DEVICE) for _ in range(4)]


CASES = [
    # length, block size, r, heads, mode, head_dim, (left, right) padding per batch row
    (160, 16, 2, 2, "eval", 16, [(0, 21)]),  # key block 0 listed r + 1 = 3 times
    (192, 16, 2, 2, "train", 32, [(0, 0), (0, 37)]),
    (96, 16, 2, 2, "train", 16, [(19, 0)]),  # n = 6: the train plan lists a random block twice
    (256, 32, 0, 2, "eval", 24, None),  # r = 0, no mask, head_dim padded to 32 in the kernel
    (384, 64, 1, 2, "paper", 32, [(0, 70), (0, 384)]),  # a fully padded sequence
    (1024, 128, 1, 2, "train", 16, [(0, 130)]),  # legacy plan, duplicated blocks
]


@pytest.mark.parametrize("length, block_size, r, heads, mode, head_dim, pads", CASES)
def test_fp32_forward_and_gradients_equal_the_reference(length, block_size, r, heads, mode, head_dim, pads):
    plan = block_plan(length, block_size, r, heads, seed=2, mode=mode)
    *inputs, upstream = random_case(plan, len(pads) if pads else 1, head_dim)
    mask = None if pads is None else padding_mask(length, pads)
    out, grads = attention_and_grads(triton_block_sparse_attention, [x.float() for x in inputs], plan, mask,
                                     upstream.float())
    ref_out, ref_grads = attention_and_grads(reference_attention, inputs, plan,
                                             None if mask is None else mask.double(), upstream)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref_out.float(), atol=2e-5, rtol=0)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=0)
    if mask is not None:
        assert (out.transpose(1, 2)[mask == 0] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_error_is_within_twice_pytorchs(dtype):
    """flash-attn's rule: against float64, at most 2x the error of the same computation in PyTorch at `dtype`."""
    plan = block_plan(192, 32, 1, 2, seed=1, mode="train")
    *inputs, upstream = random_case(plan, 1, 32, seed=1)
    mask = padding_mask(192, [(0, 40)])
    exact = attention_and_grads(reference_attention, inputs, plan, mask.double(), upstream)
    lowered = [x.to(dtype) for x in inputs]
    ours = attention_and_grads(triton_block_sparse_attention, lowered, plan, mask, upstream.to(dtype))
    torch_ = attention_and_grads(reference_attention, lowered, plan, mask.to(dtype), upstream.to(dtype))
    assert ours[0].dtype == dtype and all(g.dtype == dtype for g in ours[1])
    for name, got, pytorch, want in zip(["out", "dq", "dk", "dv"], [ours[0], *ours[1]], [torch_[0], *torch_[1]],
                                        [exact[0], *exact[1]]):
        error = (got.double() - want).abs().max().item()
        baseline = (pytorch.double() - want).abs().max().item()
        assert error <= 2 * baseline, f"{name}: error {error:.3g} vs PyTorch's {baseline:.3g} at {dtype}"


def test_strided_inputs_and_gradient_give_bitwise_repeatable_gradients():
    """q, k, v as views of a fused projection and a non-contiguous output gradient; two backward passes agree."""
    plan = block_plan(128, 16, 1, 2, seed=4, mode="train")
    gen = torch.Generator().manual_seed(5)
    fused = torch.randn(2, 128, 3, 2, 16, generator=gen).to(DEVICE).requires_grad_()
    q, k, v = fused.permute(2, 0, 3, 1, 4).unbind(0)
    upstream = torch.randn(2, 2, 16, 128, generator=gen).to(DEVICE).transpose(-1, -2)
    assert not q.is_contiguous() and not upstream.is_contiguous()
    mask = padding_mask(128, [(0, 5), (3, 0)])
    out = triton_block_sparse_attention(q, k, v, plan, mask)
    first = torch.autograd.grad(out, fused, upstream, retain_graph=True)[0]
    second = torch.autograd.grad(out, fused, upstream)[0]
    assert torch.equal(first, second)
    fused64 = fused.detach().double().requires_grad_()
    expected, _ = reference_attention(*fused64.permute(2, 0, 3, 1, 4).unbind(0), plan, mask.double())
    torch.testing.assert_close(out, expected.float(), atol=2e-5, rtol=0)
    (want,) = torch.autograd.grad(expected, fused64, upstream.double())
    torch.testing.assert_close(first, want.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("length, block_size, r, mode", [(160, 16, 2, "eval"), (1024, 128, 2, "train"),
                                                          (640, 32, 3, "train"), (96, 16, 2, "train")])
def test_schedules_hold_every_block_as_often_as_the_plan(length, block_size, r, mode):
    """Both schedules, items summed back up with their multiplicities, give the plan's count matrix."""
    plan = block_plan(length, block_size, r, 3, seed=7, mode=mode)
    tables = _tables(plan, DEVICE)
    assert _tables(plan, DEVICE) is tables
    n, counts = plan.num_blocks, plan.block_counts()
    for schedule, transpose in ((tables.forward, False), (tables.transposed, True)):
        info, slots, log2m = (x.cpu().numpy() for x in (schedule.info, schedule.slots, schedule.log2m))
        dense = np.zeros_like(counts, dtype=np.float64)
        for (head, tile, count, _), row_slots, row_log2m in zip(info, slots, log2m):
            np.add.at(dense[head], (tile, row_slots[:count]) if not transpose else (row_slots[:count], tile),
                      2.0 ** row_log2m[:count])
        np.testing.assert_array_equal(dense, counts)
        assert info[:, 2].max() <= schedule.width == (counts[:, 1:-1] > 0).sum(-1).max()
        split = info[:, 3] >= 0
        np.testing.assert_array_equal(info[split, 3], np.arange(split.sum()))  # partials numbered in order
        reductions = schedule.reductions.cpu().numpy()
        assert reductions[:, 3].sum() == split.sum() and (reductions[:, 3] > 1).all()
    # the global query blocks 0 and n-1 attend all n key blocks: they are split as soon as n exceeds the width
    split_rows = {(h, t) for h, t in tables.forward.reductions.cpu().numpy()[:, :2]}
    assert split_rows == ({(h, t) for h in range(3) for t in (0, n - 1)} if n > tables.forward.width else set())


def test_bad_inputs_raise_before_any_launch():
    plan = block_plan(96, 16, 1, 2)
    q = torch.randn(1, 2, 96, 16, device=DEVICE)
    with pytest.raises(ValueError, match="shape"):
        triton_block_sparse_attention(q, q[..., :8], q, plan)
    with pytest.raises(ValueError, match="heads"):
        triton_block_sparse_attention(q[:, :1], q[:, :1], q[:, :1], plan)
    with pytest.raises((TypeError, ValueError), match="dtype"):  # the shared input check's TypeError
        triton_block_sparse_attention(q, q.half(), q, plan)
    with pytest.raises(ValueError, match="float64"):
        triton_block_sparse_attention(q.double(), q.double(), q.double(), plan)
    with pytest.raises(ValueError, match="device"):
        triton_block_sparse_attention(q, q, q, plan, torch.ones(1, 96, device="meta"))
    with pytest.raises(ValueError, match="key_padding_mask"):
        triton_block_sparse_attention(q, q, q, plan, torch.ones(2, 96, device=DEVICE))
    small = block_plan(40, 8, 1, 2)
    with pytest.raises(ValueError, match="block sizes"):
        triton_block_sparse_attention(q[:, :, :40], q[:, :, :40], q[:, :, :40], small)


@pytest.mark.skipif(not INTERPRETED, reason="checks the interpreter")
def test_interpreter_runs_when_triton_was_imported_first():
    """torch._dynamo and transformers import triton before this module sets TRITON_INTERPRET: tl.max, tl.sum and
    tl.zeros are then compiled-only functions, which the kernels must not call."""
    script = textwrap.dedent("""
        import triton.language
        import os
        os.environ["TRITON_INTERPRET"] = "1"
        import torch
        from bigbird.ops import block_plan, reference_attention
        from bigbird.ops.triton_kernel import triton_block_sparse_attention
        plan = block_plan(80, 16, 1, 1)
        q = torch.randn(1, 1, 80, 16, requires_grad=True)
        out = triton_block_sparse_attention(q, q, q, plan)
        out.sum().backward()
        torch.testing.assert_close(out, reference_attention(q, q, q, plan)[0], atol=2e-5, rtol=0)
    """)
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def small_case():
    """A train plan with a duplicated random block (n = 6), fp32 q, k, v that require grad and a mask, on DEVICE."""
    plan = block_plan(96, 16, 2, 2, seed=3, mode="train")
    q, k, v = (x.float().requires_grad_() for x in random_case(plan, 2, 16, seed=3)[:3])
    return plan, q, k, v, padding_mask(96, [(0, 20), (5, 0)])


def plan_key(plan):
    return plan.block_size, plan.num_random_blocks, plan.seed, plan.mode, plan.old_plan_length


def test_custom_ops_pass_opcheck():
    """Schema, fake tensors, autograd registration and AOT dispatch, on a small plan (6 blocks, 1 head)."""
    plan = block_plan(96, 16, 1, 1, seed=3, mode="train")
    q, k, v = (x.float().requires_grad_() for x in random_case(plan, 1, 16, seed=3)[:3])
    mask = padding_mask(96, [(0, 9)])
    torch.library.opcheck(triton_attention_op, (q, k, v, mask, *plan_key(plan)))
    out, lse = triton_attention_op(q.detach(), k.detach(), v.detach(), mask, *plan_key(plan))
    grad = torch.randn_like(out)
    torch.library.opcheck(triton_attention_backward_op, (grad, q.detach(), k.detach(), v.detach(), out, lse, mask,
                                                         *plan_key(plan)))


def test_compiled_fullgraph_forward_and_backward_equal_eager():
    plan, q, k, v, mask = small_case()

    def attention(q, k, v, mask):
        return block_sparse_attention(q, k, v, plan, mask, backend="triton")

    torch._dynamo.reset()
    counters.clear()
    explanation = torch._dynamo.explain(attention)(q, k, v, mask)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)
    upstream = torch.randn(q.shape, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    compiled = torch.compile(attention, fullgraph=True)(q, k, v, mask)
    got = (compiled, *torch.autograd.grad(compiled, (q, k, v), upstream))
    assert not counters["graph_break"]
    eager = attention(q, k, v, mask)
    want = (eager, *torch.autograd.grad(eager, (q, k, v), upstream))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch._dynamo.reset()


def test_export_holds_the_op_as_one_node():
    plan, q, k, v, mask = small_case()

    class Attention(torch.nn.Module):
        def forward(self, q, k, v, mask):
            return block_sparse_attention(q, k, v, plan, mask, backend="triton")

    inputs = (q.detach(), k.detach(), v.detach(), mask)
    program = torch.export.export(Attention(), inputs)
    targets = [node.target for node in program.graph.nodes if node.op == "call_function"]
    assert torch.ops.bigbird.triton_block_sparse_attention.default in targets
    torch.testing.assert_close(program.module()(*inputs), triton_block_sparse_attention(*inputs[:3], plan, mask))


def test_default_backend_on_cuda_is_the_kernel_where_it_takes_the_inputs(monkeypatch):
    """backend=None on CUDA: the kernel for its dtypes and block sizes, the device-generic path otherwise (CPU
    tensors stand in for CUDA ones under the interpreter: only the choice is tested)."""
    seen = []
    for module, name in ((triton_kernel, "triton_block_sparse_attention"), (block_sparse, "_sdpa_attention")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _name=name, _original=original: seen.append(_name) or
                            _original(*a))
    choose = block_sparse._implementation(None, torch.device("cuda"))
    plan, q, k, v, mask = small_case()
    choose(q, k, v, plan, mask)
    choose(q.double(), k.double(), v.double(), plan, mask)
    assert seen == ["triton_block_sparse_attention", "_sdpa_attention"]
