"""`PreTrainedModel`: what every model class shares (checkpoints, weight init, tying, gradient checkpointing).

A family subclasses it once, naming its `config_class` and `key_table` (see `bigbird.checkpoint`), and
overrides `get_input_embeddings` / `get_output_embeddings` where it has them.
"""

from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import nn

from . import checkpoint
from .checkpoint import KeyTable
from .config import ConfigBase
from .generation_config import GenerationConfig


class PreTrainedModel(nn.Module):
    """Base of the model classes: `from_pretrained`, `save_pretrained`, weight init and helpers."""

    config_class: ClassVar[type[ConfigBase]]
    key_table: ClassVar[KeyTable]
    init_std_field: ClassVar[str] = "initializer_range"

    def __init__(self, config: ConfigBase):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def base_model_prefix(self) -> str:
        return self.key_table.base_prefix

    def post_init(self) -> None:
        """Initialise every weight as Transformers does and tie the output embeddings (call at the end of __init__)."""
        self.apply(self._init_weights)
        self.tie_weights()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, std) linear and embedding weights, zero biases and padding rows, unit LayerNorms."""
        std = getattr(self.config, self.init_std_field)
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" and not isinstance(module, (nn.Linear, nn.LayerNorm)):
                param.zero_()

    def get_input_embeddings(self) -> nn.Embedding | None:
        return None

    def get_output_embeddings(self) -> nn.Linear | None:
        return None

    def tie_weights(self) -> None:
        """Make the output embedding matrix the input one when `config.tie_word_embeddings` says so."""
        output, inputs = self.get_output_embeddings(), self.get_input_embeddings()
        if output is not None and inputs is not None and getattr(self.config, "tie_word_embeddings", True):
            output.weight = inputs.weight

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, dtype: torch.dtype | str | None = None,
                        device: torch.device | str | None = None, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, **config_overrides: object):
        """Load a checkpoint directory or Hub id written by Transformers or by `save_pretrained`.

        Reads config.json (keyword arguments override its fields) and model.safetensors, a sharded
        safetensors index or pytorch_model.bin. `dtype` (a torch dtype, its name, or "auto" for the
        checkpoint's) defaults to float32; `device` to the CPU. The model comes back in eval mode. Models with
        `generate()` also read generation_config.json (its defaults), when the checkpoint has one.
        """
        model = checkpoint.load_pretrained(cls, name_or_path, dtype=dtype, device=device, revision=revision,
                                           cache_dir=cache_dir, local_files_only=local_files_only, token=token,
                                           **config_overrides)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config = GenerationConfig.from_pretrained(
                name_or_path, model.config, revision=revision, cache_dir=cache_dir,
                local_files_only=local_files_only, token=token)
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json and model.safetensors as Transformers does (it loads the directory back), and for
        models with `generate()` generation_config.json."""
        checkpoint.save_pretrained(self, directory)
        if getattr(self, "generation_config", None) is not None:
            self.generation_config.save_pretrained(directory)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute each layer's activations in the backward pass (training only); saves memory, costs time."""
        self._set_gradient_checkpointing(True)

    def gradient_checkpointing_disable(self) -> None:
        self._set_gradient_checkpointing(False)

    def _set_gradient_checkpointing(self, value: bool) -> None:
        found = False
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = value
                found = True
        if not found:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing")

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(module, "gradient_checkpointing", False) for module in self.modules())

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (distinct) parameters, optionally only trainable ones or without embedding matrices."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)} if exclude_embeddings \
            else set()
        return sum(p.numel() for p in self.parameters()
                   if (p.requires_grad or not only_trainable) and id(p) not in embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype
