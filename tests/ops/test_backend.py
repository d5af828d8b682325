"""backend= picks the implementation: errors that name the alternatives, and the paths' agreement (not the kernel)."""

import sys

import pytest
import torch

from bigbird.ops import block_plan, block_sparse, block_sparse_attention, reference_attention

PLAN = block_plan(512, 32, 2, 2, seed=5, mode="train")


def inputs():
    q, k, v = (torch.randn(2, 2, 512, 16) for _ in range(3))
    mask = torch.ones(2, 512)
    mask[1, 430:] = 0
    return q, k, v, mask


@pytest.fixture
def calls(monkeypatch):
    """Records which implementation block_sparse_attention ran."""
    seen = []
    for name in ("cpu_block_sparse_attention", "_concatenated_attention"):
        original = getattr(block_sparse, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            seen.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(block_sparse, name, spy)
    return seen


@pytest.mark.parametrize("backend, expected", [(None, "cpu_block_sparse_attention"),
                                               ("cpu", "cpu_block_sparse_attention"),
                                               ("sdpa", "_concatenated_attention")])
def test_cpu_backends_run_their_path_and_equal_the_reference(backend, expected, calls):
    q, k, v, mask = inputs()
    out = block_sparse_attention(q, k, v, PLAN, mask, backend=backend)
    assert calls == [expected]
    reference, _ = reference_attention(q.double(), k.double(), v.double(), PLAN, mask.double())
    torch.testing.assert_close(out, reference.float(), atol=1e-5, rtol=0)


def test_unknown_backends_are_named():
    q, k, v, mask = inputs()
    for backend in ("flash", "CPU", 1):
        with pytest.raises(ValueError, match=r"backend must be None or one of \('cpu', 'sdpa', 'triton'\)"):
            block_sparse_attention(q, k, v, PLAN, mask, backend=backend)


def test_cpu_backend_refuses_other_devices():
    q = torch.empty(1, 2, 512, 16, device="meta")
    with pytest.raises(ValueError, match="backend='cpu'.*needs CPU tensors, got meta: use backend=None"):
        block_sparse_attention(q, q, q, PLAN, backend="cpu")


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v, mask = inputs()
    with pytest.raises(ValueError, match="need a CUDA device or TRITON_INTERPRET=1.*got cpu tensors: use "
                                         "backend=None or 'cpu'"):
        block_sparse_attention(q, k, v, PLAN, mask, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        block_sparse_attention(q, k, v, PLAN, mask, backend="triton")


@pytest.mark.parametrize("missing, message", [("triton", "needs the triton package"),
                                              ("bigbird.ops.triton_kernel", "needs the module bigbird.ops.triton_kernel")])
def test_triton_that_does_not_import_is_a_clear_error(monkeypatch, missing, message):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delitem(sys.modules, "bigbird.ops.triton_kernel", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # the import fails as if the module were absent
    q, k, v, mask = inputs()
    with pytest.raises(ImportError, match=f"{message}.*pip install triton.*backend=None or 'sdpa'"):
        block_sparse_attention(q, k, v, PLAN, mask, backend="triton")
    with pytest.raises(ImportError, match=message):
        block_sparse._implementation("triton", torch.device("cuda"))


def test_default_on_cuda_falls_back_to_sdpa_without_triton(monkeypatch, calls):
    monkeypatch.delitem(sys.modules, "bigbird.ops.triton_kernel", raising=False)
    monkeypatch.setitem(sys.modules, "triton", None)
    implementation = block_sparse._implementation(None, torch.device("cuda"))
    q, k, v, mask = inputs()
    out = implementation(q, k, v, PLAN, mask)  # CPU tensors stand in for CUDA ones: only the choice is tested
    assert calls == ["_concatenated_attention"]
    reference, _ = reference_attention(q, k, v, PLAN, mask)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


def test_other_devices_default_to_sdpa_and_probabilities_take_the_explicit_path(calls):
    assert block_sparse._implementation(None, torch.device("mps")) is block_sparse._sdpa_attention
    q, k, v, mask = inputs()
    out, probs = block_sparse_attention(q, k, v, PLAN, mask, return_probs=True, backend="cpu")
    assert calls == ["_concatenated_attention"] and probs.shape == (2, 2, 512, 512)
