"""BigBirdForCausalLM.generate() token for token against Transformers 5.23's generate (a tiny random decoder)."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import tiny_config
from generation_checks import SAMPLING_SETTINGS, assert_checkpoint_defaults_apply, assert_sampling_matches_transformers

VOCAB = 500
PAD, EOS = 0, 2


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    """A random Transformers causal BigBird (random output bias too), saved with save_pretrained."""
    directory = tmp_path_factory.mktemp("bigbird-causal")
    torch.manual_seed(0)
    model = transformers.BigBirdForCausalLM(tiny_config(is_decoder=True, attention_type="original_full",
                                                        vocab_size=VOCAB))
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    model.save_pretrained(directory)
    return directory


def theirs(directory):
    return transformers.BigBirdForCausalLM.from_pretrained(directory).eval()


def ours(directory, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bigbird.BigBirdForCausalLM.from_pretrained(directory, **overrides)


def prompts(batch_size: int, length: int = 7, seed: int = 1) -> dict:
    """Random prompts, row i left-padded (pad ids, mask 0) with 2 * i tokens."""
    ids = torch.randint(3, VOCAB, (batch_size, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    for row in range(batch_size):
        mask[row, :2 * row] = 0
    ids[mask == 0] = PAD
    return {"input_ids": ids, "attention_mask": mask}


SETTINGS = [
    dict(max_new_tokens=12),
    dict(max_length=15, eos_token_id=7),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=10),
    dict(num_beams=3, max_new_tokens=8, length_penalty=0.6, early_stopping=True),
    dict(max_new_tokens=10, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=8),
    dict(num_beams=2, max_new_tokens=10, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=8),
]


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("settings", SETTINGS, ids=["-".join(f"{k}={v}" for k, v in s.items()) for s in SETTINGS])
def test_generate_matches_transformers(settings, batch_size, causal_dir):
    inputs = prompts(batch_size)
    expected = theirs(causal_dir).generate(**inputs, **settings)
    got = ours(causal_dir).generate(**inputs, **settings)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


def test_an_attention_mask_is_inferred_from_pad_tokens_as_in_transformers(causal_dir):
    ids = prompts(3)["input_ids"]
    hf, model = theirs(causal_dir), ours(causal_dir)
    for settings in (dict(max_new_tokens=8), dict(max_new_tokens=8, pad_token_id=None),
                     dict(max_new_tokens=8, eos_token_id=PAD)):
        assert torch.equal(model.generate(ids, **settings), hf.generate(ids, **settings))


def test_positions_follow_the_attention_mask(causal_dir):
    """A left-padded row generates what it generates alone (its positions start at 0 either way)."""
    inputs = prompts(3)
    model = ours(causal_dir)
    padded = model.generate(**inputs, max_new_tokens=10, eos_token_id=None)
    alone = model.generate(inputs["input_ids"][2:, 4:], max_new_tokens=10, eos_token_id=None)
    assert torch.equal(padded[2, 4:], alone[0])


@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_sampling_matches_transformers_with_the_same_seed(settings, causal_dir):
    inputs = prompts(3)
    hf, model = theirs(causal_dir), ours(causal_dir)
    assert_sampling_matches_transformers(hf, model, inputs, settings)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_cached_decoding_equals_a_full_forward(batch_size, causal_dir):
    inputs = prompts(batch_size)
    model = ours(causal_dir)
    prompt_length = inputs["input_ids"].shape[1]
    got = model.generate(**inputs, max_new_tokens=10, eos_token_id=None, output_scores=True,
                         return_dict_in_generate=True)
    mask = torch.nn.functional.pad(inputs["attention_mask"], (0, 9), value=1)
    positions = (mask.cumsum(dim=-1) - 1).masked_fill(mask == 0, 0)
    with torch.no_grad():
        logits = model(got.sequences[:, :-1], attention_mask=mask, position_ids=positions, use_cache=False).logits
    forced = logits[:, prompt_length - 1:]
    assert torch.equal(forced.argmax(dim=-1), got.sequences[:, prompt_length:])
    torch.testing.assert_close(torch.stack(got.scores, dim=1), forced, atol=1e-5, rtol=0)
    expected = theirs(causal_dir).generate(**inputs, max_new_tokens=10, eos_token_id=None, output_scores=True,
                                           return_dict_in_generate=True)
    for a, b in zip(expected.scores, got.scores):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_generation_config_json_gives_defaults_that_calls_override(causal_dir, tmp_path):
    hf = theirs(causal_dir)
    hf.generation_config.num_beams = 3
    hf.generation_config.max_length = 14
    hf.generation_config.no_repeat_ngram_size = 2
    hf.save_pretrained(tmp_path)
    hf, model = theirs(tmp_path), ours(tmp_path)
    assert_checkpoint_defaults_apply(hf, model, prompts(2), 14, tmp_path)
