"""BigBird-Pegasus models against Transformers 5.23 (tiny random checkpoints, fp32, atol 1e-5)."""

from __future__ import annotations

import pytest
import torch
import transformers
from safetensors.torch import load_file

import bigbird
from dropout_checks import assert_same_dropout_draws
from pegasus_oracle import (BOUND, CLASS_NAMES, TINY, assert_outputs_close, encoder_batch, inputs_for, labels_for,
                            ours, save_tiny, theirs)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One saved tiny Transformers checkpoint per class (and use_bias setting), shared by the module's tests."""
    root = tmp_path_factory.mktemp("pegasus")
    saved = {}

    def get(name: str, use_bias: bool = False):
        key = (name, use_bias)
        if key not in saved:
            directory = root / f"{name}-{use_bias}"
            save_tiny(name, directory, use_bias=use_bias)
            saved[key] = directory
        return saved[key]

    return get


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("length", [BOUND, BOUND + 1, 100])
def test_every_class_matches_transformers_in_eval_mode(name, length, checkpoints):
    directory = checkpoints(name, use_bias=length == 100)
    hf, model = theirs(name, directory), ours(name, directory)
    inputs = inputs_for(name, length)
    with torch.no_grad():
        expected = hf(**inputs, use_cache=False, output_hidden_states=True)
        got = model(**inputs, use_cache=False, output_hidden_states=True)
    assert_outputs_close(expected, got, length)


@pytest.mark.parametrize("name,length", [(name, BOUND + 3) for name in CLASS_NAMES]
                         + [("BigBirdPegasusForConditionalGeneration", 128)])
def test_every_class_matches_transformers_in_train_mode_with_gradients(name, length, checkpoints):
    directory = checkpoints(name)
    hf, model = theirs(name, directory).train(), ours(name, directory).train()
    inputs = {**inputs_for(name, length), **labels_for(name, inputs_for(name, length))}
    expected, got = scalar(hf(**inputs)), scalar(model(**inputs))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    expected.backward()
    got.backward()
    their_grads = dict(hf.named_parameters())
    compared = 0
    for key, param in model.named_parameters():
        their = their_grads[key]
        if their.grad is None:
            assert param.grad is None or not param.grad.any(), key
            continue
        torch.testing.assert_close(param.grad, their.grad, atol=1e-5, rtol=0, msg=lambda m: f"{key}: {m}")
        compared += 1
    assert compared > 20


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_dropout_draws_the_masks_transformers_draws_under_the_same_seed(name, tmp_path):
    """All three dropouts on (hidden, attention, activation): the same seed gives Transformers' loss and gradients."""
    save_tiny(name, tmp_path, dropout=0.2, attention_dropout=0.2, activation_dropout=0.2)
    inputs = {**inputs_for(name, BOUND + 3), **labels_for(name, inputs_for(name, BOUND + 3))}
    assert_same_dropout_draws(theirs(name, tmp_path), ours(name, tmp_path), lambda model: scalar(model(**inputs)))


def scalar(output) -> torch.Tensor:
    """The loss, or for the base model a loss-like function of its decoder and encoder states."""
    if getattr(output, "loss", None) is not None:
        return output.loss
    return output.last_hidden_state.pow(2).mean() + output.encoder_last_hidden_state.pow(3).mean()


def test_gradient_checkpointing_gives_the_same_gradients(checkpoints):
    name = "BigBirdPegasusForConditionalGeneration"
    inputs = {**inputs_for(name, 90), **labels_for(name, inputs_for(name, 90))}
    grads = []
    for checkpointing in (False, True):
        model = ours(name, checkpoints(name)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model(**inputs).loss.backward()
        grads.append({key: p.grad for key, p in model.named_parameters()})
    assert model.is_gradient_checkpointing
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, atol=1e-6, rtol=0, msg=lambda m: f"{key}: {m}")


def test_attentions_match_transformers_in_both_attention_kinds(checkpoints):
    # Transformers' eval-mode block-sparse probabilities count the duplicated key block 0 once (rows do not sum to
    # 1); the training plan has no duplicates, so the block-sparse case is compared in training mode.
    name = "BigBirdPegasusForConditionalGeneration"
    for length, training in ((40, False), (96, True)):
        hf, model = theirs(name, checkpoints(name)).train(training), ours(name, checkpoints(name)).train(training)
        inputs = inputs_for(name, length)
        with torch.no_grad():
            expected = hf(**inputs, output_attentions=True, use_cache=False)
            got = model(**inputs, output_attentions=True, use_cache=False)
        assert_outputs_close(expected, got, length)
        assert got.cross_attentions[0].shape == (2, 4, 7, length)
    model.eval()
    with torch.no_grad():
        got = model(**inputs, output_attentions=True, use_cache=False)
    for probs in got.encoder_attentions:
        torch.testing.assert_close(probs.sum(-1)[0], torch.ones(4, 96), atol=1e-5, rtol=0)


def test_legacy_length_1024_in_training_uses_transformers_plan(tmp_path):
    name = "BigBirdPegasusModel"
    save_tiny(name, tmp_path, max_position_embeddings=4096, encoder_layers=1, decoder_layers=1)
    hf, model = theirs(name, tmp_path).train(), ours(name, tmp_path).train()
    inputs = inputs_for(name, 1024)
    with torch.no_grad():
        assert_outputs_close(hf(**inputs, use_cache=False), model(**inputs, use_cache=False), 1024)


