"""Parity of the eight BigBird classes with Transformers 5.23 (tiny random models, fp32, atol 1e-5)."""

import pytest
import torch
import transformers

import bigbird
from bigbird.ops.reference import reference_attention
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from bigbird_oracle import BOUND, CLASS_NAMES, assert_outputs_close, batch, labels_for, our_config, pair, tiny_config
from dropout_checks import assert_same_dropout_draws


def _embeds(model, inputs):
    """inputs_embeds that require grad, from the model's word embeddings."""
    embeds = model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_(True)
    return embeds


def _run(model, name, inputs, labels, embeds, **kwargs):
    extra = {}
    if name == "BigBirdForQuestionAnswering":
        extra["question_lengths"] = torch.tensor([[4], [4]])
    out = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], output_hidden_states=True,
                **labels, **extra, **kwargs)
    loss = out.loss if name != "BigBirdModel" else out.last_hidden_state.square().mean() + out.pooler_output.sum()
    loss.backward()
    return out


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("attention_type", ["original_full", "block_sparse"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_every_class_matches_transformers(name, attention_type, training, tmp_path):
    theirs, ours = pair(name, tmp_path, attention_type=attention_type, num_labels=3)
    theirs.train(training)
    ours.train(training)
    length = 150  # not a block multiple; above the fallback bound
    inputs = batch(name, length)
    labels = labels_for(name, inputs, num_labels=3)
    their_embeds, our_embeds = _embeds(theirs, inputs), _embeds(ours, inputs)
    expected = _run(theirs, name, inputs, labels, their_embeds)
    got = _run(ours, name, inputs, labels, our_embeds)
    assert name == "BigBirdModel" or got.loss is not None
    assert_outputs_close(expected, got, length)
    torch.testing.assert_close(our_embeds.grad, their_embeds.grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("attention_type", ["original_full", "block_sparse"])
def test_dropout_draws_the_masks_transformers_draws_under_the_same_seed(name, attention_type, tmp_path):
    """Fine-tuning with dropout reproduces Transformers' run step for step: same seed, same masks, same loss.

    (From input_ids: given inputs_embeds, Transformers embeds its block padding through the dropout first.)"""
    theirs, ours = pair(name, tmp_path, attention_type=attention_type, num_labels=3, hidden_dropout_prob=0.2,
                        attention_probs_dropout_prob=0.2)
    inputs = batch(name, 150)
    extra = labels_for(name, inputs, num_labels=3)
    if name == "BigBirdForQuestionAnswering":
        extra["question_lengths"] = torch.tensor([[4], [4]])

    def loss_of(model):
        out = model(**inputs, **extra)
        return out.loss if name != "BigBirdModel" else out.last_hidden_state[..., 0].sum() + out.pooler_output.sum()

    assert_same_dropout_draws(theirs, ours, loss_of)


@pytest.mark.parametrize("attention_type,training", [("original_full", False), ("block_sparse", True)])
def test_attention_probabilities_match_transformers(attention_type, training, tmp_path):
    # Transformers' eval-mode block-sparse probabilities count the duplicated key block 0 once (its rows do not
    # sum to 1); the training plan has no duplicates, so there the two must agree.
    theirs, ours = pair("BigBirdModel", tmp_path, attention_type=attention_type)
    theirs.train(training)
    ours.train(training)
    inputs = batch("BigBirdModel", 150)
    with torch.no_grad():
        expected = theirs(**inputs, output_attentions=True)
        got = ours(**inputs, output_attentions=True)
    assert_outputs_close(expected, got, 150)


def test_a_loss_on_the_attention_probabilities_alone_backpropagates_as_in_transformers(tmp_path):
    # The values get no gradient from such a loss: the fused q/k/v projection's backward must fill that third.
    theirs, ours = pair("BigBirdModel", tmp_path, attention_type="original_full")
    inputs = batch("BigBirdModel", 40)
    grads = []
    prefix = "encoder.layer.0.attention.self."
    for model in (theirs, ours):
        embeds = _embeds(model, inputs)
        out = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], output_attentions=True)
        out.attentions[0].square().sum().backward()
        weights = dict(model.named_parameters())
        value = weights[prefix + "value.weight"].grad
        assert value is None or not value.any()
        grads.append((embeds.grad, weights[prefix + "query.weight"].grad))
    assert grads[1][0].abs().sum() > 0
    for expected, got in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_block_sparse_probabilities_sum_to_one_with_duplicates_counted(training, tmp_path):
    _, ours = pair("BigBirdModel", tmp_path)
    ours.train(training)
    inputs = batch("BigBirdModel", 150)
    with torch.no_grad():
        got = ours(**inputs, output_attentions=True)
    assert len(got.attentions) == 2
    for probs in got.attentions:
        assert probs.shape == (2, 4, 150, 150)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 150), atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [BOUND - 1, BOUND, BOUND + 1, BOUND + 8, 101])
