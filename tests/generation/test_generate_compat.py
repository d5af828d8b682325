"""generate() against Transformers 5.23's where calls go beyond plain token inputs: a precomputed encoder output, a
caller's processors and criteria of the kinds generate() builds itself, and a decoder-only prompt given as
embeddings (tiny random checkpoints of both model families)."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import tiny_config
from generation_checks import assert_sampling_matches_transformers
from pegasus_oracle import EOS, encoder_batch, ours, theirs

SEQ2SEQ = "BigBirdPegasusForConditionalGeneration"
CAUSAL = "BigBirdPegasusForCausalLM"
BIGBIRD = "BigBirdForCausalLM"


@pytest.fixture(scope="module")
def causal_dirs(tmp_path_factory, causal_dir):
    """Both decoder-only models, saved by Transformers: {class name: directory}."""
    bert = tmp_path_factory.mktemp("bigbird-causal")
    torch.manual_seed(0)
    model = transformers.BigBirdForCausalLM(tiny_config(is_decoder=True, attention_type="original_full",
                                                        vocab_size=99))
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    model.save_pretrained(bert)
    return {CAUSAL: causal_dir, BIGBIRD: bert}


def theirs_any(name, directory):
    return getattr(transformers, name).from_pretrained(directory).eval()


def ours_any(name, directory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(bigbird, name).from_pretrained(directory)


def batch(length: int) -> dict:
    return encoder_batch(length, batch_size=3, pad=6, seed=length)


def refusing(*modules):
    """Make every module in `modules` raise if called: the input had to be refused before compute."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although the input was invalid")

    for module in modules:
        module.forward = refuse


def generated_token(model, inputs, row, step, **settings):
    """The token `model` generates at `step` (from 0) of `row` without end tokens: a token sure to occur."""
    sequences = model.generate(**inputs, **settings, eos_token_id=None)
    return int(sequences[row, -settings["max_new_tokens"] + step])


# 1. A precomputed encoder output.

ENCODER_SETTINGS = [
    dict(max_new_tokens=10, no_repeat_ngram_size=1),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=8),
    dict(do_sample=True, top_k=20, temperature=0.8, num_return_sequences=2, max_new_tokens=8),
]


@pytest.mark.parametrize("form", ["transformers", "ours", "tuple"])
@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no-mask"])
@pytest.mark.parametrize("length", [40, 100])
@pytest.mark.parametrize("settings", ENCODER_SETTINGS, ids=["greedy", "beam", "sampling"])
def test_encoder_outputs_give_transformers_tokens(settings, length, masked, form, seq2seq_dir):
    inputs = batch(length)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    mask = {"attention_mask": inputs["attention_mask"]} if masked else {}

    def encoded():  # fresh each call: Transformers' generate expands the one it gets in place
        with torch.no_grad():
            return hf.get_encoder()(**inputs)

    theirs_encoded = encoded()
    with torch.no_grad():
        given = {"transformers": encoded(), "ours": model.get_encoder()(**inputs),
                 "tuple": (encoded().last_hidden_state,)}[form]
    torch.manual_seed(3)
    expected = hf.generate(encoder_outputs=theirs_encoded, **mask, **settings)
    torch.manual_seed(3)
    assert torch.equal(model.generate(encoder_outputs=given, **mask, **settings), expected)
    if masked and not settings.get("do_sample"):
        assert torch.equal(model.generate(**inputs, **settings), expected)


def test_encoder_outputs_may_come_with_the_input_ids_they_encode(seq2seq_dir):
    inputs = batch(100)
    hf, model = theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)
    with torch.no_grad():
        encoded = model.get_encoder()(**inputs)
    expected = hf.generate(**inputs, max_new_tokens=8, no_repeat_ngram_size=1)
    assert torch.equal(model.generate(**inputs, encoder_outputs=encoded, max_new_tokens=8, no_repeat_ngram_size=1),
                       expected)


