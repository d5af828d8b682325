"""The pipelines end to end on tiny Transformers checkpoints: results equal direct model calls, QA windows cover
the context with the asked overlap and offsets point at the answer in the original text, bad input is refused."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest
import torch

import bigbird
import bigbird.pipelines.tasks
from bigbird import answer, classify, fill_mask, summarize
from bigbird.pipelines import TruncationWarning
from bigbird.pipelines.qa import windows
from tiny_checkpoints import LABELS, WINDOW, checkpoints, made_up_text  # noqa: F401 (fixture)

_MODELS = {}


def _loaded(checkpoints, task: str):
    if task not in _MODELS:
        family = "pegasus" if task == "summarize" else "bigbird"
        model_class = {"classify": bigbird.BigBirdForSequenceClassification, "qa": bigbird.BigBirdForQuestionAnswering,
                       "fill-mask": bigbird.BigBirdForMaskedLM,
                       "summarize": bigbird.BigBirdPegasusForConditionalGeneration}[task]
        tokenizer_class = bigbird.PegasusTokenizer if family == "pegasus" else bigbird.BigBirdTokenizer
        directory = checkpoints[task]
        _MODELS[task] = (model_class.from_pretrained(directory), tokenizer_class.from_pretrained(directory))
    return _MODELS[task]


@pytest.fixture
def classifier(checkpoints):
    return _loaded(checkpoints, "classify")


@pytest.fixture
def reader(checkpoints):
    return _loaded(checkpoints, "qa")


# ----- classify -----

def _direct_probabilities(model, tokenizer, text, **options):
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt", **options)).logits.softmax(-1)[0]


def test_classify_equals_the_model_and_keeps_the_order(classifier):
    model, tokenizer = classifier
    texts = [made_up_text(words, seed) for seed, words in enumerate([3, 14, 6, 10, 1])]  # short: full attention
    results = classify(texts, model, tokenizer, top_k=3, batch_size=2)
    assert len(results) == len(texts)
    for text, result in zip(texts, results):
        probabilities = _direct_probabilities(model, tokenizer, text)
        order = probabilities.argsort(descending=True).tolist()
        assert [entry["label"] for entry in result["labels"]] == [LABELS[i] for i in order]
        assert [entry["score"] for entry in result["labels"]] == pytest.approx(probabilities[order].tolist(), abs=1e-5)
        assert (result["label"], result["score"]) == (result["labels"][0]["label"], result["labels"][0]["score"])
    assert classify(texts[1], model, tokenizer)["labels"] == results[1]["labels"][:1]


def test_classify_truncates_a_long_document_with_a_warning(classifier, checkpoints):
    model, tokenizer = classifier
    texts = ["short one", made_up_text(300)]
    with pytest.warns(TruncationWarning, match=f"window of {WINDOW}") as caught:
        results = classify(texts, checkpoints["classify"], top_k=3)
    assert [warning.message.index for warning in caught if warning.category is TruncationWarning] == [1]
    probabilities = _direct_probabilities(model, tokenizer, texts[1], truncation=True, max_length=WINDOW)
    assert results[1]["score"] == pytest.approx(probabilities.max().item(), abs=1e-5)
    with pytest.warns(TruncationWarning, match="window of 96"):
        shorter = classify(texts[1], model, tokenizer, max_length=96)
    expected = _direct_probabilities(model, tokenizer, texts[1], truncation=True, max_length=96)
    assert shorter["score"] == pytest.approx(expected.max().item(), abs=1e-5)


def test_classify_with_a_pegasus_checkpoint(checkpoints):
    model = bigbird.BigBirdPegasusForSequenceClassification.from_pretrained(checkpoints["classify-pegasus"])
    tokenizer = bigbird.PegasusTokenizer.from_pretrained(checkpoints["classify-pegasus"])
    texts = [made_up_text(words, seed) for seed, words in enumerate([4, 9])]
    for text, result in zip(texts, classify(texts, checkpoints["classify-pegasus"], top_k=3, batch_size=1)):
        probabilities = _direct_probabilities(model, tokenizer, text)
        assert [entry["score"] for entry in result["labels"]] == pytest.approx(
            probabilities.sort(descending=True).values.tolist(), abs=1e-5)


def test_classify_dtype_and_device(checkpoints):
    result = classify("some text", checkpoints["classify"], dtype="bfloat16", device="cpu")
    assert result["label"] in LABELS.values() and 0 < result["score"] <= 1


# ----- answer -----

def _brute_force(start_logits, end_logits, spans, max_answer_length):
    """(span log score, first, last, null log score) by enumerating every legal span of one window."""
    context = [i for i, span in enumerate(spans) if span is not None]
    allowed = torch.tensor([0] + context)
    start = dict(zip(allowed.tolist(), start_logits[allowed].log_softmax(-1).tolist()))
    end = dict(zip(allowed.tolist(), end_logits[allowed].log_softmax(-1).tolist()))
    best = max((start[i] + end[j], i, j) for i in context for j in context if i <= j < i + max_answer_length)
    return (*best, start[0] + end[0])


def _expected_answer(model, context, pieces, max_answer_length):
    found = []
    for piece in pieces:
        with torch.no_grad():
            outputs = model(input_ids=torch.tensor([piece.ids]))
        found.append((*_brute_force(outputs.start_logits[0], outputs.end_logits[0], piece.spans, max_answer_length),
                      piece))
    score, first, last, _, piece = max(found, key=lambda item: item[0])
    null = min(item[3] for item in found)
    if null > score:
        return {"answer": "", "start": 0, "end": 0, "score": math.exp(null), "no_answer": True}, None
    begin, finish = piece.spans[first][0], piece.spans[last][1]
    text = context[begin:finish]
    begin += len(text) - len(text.lstrip())
    return {"answer": text.strip(), "start": begin, "end": begin + len(text.strip()), "score": math.exp(score),
            "no_answer": False}, piece.ids[first:last + 1]


def test_windows_cover_the_context_with_the_asked_overlap(reader):
    _, tokenizer = reader
    context = made_up_text(400)
    pieces = windows(tokenizer, ["what is it?"], [context], WINDOW, stride=16)
    assert len(pieces) >= 4
    assert all(len(piece.ids) <= WINDOW for piece in pieces)
    parts = [[span for span in piece.spans if span is not None] for piece in pieces]
    for before, after in zip(parts, parts[1:]):
        assert before[-16:] == after[:16]
    joined = parts[0] + [span for part in parts[1:] for span in part[16:]]
    assert joined == [tuple(span) for span in tokenizer(context, add_special_tokens=False,
                                                        return_offsets_mapping=True)["offset_mapping"]]


@pytest.mark.parametrize("words", [20, 250])
def test_answer_equals_the_best_span_of_direct_calls(reader, words):
    model, tokenizer = reader
    question, context = "where does it go?", made_up_text(words, seed=words)
    pieces = windows(tokenizer, [question], [context], WINDOW, stride=24)
    expected, tokens = _expected_answer(model, context, pieces, max_answer_length=6)
    result = answer(question, context, model, tokenizer, stride=24, max_answer_length=6, batch_size=1)
    assert result == {**expected, "score": pytest.approx(expected["score"], rel=1e-4)}
    assert context[result["start"]:result["end"]] == result["answer"]
    if tokens is not None:
        assert result["answer"] and result["answer"] == result["answer"].strip()
        assert " ".join(tokenizer.decode(tokens).split()) == " ".join(result["answer"].split())


def test_answer_batches_documents_in_any_order(reader):
    model, tokenizer = reader
    questions = ["what?", "who is there?", "when?"]
    contexts = [made_up_text(words, seed) for seed, words in enumerate([8, 3, 12])]  # one window each, full attention
    batched = answer(questions, contexts, model, tokenizer, batch_size=3)
    for question, context, result in zip(questions, contexts, batched):
        single = answer(question, context, model, tokenizer, batch_size=1)
        assert result == {**single, "score": pytest.approx(single["score"], rel=1e-4)}


class MarkerReader(bigbird.BigBirdForQuestionAnswering):
    """Start and end scores that single out one token id (and [CLS] when `null` is set)."""

    marker: int = -1
    null: bool = False

    def forward(self, input_ids, attention_mask=None, **_):
        hits = (input_ids == self.marker).float() * 20
        if self.null:
            hits[:, 0] = 40
        return SimpleNamespace(start_logits=hits, end_logits=hits.clone())


def _marker_context(tokenizer):
    """A long context holding one word that is a single token found nowhere else, placed near its end."""
    filler = made_up_text(500, seed=7)
    for token, index in sorted(tokenizer.get_vocab().items()):
        word = token[1:]
        if token.startswith("▁") and len(word) >= 4 and word.isalpha():
            context = f"{filler} {word} {made_up_text(20, seed=8)}"
            if tokenizer(context)["input_ids"].count(index) == 1 and tokenizer.tokenize(word) == [token]:
                return context, word, index
    raise AssertionError("no usable marker word in the vocabulary")


def test_an_answer_in_a_later_window_points_into_the_original_text(reader):
    model, tokenizer = reader
    context, word, index = _marker_context(tokenizer)
    stub = MarkerReader(model.config)
    stub.marker = index
    result = answer("which word?", context, stub, tokenizer, batch_size=4)
    assert result["answer"] == word and not result["no_answer"]
    assert result["start"] == context.index(f" {word} ") + 1 and context[result["start"]:result["end"]] == word
    first_window_end = max(span[1] for span in windows(tokenizer, ["which word?"], [context], WINDOW, None)[0].spans
                           if span is not None)
    assert result["start"] > 3 * first_window_end
    stub.null = True
    assert answer("which word?", context, stub, tokenizer) == {"answer": "", "start": 0, "end": 0,
                                                               "score": pytest.approx(1.0), "no_answer": True}


@pytest.mark.parametrize("question, context, message", [
    ("who?", "", "the context is empty"),
    ("who?", None, "one question with one context"),
    ("", "some context", r"question\[0\] is empty"),
    (["a", "b"], ["one context"], "2 questions but 1 contexts"),
    ("word " * 200, "some context", "leaves no room for the context"),
])
def test_answer_refuses_bad_input(reader, question, context, message):
    model, tokenizer = reader
    with pytest.raises(ValueError, match=message):
        answer(question, context, model, tokenizer)


def test_answer_refuses_a_stride_that_does_not_fit(reader):
    model, tokenizer = reader
    with pytest.raises(ValueError, match="stride must be"):
        answer("who?", made_up_text(200), model, tokenizer, stride=WINDOW)


# ----- summarize -----

def test_summarize_equals_generate_with_the_checkpoint_settings(checkpoints):
    model, tokenizer = _loaded(checkpoints, "summarize")
    texts = [made_up_text(words, seed) for seed, words in enumerate([12, 4])]
    results = summarize(texts, model, tokenizer, batch_size=1)
    for text, result in zip(texts, results):
        tokens = model.generate(**tokenizer([text], return_tensors="pt"))
        assert result == {"summary": tokenizer.decode(tokens[0], skip_special_tokens=True).strip()}
    overridden = summarize(texts[0], model, tokenizer, generate_kwargs={"max_new_tokens": 2, "num_beams": 1})
    tokens = model.generate(**tokenizer([texts[0]], return_tensors="pt"), max_new_tokens=2, num_beams=1)
    assert tokens.shape[1] <= 3
    assert overridden["summary"] == tokenizer.decode(tokens[0], skip_special_tokens=True).strip()
    assert summarize(texts, model, tokenizer, batch_size=2) == results  # short inputs: padding changes nothing


def test_summarize_truncates_with_a_warning_and_refuses_several_sequences(checkpoints):
    model, tokenizer = _loaded(checkpoints, "summarize")
    with pytest.warns(TruncationWarning, match="summarized from its first"):
        assert summarize(made_up_text(300), model, tokenizer)["summary"] is not None
    with pytest.raises(ValueError, match="one summary per text"):
        summarize("text", model, tokenizer, generate_kwargs={"num_return_sequences": 2})


# ----- fill_mask -----

def test_fill_mask_lists_the_model_candidates_for_every_mask(checkpoints):
    model, tokenizer = _loaded(checkpoints, "fill-mask")
    texts = [f"{made_up_text(5)} [MASK] {made_up_text(4, 1)} [MASK].", f"[MASK] {made_up_text(9, 2)}"]
    results = fill_mask(texts, model, tokenizer, top_k=3, batch_size=2)
    for text, result in zip(texts, results):
        inputs = tokenizer(text, return_tensors="pt")
        positions = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        with torch.no_grad():
            probabilities = model(**inputs).logits[0, positions].softmax(-1)
        assert len(result["masks"]) == len(positions) == text.count("[MASK]")
        for candidates, row in zip(result["masks"], probabilities):
            best = row.topk(3)
            assert [c["token_id"] for c in candidates] == best.indices.tolist()
            assert [c["score"] for c in candidates] == pytest.approx(best.values.tolist(), abs=1e-6)
            assert [c["token"] for c in candidates] == [tokenizer.decode([i]).strip() for i in best.indices.tolist()]


def test_fill_mask_needs_a_mask_within_the_window(checkpoints):
    model, tokenizer = _loaded(checkpoints, "fill-mask")
    with pytest.raises(ValueError, match=r"texts\[0\] has no \[MASK\] token in it"):
        fill_mask("nothing to fill", model, tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        with pytest.raises(ValueError, match="within the model's window"):
            fill_mask(made_up_text(300) + " [MASK]", model, tokenizer)


# ----- loading -----

@pytest.mark.parametrize("call, task, message", [
    (lambda c: answer("who?", "context", c["classify"]), "", "BigBirdForSequenceClassification checkpoint, not a "
                                                             "question-answering checkpoint"),
    (lambda c: classify("text", c["qa"]), "", "BigBirdForQuestionAnswering checkpoint, not a sequence-classification"),
    (lambda c: summarize("text", c["fill-mask"]), "", "'big_bird' model, but a summarization"),
    (lambda c: fill_mask("a [MASK]", c["summarize"]), "", "'bigbird_pegasus' model"),
    (lambda c: classify("text", c["classify"], max_length=WINDOW + 8), "", "between 8 and this model's window"),
    (lambda c: classify("text", bigbird.BigBirdForSequenceClassification.from_pretrained(c["classify"])), "",
     "a loaded model needs its tokenizer"),
    (lambda c: classify(["text", "  "], c["classify"]), "", r"texts\[1\] is empty"),
    (lambda c: fill_mask("a [MASK]", c["fill-mask"], top_k=0), "", "top_k must be a positive int"),
])
def test_a_checkpoint_or_input_for_another_task_is_refused(checkpoints, call, task, message):
    with pytest.raises(ValueError, match=message):
        call(checkpoints)


def test_a_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        classify("text", str(tmp_path / "no-such-model"))


# ----- generation settings and Hub arguments -----

@pytest.mark.parametrize("settings, message", [
    ({"num_beams": 2.5}, "num_beams must be a whole number of at least 1, not 2.5"),
    ({"num_beams": "two"}, "num_beams must be a whole number of at least 1, not 'two'"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number of at least 1, not 0"),
    ({"min_length": 30, "max_length": 10}, "min_length=30 is more than max_length=10"),
    ({"min_length": 30}, "min_length=30 is more than max_length=12"),  # the checkpoint's max_length is 12
    ({"beams": 2}, r"unknown generation settings \['beams'\]"),
    ({"temperature": 0.5}, "invalid generation settings .* `do_sample` is not set to `True`"),
])
def test_bad_generation_settings_are_refused_before_the_weights_load(checkpoints, monkeypatch, settings, message):
    def load(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(bigbird.pipelines.tasks, "load", load)
    with pytest.raises(ValueError, match=message):
        summarize("a text", checkpoints["summarize"], generate_kwargs=settings)
    model, tokenizer = _loaded(checkpoints, "summarize")
    with pytest.raises(ValueError, match=message):
        summarize("a text", model, tokenizer, generate_kwargs=settings)


def test_generate_arguments_that_are_not_settings_pass_through(checkpoints):
    model, tokenizer = _loaded(checkpoints, "summarize")
    calls = []

    def no_change(input_ids, scores):
        calls.append(input_ids.shape)
        return scores

    plain = summarize("a text", model, tokenizer, generate_kwargs={"num_beams": 1, "max_new_tokens": 3})
    hooked = summarize("a text", model, tokenizer, generate_kwargs={"num_beams": 1, "max_new_tokens": 3,
                                                                    "logits_processor": [no_change]})
    assert hooked == plain and calls


def test_hub_arguments_reach_from_pretrained_and_others_are_refused(checkpoints):
    assert classify("some text", str(checkpoints["classify"]), revision="main", local_files_only=True)["label"]
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['num_label'\]"):
        classify("some text", checkpoints["classify"], num_label=3)