def test_lengths_around_the_fallback_bound(length, tmp_path):
    theirs, ours = pair("BigBirdForMaskedLM", tmp_path)
    inputs = batch("BigBirdForMaskedLM", length)
    with torch.no_grad():
        expected = theirs(**inputs, output_hidden_states=True)
        got = ours(**inputs, output_hidden_states=True)
    assert_outputs_close(expected, got, length)


def test_short_input_then_long_input_on_the_same_model(tmp_path):
    theirs, ours = pair("BigBirdModel", tmp_path)
    for length in (20, 150, 30, 200):
        theirs.set_attention_type("block_sparse")  # undo Transformers' permanent switch (its issue 20031)
        inputs = batch("BigBirdModel", length)
        with torch.no_grad():
            assert_outputs_close(theirs(**inputs), ours(**inputs), length)
        assert ours.attention_type == "block_sparse"


@pytest.mark.parametrize("length", [1024, 3072])
def test_legacy_lengths_with_4096_positions_in_training(length, tmp_path):
    theirs, ours = pair("BigBirdModel", tmp_path, max_position_embeddings=4096, block_size=64, num_random_blocks=3,
                        hidden_size=16, num_attention_heads=2, num_hidden_layers=2, intermediate_size=16)
    theirs.train()
    ours.train()
    inputs = batch("BigBirdModel", length, batch_size=2, pad=70)
    with torch.no_grad():
        assert_outputs_close(theirs(**inputs), ours(**inputs), length)


def test_attention_type_can_be_switched_on_a_loaded_model(tmp_path):
    theirs, ours = pair("BigBirdForSequenceClassification", tmp_path)
    inputs = batch("BigBirdForSequenceClassification", 150)
    ours.set_attention_type("original_full")
    theirs.bert.set_attention_type("original_full")
    with torch.no_grad():
        assert_outputs_close(theirs(**inputs), ours(**inputs), 150)
    ours.set_attention_type("block_sparse")
    theirs.bert.set_attention_type("block_sparse")
    with torch.no_grad():
        assert_outputs_close(theirs(**inputs), ours(**inputs), 150)
    with pytest.raises(ValueError, match="original_full"):
        ours.set_attention_type("sparse")


