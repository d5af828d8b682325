"""Checks shared by the generate() tests of both model families."""

from __future__ import annotations

import torch

SAMPLING_SETTINGS = [
    dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.7, num_return_sequences=2),
    dict(do_sample=True, num_beams=2),
]


def assert_sampling_matches_transformers(hf, model, inputs: dict, settings: dict) -> None:
    """Same global seed, same tokens as Transformers; `seed=` and `generator=` give the same draws as each other."""
    torch.manual_seed(3)
    expected = hf.generate(**inputs, max_new_tokens=10, **settings)
    torch.manual_seed(3)
    got = model.generate(**inputs, max_new_tokens=10, **settings)
    assert torch.equal(got, expected)
    first = model.generate(**inputs, max_new_tokens=10, seed=11, **settings)
    again = model.generate(**inputs, max_new_tokens=10, generator=torch.Generator().manual_seed(11), **settings)
    assert torch.equal(first, again)
