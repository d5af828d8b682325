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


def test_causal_lm_infers_the_attention_mask_from_pad_tokens_as_in_transformers(causal_dir):
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(5))
    ids[1, :2] = 0  # left padding, with no attention_mask given
    hf, model = theirs(CAUSAL, causal_dir), ours(CAUSAL, causal_dir)
    for settings in (dict(), dict(pad_token_id=None), dict(eos_token_id=0)):
        run = dict(max_new_tokens=4, output_scores=True, return_dict_in_generate=True, **settings)
        expected, got = hf.generate(ids, **run), model.generate(ids, **run)
        assert torch.equal(got.sequences, expected.sequences)
        for ours_step, theirs_step in zip(got.scores, expected.scores):
            torch.testing.assert_close(ours_step, theirs_step, rtol=0, atol=1e-5)


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


@pytest.mark.parametrize("case", ["greedy", "greedy-eos-batch", "sampling-rows", "causal"])
def test_streamer_receives_the_calls_transformers_makes(case, seq2seq_dir, causal_dir):
    if case == "causal":
        name, directory = CAUSAL, causal_dir
        inputs = {"input_ids": torch.randint(3, 99, (1, 5), generator=torch.Generator().manual_seed(1))}
    else:
        name, directory = SEQ2SEQ, seq2seq_dir
        inputs = batch(40) if case == "greedy-eos-batch" else {k: v[:1] for k, v in batch(100).items()}
    settings = dict(max_new_tokens=7, no_repeat_ngram_size=1)
    if case == "greedy-eos-batch":  # the row that generates this token first goes on with pad
        settings["eos_token_id"] = _generated_token(name, directory, inputs, 2, 1, **settings)
    if case == "sampling-rows":
        settings.update(do_sample=True, num_return_sequences=2, top_k=20)
    expected, got = RecordingStreamer(), RecordingStreamer()
    torch.manual_seed(4)
    sequences = theirs(name, directory).generate(**inputs, **settings, streamer=expected)
    torch.manual_seed(4)
    assert torch.equal(ours(name, directory).generate(**inputs, **settings, streamer=got), sequences)
    assert got.calls == expected.calls
    prompt_length = got.calls[0][2][1]
    assert len(got.calls) == 1 + sequences.shape[1] - prompt_length + 1  # the prompt, every step's tokens, end()


@pytest.mark.parametrize("settings", [dict(num_beams=2), dict(num_beams=2, do_sample=True)])
def test_streamer_is_refused_with_beam_search_before_compute(settings, seq2seq_dir):
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir))
    streamer = RecordingStreamer()
    with pytest.raises(ValueError, match="num_beams=1"):
        model.generate(**batch(40), streamer=streamer, **settings)
    assert streamer.calls == []
    with pytest.raises(TypeError, match="put"):
        model.generate(**batch(40), streamer=[])


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


def test_text_iterator_streamer_streams_our_tokenizer_text_as_with_transformers(tokenizer_and_model_dir):
    from transformers import TextIteratorStreamer

    tokenizer, directory = tokenizer_and_model_dir
    inputs = tokenizer(["A long document about sparse attention."], return_tensors="pt")
    texts = []
    for model in (theirs(SEQ2SEQ, directory), ours(SEQ2SEQ, directory)):
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        sequences = model.generate(**inputs, max_new_tokens=12, no_repeat_ngram_size=2, streamer=streamer)
        texts.append(list(streamer))  # generate() has returned: the queue holds every piece and the end signal
    assert texts[1] == texts[0]
    assert "".join(texts[1]) == tokenizer.decode(sequences[0], skip_special_tokens=True) != ""
    two_rows = tokenizer(["One document.", "Another one."], padding=True, return_tensors="pt")
    model = _no_encoder(ours(SEQ2SEQ, directory))
    with pytest.raises(ValueError, match="batch size 1"):  # Transformers' streamers take one row, before compute
        model.generate(**two_rows, streamer=TextIteratorStreamer(tokenizer))


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


@pytest.mark.parametrize("name", [SEQ2SEQ, CAUSAL])
def test_input_embeddings_carry_the_scale_as_in_transformers(name, seq2seq_dir, causal_dir):
    directory = seq2seq_dir if name == SEQ2SEQ else causal_dir
    ids = batch(40)["input_ids"]
    with torch.no_grad():
        expected = theirs(name, directory).get_input_embeddings()(ids)
        got = ours(name, directory).get_input_embeddings()(ids)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # Transformers' embeddings are scaled by sqrt(d_model)
    if name == SEQ2SEQ:
        inputs = batch(40)
        with torch.no_grad():
            embeds = ours(SEQ2SEQ, directory).get_input_embeddings()(inputs["input_ids"])
        expected = theirs(SEQ2SEQ, directory).generate(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                                                       max_new_tokens=8)
        assert torch.equal(ours(SEQ2SEQ, directory).generate(inputs_embeds=embeds,
                                                             attention_mask=inputs["attention_mask"],
                                                             max_new_tokens=8), expected)


