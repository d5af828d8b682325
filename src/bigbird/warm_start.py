"""Warm-start a long BigBird checkpoint from a short BERT or RoBERTa one, as BigBird-RoBERTa was made.

The encoder weights are reused as they are (BigBird in full attention is BERT), the position table is tiled
to the new length, and any head BigBird also has is carried over. The output directory holds config.json,
model.safetensors and the source's tokenizer files, and loads in this library and in Transformers alike.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch

from .checkpoint import plan_load, read_state_dict
from .hub import resolve_file

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
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt")
DROPPED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                 "layer_norm_eps", "pad_token_id", "classifier_dropout", "problem_type", "id2label", "label2id")


def _read_source_config(source: str) -> dict:
    path = resolve_file(source, "config.json")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
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


ROBERTA_LM_HEAD = {"lm_head.dense.": "cls.predictions.transform.dense.",
                   "lm_head.layer_norm.": "cls.predictions.transform.LayerNorm.",
                   "lm_head.decoder.": "cls.predictions.decoder.", "lm_head.bias": "cls.predictions.bias"}


def _carry_head(head: dict[str, torch.Tensor], pooler: dict[str, torch.Tensor], family: str,
                class_name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The head's weights under BigBird's Transformers keys, and the source keys that could not be carried.

    `pooler`: the source's pooler ("pooler.weight", "pooler.bias"), which BERT's sequence classifier reads.
    """
    carried, left = {}, []
    for key, tensor in head.items():
        target = key
        if family == "roberta" and key.startswith("lm_head."):
            old = next(prefix for prefix in [*ROBERTA_LM_HEAD, ""] if key.startswith(prefix))
            target = ROBERTA_LM_HEAD[old] + key[len(old):] if old else key
        elif class_name == "BigBirdForSequenceClassification" and family == "bert" and key.startswith("classifier."):
            # BERT: classifier(tanh(pooler(token 0))); BigBird: out_proj(tanh(classifier.dense(token 0)))
            target = "classifier.out_proj." + key.split(".", 1)[1]
        elif class_name == "BigBirdForQuestionAnswering" and key.startswith("qa_outputs."):
            target = "qa_classifier." + key
        if _known_head_key(target, class_name):
            carried[target] = tensor
        else:
            left.append(key)
    if class_name == "BigBirdForSequenceClassification" and family == "bert":
        carried.update({"classifier.dense." + key.split(".", 1)[1]: tensor for key, tensor in pooler.items()})
    return carried, left


def _known_head_key(key: str, class_name: str) -> bool:
    heads = {
        "BigBirdForSequenceClassification": ("classifier.dense.", "classifier.out_proj."),
        "BigBirdForTokenClassification": ("classifier.",),
        "BigBirdForMultipleChoice": ("classifier.",),
        "BigBirdForQuestionAnswering": ("qa_classifier.qa_outputs.",),
        "BigBirdForMaskedLM": ("cls.predictions.",),
        "BigBirdForPreTraining": ("cls.predictions.", "cls.seq_relationship."),
    }.get(class_name, ())
    return key.startswith(heads)


def _bigbird_config(values: dict, family: str, max_length: int, block_size: int, num_random_blocks: int,
                    special_ids: dict[str, int | None]):
    from .config import BigBirdConfig

    fields = {key: values[key] for key in CONFIG_FIELDS if values.get(key) is not None}
    pad = values.get("pad_token_id", 1 if family == "roberta" else 0)
    return BigBirdConfig.from_dict({
        **fields,
        "max_position_embeddings": max_length,
        "type_vocab_size": max(2, values.get("type_vocab_size", 2)),
        "pad_token_id": pad,
        "bos_token_id": values.get("bos_token_id", special_ids.get("cls")),
        "eos_token_id": values.get("eos_token_id", special_ids.get("sep")),
        "sep_token_id": special_ids.get("sep", values.get("sep_token_id")),
        "attention_type": "block_sparse",
        "block_size": block_size,
        "num_random_blocks": num_random_blocks,
        "rescale_embeddings": False,
        "use_bias": True,
        "tie_word_embeddings": values.get("tie_word_embeddings", True),
    })


def _special_ids(source: str) -> dict[str, int | None]:
    """Ids of the separator and classifier tokens in the source's tokenizer.json ({} when it has none)."""
    path = resolve_file(source, "tokenizer.json", required=False)
    if path is None:
        return {}
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    vocab = {entry["content"]: entry["id"] for entry in tokenizer.get("added_tokens", [])}
    model_vocab = tokenizer.get("model", {}).get("vocab")
    if isinstance(model_vocab, dict):
        vocab = {**model_vocab, **vocab}
    return {"sep": vocab.get("[SEP]", vocab.get("</s>")), "cls": vocab.get("[CLS]", vocab.get("<s>"))}


