"""Bad configs, damaged checkpoint files, training targets that do not fit and nonsense generation settings: each is
a clear error (what is wrong, where, what to do) raised before the weights load or anything is computed."""

from __future__ import annotations

import inspect
import json
import os
import shutil

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import batch, tiny_config
from pegasus_oracle import TINY as PEGASUS_TINY


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Transformers BigBirdForMaskedLM saved whole and in shards: {'whole': dir, 'sharded': dir}."""
    root = tmp_path_factory.mktemp("saved")
    model = transformers.BigBirdForMaskedLM(tiny_config())
    model.save_pretrained(root / "whole")
    model.save_pretrained(root / "sharded", max_shard_size="20KB")
    return {"whole": root / "whole", "sharded": root / "sharded"}


def _copy(source, tmp_path):
    return shutil.copytree(source, tmp_path / "model")


def _edit_config(directory, **values):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


# --- configs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, rule", [
    ("num_hidden_layers", -1, "a whole number >= 1"),
    ("num_hidden_layers", 0, "a whole number >= 1"),
    ("num_attention_heads", 0, "a whole number >= 1"),
    ("num_attention_heads", 5, "a divisor of hidden_size = 32"),
    ("hidden_size", -32, "a whole number >= 1"),
    ("vocab_size", 0, "a whole number >= 1"),
    ("intermediate_size", 0, "a whole number >= 1"),
    ("max_position_embeddings", 0, "a whole number >= 1"),
    ("block_size", 0, "a whole number >= 1"),
    ("num_random_blocks", -2, "a whole number >= 0"),
    ("type_vocab_size", 0, "a whole number >= 1"),
    ("hidden_dropout_prob", 1.5, "a probability between 0 and 1"),
    ("hidden_act", "relu2x", "one of Transformers' activations"),
    ("layer_norm_eps", -1.0, "a number > 0"),
    ("pad_token_id", 99, "None or a token id below vocab_size = 99"),
    ("attention_type", "sparse", None),
])
@pytest.mark.parametrize("name", ["BigBirdModel", "BigBirdForSequenceClassification", "BigBirdForCausalLM"])
def test_a_bigbird_config_that_cannot_work_is_refused_when_the_model_is_built(name, field, value, rule):
    config = tiny_config(is_decoder=name == "BigBirdForCausalLM")
    setattr(config, field, value)
    match = rf"{field} = {value!r}.*must be {rule}" if rule else rf"{field} must be .*got {value!r}"
    with pytest.raises(ValueError, match=match):
        getattr(bigbird, name)(config)


@pytest.mark.parametrize("field, value", [
    ("d_model", -16), ("vocab_size", 0), ("encoder_layers", 0), ("decoder_layers", -1),
    ("encoder_attention_heads", 0), ("decoder_attention_heads", 3), ("encoder_ffn_dim", 0), ("decoder_ffn_dim", -5),
    ("num_random_blocks", -1), ("dropout", 2.0), ("activation_function", "nope"),
])
@pytest.mark.parametrize("name", ["BigBirdPegasusModel", "BigBirdPegasusForConditionalGeneration",
                                  "BigBirdPegasusForCausalLM"])
def test_a_pegasus_config_that_cannot_work_is_refused_when_the_model_is_built(name, field, value):
    config = transformers.BigBirdPegasusConfig(**PEGASUS_TINY)
    setattr(config, field, value)
    with pytest.raises(ValueError, match=rf"BigBirdPegasusConfig cannot build a model: {field} = {value!r}"):
        getattr(bigbird, name)(config)


def test_every_wrong_value_is_named_at_once():
    config = tiny_config()
    config.num_hidden_layers, config.block_size = -1, 0
    with pytest.raises(ValueError, match=r"num_hidden_layers = -1 .*; block_size = 0 "):
        bigbird.BigBirdModel(config)


@pytest.mark.parametrize("values, match", [
    (dict(block_size="8"), r"block_size = '8' \(it must be a whole number >= 1"),
    (dict(num_hidden_layers=-1), r"num_hidden_layers = -1"),
    (dict(num_attention_heads=0), r"num_attention_heads = 0"),
    (dict(num_random_blocks=1.5), r"num_random_blocks = 1.5"),
])
def test_config_json_values_are_checked_before_the_weights_load(values, match, saved, tmp_path):
    directory = _copy(saved["whole"], tmp_path)
    _edit_config(directory, **values)
    os.remove(directory / "model.safetensors")  # reaching the weights would fail differently
    with pytest.raises(ValueError, match=rf"{directory / 'config.json'} cannot build a model: {match}"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)


def test_from_pretrained_keyword_arguments_are_checked_too(saved):
    with pytest.raises(ValueError, match=r"num_hidden_layers = -1 .*pass the right value to from_pretrained"):
        bigbird.BigBirdForMaskedLM.from_pretrained(saved["whole"], num_hidden_layers=-1)
    with pytest.raises(ValueError, match=r"num_labels = 0"):
        bigbird.BigBirdForSequenceClassification.from_pretrained(saved["whole"], num_labels=0)


# --- checkpoint files ------------------------------------------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _truncate(path):
    """Half of the file, as a new file: a model loaded from the old one may still map it."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, match", [
    (_truncate, r"model.safetensors is truncated: its header describes \d+ bytes of tensor data, the file holds \d+"),
    (lambda p: p.write_text("<!DOCTYPE html><html><body>Sign in</body></html>"),
     r"model.safetensors \(\d+ bytes\) is not a safetensors file \(it starts with b'<!DOCTYP': a web page"),
    (lambda p: p.write_bytes(b""), r"model.safetensors \(0 bytes\) is not a safetensors file"),
    (lambda p: p.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}"),
     r"model.safetensors is damaged: its safetensors header is not a valid table of tensors"),
])
def test_a_damaged_safetensors_file_is_named(damage, match, saved, tmp_path):
    directory = _copy(saved["whole"], tmp_path)
    damage(directory / "model.safetensors")
    with pytest.raises(ValueError, match=rf"{directory}/{match}.*download it again"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)


