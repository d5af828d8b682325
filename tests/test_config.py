"""BigBirdConfig: Transformers' field names and defaults, config.json round trips, checks."""

import dataclasses
import json

import pytest
import transformers

import bigbird


def test_fields_and_defaults_equal_transformers():
    theirs = transformers.BigBirdConfig().to_dict()
    ours = bigbird.BigBirdConfig()
    for field in dataclasses.fields(ours):
        assert field.name in theirs, field.name
        assert getattr(ours, field.name) == theirs[field.name], field.name
    assert ours.num_labels == 2


def test_reads_transformers_config_json_and_keeps_unknown_fields(tmp_path):
    theirs = transformers.BigBirdConfig(hidden_size=48, num_attention_heads=4, num_labels=3, block_size=16)
    theirs.save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values["custom_field"] = [1, 2]
    (tmp_path / "config.json").write_text(json.dumps(values))
    ours = bigbird.BigBirdConfig.from_pretrained(tmp_path)
    assert (ours.hidden_size, ours.block_size, ours.num_labels) == (48, 16, 3)
    assert ours.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert ours.custom_field == [1, 2]
    ours.save_pretrained(tmp_path / "again")
    written = json.loads((tmp_path / "again" / "config.json").read_text())
    assert written["custom_field"] == [1, 2] and written["model_type"] == "big_bird"
    reread = transformers.BigBirdConfig.from_pretrained(tmp_path / "again")
    assert (reread.hidden_size, reread.num_labels, reread.block_size) == (48, 3, 16)


def test_overrides_and_num_labels():
    config = bigbird.BigBirdConfig.from_dict({"model_type": "big_bird"}, num_labels=4, attention_type="original_full")
    assert config.num_labels == 4 and config.attention_type == "original_full"
    assert config.to_dict()["label2id"]["LABEL_3"] == 3


@pytest.mark.parametrize("values,message", [
    ({"attention_type": "sparse"}, "attention_type must be"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "not a multiple of num_attention_heads"),
    ({"num_random_blocks": -1}, "num_random_blocks at least 0"),
    ({"model_type": "bert"}, "'bert' model"),
])
def test_bad_configs_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        bigbird.BigBirdConfig.from_dict({"model_type": "big_bird", **values})