def test_short_then_long_input_on_the_same_model_decides_attention_per_call(checkpoints):
    name = "BigBirdPegasusModel"
    model = ours(name, checkpoints(name))
    for length in (40, 100):
        inputs = inputs_for(name, length)
        with torch.no_grad():
            expected = theirs(name, checkpoints(name))(**inputs, use_cache=False)
            assert_outputs_close(expected, model(**inputs, use_cache=False), length)


def test_decoder_inputs_default_to_shifted_input_ids_and_labels(checkpoints):
    name = "BigBirdPegasusForConditionalGeneration"
    hf, model = theirs(name, checkpoints(name)), ours(name, checkpoints(name))
    inputs = encoder_batch(90)
    labels = labels_for(name, {"decoder_input_ids": torch.zeros(2, 9, dtype=torch.long)})["labels"]
    with torch.no_grad():
        assert_outputs_close(hf(**inputs, labels=labels), model(**inputs, labels=labels), 90)
        base_hf, base = theirs("BigBirdPegasusModel", checkpoints(name)), ours("BigBirdPegasusModel", checkpoints(name))
        assert_outputs_close(base_hf(**inputs, use_cache=False), base(**inputs, use_cache=False), 90)


def test_cached_decoding_equals_the_full_forward(checkpoints):
    name = "BigBirdPegasusForConditionalGeneration"
    hf, model = theirs(name, checkpoints(name)), ours(name, checkpoints(name))
    inputs = inputs_for(name, 90, target_length=6)
    decoder_ids = inputs.pop("decoder_input_ids")
    with torch.no_grad():
        full = model(**inputs, decoder_input_ids=decoder_ids, use_cache=False).logits
        encoder_outputs = model.get_encoder()(**inputs)
        cache, steps = None, []
        for t in range(decoder_ids.shape[1]):
            out = model(attention_mask=inputs["attention_mask"], encoder_outputs=encoder_outputs,
                        decoder_input_ids=decoder_ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits)
        expected = hf(**inputs, decoder_input_ids=decoder_ids).logits
    assert isinstance(cache, transformers.EncoderDecoderCache) and cache.get_seq_length() == decoder_ids.shape[1]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_save_pretrained_round_trips_through_transformers(name, checkpoints, tmp_path):
    model = ours(name, checkpoints(name))
    model.save_pretrained(tmp_path)
    hf = theirs(name, tmp_path)
    inputs = inputs_for(name, 80)
    with torch.no_grad():
        assert_outputs_close(hf(**inputs, use_cache=False), model(**inputs, use_cache=False), 80)
    saved = load_file(tmp_path / "model.safetensors")
    original = load_file(checkpoints(name) / "model.safetensors")
    assert sorted(saved) == sorted(original)


def test_tied_embeddings_and_final_logits_bias_load(checkpoints):
    model = ours("BigBirdPegasusForConditionalGeneration", checkpoints("BigBirdPegasusForConditionalGeneration"))
    assert model.lm_head.weight is model.model.shared.weight
    shared = model.model.shared.weight
    assert model.model.encoder.embed_tokens.weight is shared and model.model.decoder.embed_tokens.weight is shared
    original = load_file(checkpoints("BigBirdPegasusForConditionalGeneration") / "model.safetensors")
    torch.testing.assert_close(model.final_logits_bias, original["final_logits_bias"], atol=0, rtol=0)
    assert model.model.encoder.embed_positions.weight.shape == model.model.decoder.embed_positions.weight.shape
    assert not torch.equal(model.model.encoder.embed_positions.weight, model.model.decoder.embed_positions.weight)
    causal = ours("BigBirdPegasusForCausalLM", checkpoints("BigBirdPegasusForCausalLM"))
    assert causal.lm_head.weight is not causal.model.decoder.embed_tokens.weight


def test_full_size_arxiv_config_has_transformers_key_names_and_shapes():
    for name in CLASS_NAMES:
        with torch.device("meta"):
            model = getattr(bigbird, name)(bigbird.BigBirdPegasusConfig())
            hf = getattr(transformers, name)(transformers.BigBirdPegasusConfig())
        ours_state = {key: tuple(t.shape) for key, t in model.state_dict().items()}
        assert ours_state == {key: tuple(t.shape) for key, t in hf.state_dict().items()}, name


def test_bad_inputs_are_named_before_compute(checkpoints):
    name = "BigBirdPegasusForSequenceClassification"
    model = ours(name, checkpoints(name))
    inputs = encoder_batch(20)
    inputs["input_ids"][1] = 5
    with pytest.raises(ValueError, match="eos"):
        model(**inputs)
    too_long = torch.ones(1, TINY["max_position_embeddings"] + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.model(input_ids=too_long)
    with pytest.raises(ValueError, match="empty"):
        model.model(input_ids=torch.ones(0, 5, dtype=torch.long))


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_return_dict_none_gives_model_outputs_and_false_gives_tuples(name, checkpoints):
    model = ours(name, checkpoints(name))
    inputs = inputs_for(name, 40)
    with torch.no_grad():
        assert isinstance(model(**inputs, return_dict=None), transformers.utils.ModelOutput)
        assert isinstance(model(**inputs, return_dict=False), tuple)