def _write_tokenizer(source: str, out_dir: Path, family: str, max_length: int) -> bool:
    """Copy the tokenizer files; tokenizer.json without fixed truncation/padding, config with the new length."""
    json_path = resolve_file(source, "tokenizer.json", required=False)
    if json_path is None:
        return False
    tokenizer = json.loads(json_path.read_text(encoding="utf-8"))
    tokenizer["truncation"] = None
    tokenizer["padding"] = None
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    for name in TOKENIZER_FILES:
        path = resolve_file(source, name, required=False)
        if path is not None:
            shutil.copyfile(path, out_dir / name)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config.setdefault("tokenizer_class", "BertTokenizer" if family == "bert" else "RobertaTokenizer")
    config["model_max_length"] = max_length
    config.pop("name_or_path", None)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def warm_start(source: str | os.PathLike, out_dir: str | os.PathLike, max_length: int = 4096, block_size: int = 64,
               num_random_blocks: int = 3) -> Path:
    """Write a block-sparse BigBird checkpoint to `out_dir` from a BERT or RoBERTa checkpoint `source`.

    `source`: a local directory or a Hub id (read from the local cache when offline). The position table
    (source positions, hidden) becomes (max_length, hidden) by repeating the source's rows (RoBERTa's first
    padding_idx + 1 rows, which no token uses, are skipped). A sequence-classification, token-classification,
    multiple-choice, question-answering, masked-LM or pre-training head is carried over; weights that cannot
    be carried, or that BigBird's head has and the source lacks, are named in a warning.
    Returns `out_dir` as a Path.
    """
    import bigbird

    source = str(source)
    values = _read_source_config(source)
    family = values["model_type"]
    offset = _position_offset(values)
    source_length = values["max_position_embeddings"] - offset
    if block_size < 1 or num_random_blocks < 0:
        raise ValueError(f"block_size must be at least 1 and num_random_blocks at least 0, got {block_size} and "
                         f"{num_random_blocks}")
    if max_length % block_size:
        raise ValueError(f"max_length {max_length} is not a multiple of the block size {block_size}")
    if max_length < source_length:
        raise ValueError(f"max_length {max_length} is shorter than the source's {source_length} positions: "
                         "warm-start makes models longer, not shorter")

    class_name, uncarried_architecture = _head_class(values)
    state, weights_file = read_state_dict(source)
    base, head = _split_state(state, SOURCE_PREFIXES[family])
    if "embeddings.word_embeddings.weight" not in base:
        raise ValueError(f"{weights_file} has no {SOURCE_PREFIXES[family]}embeddings.word_embeddings.weight: it is "
                         f"not a {family} checkpoint")
    base["embeddings.position_embeddings.weight"] = _tile_positions(
        base["embeddings.position_embeddings.weight"], offset, max_length)
    token_types = base["embeddings.token_type_embeddings.weight"]
    if token_types.shape[0] == 1:  # RoBERTa has one token type; BigBird's QA head uses two
        base["embeddings.token_type_embeddings.weight"] = token_types.repeat(2, 1)
    pooler = {f"pooler.{name}": base.pop(f"pooler.dense.{name}") for name in ("weight", "bias")
              if f"pooler.dense.{name}" in base}
    carried, left = _carry_head(head, pooler, family, class_name)
    base.update(pooler)

    config = _bigbird_config(values, family, max_length, block_size, num_random_blocks, _special_ids(source))
    model_class = getattr(bigbird, class_name)
    model = model_class(config)
    prefix = "" if class_name == "BigBirdModel" else "bert."
    theirs = {prefix + key: tensor for key, tensor in base.items()} | carried
    plan = plan_load(model, theirs, weights_file)
    with torch.no_grad():
        ours = model.state_dict(keep_vars=True)
        for key, tensor in plan.tensors.items():
            ours[key].copy_(tensor)
    model.tie_weights()

    prefixed = class_name != "BigBirdModel"
    notes = []
    if uncarried_architecture:
        notes.append(f"BigBird has no {uncarried_architecture} head: only the encoder was carried over")
    if left or plan.unused_keys:
        notes.append(f"source weights not carried: {', '.join(left + plan.unused_keys)}")
    if class_name == "BigBirdForSequenceClassification" and config.hidden_act != "tanh":
        notes.append(f"the classification head was carried, but BigBird's applies {config.hidden_act!r} where "
                     f"{family}'s applies tanh: fine-tune it before use")
    if plan.new_keys:
        new = [model.key_table.to_theirs(key, prefixed=prefixed) for key in plan.new_keys]
        notes.append(f"newly initialised (train them before use): {', '.join(new)}")
    if notes:
        warnings.warn(f"warm-starting {source} as {class_name}: " + "; ".join(notes), stacklevel=2)

    out = Path(out_dir)
    model.save_pretrained(out)
    if not _write_tokenizer(source, out, family, max_length):
        warnings.warn(f"{source} has no tokenizer.json: {out} has no tokenizer; copy one in before running "
                      "pipelines on it", stacklevel=2)
    return out
