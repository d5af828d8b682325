"""from_pretrained / save_pretrained: Transformers' own loading under our classes, and the errors we add before it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers

import bigbird
from bigbird_oracle import assert_outputs_close, batch, pair, tiny_config


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def test_sharded_safetensors_load_with_transformers_numbers(tmp_path):
    theirs = transformers.BigBirdForMaskedLM(tiny_config()).eval()
    theirs.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours = bigbird.BigBirdForMaskedLM.from_pretrained(tmp_path)
    inputs = batch("BigBirdForMaskedLM", 150)
    torch.testing.assert_close(_logits(ours, inputs), _logits(theirs, inputs), atol=1e-5, rtol=0)


def test_sharded_pytorch_bin_loads(tmp_path):
    theirs = transformers.BigBirdForSequenceClassification(tiny_config(num_labels=3)).eval()
    theirs.config.save_pretrained(tmp_path)
    state = theirs.state_dict()
    names = sorted(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    for file, keys in shards.items():
        torch.save({key: state[key] for key in keys}, tmp_path / file)
    index = {"metadata": {}, "weight_map": {key: file for file, keys in shards.items() for key in keys}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    ours = bigbird.BigBirdForSequenceClassification.from_pretrained(tmp_path)
    inputs = batch("BigBirdForSequenceClassification", 100)
    torch.testing.assert_close(_logits(ours, inputs), _logits(theirs, inputs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_dtype_loads_bfloat16_and_saves_again(keyword, tmp_path):
    transformers.BigBirdForMaskedLM(tiny_config()).save_pretrained(tmp_path / "fp32")
    ours = bigbird.BigBirdForMaskedLM.from_pretrained(tmp_path / "fp32", **{keyword: torch.bfloat16})
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    ours.save_pretrained(tmp_path / "bf16")
    again = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert {p.dtype for p in again.parameters()} == {torch.bfloat16}
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"


def test_ignore_mismatched_sizes_and_loading_info(tmp_path):
    transformers.BigBirdForSequenceClassification(tiny_config(num_labels=3)).save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        bigbird.BigBirdForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    ours, info = bigbird.BigBirdForSequenceClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert ours.classifier.out_proj.weight.shape == (5, 32)
    assert {key for key, _, _ in info["mismatched_keys"]} >= {"classifier.out_proj.weight"}


def test_base_checkpoint_into_a_head_class_reports_the_new_head(tmp_path):
    transformers.BigBirdModel(tiny_config()).save_pretrained(tmp_path)
    _, info = bigbird.BigBirdForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert any(key.startswith("qa_classifier.") for key in info["missing_keys"])


def test_subfolder_and_config_overrides(tmp_path):
    transformers.BigBirdModel(tiny_config()).save_pretrained(tmp_path / "nested")
    ours = bigbird.BigBirdModel.from_pretrained(tmp_path, subfolder="nested", attention_type="original_full")
    assert ours.config.attention_type == "original_full"


def test_resize_token_embeddings_and_state_dict_save(tmp_path):
    theirs, ours = pair("BigBirdForMaskedLM", tmp_path / "a")
    ours.resize_token_embeddings(120)
    theirs.resize_token_embeddings(120)
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    inputs = batch("BigBirdForMaskedLM", 100)
    assert _logits(ours, inputs).shape[-1] == 120
    ours.save_pretrained(tmp_path / "b", state_dict=ours.state_dict(), max_shard_size="30KB")
    reloaded = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path / "b").eval()
    torch.testing.assert_close(_logits(reloaded, inputs), _logits(ours, inputs), atol=1e-5, rtol=0)


def test_random_plan_is_saved_and_reloaded(tmp_path):
    _, ours = pair("BigBirdModel", tmp_path / "a")
    ours.set_random_plan("paper")
    ours.save_pretrained(tmp_path / "b")
    assert bigbird.BigBirdModel.from_pretrained(tmp_path / "b").config.random_plan == "paper"
    with pytest.raises(ValueError, match="random_plan must be 'transformers'"):
        ours.set_random_plan("random")


def _hub_cache(root, repo_id: str, source):
    """A Hugging Face cache holding `source` as the snapshot of `repo_id` (the layout huggingface_hub writes)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return root


def test_hub_id_loads_from_the_local_cache_offline(tmp_path):
    theirs = transformers.BigBirdForMaskedLM(tiny_config()).eval()
    theirs.save_pretrained(tmp_path / "saved")
    cache = _hub_cache(tmp_path / "cache", "someone/tiny-bigbird", tmp_path / "saved")
    ours = bigbird.BigBirdForMaskedLM.from_pretrained("someone/tiny-bigbird", cache_dir=cache)
    inputs = batch("BigBirdForMaskedLM", 100)
    torch.testing.assert_close(_logits(ours, inputs), _logits(theirs, inputs), atol=1e-5, rtol=0)


def test_uncached_id_offline_says_it_is_not_in_the_cache_and_how_to_get_it(tmp_path):
    with pytest.raises(OSError, match=rf"nor a model in the local Hugging Face cache \({tmp_path}\).*"
                                      r"`hf download someone/absent`"):
        bigbird.BigBirdModel.from_pretrained("someone/absent", cache_dir=tmp_path)


@pytest.mark.parametrize("setup,match", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "has no config.json"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{not json")), r"config.json is damaged: not valid JSON"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("[1, 2]")), "holds a JSON list"),
    (lambda d: transformers.BertModel(transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)).save_pretrained(d),
     r"is a 'bert' checkpoint, but BigBirdModel loads 'big_bird' checkpoints"),
])
def test_bad_checkpoints_are_named_before_loading_weights(setup, match, tmp_path):
    directory = tmp_path / "model"
    setup(directory)
    with pytest.raises((ValueError, OSError), match=match):
        bigbird.BigBirdModel.from_pretrained(directory)


def test_pegasus_checkpoint_is_refused_by_a_bigbird_class_and_vice_versa(tmp_path):
    transformers.BigBirdModel(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'big_bird' checkpoint, but BigBirdPegasusModel loads 'bigbird_pegasus'"):
        bigbird.BigBirdPegasusModel.from_pretrained(tmp_path)


def test_outputs_hidden_states_follow_the_config(tmp_path):
    theirs, ours = pair("BigBirdForTokenClassification", tmp_path, output_hidden_states=True)
    inputs = batch("BigBirdForTokenClassification", 150)
    with torch.no_grad():
        got = ours(**inputs)
        assert got.hidden_states is not None and len(got.hidden_states) == 3
        assert_outputs_close(theirs(**inputs), got, 150)
