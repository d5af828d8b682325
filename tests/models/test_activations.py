"""`gelu_new` runs as Transformers' fused `GELUTanh` in every class of both families, with its values."""

import pytest
import torch
import transformers
from transformers.activations import GELUTanh, NewGELUActivation

import bigbird
from bigbird.models.activations import fuse_gelu_new
from bigbird_oracle import tiny_config
from pegasus_oracle import TINY as PEGASUS

CLASSES = [bigbird.BigBirdModel, bigbird.BigBirdForMaskedLM, bigbird.BigBirdForQuestionAnswering,
           bigbird.BigBirdPegasusModel, bigbird.BigBirdPegasusForConditionalGeneration,
           bigbird.BigBirdPegasusForCausalLM]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_gelu_new_is_fused(cls):
    if cls.config_class.model_type == "big_bird":
        config = tiny_config(hidden_act="gelu_new")
    else:
        config = transformers.BigBirdPegasusConfig(**{**PEGASUS, "activation_function": "gelu_new"})
    kinds = {type(m) for m in cls(config).modules()}
    assert GELUTanh in kinds and NewGELUActivation not in kinds


def test_other_activations_are_left_alone():
    config = tiny_config(hidden_act="gelu")
    kinds = {type(m).__name__ for m in bigbird.BigBirdModel(config).modules()}
    assert "GELUActivation" in kinds and "GELUTanh" not in kinds


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_values_and_gradients_match_transformers_gelu_new(dtype):
    x = (torch.randn(4096, dtype=torch.float64) * 4).requires_grad_()
    reference = NewGELUActivation()(x)
    (reference_grad,) = torch.autograd.grad(reference.sum(), x)
    holder = torch.nn.Sequential(NewGELUActivation())
    fuse_gelu_new(holder)
    assert isinstance(holder[0], GELUTanh)
    low = x.detach().to(dtype).requires_grad_()
    ours, theirs = holder(low), NewGELUActivation()(low)
    (ours_grad,) = torch.autograd.grad(ours.sum(), low)
    (theirs_grad,) = torch.autograd.grad(theirs.sum(), low)
    for mine, transformers_, exact in [(ours, theirs, reference), (ours_grad, theirs_grad, reference_grad)]:
        error = (mine.double() - exact).abs().max()
        assert error <= 2 * (transformers_.double() - exact).abs().max() + 1e-6
