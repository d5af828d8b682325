"""Loading and saving Transformers checkpoints: the key table, strictness, head/base transfers, file formats."""

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import bigbird
from bigbird.checkpoint import KeyTable
from bigbird.modeling_bigbird import BIGBIRD_KEYS
from bigbird_oracle import CLASS_NAMES, assert_outputs_close, batch, our_config, pair, tiny_config


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_key_table_is_a_bijection_onto_transformers_keys(name):
    ours = getattr(bigbird, name)(our_config())
    theirs = getattr(transformers, name)(tiny_config())
    prefixed = name != "BigBirdModel"
    mapped = {}
    for key in ours.state_dict():
        their_key = BIGBIRD_KEYS.to_theirs(key, prefixed=prefixed)
        assert their_key is not None, key
        assert BIGBIRD_KEYS.to_ours(their_key, prefixed=prefixed) == key
        mapped[their_key] = key
    assert len(mapped) == len(ours.state_dict())
    assert set(mapped) == set(theirs.state_dict()) - set(BIGBIRD_KEYS.aliases)


def test_key_table_rules_rename_whole_modules():
    table = KeyTable("base", base=(("layers.{i}.q", "encoder.layer.{i}.query"),), heads=(("head", "cls"),))
    assert table.to_theirs("base.layers.11.q.weight", prefixed=True) == "base.encoder.layer.11.query.weight"
    assert table.to_ours("cls.bias", prefixed=True) == "head.bias"
    assert table.to_theirs("layers.1.qx.weight", prefixed=False) is None


def test_save_pretrained_round_trips_through_transformers(tmp_path):
    theirs, ours = pair("BigBirdForMaskedLM", tmp_path / "a")
    ours.save_pretrained(tmp_path / "b")
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["model_type"] == "big_bird" and config["architectures"] == ["BigBirdForMaskedLM"]
    saved = load_file(tmp_path / "b" / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in saved and "bert.embeddings.word_embeddings.weight" in saved
    reloaded = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path / "b").eval()
    inputs = batch("BigBirdForMaskedLM", 150)
    with torch.no_grad():
        assert_outputs_close(reloaded(**inputs), ours(**inputs), 150)
        assert_outputs_close(theirs(**inputs), ours(**inputs), 150)


def test_untied_output_embeddings_are_saved_and_loaded(tmp_path):
    theirs, ours = pair("BigBirdForCausalLM", tmp_path / "a", tie_word_embeddings=False)
    assert ours.lm_head.decoder.weight is not ours.bert.embeddings.word.weight
    torch.testing.assert_close(ours.lm_head.decoder.weight, theirs.cls.predictions.decoder.weight)
    ours.save_pretrained(tmp_path / "b")
    assert "cls.predictions.decoder.weight" in load_file(tmp_path / "b" / "model.safetensors")


def test_base_checkpoint_into_head_class_initialises_the_head_with_a_warning(tmp_path):
    theirs, _ = pair("BigBirdModel", tmp_path)
    with pytest.warns(UserWarning, match=r"newly initialised: .*classifier\.dense\.weight"):
        ours = bigbird.BigBirdForSequenceClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(ours.bert.layers[1].ffn_up.weight, theirs.encoder.layer[1].intermediate.dense.weight)
    head = ours.classifier.dense.weight
    assert head.isfinite().all() and 0.005 < head.std() < 0.05
    assert (ours.classifier.out_proj.bias == 0).all()


def test_head_checkpoint_into_base_class(tmp_path):
    theirs, _ = pair("BigBirdForPreTraining", tmp_path)
    with pytest.warns(UserWarning, match=r"does not use: .*cls\.seq_relationship\.weight"):
        ours = bigbird.BigBirdModel.from_pretrained(tmp_path)
    inputs = batch("BigBirdModel", 150)
    with torch.no_grad():
        assert_outputs_close(theirs.bert(**inputs), ours(**inputs), 150)


def test_pretraining_checkpoint_into_question_answering(tmp_path):
    pair("BigBirdForPreTraining", tmp_path)
    with pytest.warns(UserWarning, match=r"qa_classifier\.qa_outputs\.weight"):
        ours = bigbird.BigBirdForQuestionAnswering.from_pretrained(tmp_path)
    assert ours.bert.pooler is None