def test_decoder_start_token_can_be_set_per_call(seq2seq_dir):
    inputs = batch(40)
    settings = dict(decoder_start_token_id=5, max_new_tokens=6)
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    got = ours(SEQ2SEQ, seq2seq_dir).generate(**inputs, **settings)
    assert bool((got[:, 0] == 5).all())
    assert torch.equal(got, expected)


def test_bad_inputs_embeds_are_refused_before_compute(seq2seq_dir):
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir))
    embeds = torch.randn(2, 10, 32)
    with pytest.raises(ValueError, match="exactly one"):
        model.generate(torch.ones(2, 10, dtype=torch.long), inputs_embeds=embeds)
    with pytest.raises(ValueError, match="exactly one"):
        model.generate()
    with pytest.raises(ValueError, match="d_model=32"):
        model.generate(inputs_embeds=torch.randn(2, 10, 16))
    with pytest.raises(ValueError, match=r"inputs_embeds.to\(torch.float32\)"):
        model.generate(inputs_embeds=embeds.double())
    with pytest.raises(ValueError, match="attention_mask"):
        model.generate(inputs_embeds=embeds, attention_mask=torch.ones(2, 9))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.generate(inputs_embeds=torch.randn(1, 513, 32))


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


@pytest.mark.parametrize("settings", CUSTOM_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_logits_processor_and_stopping_criteria_match_transformers(settings, seq2seq_dir):
    from transformers import LogitsProcessorList, StoppingCriteriaList

    inputs = batch(100)
    plain = {key: value for key, value in settings.items()
             if key not in ("output_scores", "return_dict_in_generate", "eos_token_id")}
    torch.manual_seed(2)
    banned = _generated_token(SEQ2SEQ, seq2seq_dir, inputs, 0, 0, **plain)
    processors = LogitsProcessorList([Ban(banned), Boost((banned + 1) % 99, 1.5)])
    torch.manual_seed(3)
    stop = _generated_token(SEQ2SEQ, seq2seq_dir, inputs, 1, 5, logits_processor=processors, **plain)
    results, recorders = [], []
    for model in (theirs(SEQ2SEQ, seq2seq_dir), ours(SEQ2SEQ, seq2seq_dir)):
        recorders.append(StopAfter(stop))
        torch.manual_seed(3)
        results.append(model.generate(**inputs, **settings, logits_processor=processors,
                                      stopping_criteria=StoppingCriteriaList([recorders[-1],
                                                                              finish_row_0_at_length_4])))
    expected, got = results
    if settings.get("return_dict_in_generate"):
        expected, got = expected.sequences, got.sequences
    assert torch.equal(got, expected)
    assert recorders[1].calls == recorders[0].calls
    assert banned not in got[:, 1:]


def test_a_criterion_may_return_a_python_bool_and_must_not_return_other_things(seq2seq_dir):
    inputs = batch(40)
    at_six = [lambda ids, scores: ids.shape[1] >= 6]
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, max_new_tokens=10, stopping_criteria=at_six)
    got = ours(SEQ2SEQ, seq2seq_dir).generate(**inputs, max_new_tokens=10, stopping_criteria=at_six)
    assert expected.shape[1] == 6 and torch.equal(got, expected)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(3,\)"):
        ours(SEQ2SEQ, seq2seq_dir).generate(**inputs, max_new_tokens=4,
                                            stopping_criteria=[lambda ids, scores: ids[:, -1:] > 0])


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


@pytest.mark.parametrize("processor", [second_best_bonus, ban_best, negated])
def test_greedy_search_with_a_caller_processor_takes_the_full_logits(processor, seq2seq_dir, monkeypatch):
    from bigbird.output_head import OutputHead

    inputs = {key: value[:2] for key, value in batch(100).items()}  # few enough rows for the screened argmax
    expected = theirs(SEQ2SEQ, seq2seq_dir).generate(**inputs, max_new_tokens=10, logits_processor=[processor])
    model = ours(SEQ2SEQ, seq2seq_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("the screened argmax assumes processors that treat each logit alone, non-decreasing")

    monkeypatch.setattr(OutputHead, "greedy_tokens", refuse)
    assert torch.equal(model.generate(**inputs, max_new_tokens=10, logits_processor=[processor]), expected)


def test_bad_processors_and_criteria_are_refused_before_compute(seq2seq_dir):
    model = _no_encoder(ours(SEQ2SEQ, seq2seq_dir))
    with pytest.raises(TypeError, match="logits_processor must be a list"):
        model.generate(**batch(40), logits_processor=negated)
    with pytest.raises(TypeError, match="stopping_criteria must be a list"):
        model.generate(**batch(40), stopping_criteria=[StopAfter(3), "eos"])
