"""Model configurations: dataclasses whose fields are Transformers' config.json keys.

`ConfigBase` holds what every configuration shares: reading and writing config.json, keeping fields
this library does not know (they are written back unchanged), and attribute aliases such as
Pegasus' `hidden_size` -> `d_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from .hub import resolve_file


@dataclasses.dataclass
class ConfigBase:
    """Shared behaviour of the dataclass configurations (subclasses add the fields)."""

    model_type: ClassVar[str] = ""
    attribute_map: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        if not hasattr(self, "extra"):
            object.__setattr__(self, "extra", {})

    def __getattr__(self, name: str) -> Any:
        alias = type(self).attribute_map.get(name)
        if alias is not None:
            return getattr(self, alias)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).attribute_map.get(name, name)
        if (name in {f.name for f in dataclasses.fields(self)} or name == "extra"
                or isinstance(getattr(type(self), name, None), property)):
            object.__setattr__(self, name, value)
        else:
            self.__dict__.setdefault("extra", {})[name] = value

    @property
    def num_labels(self) -> int:
        """Number of labels of a classification head: `len(id2label)`, 2 when the config names none."""
        id2label = self.__dict__.get("extra", {}).get("id2label")
        return len(id2label) if id2label else 2

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != self.num_labels or "id2label" not in self.__dict__.get("extra", {}):
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {label: i for i, label in self.id2label.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any):
        """Build from a config.json dictionary; unknown keys are kept in `extra` and written back."""
        values = {**values, **overrides}
        model_type = values.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"this checkpoint is a {model_type!r} model, but {cls.__name__} reads {cls.model_type!r} checkpoints: "
                "load it with the class for its model type"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        known, rest = {}, {}
        for key, value in values.items():
            key = cls.attribute_map.get(key, key)
            (known if key in names else rest)[key] = value
        if isinstance(rest.get("id2label"), dict):
            rest["id2label"] = {int(i): label for i, label in rest["id2label"].items()}
        config = cls(**known)
        config.__dict__["extra"] = {}
        for key, value in rest.items():
            setattr(config, key, value)
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config.json dictionary: every field, the kept unknown keys, and `model_type`."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(self.__dict__.get("extra", {}))
        values["model_type"] = self.model_type
        return dict(sorted(values.items()))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, **overrides: Any):
        """Read config.json from a checkpoint directory or Hub id; keyword arguments override its fields."""
        path = resolve_file(name_or_path, "config.json", revision=revision, cache_dir=cache_dir,
                            local_files_only=local_files_only, token=token)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({error}): the checkpoint's config.json is damaged") from None
        return cls.from_dict(values, **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n",
                                               encoding="utf-8")


def _check_attention_settings(config: ConfigBase) -> None:
    """The attention fields both families share: `attention_type`, `block_size`, `num_random_blocks`."""
    if config.attention_type not in ("original_full", "block_sparse"):
        raise ValueError(f"attention_type must be 'original_full' or 'block_sparse', got {config.attention_type!r}")
    if config.block_size < 1 or config.num_random_blocks < 0:
        raise ValueError(
            f"block_size must be at least 1 and num_random_blocks at least 0, got {config.block_size} and "
            f"{config.num_random_blocks}"
        )


@dataclasses.dataclass
class BigBirdPegasusConfig(ConfigBase):
    """BigBird-Pegasus: a block-sparse pre-norm encoder and a full-attention decoder (Transformers' field names).

    The defaults are those of `google/bigbird-pegasus-large-arxiv`. `attention_type`, `block_size` and
    `num_random_blocks` concern the encoder only; `use_bias` puts biases on every attention projection.
    """

    model_type: ClassVar[str] = "bigbird_pegasus"
    attribute_map: ClassVar[dict[str, str]] = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "attention_probs_dropout_prob": "attention_dropout",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = 96103
    max_position_embeddings: int = 4096
    encoder_layers: int = 16
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 16
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "gelu_new"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    decoder_start_token_id: int | None = 2
    classifier_dropout: float = 0.0
    scale_embedding: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | list[int] | None = 1
    attention_type: str = "block_sparse"
    block_size: int = 64
    num_random_blocks: int = 3
    use_bias: bool = False
    is_decoder: bool = False
    tie_word_embeddings: bool = True
    problem_type: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_attention_settings(self)
        if self.d_model % self.encoder_attention_heads or self.d_model % self.decoder_attention_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be a multiple of encoder_attention_heads "
                f"({self.encoder_attention_heads}) and decoder_attention_heads ({self.decoder_attention_heads})"
            )


@dataclasses.dataclass
class BigBirdConfig(ConfigBase):
    """Configuration of the BigBird encoder family (`model_type` "big_bird"), field for field as in
    Transformers' config.json; the defaults are those of `google/bigbird-roberta-base`.

    Classification heads read `num_labels` (from `id2label`, which `num_labels=` sets) and `problem_type`.
    """

    model_type: ClassVar[str] = "big_bird"

    vocab_size: int = 50358
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 4096
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    sep_token_id: int | None = 66
    attention_type: str = "block_sparse"
    use_bias: bool = True
    rescale_embeddings: bool = False
    block_size: int = 64
    num_random_blocks: int = 3
    classifier_dropout: float | None = None
    is_decoder: bool = False
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True
    problem_type: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_attention_settings(self)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}: choose a head count that divides the hidden size"
            )
        if self.problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(
                f"problem_type must be None, 'regression', 'single_label_classification' or "
                f"'multi_label_classification', got {self.problem_type!r}"
            )
