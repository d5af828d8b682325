"""Tiny random Transformers BigBird-Pegasus models as the oracle of the Pegasus parity tests."""

from __future__ import annotations

import warnings

import torch
import transformers
from transformers.utils import logging

import bigbird

logging.set_verbosity_error()

CLASS_NAMES = [
    "BigBirdPegasusModel",
    "BigBirdPegasusForConditionalGeneration",
    "BigBirdPegasusForSequenceClassification",
    "BigBirdPegasusForQuestionAnswering",
    "BigBirdPegasusForCausalLM",
]
TINY = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=512,
            block_size=8, num_random_blocks=2, dropout=0.0, attention_dropout=0.0)
BOUND = (5 + 2 * TINY["num_random_blocks"]) * TINY["block_size"]  # 72: longer encoder inputs run block-sparse
EOS = 1


def save_tiny(name: str, directory, seed: int = 0, **overrides) -> None:
    """Save a random Transformers model `name` (random final_logits_bias too) to `directory`."""
    torch.manual_seed(seed)
    model = getattr(transformers, name)(transformers.BigBirdPegasusConfig(**{**TINY, **overrides}))
    if hasattr(model, "final_logits_bias"):
        with torch.no_grad():
            model.final_logits_bias.normal_()
    model.save_pretrained(directory)


def theirs(name: str, directory):
    """A fresh Transformers model from `directory` (fresh: Transformers switches to full attention for good
    after one short input)."""
    return getattr(transformers, name).from_pretrained(directory).eval()


def ours(name: str, directory, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(bigbird, name).from_pretrained(directory, **overrides)


def encoder_batch(length: int, batch_size: int = 2, pad: int = 5, seed: int = 0) -> dict:
    """Random ids ending with eos, and an attention mask hiding the last `pad` tokens of row 1 (pad ids there)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (batch_size, length), generator=generator)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    ids[:, length - pad - 1] = EOS
    if pad:
        mask[1, length - pad:] = 0
        ids[1, length - pad:] = 0
    ids[0, -1] = EOS  # every row holds two eos tokens
    ids[1, 2] = EOS
    return {"input_ids": ids, "attention_mask": mask}


def inputs_for(name: str, length: int, target_length: int = 7, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed + 1)
    if name == "BigBirdPegasusForCausalLM":
        ids = torch.randint(3, 99, (2, length), generator=generator)
        mask = torch.ones_like(ids)
        mask[1, :3] = 0
        return {"input_ids": ids, "attention_mask": mask}
    inputs = encoder_batch(length, seed=seed)
    if name in ("BigBirdPegasusForSequenceClassification", "BigBirdPegasusForQuestionAnswering"):
        return inputs  # the decoder reads input_ids shifted right, as these heads expect
    inputs["decoder_input_ids"] = torch.randint(3, 99, (2, target_length), generator=generator)
    return inputs


def labels_for(name: str, inputs: dict) -> dict:
    generator = torch.Generator().manual_seed(2)
    if name == "BigBirdPegasusForConditionalGeneration":
        labels = torch.randint(0, 99, inputs["decoder_input_ids"].shape, generator=generator)
        labels[:, ::3] = -100
        return {"labels": labels}
    if name == "BigBirdPegasusForCausalLM":
        labels = torch.randint(0, 99, inputs["input_ids"].shape, generator=generator)
        labels[:, 1] = -100
        return {"labels": labels}
    if name == "BigBirdPegasusForSequenceClassification":
        return {"labels": torch.tensor([1, 0])}
    if name == "BigBirdPegasusForQuestionAnswering":
        return {"start_positions": torch.tensor([2, 500]), "end_positions": torch.tensor([4, 5])}
    return {}


def assert_outputs_close(a, b, length: int | None = None, atol: float = 1e-5) -> None:
    """Every non-None tensor field of ours (`b`) equals Transformers' (`a`); encoder hidden states and attentions
    are cut to the input `length` (Transformers returns them at the block-padded length)."""
    names = [name for name in b.keys() if name != "past_key_values"]
    assert names, "no outputs to compare"
    for name in names:
        x, y = a[name], b[name]
        if isinstance(y, tuple):
            assert len(x) == len(y), name
            for i, (u, v) in enumerate(zip(x, y)):
                if name == "encoder_hidden_states":
                    u = u[:, :length]
                elif name == "encoder_attentions":
                    u = u[..., :length, :length]
                torch.testing.assert_close(v, u, atol=atol, rtol=0, msg=lambda m: f"{name}[{i}]: {m}")
        else:
            torch.testing.assert_close(y, x, atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")
