"""The CPU op under torch.compile(fullgraph=True) and torch.export: one custom-op node, no graph break, eager's
numbers, and a plan cache that tracing never fills with fake or inference tensors."""

import pytest
import torch
from torch._dynamo.utils import counters
from torch._subclasses.fake_tensor import FakeTensorMode

from bigbird.ops import block_plan, block_sparse_attention, reference_attention
from bigbird.ops.cpu_op import block_sparse_backward_op, block_sparse_op
from compile_fixtures import fresh_dynamo  # noqa: F401 (fixture)


def inputs(batch=2, heads=2, length=512, head_dim=16, dtype=torch.float32, padded=100):
    q, k, v = (torch.randn(batch, heads, length, head_dim, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.ones(batch, length)
    mask[-1, length - padded :] = 0
    return q, k, v, mask


def forward_and_grads(fn, q, k, v, mask):
    out = fn(q, k, v, mask)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype)
    return (out, *torch.autograd.grad(out, (q, k, v), upstream))


def unique_plan(seed, **kwargs):
    """A plan key no other test uses, so its draw and tables are not cached yet."""
    return block_plan(512, 32, 2, 2, seed=seed, **kwargs)


@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_compiled_fullgraph_forward_and_backward_equal_eager(backend):
    plan = unique_plan(101, mode="train")

    def attention(q, k, v, mask):
        return block_sparse_attention(q, k, v, plan, mask)

    q, k, v, mask = inputs()
    explanation = torch._dynamo.explain(attention)(q, k, v, mask)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)
    compiled = forward_and_grads(torch.compile(attention, fullgraph=True, backend=backend), q, k, v, mask)
    assert not counters["graph_break"]
    eager = forward_and_grads(attention, q, k, v, mask)
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    expected, _ = reference_attention(q.double(), k.double(), v.double(), plan, mask.double())
    torch.testing.assert_close(compiled[0], expected.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["eval", "paper"])
def test_a_plan_built_inside_the_compiled_function_traces_into_one_graph(mode):
    """As in a model's forward: the plan comes from block_plan(q.shape...) inside the compiled code."""

    def loss(q, k, v, mask):
        plan = block_plan(q.shape[2], 32, 3, q.shape[1], seed=7, mode=mode, max_seq_len=4096)
        return block_sparse_attention(q, k, v, plan, mask).square().sum()

    q, k, v, mask = inputs(batch=1, heads=3, length=1024, padded=0)
    compiled = forward_and_grads(torch.compile(loss, fullgraph=True, backend="aot_eager"), q, k, v, mask)
    assert not counters["graph_break"]
    for got, want in zip(compiled, forward_and_grads(loss, q, k, v, mask)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-6)


class Attention(torch.nn.Module):
    def __init__(self, plan):
        super().__init__()
        self.plan = plan

    def forward(self, q, k, v, mask):
        return block_sparse_attention(q, k, v, self.plan, mask)


def test_export_at_a_fixed_length_then_eager_calls_stay_correct():
    plan = unique_plan(102, mode="paper")
    q, k, v, mask = (x.detach() for x in inputs())
    program = torch.export.export(Attention(plan), (q, k, v, mask))
    targets = [node.target for node in program.graph.nodes if node.op == "call_function"]
    assert torch.ops.bigbird.block_sparse_attention.default in targets
    expected, _ = reference_attention(q.double(), k.double(), v.double(), plan, mask.double())
    torch.testing.assert_close(block_sparse_attention(q, k, v, plan, mask), expected.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(program.module()(q, k, v, mask), expected.float(), atol=1e-5, rtol=0)
    other = torch.randn_like(q)
    expected, _ = reference_attention(other.double(), k.double(), v.double(), plan, mask.double())
    torch.testing.assert_close(program.module()(other, k, v, mask), expected.float(), atol=1e-5, rtol=0)
    assert_plain_tables(plan)


def assert_plain_tables(plan):
    for tensor in (plan.tables("cpu").global_counts, plan.tables("cpu").extra_blocks, plan.tables("cpu").any_extra):
        assert type(tensor) is torch.Tensor and not tensor.is_inference()


def test_tables_first_built_under_a_fake_mode_or_inference_mode_are_plain_tensors():
    with FakeTensorMode():
        assert_plain_tables(unique_plan(103, mode="train"))
    with torch.inference_mode():
        assert_plain_tables(unique_plan(104, mode="train"))
    plan = unique_plan(104, mode="train")
    q, k, v, mask = inputs()
    out = block_sparse_attention(q, k, v, plan, mask)  # the tables serve a training step after inference mode
    out.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype, masked", [(torch.float32, True), (torch.bfloat16, False)])
def test_custom_ops_pass_opcheck(dtype, masked):
    plan = unique_plan(105, mode="train")
    q, k, v, mask = inputs(batch=2, heads=2, length=512, head_dim=8, dtype=dtype)
    key = (plan.block_size, plan.num_random_blocks, plan.seed, plan.mode, plan.old_plan_length)
    mask = mask if masked else None
    torch.library.opcheck(block_sparse_op, (q, k, v, mask, *key))
    out, lse, global_lse = block_sparse_op(q.detach(), k.detach(), v.detach(), mask, *key)
    grad = torch.randn_like(out)
    torch.library.opcheck(block_sparse_backward_op, (grad, q.detach(), k.detach(), v.detach(), out, lse, global_lse,
                                                     mask, *key))
