"""Warm-start a long BigBird checkpoint from a short BERT or RoBERTa one, as BigBird-RoBERTa was made.

The encoder weights are reused as they are (BigBird in full attention is BERT), the position table is tiled
to the new length, and any head BigBird also has is carried over. The source is read with Transformers'
own classes; the output directory (config.json, model.safetensors and the source's tokenizer with the new
`model_max_length`) is written by `save_pretrained` and loads in this library and in Transformers alike.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import transformers

from .models.loading import read_config
from .models.loading import quiet_transformers
from .pipelines.loading import check_hub_kwargs, load_tokenizer

SOURCE_PREFIXES = {"bert": "bert.", "roberta": "roberta."}
# the source's architecture suffix -> the BigBird class that holds the same head
HEAD_CLASSES = {
    "Model": "BigBirdModel",
    "ForSequenceClassification": "BigBirdForSequenceClassification",
    "ForTokenClassification": "BigBirdForTokenClassification",
    "ForQuestionAnswering": "BigBirdForQuestionAnswering",
    "ForMaskedLM": "BigBirdForMaskedLM",
    "ForPreTraining": "BigBirdForPreTraining",
    "ForMultipleChoice": "BigBirdForMultipleChoice",
}
DROPPED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                 "layer_norm_eps", "pad_token_id", "classifier_dropout", "problem_type", "id2label", "label2id")
ROBERTA_LM_HEAD = {"lm_head.dense.": "cls.predictions.transform.dense.",
                   "lm_head.layer_norm.": "cls.predictions.transform.LayerNorm.",
                   "lm_head.decoder.": "cls.predictions.decoder.", "lm_head.bias": "cls.predictions.bias"}


def _read_source_config(source: str, hub_kwargs: dict) -> dict:
    values = read_config(source, **hub_kwargs)
    model_type = values.get("model_type")
    if model_type not in SOURCE_PREFIXES:
        raise ValueError(f"{source} is a {model_type!r} checkpoint: warm-start reads BERT ('bert') or RoBERTa "
                         "('roberta') checkpoints only")
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{source} uses {values['position_embedding_type']!r} position embeddings: warm-start needs "
                         "absolute ones")
    if values.get("is_decoder") or values.get("add_cross_attention"):
        raise ValueError(f"{source} is a decoder: block-sparse BigBird is an encoder, warm-start reads encoders only")
    return values


def _head_class(values: dict) -> tuple[str, str | None]:
    """The BigBird class for the source's architecture, and the architecture when its head cannot be carried."""
    architecture = (values.get("architectures") or ["Model"])[0]
    for family in ("Bert", "Roberta"):
        if architecture.startswith(family):
            suffix = architecture[len(family):]
            if suffix in HEAD_CLASSES:
                return HEAD_CLASSES[suffix], None
            return "BigBirdModel", architecture
    return HEAD_CLASSES.get(architecture, "BigBirdModel"), None


def _source_state(source: str, values: dict, hub_kwargs: dict) -> dict[str, torch.Tensor]:
    """The source's weights under its own names, read by its Transformers class (AutoModel when unknown);
    weights the checkpoint lacks, which that class would initialise at random, are left out."""
    architecture = (values.get("architectures") or [""])[0]
    model_class = getattr(transformers, architecture, None)
    if not (isinstance(model_class, type) and issubclass(model_class, transformers.PreTrainedModel)):
        model_class = transformers.AutoModel
    with quiet_transformers():
        model, info = model_class.from_pretrained(source, output_loading_info=True, **hub_kwargs)
    missing = set(info["missing_keys"])
    return {key: tensor for key, tensor in model.state_dict().items() if key not in missing}


def _position_offset(values: dict) -> int:
    """RoBERTa numbers positions from padding_idx + 1 (2 with pad id 1); BERT from 0."""
    return values.get("pad_token_id", 1) + 1 if values["model_type"] == "roberta" else 0