def test_bad_encoder_outputs_are_refused_before_compute(seq2seq_dir, causal_dirs):
    model = ours(SEQ2SEQ, seq2seq_dir)
    refusing(model.model.encoder, model.model.decoder)
    hidden = torch.randn(3, 20, 32)
    mask = torch.ones(3, 20, dtype=torch.long)
    cases = [
        (dict(input_ids=torch.ones(2, 20, dtype=torch.long)), "input_ids holds 2 input"),
        (dict(inputs_embeds=torch.randn(2, 20, 32)), "inputs_embeds holds 2 input"),
        (dict(input_ids=torch.ones(3, 20, dtype=torch.long), inputs_embeds=torch.randn(3, 20, 32)), "exactly one"),
        (dict(attention_mask=mask[:, :19]), r"covers \(batch, source_length\) = \(3, 20\)"),
    ]
    for extra, match in cases:
        with pytest.raises(ValueError, match=match):
            model.generate(encoder_outputs=(hidden,), **extra)
    for bad, match in [(torch.randn(3, 20, 16), "d_model=32"), (torch.randn(3, 32), "d_model=32"),
                       (torch.randn(3, 0, 32), "d_model=32"), (hidden.double(), r"\.to\(torch.float32\)")]:
        with pytest.raises(ValueError, match=match):
            model.generate(encoder_outputs=(bad,))
    for bad in ({"last_hidden_state": hidden}, (), "encoded"):
        with pytest.raises(ValueError, match="encoder_outputs must be an encoder output"):
            model.generate(encoder_outputs=bad)
    for name, directory in causal_dirs.items():
        with pytest.raises(ValueError, match=f"{name} is decoder-only"):
            ours_any(name, directory).generate(torch.ones(3, 5, dtype=torch.long), encoder_outputs=(hidden,))


# 2. A caller's processors and stopping criteria of the kinds generate() builds.

def _generate_both(directory, inputs, **call):
    """Transformers' and our tokens for the same call, each after the same global seed."""
    results = []
    for model in (theirs(SEQ2SEQ, directory), ours(SEQ2SEQ, directory)):
        torch.manual_seed(5)
        results.append(model.generate(**inputs, **call))
    return results


GREEDY, BEAM, SAMPLING = dict(), dict(num_beams=3, num_return_sequences=2), dict(do_sample=True, top_k=30)
REPLACEMENTS = [
    (dict(repetition_penalty=1.3), lambda: transformers.RepetitionPenaltyLogitsProcessor(3.0), GREEDY),
    (dict(repetition_penalty=1.3), lambda: transformers.RepetitionPenaltyLogitsProcessor(3.0), BEAM),
    (dict(repetition_penalty=1.3), lambda: transformers.RepetitionPenaltyLogitsProcessor(3.0), SAMPLING),
    (dict(no_repeat_ngram_size=1), lambda: transformers.NoRepeatNGramLogitsProcessor(2), BEAM),
    (dict(bad_words_ids=[[5]]), lambda: transformers.NoBadWordsLogitsProcessor([[67]], eos_token_id=EOS), GREEDY),
    (dict(min_length=4), lambda: transformers.MinLengthLogitsProcessor(9, eos_token_id=EOS), GREEDY),
    (dict(min_new_tokens=3), lambda: transformers.MinNewTokensLengthLogitsProcessor(1, 8, eos_token_id=EOS), BEAM),
    (dict(min_new_tokens=3), lambda: transformers.MinLengthLogitsProcessor(9, eos_token_id=EOS), GREEDY),
    (dict(forced_eos_token_id=7), lambda: transformers.ForcedEOSTokenLogitsProcessor(6, 9), SAMPLING),
    (dict(forced_bos_token_id=7), lambda: transformers.ForcedBOSTokenLogitsProcessor(11), GREEDY),
]


