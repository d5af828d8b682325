"""Warm-starting BigBird from tiny random BERT and RoBERTa checkpoints written by Transformers (the oracle)."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
import transformers

import bigbird
from bigbird.cli import main
from bigbird.warm_start import warm_start
from tiny_checkpoints import made_up_text
from warm_start_sources import write_bert, write_roberta

LENGTH, BLOCK, RANDOM = 256, 16, 2  # full attention up to (5 + 2 * 2) * 16 = 144 tokens
WRITERS = {"bert": write_bert, "roberta": write_roberta}
CASES = [  # (family, source architecture, BigBird class, output compared, head weights carried exactly)
    ("bert", "BertModel", "BigBirdModel", "last_hidden_state"),
    ("bert", "BertForMaskedLM", "BigBirdForMaskedLM", "logits"),
    ("bert", "BertForPreTraining", "BigBirdForPreTraining", "seq_relationship_logits"),
    ("bert", "BertForTokenClassification", "BigBirdForTokenClassification", "logits"),
    ("bert", "BertForMultipleChoice", "BigBirdForMultipleChoice", "logits"),
    ("roberta", "RobertaModel", "BigBirdModel", "last_hidden_state"),
    ("roberta", "RobertaForMaskedLM", "BigBirdForMaskedLM", "logits"),
    ("roberta", "RobertaForTokenClassification", "BigBirdForTokenClassification", "logits"),
]


def _warm(family: str, architecture: str, root, **config):
    source = WRITERS[family](root / architecture, architecture, **config)
    out = root / f"{architecture}-bigbird"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warm_start(source, out, max_length=LENGTH, block_size=BLOCK, num_random_blocks=RANDOM)
    return source, out, [str(record.message) for record in caught]


def _inputs(family: str, choices: bool = False) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 150, (2, 24), generator=generator)
    ids[:, 0] = 0 if family == "roberta" else 2  # <s> / [CLS]
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    if choices:
        return {"input_ids": ids[None].repeat(2, 1, 1), "attention_mask": mask[None].repeat(2, 1, 1)}
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("family,architecture,class_name,field", CASES)
def test_warm_started_model_equals_source_on_short_inputs(tmp_path, family, architecture, class_name, field):
    source, out, _ = _warm(family, architecture, tmp_path)
    inputs = _inputs(family, choices=architecture.endswith("MultipleChoice"))
    expected_model = getattr(transformers, architecture).from_pretrained(source).eval()
    ours = getattr(bigbird, class_name).from_pretrained(out)
    theirs, info = getattr(transformers, class_name).from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    with torch.no_grad():
        expected = getattr(expected_model(**inputs), field)
        got = getattr(ours(**inputs), field)
        oracle = getattr(theirs.eval()(**inputs), field)
    valid = inputs["attention_mask"].bool() if field != "seq_relationship_logits" and expected.dim() == 3 \
        else torch.ones(expected.shape[:1], dtype=torch.bool)
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(oracle[valid], got[valid], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_position_table_is_tiled_past_the_offset(tmp_path, family):
    architecture = "BertModel" if family == "bert" else "RobertaModel"
    source, out, _ = _warm(family, architecture, tmp_path)
    table = getattr(transformers, architecture).from_pretrained(source).embeddings.position_embeddings.weight
    offset = 2 if family == "roberta" else 0
    usable = table.shape[0] - offset
    ours = bigbird.BigBirdModel.from_pretrained(out).embeddings.position_embeddings.weight
    assert ours.shape[0] == LENGTH
    for position in (0, usable - 1, usable, LENGTH - 1):
        torch.testing.assert_close(ours[position], table[offset + position % usable], atol=0, rtol=0)
    config = json.loads((out / "config.json").read_text())
    assert config["attention_type"] == "block_sparse" and config["max_position_embeddings"] == LENGTH
    assert config["hidden_act"] == "gelu" and config["pad_token_id"] == (1 if family == "roberta" else 0)
    assert config["layer_norm_eps"] == 1e-12 and config["type_vocab_size"] == 2


def test_long_input_runs_block_sparse_like_transformers(tmp_path):
    _, out, _ = _warm("roberta", "RobertaModel", tmp_path)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 150, (1, LENGTH), generator=generator)
    ours = bigbird.BigBirdModel.from_pretrained(out)
    theirs = transformers.BigBirdModel.from_pretrained(out).eval()
    with torch.no_grad():
        got = ours(input_ids=ids).last_hidden_state
        expected = theirs(input_ids=ids).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_sequence_classifier_is_carried_with_a_warning(tmp_path):
    source, out, messages = _warm("bert", "BertForSequenceClassification", tmp_path, num_labels=3)
    theirs = transformers.BertForSequenceClassification.from_pretrained(source)
    ours = bigbird.BigBirdForSequenceClassification.from_pretrained(out)
    torch.testing.assert_close(ours.classifier.out_proj.weight, theirs.classifier.weight, atol=0, rtol=0)
    torch.testing.assert_close(ours.classifier.dense.weight, theirs.bert.pooler.dense.weight, atol=0, rtol=0)
    assert ours.config.num_labels == 3
    assert any("tanh" in message for message in messages)
    inputs = _inputs("bert")
    with torch.no_grad():
        expected = theirs.bert(**inputs).last_hidden_state
        got = ours.bert(**inputs).last_hidden_state
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5)


def test_question_answering_head_names_its_new_weights(tmp_path):
    source, out, messages = _warm("roberta", "RobertaForQuestionAnswering", tmp_path)
    theirs = transformers.RobertaForQuestionAnswering.from_pretrained(source)
    ours = bigbird.BigBirdForQuestionAnswering.from_pretrained(out)
    torch.testing.assert_close(ours.qa_classifier.qa_outputs.weight, theirs.qa_outputs.weight, atol=0, rtol=0)
    assert any("qa_classifier.intermediate.dense.weight" in message for message in messages)


def test_head_bigbird_lacks_is_named(tmp_path):
    _, out, messages = _warm("bert", "BertForNextSentencePrediction", tmp_path)
    assert any("BertForNextSentencePrediction" in m and "cls.seq_relationship.weight" in m for m in messages)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BigBirdModel"]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_source_tokenizer_is_kept_with_the_new_length(tmp_path, family):
    architecture = "BertForMaskedLM" if family == "bert" else "RobertaForMaskedLM"
    source, out, _ = _warm(family, architecture, tmp_path)
    ours = transformers.AutoTokenizer.from_pretrained(out)
    theirs = transformers.AutoTokenizer.from_pretrained(source)
    assert type(ours) is type(theirs) and ours.model_max_length == LENGTH
    texts = [made_up_text(40, 3) + f" the {ours.mask_token} fox.", "Quick  brown fox!"]
    encoded = ours(texts, padding=True)
    assert encoded["input_ids"] == theirs(texts, padding=True)["input_ids"]
    for ids in encoded["input_ids"]:
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    assert (ours.mask_token_id, ours.pad_token_id, ours.sep_token_id) == \
        (theirs.mask_token_id, theirs.pad_token_id, theirs.sep_token_id)
    result = bigbird.fill_mask([f"the quick brown fox {ours.mask_token} over the dog"], model=str(out), top_k=2)
    assert len(result[0]["masks"][0]) == 2


def test_bad_sources_and_lengths(tmp_path):
    source = write_bert(tmp_path / "bert")
    with pytest.raises(ValueError, match="not a multiple of the block size"):
        warm_start(source, tmp_path / "a", max_length=100, block_size=16)
    with pytest.raises(ValueError, match="shorter than the source's 64 positions"):
        warm_start(source, tmp_path / "b", max_length=32, block_size=16)
    other = tmp_path / "electra"
    shutil.copytree(source, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "electra"}))
    with pytest.raises(ValueError, match="'electra' checkpoint: warm-start reads BERT"):
        warm_start(other, tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        warm_start(tmp_path / "missing", tmp_path / "d")


def test_cli_warm_start(tmp_path, capsys):
    source = write_roberta(tmp_path / "roberta")
    assert main(["warm-start", str(source), "--out", str(tmp_path / "out"), "--max-length", "128",
                 "--block-size", "16"]) == 0
    assert bigbird.BigBirdModel.from_pretrained(tmp_path / "out").config.max_position_embeddings == 128
    assert main(["warm-start", str(source), "--out", str(tmp_path / "bad"), "--max-length", "100",
                 "--block-size", "16"]) == 1
    assert "not a multiple of the block size 16" in capsys.readouterr().err
