"""Tiny random checkpoints for the pipeline, CLI and README tests, written by Transformers (the test oracle).

Each directory holds a Transformers model (`save_pretrained`) and the Transformers tokenizer of a SentencePiece
model trained here, as a checkpoint downloaded from the Hub would. Windows are short (`max_position_embeddings`
128, block size 8, 2 random blocks) so that documents of a few hundred characters span several windows and
windows longer than 72 tokens run block-sparse attention.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from tokenizer_fixtures import train_spm, write_corpus

WINDOW = 128
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=WINDOW, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
               attention_probs_dropout_prob=0.0)
PEGASUS = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
               encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=WINDOW, block_size=8,
               num_random_blocks=2, dropout=0.0, attention_dropout=0.0)


def _bigbird(name: str, tokenizer, directory: Path, **extra) -> Path:
    config = transformers.BigBirdConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                        sep_token_id=tokenizer.sep_token_id, **ENCODER, **extra)
    getattr(transformers, name)(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _pegasus_config(tokenizer, **extra) -> transformers.BigBirdPegasusConfig:
    return transformers.BigBirdPegasusConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                             eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0,
                                             **PEGASUS, **extra)


def _pegasus_classifier(tokenizer, directory: Path) -> Path:
    config = _pegasus_config(tokenizer, id2label=LABELS, label2id={label: i for i, label in LABELS.items()})
    transformers.BigBirdPegasusForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _pegasus(tokenizer, directory: Path) -> Path:
    model = transformers.BigBirdPegasusForConditionalGeneration(_pegasus_config(tokenizer)).eval()
    model.generation_config = transformers.GenerationConfig(
        max_length=12, min_length=3, num_beams=2, length_penalty=0.8, no_repeat_ngram_size=3,
        decoder_start_token_id=0, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build(root: Path) -> dict[str, Path]:
    """Checkpoint directories under `root`: 'classify', 'qa', 'fill-mask' (BigBird), 'summarize' and
    'classify-pegasus' (BigBird-Pegasus)."""
    torch.manual_seed(0)
    corpus = write_corpus(root / "corpus.txt", lines=600)
    bigbird_tokenizer = transformers.BigBirdTokenizer.from_pretrained(train_spm(corpus, root / "bb", "bigbird").parent)
    pegasus_tokenizer = transformers.PegasusTokenizer.from_pretrained(train_spm(corpus, root / "pg", "pegasus").parent)
    return {
        "classify": _bigbird("BigBirdForSequenceClassification", bigbird_tokenizer, root / "classify",
                             id2label=LABELS, label2id={label: i for i, label in LABELS.items()}),
        "qa": _bigbird("BigBirdForQuestionAnswering", bigbird_tokenizer, root / "qa"),
        "fill-mask": _bigbird("BigBirdForMaskedLM", bigbird_tokenizer, root / "fill-mask"),
        "summarize": _pegasus(pegasus_tokenizer, root / "summarize"),
        "classify-pegasus": _pegasus_classifier(pegasus_tokenizer, root / "classify-pegasus"),
    }


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The tiny checkpoint directories, built once per test process (this fixture is imported by several modules)."""
    if not _BUILT:
        _BUILT.update(build(tmp_path_factory.mktemp("tiny-checkpoints")))
    return _BUILT


def made_up_text(words: int, seed: int = 0) -> str:
    """`words` made-up words of the kind the tokenizer was trained on, with a full stop every dozen words."""
    import random

    rng = random.Random(seed)
    syllables = ["ba", "ke", "lo", "mi", "nu", "ra", "se", "ti", "vo", "sha", "tre", "qua", "ng", "st"]
    out = []
    for index in range(words):
        out.append("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))))
        if index % 12 == 11:
            out[-1] += "."
    return " ".join(out)