@pytest.mark.parametrize("settings,processor,search", REPLACEMENTS,
                         ids=[f"{next(iter(s))}-{p().__class__.__name__}-{'-'.join(map(str, m)) or 'greedy'}"
                              for s, p, m in REPLACEMENTS])
def test_a_transformers_processor_of_a_built_in_kind_takes_its_place(settings, processor, search, seq2seq_dir):
    inputs = batch(100)  # (Transformers' encoder draws random numbers on shorter inputs, which shifts sampling)
    with pytest.warns(UserWarning, match="takes its place"):
        expected, got = _generate_both(seq2seq_dir, inputs, max_new_tokens=10, logits_processor=[processor()],
                                       **settings, **search)
    assert torch.equal(got, expected)


def test_replacing_differs_from_appending_and_a_second_one_is_appended(seq2seq_dir):
    inputs = batch(100)
    model = ours(SEQ2SEQ, seq2seq_dir)
    trigrams = transformers.NoRepeatNGramLogitsProcessor(3)
    call = dict(max_new_tokens=10, no_repeat_ngram_size=1)
    with pytest.warns(UserWarning, match="NoRepeatNGramLogitsProcessor takes its place"):
        expected, got = _generate_both(seq2seq_dir, inputs, logits_processor=[trigrams], **call)
    assert torch.equal(got, expected)
    appended = model.generate(**inputs, logits_processor=[lambda ids, scores: trigrams(ids, scores)], **call)
    assert not torch.equal(appended, expected)  # no token repeated, against no trigram: the test tells them apart

    twice = [trigrams, transformers.NoRepeatNGramLogitsProcessor(1)]  # the second follows the built-in ones
    with pytest.warns(UserWarning, match="takes its place"):
        expected, got = _generate_both(seq2seq_dir, inputs, logits_processor=twice, **call)
    assert torch.equal(got, expected)
    assert torch.equal(got, appended)