def test_no_random_blocks_runs_the_plan_without_random_blocks(tmp_path, monkeypatch):
    config = our_config(num_random_blocks=0)
    model = bigbird.BigBirdModel(config).eval()
    inputs = batch("BigBirdModel", 60)  # bound is 5 * 8 = 40
    with torch.no_grad():
        got = model(**inputs).last_hidden_state
        monkeypatch.setattr("bigbird.models.attention.block_sparse_attention",
                            lambda q, k, v, plan, mask, return_probs: reference_attention(q, k, v, plan, mask)[0])
        expected = model(**inputs).last_hidden_state
    assert got.shape == (2, 60, 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_paper_plan_at_inference_equals_the_training_plan(tmp_path):
    _, ours = pair("BigBirdModel", tmp_path)
    inputs = batch("BigBirdModel", 150)
    with torch.no_grad():
        eval_out = ours(**inputs).last_hidden_state
        ours.set_random_plan("paper")
        paper_out = ours(**inputs).last_hidden_state
        ours.train()
        train_out = ours(**inputs).last_hidden_state
    torch.testing.assert_close(paper_out, train_out, atol=1e-6, rtol=0)
    assert (paper_out - eval_out).abs().max() > 1e-4


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    _, ours = pair("BigBirdForMaskedLM", tmp_path)
    ours.train()
    inputs = batch("BigBirdForMaskedLM", 150)
    labels = labels_for("BigBirdForMaskedLM", inputs)

    def grads():
        ours.zero_grad()
        ours(**inputs, **labels).loss.backward()
        return [p.grad.clone() for p in ours.parameters() if p.grad is not None]

    plain = grads()
    assert len(plain) > 20
    ours.gradient_checkpointing_enable()
    assert ours.is_gradient_checkpointing
    checkpointed = grads()
    assert len(checkpointed) == len(plain)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_causal_decoder_matches_transformers_and_its_cache(tmp_path):
    theirs, ours = pair("BigBirdForCausalLM", tmp_path, is_decoder=True, attention_type="original_full")
    inputs = batch("BigBirdForCausalLM", 24)
    labels = labels_for("BigBirdForCausalLM", inputs)
    with torch.no_grad():
        expected = theirs(**inputs, **labels, use_cache=False)
        got = ours(**inputs, **labels, use_cache=False)
    assert_outputs_close(expected, got, 24)

    ids = inputs["input_ids"][:1]
    with torch.no_grad():
        full = ours(ids).logits
        step = ours(ids[:, :10], use_cache=True)
        logits, cache = [step.logits], step.past_key_values
        for start, end in [(10, 11), (11, 12), (12, 17), (17, 24)]:
            step = ours(ids[:, start:end], past_key_values=cache, use_cache=True)
            logits.append(step.logits)
            cache = step.past_key_values
    torch.testing.assert_close(torch.cat(logits, dim=1), full, atol=1e-5, rtol=0)


def test_block_sparse_decoder_runs_causal_full_attention_and_warns(tmp_path):
    theirs, _ = pair("BigBirdForCausalLM", tmp_path, is_decoder=True, attention_type="original_full")
    config = tiny_config(is_decoder=True)  # BigBirdConfig's default attention_type: block_sparse
    with CaptureLogger(logging.get_logger("bigbird.models.bigbird")) as captured:
        ours = bigbird.BigBirdForCausalLM.from_pretrained(tmp_path, config=config).eval()
    assert "runs causal full attention" in captured.out
    ids = batch("BigBirdForCausalLM", 150)["input_ids"]
    changed = ids.clone()
    changed[:, -1] = 7
    with torch.no_grad():
        got = ours(ids, use_cache=False).logits
        torch.testing.assert_close(got, theirs(ids, use_cache=False).logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(changed, use_cache=False).logits[:, :-1], got[:, :-1], atol=1e-6, rtol=0)


def test_outputs_index_like_tuples(tmp_path):
    _, ours = pair("BigBirdForSequenceClassification", tmp_path)
    inputs = batch("BigBirdForSequenceClassification", 20)
    with torch.no_grad():
        out = ours(**inputs, labels=torch.tensor([0, 1]))
        plain = ours(**inputs, return_dict=False)
    assert out[0] is out.loss and out[1] is out.logits and out["logits"] is out.logits
    assert len(out) == 2 and list(out.keys()) == ["loss", "logits"]
    torch.testing.assert_close(plain[0], out.logits)


@pytest.mark.parametrize("problem_type,labels", [
    ("regression", torch.tensor([[0.5, 1.0, -1.0], [0.0, 2.0, 1.0]])),
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])),
])
def test_classification_losses_by_problem_type(problem_type, labels, tmp_path):
    theirs, ours = pair("BigBirdForSequenceClassification", tmp_path, num_labels=3, problem_type=problem_type)
    inputs = batch("BigBirdForSequenceClassification", 30)
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs, labels=labels).loss, theirs(**inputs, labels=labels).loss,
                                   atol=1e-6, rtol=0)


