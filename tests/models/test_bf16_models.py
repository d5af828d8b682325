"""Both families in bfloat16 weights and under CPU autocast, forward and backward, against float64.

flash-attn's rule on the same weights and inputs: our error against the float64 model is at most twice that of
Transformers' own bf16 model (or of its autocast run). Transformers 5.23's BigBird cannot run under autocast (its
block-sparse code scatters bf16 into fp32 and raises), so there the baseline is a plain-PyTorch bf16 computation:
our model with the attention op swapped for its device-generic path (the parts concatenated into one
`scaled_dot_product_attention`). Block size 64 exercises the op's low-precision calls.
"""

import copy
import warnings

import pytest
import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode

import bigbird
from bigbird.models import attention as model_attention
from bigbird.ops import block_sparse

LENGTH = 1000  # block-sparse (bound (5 + 2r) * 64 = 576), padded to 1024
BIGBIRD = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
               max_position_embeddings=1024, block_size=64, num_random_blocks=2, hidden_dropout_prob=0.0,
               attention_probs_dropout_prob=0.0)
PEGASUS = dict(vocab_size=99, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=96, decoder_ffn_dim=96, max_position_embeddings=1024,
               block_size=64, num_random_blocks=2, dropout=0.0, attention_dropout=0.0)
FAMILIES = {"BigBirdForMaskedLM": transformers.BigBirdConfig(**BIGBIRD),
            "BigBirdPegasusForConditionalGeneration": transformers.BigBirdPegasusConfig(**PEGASUS)}


def pair(name: str, directory, training: bool):
    """Transformers' random model `name` and ours with the same weights, in train (dropout 0) or eval mode."""
    torch.manual_seed(0)
    theirs = getattr(transformers, name)(FAMILIES[name])
    theirs.save_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(bigbird, name).from_pretrained(directory)
    return theirs.train(training), ours.train(training)


def inputs_for(name: str) -> dict:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (2, LENGTH), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, -150:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if name.startswith("BigBirdPegasus"):
        inputs["decoder_input_ids"] = torch.randint(3, 99, (2, 9), generator=generator)
    return inputs


def run(model, inputs: dict, autocast: bool = False):
    """Logits (float64) and every parameter's gradient (float64, one flat vector) of a fixed random loss."""
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(**inputs).logits
    upstream = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    (logits.float() * upstream).sum().backward()
    grads = [p.grad.double().flatten() for p in model.parameters() if p.grad is not None]
    return logits.double(), torch.cat(grads)


def errors(got, exact, keep) -> tuple[float, float]:
    """Largest absolute error of the logits at unpadded positions, and of the gradients."""
    return (got[0] - exact[0]).abs()[keep].max().item(), (got[1] - exact[1]).abs().max().item()


def valid_positions(name: str, inputs: dict, logits: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(logits.shape[:2], dtype=torch.bool)
    if not name.startswith("BigBirdPegasus"):
        keep = inputs["attention_mask"].bool()
    return keep


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_bf16_weights_error_within_twice_transformers_bf16(name, training, tmp_path):
    theirs, ours = pair(name, tmp_path, training)
    inputs = inputs_for(name)
    exact = run(copy.deepcopy(theirs).double(), inputs)
    keep = valid_positions(name, inputs, exact[0])
    their_errors = errors(run(theirs.to(torch.bfloat16), inputs), exact, keep)
    our_run = run(ours.to(torch.bfloat16), inputs)
    assert {p.grad.dtype for p in ours.parameters() if p.grad is not None} == {torch.bfloat16}
    for what, mine, baseline in zip(("logits", "gradients"), errors(our_run, exact, keep), their_errors):
        assert mine <= 2 * baseline, (what, mine, baseline)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_autocast_error_within_twice_the_baseline(name, training, tmp_path, monkeypatch):
    theirs, ours = pair(name, tmp_path, training)
    inputs = inputs_for(name)
    exact = run(copy.deepcopy(theirs).double(), inputs)
    keep = valid_positions(name, inputs, exact[0])
    our_errors = errors(run(ours, inputs, autocast=True), exact, keep)
    if name.startswith("BigBirdPegasus"):
        baseline = errors(run(theirs, inputs, autocast=True), exact, keep)
    else:
        with pytest.raises(RuntimeError, match="scatter"):
            run(theirs, inputs, autocast=True)
        monkeypatch.setattr(model_attention, "block_sparse_attention",
                            lambda *args, **kwargs: block_sparse.block_sparse_attention(*args, backend="sdpa", **kwargs))
        baseline = errors(run(ours, inputs, autocast=True), exact, keep)
    for what, mine, base in zip(("logits", "gradients"), our_errors, baseline):
        assert mine <= 2 * base, (what, mine, base)


class FloatOutputs(TorchDispatchMode):
    """Records (op name, shape) of every op output that is a float32 tensor with at least `numel` elements."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.seen = numel, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.numel() >= self.numel:
                self.seen.add((func.__name__, tuple(tensor.shape)))
        return out


def test_bf16_training_step_has_no_float32_activations_but_the_attention_backward(tmp_path):
    """No activation-sized float32 tensor in a bf16 model's training step, except in the block-sparse op's backward,
    which runs PyTorch's float32 flash backward kernel on its (batch, heads, length, head_dim) inputs (faster than
    the bf16 one on CPU: see `cpu_op._backward`); the op keeps only log-sum-exps and masks in float32 otherwise."""
    _, ours = pair("BigBirdForMaskedLM", tmp_path, training=True)
    ours = ours.to(torch.bfloat16)
    inputs = inputs_for("BigBirdForMaskedLM")
    recorder = FloatOutputs(numel=2 * LENGTH * BIGBIRD["hidden_size"])
    with recorder:
        ours(**inputs).logits.sum().backward()
    op_layout = (2, BIGBIRD["num_attention_heads"], 1024, BIGBIRD["hidden_size"] // BIGBIRD["num_attention_heads"])
    allowed = {"_to_copy.default", "block_sparse_attention_backward.default"}
    assert {(name, shape) for name, shape in recorder.seen if name not in allowed or shape != op_layout} == set()


def test_autocast_runs_matmuls_and_attention_in_bf16(tmp_path):
    _, ours = pair("BigBirdForMaskedLM", tmp_path, training=True)
    inputs = inputs_for("BigBirdForMaskedLM")
    seen = []
    original = model_attention.block_sparse_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append(q.dtype)
        return original(q, k, v, *args, **kwargs)

    model_attention.block_sparse_attention = spy
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = ours(**inputs).logits
    finally:
        model_attention.block_sparse_attention = original
    assert seen == [torch.bfloat16] * BIGBIRD["num_hidden_layers"]
    assert logits.dtype == torch.bfloat16