def _tile_positions(table: torch.Tensor, offset: int, max_length: int) -> torch.Tensor:
    """(source positions, hidden) -> (max_length, hidden): the usable rows repeated until the new length."""
    usable = table[offset:]
    repeats = -(-max_length // usable.shape[0])
    return usable.repeat(repeats, 1)[:max_length].clone()


def _split_state(state: dict[str, torch.Tensor], prefix: str) -> tuple[dict, dict]:
    """(base weights without the prefix, head weights), old buffers dropped."""
    base, head = {}, {}
    for key, tensor in state.items():
        if key.startswith(prefix):
            base[key[len(prefix):]] = tensor
        elif key.startswith(("embeddings.", "encoder.", "pooler.")):
            base[key] = tensor
        else:
            head[key] = tensor
    for key in DROPPED_BUFFERS:
        base.pop(key, None)
    return base, head


def _head_key(key: str, family: str, class_name: str) -> str:
    """A source head weight's name in the BigBird class."""
    if family == "roberta" and key.startswith("lm_head."):
        old = next((prefix for prefix in ROBERTA_LM_HEAD if key.startswith(prefix)), None)
        return ROBERTA_LM_HEAD[old] + key[len(old):] if old else key
    if class_name == "BigBirdForSequenceClassification" and family == "bert" and key.startswith("classifier."):
        # BERT: classifier(tanh(pooler(token 0))); BigBird: out_proj(tanh(classifier.dense(token 0)))
        return "classifier.out_proj." + key.split(".", 1)[1]
    if class_name == "BigBirdForQuestionAnswering" and key.startswith("qa_outputs."):
        return "qa_classifier." + key
    return key


def _bigbird_weights(state: dict, values: dict, class_name: str, max_length: int) -> dict[str, torch.Tensor]:
    """The source's weights under the BigBird class's names, positions tiled to `max_length`."""
    family = values["model_type"]
    base, head = _split_state(state, SOURCE_PREFIXES[family])
    if "embeddings.word_embeddings.weight" not in base:
        raise ValueError(f"the weights of this {family} checkpoint have no embeddings.word_embeddings.weight")
    base["embeddings.position_embeddings.weight"] = _tile_positions(
        base["embeddings.position_embeddings.weight"], _position_offset(values), max_length)
    token_types = base["embeddings.token_type_embeddings.weight"]
    if token_types.shape[0] == 1:  # RoBERTa has one token type; BigBird's QA head uses two
        base["embeddings.token_type_embeddings.weight"] = token_types.repeat(2, 1)
    pooler = {f"pooler.{name}": base.pop(f"pooler.dense.{name}") for name in ("weight", "bias")
              if f"pooler.dense.{name}" in base}
    base.update(pooler)
    weights = {_head_key(key, family, class_name): tensor for key, tensor in head.items()}
    if class_name == "BigBirdForSequenceClassification" and family == "bert":
        weights.update({"classifier.dense." + key.split(".", 1)[1]: tensor for key, tensor in pooler.items()})
    prefix = "" if class_name == "BigBirdModel" else "bert."
    return {prefix + key: tensor for key, tensor in base.items()} | weights


def _bigbird_config(values: dict, max_length: int, block_size: int, num_random_blocks: int,
                    tokenizer) -> transformers.BigBirdConfig:
    family = values["model_type"]
    fields = {key: values[key] for key in CONFIG_FIELDS if values.get(key) is not None}
    special = {"cls": getattr(tokenizer, "cls_token_id", None), "sep": getattr(tokenizer, "sep_token_id", None)}
    return transformers.BigBirdConfig(**{
        **fields,
        "max_position_embeddings": max_length,
        "type_vocab_size": max(2, values.get("type_vocab_size", 2)),
        "pad_token_id": values.get("pad_token_id", 1 if family == "roberta" else 0),
        "bos_token_id": values.get("bos_token_id", special["cls"]),
        "eos_token_id": values.get("eos_token_id", special["sep"]),
        "sep_token_id": special["sep"] if special["sep"] is not None else values.get("sep_token_id"),
        "attention_type": "block_sparse",
        "block_size": block_size,
        "num_random_blocks": num_random_blocks,
        "rescale_embeddings": False,
        "use_bias": True,
        "tie_word_embeddings": values.get("tie_word_embeddings", True),
    })


def _check_lengths(values: dict, max_length: int, block_size: int, num_random_blocks: int) -> None:
    source_length = values["max_position_embeddings"] - _position_offset(values)
    if block_size < 1 or num_random_blocks < 0:
        raise ValueError(f"block_size must be at least 1 and num_random_blocks at least 0, got {block_size} and "
                         f"{num_random_blocks}")
    if max_length % block_size:
        raise ValueError(f"max_length {max_length} is not a multiple of the block size {block_size}")
    if max_length < source_length:
        raise ValueError(f"max_length {max_length} is shorter than the source's {source_length} positions: "
                         "warm-start makes models longer, not shorter")


def _source_tokenizer(source: str, hub_kwargs: dict):
    try:
        return load_tokenizer(source, **hub_kwargs)
    except ValueError:
        return None


def _notes(values: dict, class_name: str, config, uncarried: str | None, missing, unexpected) -> list[str]:
    """What a user must know about the new model: heads not carried, weights left out or new."""
    notes = []
    if uncarried:
        notes.append(f"BigBird has no {uncarried} head: only the encoder was carried over")
    if unexpected:
        notes.append(f"source weights not carried: {', '.join(unexpected)}")
    if class_name == "BigBirdForSequenceClassification" and config.hidden_act != "tanh":
        notes.append(f"the classification head was carried, but BigBird's applies {config.hidden_act!r} where "
                     f"{values['model_type']}'s applies tanh: fine-tune it before use")
    if missing:
        notes.append(f"newly initialised (train them before use): {', '.join(missing)}")
    return notes


def warm_start(source: str | os.PathLike, out_dir: str | os.PathLike, max_length: int = 4096, block_size: int = 64,
               num_random_blocks: int = 3, **hub_kwargs) -> Path:
    """Write a block-sparse BigBird checkpoint to `out_dir` from a BERT or RoBERTa checkpoint `source`.

    `source`: a local directory or a Hub id (read from the local cache when offline; `hub_kwargs` such as
    `revision` go to `from_pretrained`). The position table (source positions, hidden) becomes
    (max_length, hidden) by repeating the source's rows (RoBERTa's first padding_idx + 1 rows, which no token
    uses, are skipped). A sequence-classification, token-classification, multiple-choice, question-answering,
    masked-LM or pre-training head is carried over; weights that cannot be carried, or that BigBird's head has
    and the source lacks, are named in a warning. Returns `out_dir` as a Path.
    """
    import bigbird

    check_hub_kwargs(hub_kwargs)
    source = os.fspath(source)
    values = _read_source_config(source, hub_kwargs)
    _check_lengths(values, max_length, block_size, num_random_blocks)
    class_name, uncarried = _head_class(values)
    weights = _bigbird_weights(_source_state(source, values, hub_kwargs), values, class_name, max_length)
    tokenizer = _source_tokenizer(source, hub_kwargs)
    config = _bigbird_config(values, max_length, block_size, num_random_blocks, tokenizer)
    model = getattr(bigbird, class_name)(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    notes = _notes(values, class_name, config, uncarried, missing, unexpected)
    if notes:
        warnings.warn(f"warm-starting {source} as {class_name}: " + "; ".join(notes), stacklevel=2)

    out = Path(out_dir)
    model.save_pretrained(out)
    if tokenizer is None:
        warnings.warn(f"{source} has no tokenizer: {out} has none either; save one there before running pipelines "
                      "on it", stacklevel=2)
    else:
        tokenizer.model_max_length = max_length
        tokenizer.save_pretrained(out)
    return out
