"""generate() token for token against Transformers 5.23's generate (tiny random BigBird-Pegasus checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from generation_checks import SAMPLING_SETTINGS, assert_checkpoint_defaults_apply, assert_sampling_matches_transformers
from pegasus_oracle import BOUND, encoder_batch, ours, save_tiny, theirs

SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"
CAUSAL = "BigBirdPegasusForCausalLM"


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


@pytest.mark.parametrize("settings", SAMPLING_SETTINGS)
def test_sampling_matches_transformers_with_the_same_seed(settings, seq2seq_dir):
    inputs = batch(100)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    assert_sampling_matches_transformers(hf, model, inputs, settings)


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
    assert_checkpoint_defaults_apply(hf, model, batch(90), 11, tmp_path)




def _no_encoder(model):
    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran although the input was invalid")

    model.model.encoder.forward = refuse
    return model




class RecordingStreamer:
    """Records every put() (values, shape, dtype, device) and end(), in order."""

    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(("put", value.tolist(), tuple(value.shape), value.dtype, value.device.type))

    def end(self):
        self.calls.append(("end",))


def _generated_token(name, directory, inputs, row, step, **settings):
    """The token Transformers generates at `step` (from 0) of `row` without end tokens: a token sure to occur."""
    sequences = theirs(name, directory).generate(**inputs, **settings, eos_token_id=None)
    return int(sequences[row, -settings["max_new_tokens"] + step])




@pytest.fixture(scope="module")
def tokenizer_and_model_dir(tmp_path_factory):
    """A Pegasus SentencePiece tokenizer trained here, and a tiny model with its vocabulary."""
    import bigbird
    from tokenizer_fixtures import train_spm, write_corpus

    root = tmp_path_factory.mktemp("streaming")
    tokenizer = bigbird.PegasusTokenizer.from_pretrained(
        train_spm(write_corpus(root / "corpus.txt", lines=600), root / "spm", "pegasus").parent)
    save_tiny(SEQ2SEQ, root / "model", vocab_size=len(tokenizer))
    return tokenizer, root / "model"



@pytest.mark.parametrize("length,masked", [(40, True), (100, True), (100, False)])
def test_inputs_embeds_give_transformers_tokens(length, masked, seq2seq_dir):
    inputs = batch(length)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    with torch.no_grad():
        embeds = hf.get_encoder().embed_tokens(inputs["input_ids"])
    mask = {"attention_mask": inputs["attention_mask"]} if masked else {}
    for settings in (dict(max_new_tokens=8), dict(num_beams=3, max_new_tokens=6)):
        expected = hf.generate(inputs_embeds=embeds, **mask, **settings)
        assert torch.equal(model.generate(inputs_embeds=embeds, **mask, **settings), expected)
    if masked:
        assert torch.equal(model.generate(inputs_embeds=embeds, **mask, max_new_tokens=8),
                           model.generate(**inputs, max_new_tokens=8))





class Ban:
    """Bans one token (a processor that treats each logit on its own)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores):
        return scores.index_fill(1, torch.tensor([self.token]), float("-inf"))


class Boost:
    """Raises one token's score: before or after temperature gives other sampling probabilities."""

    def __init__(self, token, amount):
        self.token, self.amount = token, amount

    def __call__(self, input_ids, scores):
        return scores.index_add(1, torch.tensor([self.token]), torch.full((scores.shape[0], 1), self.amount))


class StopAfter:
    """Finishes the rows whose last token is `token`; records what it was given."""

    def __init__(self, token):
        self.token = token
        self.calls = []

    def __call__(self, input_ids, scores):
        self.calls.append((input_ids.tolist(), None if scores is None else len(scores)))
        return input_ids[:, -1] == self.token


def finish_row_0_at_length_4(input_ids, scores):
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool)
    finished[0] = input_ids.shape[1] >= 4
    return finished


CUSTOM_SETTINGS = [
    dict(max_new_tokens=10, no_repeat_ngram_size=1),
    dict(max_new_tokens=10, no_repeat_ngram_size=1, eos_token_id=None),  # finished rows go on with real tokens
    dict(max_new_tokens=10, no_repeat_ngram_size=1, output_scores=True, return_dict_in_generate=True),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=8, no_repeat_ngram_size=1),
    dict(do_sample=True, temperature=0.5, top_k=30, max_new_tokens=10),
]




def second_best_bonus(input_ids, scores):
    """Not coordinate-wise: the token that wins depends on every other logit."""
    second = scores.topk(2, dim=-1).indices[:, 1:]
    return scores.scatter_add(1, second, torch.full(second.shape, 50.0))


def ban_best(input_ids, scores):
    """Not coordinate-wise: through the screened argmax it would ban the only candidate left."""
    return scores.scatter(1, scores.argmax(dim=-1, keepdim=True), float("-inf"))


def negated(input_ids, scores):
    """Coordinate-wise but decreasing: greedy search then picks the least likely token."""
    return -scores



@pytest.mark.parametrize("settings,match", [
    (dict(max_new_tokens=-5), "max_new_tokens must be a whole number >= 1, got -5"),
    (dict(num_beams=2.5), "num_beams must be a whole number >= 1, got 2.5"),
    (dict(num_beams="2"), "num_beams must be a whole number"),
    (dict(min_length=20, max_length=5), "min_length = 20 is larger than max_length = 5"),
    (dict(min_new_tokens=9, max_new_tokens=3), "min_new_tokens = 9 is larger than max_new_tokens = 3"),
    (dict(decoder_start_token_id=500), r"decoder_start_token_id = 500 is not a token id .*\[0, 99\)"),
    (dict(eos_token_id=[1, -3]), "eos_token_id"),
])
def test_nonsense_settings_are_refused_before_compute(settings, match, seq2seq_dir, monkeypatch):
    model = ours(SEQ2SEQ, seq2seq_dir)
    monkeypatch.setattr(model.model.encoder, "forward", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises(ValueError, match=match):
        model.generate(**batch(40), **settings)
