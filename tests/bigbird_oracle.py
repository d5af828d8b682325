"""Tiny random Transformers BigBird models as the oracle of the parity tests."""

from __future__ import annotations

import warnings

import torch
import transformers

import bigbird

CLASS_NAMES = [
    "BigBirdModel",
    "BigBirdForPreTraining",
    "BigBirdForMaskedLM",
    "BigBirdForCausalLM",
    "BigBirdForSequenceClassification",
    "BigBirdForMultipleChoice",
    "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering",
]
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=512, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, sep_token_id=66)
BOUND = (5 + 2 * TINY["num_random_blocks"]) * TINY["block_size"]  # 72: longer inputs run block-sparse


def tiny_config(**overrides) -> transformers.BigBirdConfig:
    return transformers.BigBirdConfig(**{**TINY, **overrides})


def pair(name: str, directory, **overrides):
    """A random Transformers model `name` saved to `directory`, and ours loaded from there (both in eval mode)."""
    theirs = getattr(transformers, name)(tiny_config(**overrides)).eval()
    theirs.save_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(bigbird, name).from_pretrained(directory)
    return theirs, ours


def batch(name: str, length: int, batch_size: int = 2, pad: int = 5, seed: int = 0) -> dict:
    """Random ids (no pad/sep ids except a [SEP] at 3) and an attention mask hiding the last `pad` tokens of row 1."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, 3, length) if name == "BigBirdForMultipleChoice" else (batch_size, length)
    ids = torch.randint(3, 60, shape, generator=generator)
    ids[..., 3] = TINY["sep_token_id"]
    mask = torch.ones(shape, dtype=torch.long)
    if pad:
        mask[1, ..., length - pad:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def labels_for(name: str, inputs: dict, num_labels: int = 2) -> dict:
    ids = inputs["input_ids"]
    generator = torch.Generator().manual_seed(1)
    if name in ("BigBirdForMaskedLM", "BigBirdForCausalLM"):
        labels = torch.randint(0, 99, ids.shape, generator=generator)
        labels[:, ::3] = -100
        return {"labels": labels}
    if name == "BigBirdForPreTraining":
        return {"labels": torch.randint(0, 99, ids.shape, generator=generator),
                "next_sentence_label": torch.tensor([0, 1])}
    if name == "BigBirdForSequenceClassification":
        return {"labels": torch.randint(0, num_labels, (ids.shape[0],), generator=generator)}
    if name == "BigBirdForMultipleChoice":
        return {"labels": torch.tensor([2, 0])}
    if name == "BigBirdForTokenClassification":
        return {"labels": torch.randint(0, num_labels, ids.shape, generator=generator)}
    if name == "BigBirdForQuestionAnswering":
        return {"start_positions": torch.tensor([7, 500]), "end_positions": torch.tensor([9, 11])}
    return {}


def assert_outputs_close(theirs, ours, length: int, atol: float = 1e-5) -> None:
    """Every non-None field of ours equals theirs (hidden states / attentions cut to the input length)."""
    names = [name for name in ours.keys() if name not in ("past_key_values",)]
    assert names, "no outputs to compare"
    for name in names:
        a, b = theirs[name], ours[name]
        if name == "hidden_states":
            assert len(a) == len(b)
            for x, y in zip(a, b):
                torch.testing.assert_close(y, x[..., :length, :], atol=atol, rtol=0)
        elif name == "attentions":
            assert len(a) == len(b)
            for x, y in zip(a, b):
                torch.testing.assert_close(y, x[..., :length, :length], atol=atol, rtol=0)
        else:
            torch.testing.assert_close(b, a, atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")


def our_config(**overrides) -> bigbird.BigBirdConfig:
    """Our config with the tiny sizes (for models built without a Transformers twin)."""
    return bigbird.BigBirdConfig(**{**TINY, **overrides})