def test_a_caller_warper_follows_the_processors_and_precedes_the_built_in_warpers(seq2seq_dir):
    """Transformers builds its warpers after merging: a caller's TemperatureLogitsWarper replaces nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected, got = _generate_both(seq2seq_dir, batch(100), max_new_tokens=10, do_sample=True, temperature=0.7,
                                       top_k=20, logits_processor=[transformers.TemperatureLogitsWarper(0.5)])
    assert torch.equal(got, expected)


@pytest.mark.parametrize("search", [dict(), dict(num_beams=3, num_return_sequences=2)], ids=["greedy", "beam"])
def test_a_transformers_max_length_criteria_takes_the_place_of_max_length(search, seq2seq_dir):
    inputs = batch(40)
    for limit in (5, 9 if not search else 7):  # greedy goes on past max_length, as in Transformers
        with pytest.warns(UserWarning, match="MaxLengthCriteria takes its place"):
            expected, got = _generate_both(
                seq2seq_dir, inputs, max_new_tokens=6, no_repeat_ngram_size=1, eos_token_id=None, **search,
                stopping_criteria=transformers.StoppingCriteriaList([transformers.MaxLengthCriteria(limit)]))
        assert got.shape[1] == limit and torch.equal(got, expected)


def test_a_transformers_eos_criteria_takes_the_place_of_the_end_tokens(seq2seq_dir):
    inputs = batch(100)
    hf = theirs(SEQ2SEQ, seq2seq_dir)
    settings = dict(max_new_tokens=10, no_repeat_ngram_size=1)
    ends = generated_token(hf, inputs, 1, 2, **settings), generated_token(hf, inputs, 2, 4, **settings)
    for search in (dict(), dict(num_beams=2)):
        with pytest.warns(UserWarning, match="EosTokenCriteria takes its place"):
            expected, got = _generate_both(seq2seq_dir, inputs, eos_token_id=ends[0], **settings, **search,
                                           stopping_criteria=[transformers.EosTokenCriteria(ends[1])])
        assert torch.equal(got, expected)
        assert ends[1] in expected[:, 1:]
    expected, got = _generate_both(seq2seq_dir, inputs, eos_token_id=None, pad_token_id=3, **settings,
                                   stopping_criteria=[transformers.EosTokenCriteria(ends[1])])
    assert torch.equal(got, expected)
    assert 3 in expected  # finished rows go on with pad, as with any criterion holding end tokens


def test_criteria_the_search_cannot_follow_are_refused_before_compute(seq2seq_dir):
    model = ours(SEQ2SEQ, seq2seq_dir)
    refusing(model.model.encoder, model.model.decoder)
    inputs = batch(40)
    for call, match in [(dict(num_beams=2, stopping_criteria=[transformers.MaxLengthCriteria(9)]),
                         "pass max_length=9 instead"),  # Transformers' beam search fails with an IndexError
                        (dict(stopping_criteria=[transformers.MaxLengthCriteria(600)]), "max_position_embeddings")]:
        with pytest.warns(UserWarning, match="takes its place"), pytest.raises(ValueError, match=match):
            model.generate(**inputs, max_new_tokens=5, **call)
    with pytest.raises(ValueError, match="no pad_token_id"):
        model.generate(**inputs, max_new_tokens=5, eos_token_id=None, pad_token_id=None,
                       stopping_criteria=[transformers.EosTokenCriteria(4)])


def test_a_look_alike_outside_transformers_is_appended(seq2seq_dir):
    class NoRepeatNGramLogitsProcessor(transformers.NoRepeatNGramLogitsProcessor):
        """Same name, but the caller's own class: Transformers compares types, so it is appended."""

    call = dict(max_new_tokens=10, no_repeat_ngram_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected, got = _generate_both(seq2seq_dir, batch(100), logits_processor=[NoRepeatNGramLogitsProcessor(3)],
                                       **call)
    assert torch.equal(got, expected)
    assert torch.equal(got, ours(SEQ2SEQ, seq2seq_dir).generate(**batch(100), **call))


# 3. A decoder-only prompt given as embeddings.

def prompts() -> dict:
    """Two prompts, row 1 left-padded with 2 pad tokens."""
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    ids[1, :2] = 0
    return {"input_ids": ids, "attention_mask": mask}


def embedded(hf, inputs: dict, form: str) -> dict:
    with torch.no_grad():
        embeds = hf.get_input_embeddings()(inputs["input_ids"])
    return {"embeds": {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]},
            "embeds-and-ids": {**inputs, "inputs_embeds": embeds},
            "embeds-no-mask": {"inputs_embeds": embeds}}[form]


EMBEDS_SETTINGS = [
    dict(max_new_tokens=8, no_repeat_ngram_size=1),
    dict(max_length=12, min_length=9),
    dict(max_new_tokens=8, repetition_penalty=1.5, min_new_tokens=6),
    dict(num_beams=3, num_return_sequences=2, max_new_tokens=6),
    dict(num_beams=2, max_length=13, length_penalty=0.5, early_stopping="never"),
]


