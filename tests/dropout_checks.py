"""Dropout parity: the same seed must make our model draw Transformers' dropout masks."""

from __future__ import annotations

from collections.abc import Callable

import torch


def assert_same_dropout_draws(theirs: torch.nn.Module, ours: torch.nn.Module,
                              loss_of: Callable[[torch.nn.Module], torch.Tensor]) -> None:
    """In train mode under seed 3, both models give the same loss and word-embedding gradient; under seed 4, ours
    gives another loss (so the masks do depend on the seed). loss_of(model) runs the forward and returns a scalar."""

    def run(model, seed):
        model.train().zero_grad()
        torch.manual_seed(seed)
        loss = loss_of(model)
        loss.backward()
        return loss.detach(), model.get_input_embeddings().weight.grad

    expected, got = run(theirs, 3), run(ours, 3)
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(run(ours, 4)[0], got[0], atol=1e-5, rtol=0)
