"""Beams and returned sequences share their input's cross-attention keys and values (one encoder row per input),
with Transformers' tokens, scores and cross-attention probabilities."""

from __future__ import annotations

import pytest
import torch

from pegasus_oracle import encoder_batch, ours, theirs

SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"


def cross_rows(past_key_values) -> set[int]:
    return {layer.keys.shape[0] for layer in past_key_values.cross_attention_cache.layers}


def self_rows(past_key_values) -> set[int]:
    return {layer.keys.shape[0] for layer in past_key_values.self_attention_cache.layers}


@pytest.mark.parametrize("length", [40, 100])
def test_beams_read_one_cross_attention_row_per_input_with_transformers_results(length, seq2seq_dir):
    inputs = encoder_batch(length, batch_size=3, pad=6, seed=length)
    settings = dict(num_beams=4, num_return_sequences=2, max_new_tokens=8, output_scores=True,
                    return_dict_in_generate=True)
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    got = ours(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-5, rtol=0)
    assert cross_rows(got.past_key_values) == {3} and cross_rows(expected.past_key_values) == {12}
    assert self_rows(got.past_key_values) == {12}


def test_returned_samples_share_rows_with_transformers_tokens(seq2seq_dir):
    inputs = encoder_batch(100, batch_size=2, pad=6)
    settings = dict(do_sample=True, top_k=20, num_return_sequences=3, max_new_tokens=8, return_dict_in_generate=True)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    torch.manual_seed(5)
    expected = hf.generate(**inputs, **settings)
    torch.manual_seed(5)
    got = model.generate(**inputs, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    assert cross_rows(got.past_key_values) == {2}


def test_cross_attention_probabilities_are_transformers_per_beam(seq2seq_dir):
    inputs = encoder_batch(100, batch_size=2, pad=6)
    settings = dict(num_beams=3, max_new_tokens=5, output_attentions=True, return_dict_in_generate=True)
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    got = ours(SEQ2SEQ, seq2seq_dir, attn_implementation="eager").generate(**inputs, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    for step_expected, step_got in zip(expected.cross_attentions, got.cross_attentions, strict=True):
        for a, b in zip(step_expected, step_got, strict=True):
            assert b.shape == a.shape == (6, 4, 1, 100)
            torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


def test_a_forward_with_several_decoder_rows_per_encoder_row(seq2seq_dir):
    inputs = encoder_batch(100, batch_size=2, pad=6)
    model = ours(SEQ2SEQ, seq2seq_dir).eval()
    decoder_ids = torch.randint(3, 99, (4, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        encoded = model.get_encoder()(**inputs)
        repeated = {"encoder_outputs": (encoded.last_hidden_state.repeat_interleave(2, dim=0),),
                    "attention_mask": inputs["attention_mask"].repeat_interleave(2, dim=0)}
        expected = model(**repeated, decoder_input_ids=decoder_ids).logits
        got = model(encoder_outputs=encoded, attention_mask=inputs["attention_mask"],
                    decoder_input_ids=decoder_ids).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="decoder has 3 rows and the encoder output 2"):
            model(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=decoder_ids[:3])


@pytest.mark.parametrize("settings", [dict(num_beams=2), dict(do_sample=True, num_return_sequences=2)],
                         ids=["beams", "samples"])
def test_a_static_cache_gives_transformers_tokens(settings, seq2seq_dir):
    inputs = encoder_batch(100, batch_size=2, pad=6)
    settings = dict(settings, max_new_tokens=5, cache_implementation="static")
    torch.manual_seed(0)
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    torch.manual_seed(0)
    got = ours(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    assert torch.equal(got, expected)