def test_pytorch_bin_with_old_buffers_and_sharded_safetensors(tmp_path):
    theirs = transformers.BigBirdForMaskedLM(tiny_config()).eval()
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    (tmp_path / "bin").mkdir()
    shutil.copy(tmp_path / "sharded" / "config.json", tmp_path / "bin" / "config.json")
    state = dict(theirs.state_dict())
    state["bert.embeddings.position_ids"] = torch.arange(512)[None]
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    inputs = batch("BigBirdForMaskedLM", 150)
    with torch.no_grad():
        expected = theirs(**inputs)
        for directory in ("sharded", "bin"):
            ours = bigbird.BigBirdForMaskedLM.from_pretrained(tmp_path / directory)
            assert_outputs_close(expected, ours(**inputs), 150)


def test_dtype_device_and_eval_mode(tmp_path):
    pair("BigBirdModel", tmp_path)
    ours = bigbird.BigBirdModel.from_pretrained(tmp_path, dtype=torch.bfloat16, device="cpu")
    assert not ours.training
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    assert ours.device == torch.device("cpu")
    assert bigbird.BigBirdModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.float32


def test_hub_id_is_read_from_the_offline_cache(tmp_path):
    theirs, _ = pair("BigBirdModel", tmp_path / "src")
    snapshot = tmp_path / "cache" / "models--google--tiny-bigbird" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for file in ("config.json", "model.safetensors"):
        shutil.copy(tmp_path / "src" / file, snapshot / file)
    (tmp_path / "cache" / "models--google--tiny-bigbird" / "refs").mkdir()
    (tmp_path / "cache" / "models--google--tiny-bigbird" / "refs" / "main").write_text("a" * 40)
    ours = bigbird.BigBirdModel.from_pretrained("google/tiny-bigbird", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(ours.embeddings.word.weight, theirs.embeddings.word_embeddings.weight)


def test_config_overrides_reach_the_model(tmp_path):
    pair("BigBirdModel", tmp_path)
    ours = bigbird.BigBirdForSequenceClassification.from_pretrained(tmp_path, num_labels=5,
                                                                    attention_type="original_full")
    assert ours.classifier.out_proj.out_features == 5 and ours.bert.attention_type == "original_full"


# ---------------------------------------------------------------- bad checkpoints

def test_directory_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        bigbird.BigBirdModel.from_pretrained(tmp_path)


def test_checkpoint_of_another_model_type(tmp_path):
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' model.*class for its model type"):
        bigbird.BigBirdModel.from_pretrained(tmp_path)


def _edit_weights(directory, edit):
    path = directory / "model.safetensors"
    state = load_file(path)
    edit(state)
    save_file(state, path, metadata={"format": "pt"})


def test_missing_weight_is_named(tmp_path):
    pair("BigBirdModel", tmp_path)
    _edit_weights(tmp_path, lambda state: state.pop("encoder.layer.1.output.dense.weight"))
    with pytest.raises(ValueError, match=r"lacks weights .*: encoder\.layer\.1\.output\.dense\.weight\."):
        bigbird.BigBirdModel.from_pretrained(tmp_path)


def test_unexpected_weight_is_named(tmp_path):
    pair("BigBirdModel", tmp_path)
    _edit_weights(tmp_path, lambda state: state.update({"encoder.layer.0.adapter.weight": torch.zeros(2)}))
    with pytest.raises(ValueError, match=r"does not know: encoder\.layer\.0\.adapter\.weight"):
        bigbird.BigBirdModel.from_pretrained(tmp_path)


def test_shape_mismatch_is_named(tmp_path):
    pair("BigBirdModel", tmp_path)
    with pytest.raises(ValueError, match=r"embeddings\.word_embeddings\.weight: checkpoint \(99, 32\), model \(120, 32\)"):
        bigbird.BigBirdModel.from_pretrained(tmp_path, vocab_size=120)


def test_no_weights_file(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no weights"):
        bigbird.BigBirdModel.from_pretrained(tmp_path)