def test_question_answering_finds_question_length_from_sep(tmp_path):
    theirs, ours = pair("BigBirdForQuestionAnswering", tmp_path)
    inputs = batch("BigBirdForQuestionAnswering", 150)
    labels = labels_for("BigBirdForQuestionAnswering", inputs)
    with torch.no_grad():
        expected, got = theirs(**inputs, **labels), ours(**inputs, **labels)
    assert_outputs_close(expected, got, 150)
    assert (got.start_logits[:, 1:4] < -1e5).all() and (got.start_logits[:, 0] > -1e5).all()


def _full_size_configs():
    base = dict(vocab_size=50358, max_position_embeddings=4096, attention_type="block_sparse")
    return {
        "roberta-base": dict(base, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=3072),
        "roberta-large": dict(base, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096),
    }


@pytest.mark.parametrize("size", ["roberta-base", "roberta-large"])
def test_full_size_key_names_and_shapes_equal_transformers(size):
    values = _full_size_configs()[size]
    for name in CLASS_NAMES:
        with torch.device("meta"):
            theirs = getattr(transformers, name)(transformers.BigBirdConfig(**values))
            ours = getattr(bigbird, name)(bigbird.BigBirdConfig(**values))
        expected = {key: tuple(t.shape) for key, t in theirs.state_dict().items()}
        assert {key: tuple(t.shape) for key, t in ours.state_dict().items()} == expected, name


@pytest.mark.parametrize("make_inputs,max_positions,message", [
    (lambda: {"input_ids": torch.tensor([[5, 99, 7]])}, 512, r"input_ids contains 99, outside \[0, 99\).*tokenizer"),
    (lambda: {"input_ids": torch.ones(1, 513, dtype=torch.long)}, 512,
     r"513 tokens.*, more than max_position_embeddings = 512: truncate"),
    (lambda: {"input_ids": torch.ones(1, 509, dtype=torch.long)}, 510, r"509 tokens \(padded to 512"),
    (lambda: {"input_ids": torch.ones(2, 20, dtype=torch.long), "attention_mask": torch.ones(2, 21)}, 512,
     r"attention_mask must have shape .* \(2, 20\), got \(2, 21\)"),
    (lambda: {"input_ids": torch.ones(20, dtype=torch.long)}, 512, r"\(batch, length\).*input_ids\[None\]"),
    (lambda: {}, 512, "exactly one of input_ids and inputs_embeds"),
    (lambda: {"input_ids": torch.ones(1, 9, dtype=torch.long), "token_type_ids": torch.full((1, 9), 2)}, 512,
     r"token_type_ids contains 2"),
])
def test_bad_inputs_are_named_before_compute(make_inputs, max_positions, message, monkeypatch):
    model = bigbird.BigBirdModel(our_config(max_position_embeddings=max_positions)).eval()
    monkeypatch.setattr(model.embeddings, "forward", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises(ValueError, match=message):
        model(**make_inputs())


def test_explicit_token_types_and_positions_are_padded_like_transformers(tmp_path):
    theirs, ours = pair("BigBirdForTokenClassification", tmp_path)
    inputs = batch("BigBirdForTokenClassification", 150)
    inputs["token_type_ids"] = (torch.arange(150) > 60).long().expand(2, 150)
    inputs["position_ids"] = (torch.arange(150) + 3).expand(2, 150)
    with torch.no_grad():
        assert_outputs_close(theirs(**inputs, output_hidden_states=True), ours(**inputs, output_hidden_states=True),
                             150)