def test_a_bin_file_with_pickled_code_is_refused_in_one_line_naming_it(saved, tmp_path):
    directory = _copy(saved["whole"], tmp_path)
    os.remove(directory / "model.safetensors")
    torch.save({"bert.embeddings.word_embeddings.weight": _Payload()}, directory / "pytorch_model.bin")
    with pytest.raises(ValueError) as error:
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{directory / 'pytorch_model.bin'} holds pickled code (")
    assert "only tensors" in message and "safetensors" in message


def test_a_bin_file_that_is_not_one_is_named(saved, tmp_path):
    directory = _copy(saved["whole"], tmp_path)
    os.remove(directory / "model.safetensors")
    (directory / "pytorch_model.bin").write_text("<html>not found</html>")
    with pytest.raises(ValueError, match=rf"{directory / 'pytorch_model.bin'} is not a PyTorch weights file"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)


def test_the_file_transformers_would_not_read_is_not_checked(saved, tmp_path):
    directory = _copy(saved["whole"], tmp_path)
    state = bigbird.BigBirdForMaskedLM.from_pretrained(directory).state_dict()
    torch.save(state, directory / "pytorch_model.bin")
    _truncate(directory / "model.safetensors")
    model = bigbird.BigBirdForMaskedLM.from_pretrained(directory, use_safetensors=False)
    torch.testing.assert_close(model.state_dict(), state)


@pytest.mark.parametrize("index, match", [
    ("{oops", r"model.safetensors.index.json is damaged: not valid JSON"),
    ('{"metadata": {}}', r"model.safetensors.index.json is damaged: it has no \"weight_map\" object"),
    ('{"weight_map": ["model-00001-of-00006.safetensors"]}',
     r"model.safetensors.index.json is damaged: it has no \"weight_map\" object"),
    ("[1, 2]", r"model.safetensors.index.json is damaged: it holds a JSON list"),
])
def test_a_damaged_shard_index_is_named(index, match, saved, tmp_path):
    directory = _copy(saved["sharded"], tmp_path)
    (directory / "model.safetensors.index.json").write_text(index)
    with pytest.raises(ValueError, match=rf"{directory}/{match}"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)


def test_missing_and_damaged_shards_are_named(saved, tmp_path):
    directory = _copy(saved["sharded"], tmp_path)
    first, second = sorted(directory.glob("model-*.safetensors"))[:2]
    _truncate(second)
    with pytest.raises(ValueError, match=rf"{second} is truncated"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)
    first.unlink()
    with pytest.raises(FileNotFoundError, match=rf"index.json lists shards that are not in {directory}: {first.name}"):
        bigbird.BigBirdForMaskedLM.from_pretrained(directory)


@pytest.mark.parametrize("text, match", [("{bad json", "not valid JSON"), ("[1]", "it holds a JSON list")])
def test_a_damaged_generation_config_is_named_not_skipped(text, match, seq2seq_dir, tmp_path):
    directory = _copy(seq2seq_dir, tmp_path)
    (directory / "generation_config.json").write_text(text)
    with pytest.raises(ValueError, match=rf"{directory / 'generation_config.json'} is damaged: {match}"):
        bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(directory)


# --- training targets -----------------------------------------------------------------------------------------

def _head(name: str, **config):
    return getattr(bigbird, name)(tiny_config(**config)).eval()


IDS = batch("BigBirdModel", 20)["input_ids"]
CASES = [
    ("BigBirdForSequenceClassification", dict(labels=torch.tensor([5, 0])),
     r"labels contains 5, outside \[0, 3\) \(num_labels = 3\): use class indices"),
    ("BigBirdForSequenceClassification", dict(labels=torch.tensor([1, 0, 2])),
     r"labels must hold one value per sequence, shape \(2,\), got \(3,\)"),
    ("BigBirdForSequenceClassification", dict(labels=[1, 0]), "labels must be a torch.Tensor, got list"),
    ("BigBirdForTokenClassification", dict(labels=torch.zeros(2, 19, dtype=torch.long)),
     r"labels must have the shape of the input ids \(batch, length\) = \(2, 20\), got \(2, 19\)"),
    ("BigBirdForTokenClassification", dict(labels=torch.full((2, 20), 7)), r"labels contains 7, outside \[0, 3\)"),
    ("BigBirdForQuestionAnswering", dict(start_positions=torch.tensor([1, 2, 3]), end_positions=torch.tensor([2, 3])),
     r"start_positions must hold one value per sequence, shape \(2,\), got \(3,\)"),
    ("BigBirdForQuestionAnswering", dict(start_positions=torch.tensor([1, 2])),
     "only start_positions was given: pass both start_positions and end_positions"),
    ("BigBirdForQuestionAnswering", dict(start_positions=torch.tensor([1., 2.]), end_positions=torch.tensor([2, 3])),
     r"start_positions must be integer ids \(torch.long\), got torch.float32"),
    ("BigBirdForMaskedLM", dict(labels=torch.full((2, 20), 500)), r"labels contains 500, outside \[0, 99\)"),
    ("BigBirdForPreTraining", dict(next_sentence_label=torch.tensor([2, 0])),
     r"next_sentence_label contains 2, outside \[0, 2\)"),
]


@pytest.mark.parametrize("name, targets, match", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_targets_that_do_not_fit_are_refused_before_compute(name, targets, match, monkeypatch):
    model = _head(name, num_labels=3)
    monkeypatch.setattr(model.bert, "forward", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises((ValueError, TypeError), match=match):
        model(input_ids=IDS, **targets)


def test_multiple_choice_label_beyond_the_choices():
    ids = batch("BigBirdForMultipleChoice", 20)["input_ids"]
    with pytest.raises(ValueError, match=r"labels contains 4, outside \[0, 3\) \(the number of choices = 3\)"):
        _head("BigBirdForMultipleChoice")(ids, labels=torch.tensor([4, 0]))


def test_pegasus_heads_check_their_targets(seq2seq_dir):
    config = transformers.BigBirdPegasusConfig(**PEGASUS_TINY, num_labels=3)
    ids = torch.tensor([[5, 6, 7, 1], [8, 9, 10, 1]])
    with pytest.raises(ValueError, match=r"labels contains 3, outside \[0, 3\)"):
        bigbird.BigBirdPegasusForSequenceClassification(config)(ids, labels=torch.tensor([3, 0]))
    with pytest.raises(ValueError, match=r"end_positions must hold one value per sequence"):
        bigbird.BigBirdPegasusForQuestionAnswering(config)(
            ids, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([1]))
    model = bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(seq2seq_dir)
    with pytest.raises(ValueError, match=r"labels must have shape \(batch, target length\) with batch = 2"):
        model(ids, labels=torch.tensor([[5, 6]]))
    with pytest.raises(ValueError, match=r"labels contains 500, outside \[0, 99\)"):
        model(ids, labels=torch.tensor([[5, 500], [5, 6]]))


def test_good_targets_still_give_transformers_losses():
    for name, targets in [("BigBirdForSequenceClassification", dict(labels=torch.tensor([2, -100]))),
                          ("BigBirdForQuestionAnswering", dict(start_positions=torch.tensor([1, 50]),
                                                               end_positions=torch.tensor([2, 3])))]:
        ours = _head(name, num_labels=3)
        theirs = getattr(transformers, name)(ours.config).eval()
        theirs.load_state_dict(ours.state_dict())
        torch.testing.assert_close(ours(IDS, **targets).loss, theirs(IDS, **targets).loss)


def test_forward_signatures_are_transformers_own():
    for name in ("BigBirdForSequenceClassification", "BigBirdForQuestionAnswering", "BigBirdPegasusForCausalLM"):
        ours, theirs = getattr(bigbird, name), getattr(transformers, name)
        assert inspect.signature(ours.forward) == inspect.signature(theirs.forward)
        assert inspect.signature(ours.__init__) == inspect.signature(ours.__init__.__wrapped__)


def test_targets_are_checked_under_peft_too():
    import peft

    model = peft.get_peft_model(_head("BigBirdForSequenceClassification", num_labels=3),
                                peft.LoraConfig(task_type="SEQ_CLS", target_modules=["query", "value"]))
    with pytest.raises(ValueError, match=r"labels contains 5, outside \[0, 3\)"):
        model(input_ids=IDS, labels=torch.tensor([5, 0]))


# --- generate() ----------------------------------------------------------------------------------------------

def test_prompt_ids_outside_the_vocabulary_are_refused_in_every_generating_class(seq2seq_dir, causal_dir):
    models = [bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(seq2seq_dir),
              bigbird.BigBirdPegasusForCausalLM.from_pretrained(causal_dir),
              _head("BigBirdForCausalLM", is_decoder=True, attention_type="original_full")]
    for model in models:
        with pytest.raises(ValueError, match=r"input_ids contains 500, outside \[0, 99\)"):
            model.generate(torch.tensor([[5, 6, 500]]), max_new_tokens=2)
        with pytest.raises(TypeError, match="input_ids must be a torch.Tensor of token ids, got list"):
            model.generate(input_ids=[[5, 6]], max_new_tokens=2)
    with pytest.raises(ValueError, match=r"decoder_input_ids contains 1000, outside \[0, 99\)"):
        models[0].generate(torch.tensor([[5, 6]]), decoder_input_ids=torch.tensor([[2, 1000]]), max_new_tokens=2)


@pytest.mark.parametrize("settings, match", [
    (dict(num_beams=2.5), r"num_beams must be a whole number >= 1, got 2.5 \(from model.generation_config"),
    (dict(min_length=30, max_length=10), r"min_length = 30 \(from model.generation_config.*max_length = 10"),
    (dict(do_sample=True, top_p=2.0), r"top_p must be a number in \(0, 1\]"),
])
def test_the_models_own_generation_settings_are_checked(settings, match, seq2seq_dir, tmp_path):
    directory = _copy(seq2seq_dir, tmp_path)
    transformers.GenerationConfig(**settings).save_pretrained(directory)
    model = bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(directory)
    with pytest.raises(ValueError, match=match):
        model.generate(torch.tensor([[5, 6]]))


def test_max_new_tokens_overrides_a_shorter_max_length_without_a_refusal(seq2seq_dir):
    model = bigbird.BigBirdPegasusForConditionalGeneration.from_pretrained(seq2seq_dir)
    model.generation_config.max_length = 2
    out = model.generate(torch.tensor([[5, 6, 7]]), min_length=4, max_new_tokens=5)
    assert out.shape[1] >= 4
    with pytest.raises(ValueError, match=r"min_length = 4 is larger than max_length = 2 \(from model.generation"):
        model.generate(torch.tensor([[5, 6, 7]]), min_length=4)
