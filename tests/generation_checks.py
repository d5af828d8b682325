"""Checks shared by the generate() tests of both model families."""

from __future__ import annotations

import json

import torch

SAMPLING_SETTINGS = [
    dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.7, num_return_sequences=2),
    dict(do_sample=True, num_beams=2),
]


def assert_sampling_matches_transformers(hf, model, inputs: dict, settings: dict) -> None:
    """Same global seed, same tokens as Transformers."""
    torch.manual_seed(3)
    expected = hf.generate(**inputs, max_new_tokens=10, **settings)
    torch.manual_seed(3)
    got = model.generate(**inputs, max_new_tokens=10, **settings)
    assert torch.equal(got, expected)


def assert_checkpoint_defaults_apply(hf, model, inputs: dict, max_length: int, tmp_path) -> None:
    """After loading a checkpoint whose generation_config.json says num_beams=3 and max_length=`max_length`, both
    libraries use those defaults, a call overrides them, and our save_pretrained writes them back."""
    expected = hf.generate(**inputs)
    assert expected.shape[1] <= max_length
    assert torch.equal(model.generate(**inputs), expected)
    assert torch.equal(model.generate(**inputs, num_beams=1, max_new_tokens=4),
                       hf.generate(**inputs, num_beams=1, max_new_tokens=4))
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "generation_config.json").read_text())["num_beams"] == 3
