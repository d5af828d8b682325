"""Tiny checkpoints and data files for the training tests: a word-level tokenizer over a few dozen made-up
words, tiny BigBird / BigBird-Pegasus models written by Transformers' own classes (the test oracle), and a
synthetic long-range classification task whose label is a marker word planted beyond token 1,000 of a
2,048-token document."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors

FILLER = [f"w{i}" for i in range(24)]
MARKERS = {"alpha": "m0", "beta": "m1", "gamma": "m2", "delta": "m3"}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "</s>"]
LENGTH = 2048  # tokens with [CLS] and [SEP]


def write_tokenizer(directory: Path, model_max_length: int = LENGTH) -> Path:
    """A WordLevel tokenizer.json ([CLS] text [SEP], pairs with a second [SEP]) saved as a checkpoint has it."""
    words = SPECIALS + FILLER + list(MARKERS.values()) + ["the", "answer", "is", "who", "what", "where", "."]
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    wrapped = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", eos_token="</s>", model_max_length=model_max_length)
    wrapped.save_pretrained(directory)
    return directory


def tiny_bigbird(directory: Path, *, layers: int = 1, hidden: int = 32, positions: int = LENGTH, block_size: int = 32,
                 dropout: float = 0.0, model_max_length: int | None = None, heads: int = 2, random_blocks: int = 2,
                 position_scale: float = 1.0) -> Path:
    """A random base BigBird (no head) with the word-level tokenizer: heads are initialised when training starts.
    `position_scale` multiplies the initial position embeddings (0: they start at zero and are learned)."""
    write_tokenizer(directory, model_max_length or positions)
    config = transformers.BigBirdConfig(
        vocab_size=len(SPECIALS) + len(FILLER) + len(MARKERS) + 7, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=positions,
        block_size=block_size, num_random_blocks=random_blocks, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, pad_token_id=0, sep_token_id=3)
    model = transformers.BigBirdModel(config)
    if position_scale != 1.0:
        with torch.no_grad():
            model.embeddings.position_embeddings.weight.mul_(position_scale)
    model.save_pretrained(directory)
    return directory


def tiny_classifier(directory: Path, labels: list[str], positions: int = 256) -> Path:
    """A random BigBird classifier whose head is named for `labels`, as a fine-tuned checkpoint is."""
    write_tokenizer(directory, positions)
    config = transformers.BigBirdConfig(
        vocab_size=len(SPECIALS) + len(FILLER) + len(MARKERS) + 7, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=positions, block_size=16,
        pad_token_id=0, sep_token_id=3, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    transformers.BigBirdForSequenceClassification(config).save_pretrained(directory)
    return directory


def tiny_pegasus(directory: Path, positions: int = 256) -> Path:
    """A random BigBird-Pegasus summarizer with the word-level tokenizer ([PAD] 0, </s> 5)."""
    write_tokenizer(directory, positions)
    config = transformers.BigBirdPegasusConfig(
        vocab_size=len(SPECIALS) + len(FILLER) + len(MARKERS) + 7, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=positions, block_size=16, num_random_blocks=2, dropout=0.0, attention_dropout=0.0,
        pad_token_id=0, eos_token_id=5, decoder_start_token_id=0)
    transformers.BigBirdPegasusForConditionalGeneration(config).save_pretrained(directory)
    return directory


def long_range_records(count: int, seed: int, length: int = LENGTH, plant_from: int = 1000,
                       run: int = 1) -> list[dict]:
    """Documents of `length` - 2 filler words with a marker word planted (`run` times in a row) at word
    `plant_from` or later; the label names the marker."""
    rng = random.Random(seed)
    names = list(MARKERS)
    records = []
    for _ in range(count):
        words = [rng.choice(FILLER) for _ in range(length - 2)]
        label = rng.choice(names)
        start = rng.randrange(plant_from, length - 1 - run)
        words[start:start + run] = [MARKERS[label]] * run
        records.append({"text": " ".join(words), "label": label})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def train_until_crash(settings, steps: int) -> None:
    """Run `bigbird.training.loop.train(settings)` and interrupt it (KeyboardInterrupt) as its step `steps` starts,
    as a killed run would stop: what it saved before stays on disk."""
    import pytest

    from bigbird.training.loop import _Trainer, train

    step, calls = _Trainer._step, []

    def crashing(self, group):
        calls.append(1)
        if len(calls) == steps:
            raise KeyboardInterrupt
        return step(self, group)

    _Trainer._step = crashing
    try:
        with pytest.raises(KeyboardInterrupt):
            train(settings)
    finally:
        _Trainer._step = step
