"""generate() token for token against Transformers 5.23's generate (tiny random BigBird-Pegasus checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from pegasus_oracle import BOUND, encoder_batch, ours, save_tiny, theirs

SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"
CAUSAL = "BigBirdPegasusForCausalLM"


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("seq2seq")
    save_tiny(SEQ2SEQ, directory, use_bias=True)
    return directory


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("causal")
    save_tiny(CAUSAL, directory)
    return directory


def batch(length: int) -> dict:
    return encoder_batch(length, batch_size=3, pad=6, seed=length)


SETTINGS = [
    dict(max_new_tokens=12),
    dict(max_length=9, eos_token_id=7),
    dict(num_beams=3, max_new_tokens=10),
    dict(num_beams=4, num_return_sequences=2, max_length=15, length_penalty=0.6, early_stopping=True),
    dict(num_beams=3, max_new_tokens=10, no_repeat_ngram_size=2, repetition_penalty=1.3, min_new_tokens=8,
         early_stopping="never"),
    dict(num_beams=2, max_new_tokens=10, eos_token_id=5, length_penalty=2.0),
    dict(max_new_tokens=10, bad_words_ids=[[5], [7, 8]], no_repeat_ngram_size=1, min_length=4),
]
# Greedy and plain beam search at every length (full attention, just past the fallback bound, block-sparse);
# the other settings at one length each.
CASES = [(settings, length) for settings in SETTINGS[:3] for length in (40, BOUND + 1, 100)] + [
    (settings, length) for settings, length in zip(SETTINGS[3:], (100, 40, BOUND + 1, 100))]


@pytest.mark.parametrize("settings,length", CASES,
                         ids=[f"{'-'.join(f'{k}={v}' for k, v in s.items())}-{n}" for s, n in CASES])
def test_generate_matches_transformers(settings, length, seq2seq_dir):
    inputs = batch(length)
    model = ours(SEQ2SEQ, seq2seq_dir)
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    got = model.generate(**inputs, **settings)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


@pytest.mark.parametrize("settings", [
    dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.7, num_return_sequences=2),
    dict(do_sample=True, num_beams=2),
])
def test_sampling_matches_transformers_with_the_same_seed(settings, seq2seq_dir):
    inputs = batch(100)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    torch.manual_seed(3)
    expected = hf.generate(**inputs, max_new_tokens=10, **settings)
    torch.manual_seed(3)
    got = model.generate(**inputs, max_new_tokens=10, **settings)
    assert torch.equal(got, expected)
    first = model.generate(**inputs, max_new_tokens=10, seed=11, **settings)
    again = model.generate(**inputs, max_new_tokens=10, generator=torch.Generator().manual_seed(11), **settings)
    assert torch.equal(first, again)


def test_scores_match_transformers_and_a_teacher_forced_forward(seq2seq_dir):
    inputs = batch(100)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    settings = dict(max_new_tokens=8, output_scores=True, return_dict_in_generate=True, eos_token_id=None)
    expected, got = hf.generate(**inputs, **settings), model.generate(**inputs, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    assert len(got.scores) == len(expected.scores) == 8
    for a, b in zip(expected.scores, got.scores):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    with torch.no_grad():
        forced = model(**inputs, decoder_input_ids=got.sequences[:, :-1], use_cache=False).logits
    torch.testing.assert_close(torch.stack(got.scores, dim=1), forced, atol=1e-5, rtol=0)

    beam = dict(num_beams=3, num_return_sequences=2, max_new_tokens=6, output_scores=True,
                return_dict_in_generate=True)
    expected, got = hf.generate(**inputs, **beam), model.generate(**inputs, **beam)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-5, rtol=0)


def test_generation_config_json_gives_defaults_that_calls_override(seq2seq_dir, tmp_path):
    hf = theirs(SEQ2SEQ, seq2seq_dir)
    hf.generation_config.num_beams = 3
    hf.generation_config.max_length = 11
    hf.generation_config.length_penalty = 0.8
    hf.generation_config.no_repeat_ngram_size = 2
    hf.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["num_beams"] == 3
    hf, model = theirs(SEQ2SEQ, tmp_path), ours(SEQ2SEQ, tmp_path)
    inputs = batch(90)
    expected = hf.generate(**inputs)
    assert expected.shape[1] <= 11
    assert torch.equal(model.generate(**inputs), expected)
    assert torch.equal(model.generate(**inputs, num_beams=1, max_new_tokens=4),
                       hf.generate(**inputs, num_beams=1, max_new_tokens=4))
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "generation_config.json").read_text())["num_beams"] == 3


@pytest.mark.parametrize("settings", [dict(max_new_tokens=8), dict(num_beams=3, max_new_tokens=6),
                                      dict(max_new_tokens=6, repetition_penalty=1.5)])
def test_causal_lm_generate_matches_transformers_with_left_padding(settings, causal_dir):
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 99, (2, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    ids[1, :2] = 0
    expected = theirs(CAUSAL, causal_dir).generate(input_ids=ids, attention_mask=mask, **settings)
    got = ours(CAUSAL, causal_dir).generate(ids, attention_mask=mask, **settings)
    assert torch.equal(got, expected)


def _no_encoder(model):
    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran although the input was invalid")

    model.model.encoder.forward = refuse
    return model


@pytest.mark.parametrize("call,match", [
    (dict(max_length=10, max_new_tokens=3), "max_new_tokens"),
    (dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
    (dict(num_return_sequences=2), "num_return_sequences"),
    (dict(max_length=1), "max_length"),
    (dict(max_new_tokens=600), "max_position_embeddings"),
    (dict(early_stopping="sometimes"), "early_stopping"),
    (dict(do_sample=True, temperature=0.0), "temperature"),
    (dict(num_beams=2, colour="blue"), "colour"),
])
def test_bad_settings_are_refused_before_compute(call, match, seq2seq_dir):
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir))
    with pytest.raises((ValueError, TypeError), match=match):
        model.generate(**batch(40), **call)


def test_bad_inputs_are_refused_before_compute(seq2seq_dir):
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.generate(torch.ones(1, 513, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        model.generate(torch.ones(0, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        model.generate(torch.ones(2, 10, dtype=torch.long), attention_mask=torch.ones(2, 9))
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir, decoder_start_token_id=None, bos_token_id=None))
    model.generation_config.decoder_start_token_id = model.generation_config.bos_token_id = None
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        model.generate(torch.ones(1, 10, dtype=torch.long))
