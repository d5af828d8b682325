"""Tiny random BERT and RoBERTa checkpoints written by Transformers (the test oracle), with a WordPiece or
byte-level BPE tokenizer.json trained here by the `tokenizers` library."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from tiny_checkpoints import made_up_text

SIZES = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _corpus() -> list[str]:
    return [made_up_text(60, seed) for seed in range(40)] + ["The quick brown fox jumps over the lazy dog."] * 5


def wordpiece_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=SIZES["vocab_size"],
                                                                       special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tokenizer


def byte_bpe_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(_corpus(), trainers.BpeTrainer(
        vocab_size=SIZES["vocab_size"] + 60, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                            add_prefix_space=False)
    return tokenizer


def write_bert(directory: Path, architecture: str = "BertModel", **config) -> Path:
    """A tiny random BERT checkpoint of `architecture` (a transformers class name) with its tokenizer."""
    import torch
    import transformers

    tokenizer = wordpiece_tokenizer()
    torch.manual_seed(0)
    values = {**SIZES, "vocab_size": tokenizer.get_vocab_size(), "max_position_embeddings": 64, **config}
    model = getattr(transformers, architecture)(transformers.BertConfig(**values)).eval()
    model.save_pretrained(directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"})
    return directory


def write_roberta(directory: Path, architecture: str = "RobertaModel", **config) -> Path:
    """A tiny random RoBERTa checkpoint (pad id 1, positions offset by 2, one token type) with its tokenizer."""
    import torch
    import transformers

    tokenizer = byte_bpe_tokenizer()
    torch.manual_seed(0)
    values = {**SIZES, "vocab_size": tokenizer.get_vocab_size(), "max_position_embeddings": 66, "type_vocab_size": 1,
              "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, **config}
    model = getattr(transformers, architecture)(transformers.RobertaConfig(**values)).eval()
    model.save_pretrained(directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "RobertaTokenizer", "model_max_length": 64, "bos_token": "<s>", "eos_token": "</s>",
        "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False, "special": True,
                       "__type": "AddedToken"}})
    return directory


def _write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