@pytest.mark.parametrize("form", ["embeds", "embeds-and-ids", "embeds-no-mask"])
@pytest.mark.parametrize("settings", EMBEDS_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("name", [CAUSAL, BIGBIRD])
def test_decoder_only_inputs_embeds_give_transformers_tokens(name, settings, form, causal_dirs):
    hf, model = theirs_any(name, causal_dirs[name]), ours_any(name, causal_dirs[name])
    inputs = embedded(hf, prompts(), form)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        expected = hf.generate(**inputs, **settings)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        got = model.generate(**inputs, **settings)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    unseen = [name for name in ("repetition_penalty", "no_repeat_ngram_size")
              if form != "embeds-and-ids" and settings.get(name)]
    for warned in (theirs_warned, ours_warned):  # the penalties do not see a prompt of embeddings alone
        messages = [str(w.message) for w in warned if "inputs_embeds" in str(w.message)]
        assert [name for name in unseen if any(name in text for text in messages)] == unseen
        assert len(messages) == len(unseen)


@pytest.mark.parametrize("name", [CAUSAL, BIGBIRD])
def test_decoder_only_inputs_embeds_continue_the_prompt_their_tokens_start(name, causal_dirs):
    """The same tokens as from input_ids: all of them with input_ids too, only the new ones from embeddings alone."""
    hf, model = theirs_any(name, causal_dirs[name]), ours_any(name, causal_dirs[name])
    inputs = prompts()
    from_ids = model.generate(**inputs, max_new_tokens=8, eos_token_id=None)
    assert torch.equal(model.generate(**embedded(hf, inputs, "embeds-and-ids"), max_new_tokens=8, eos_token_id=None),
                       from_ids)
    assert torch.equal(model.generate(**embedded(hf, inputs, "embeds"), max_new_tokens=8, eos_token_id=None),
                       from_ids[:, 7:])


@pytest.mark.parametrize("settings", [dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.7,
                                           num_return_sequences=2), dict(do_sample=True, num_beams=2)])
@pytest.mark.parametrize("name", [CAUSAL, BIGBIRD])
def test_decoder_only_inputs_embeds_sample_as_transformers(name, settings, causal_dirs):
    hf, model = theirs_any(name, causal_dirs[name]), ours_any(name, causal_dirs[name])
    assert_sampling_matches_transformers(hf, model, embedded(hf, prompts(), "embeds"), settings)


class RecordingStreamer:
    def __init__(self):
        self.calls = []

    def put(self, value):
        self.calls.append(("put", value.tolist(), tuple(value.shape)))

    def end(self):
        self.calls.append(("end",))


def test_a_streamer_gets_the_empty_prompt_of_embeddings_as_from_transformers(causal_dirs):
    hf, model = theirs_any(CAUSAL, causal_dirs[CAUSAL]), ours_any(CAUSAL, causal_dirs[CAUSAL])
    inputs = {key: value[:1] for key, value in embedded(hf, prompts(), "embeds").items()}
    expected, got = RecordingStreamer(), RecordingStreamer()
    sequences = hf.generate(**inputs, max_new_tokens=5, streamer=expected)
    assert torch.equal(model.generate(**inputs, max_new_tokens=5, streamer=got), sequences)
    assert got.calls == expected.calls
    assert got.calls[0] == ("put", [[]], (1, 0))


@pytest.mark.parametrize("name", [CAUSAL, BIGBIRD])
def test_bad_decoder_only_inputs_embeds_are_refused_before_compute(name, causal_dirs):
    model = ours_any(name, causal_dirs[name])
    refusing(model.model.decoder if name == CAUSAL else model.bert)
    embeds = torch.randn(2, 7, 32)
    ids = torch.ones(2, 7, dtype=torch.long)
    cases = [
        (dict(inputs_embeds=torch.randn(2, 7, 16)), r"inputs_embeds must have shape \(batch, length, 32\)"),
        (dict(inputs_embeds=torch.randn(2, 32)), r"inputs_embeds must have shape \(batch, length, 32\)"),
        (dict(inputs_embeds=torch.randn(2, 0, 32)), "non-empty"),
        (dict(inputs_embeds=embeds.double()), r"inputs_embeds.to\(torch.float32\)"),
        (dict(inputs_embeds=embeds, input_ids=ids[:, :6]), "tokens of the embedded prompt"),
        (dict(inputs_embeds=embeds, attention_mask=torch.ones(2, 6)), "attention_mask"),
        (dict(inputs_embeds=embeds, max_length=7), "already has 7 embedded position"),
        (dict(inputs_embeds=torch.randn(1, 500, 32), max_new_tokens=20), "after the 500 positions of inputs_embeds"),
        (dict(inputs_embeds=embeds, decoder_input_ids=ids), "no decoder_input_ids"),
        (dict(), "the prompt as input_ids"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            model.generate(**call)
