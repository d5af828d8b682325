"""What every bigbird model class adds to its Transformers base: a checked `from_pretrained` and two switches."""

from __future__ import annotations

from .attention import ATTENTION_TYPES, check_random_plan
from .generate_checks import check_generate_settings
from .loading import HUB_ARGUMENTS, check_model_type


class BigBirdFamilyMixin:
    """Mixed in before a Transformers `PreTrainedModel` class of the BigBird or BigBird-Pegasus family."""

    # outputs are gathered by our forwards, not by Transformers' hooks on its own module classes
    _can_record_outputs = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Transformers' `from_pretrained`, after a check of config.json that names what is wrong: a missing
        directory, an id that is not cached while offline, a damaged file, a checkpoint of another model type."""
        if kwargs.get("config") is None and pretrained_model_name_or_path is not None:
            hub_kwargs = {key: kwargs[key] for key in HUB_ARGUMENTS if key in kwargs}
            check_model_type(pretrained_model_name_or_path, cls.config_class.model_type, cls.__name__, **hub_kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @property
    def attention_type(self) -> str:
        """"original_full" or "block_sparse": what inputs above the fallback bound run (the config's setting)."""
        return self.config.attention_type

    def set_attention_type(self, value: str) -> None:
        """"original_full" or "block_sparse" for every layer (the weights are shared by both); saved in the config."""
        if value not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be 'original_full' or 'block_sparse', got {value!r}")
        self.config.attention_type = value

    def set_random_plan(self, value: str) -> None:
        """"transformers" (Transformers' plans) or "paper" (the original BigBird code's seeded plans, in training
        and at inference alike); saved in the config as `random_plan`."""
        self.config.random_plan = check_random_plan(value)


class CheckedGenerateMixin:
    """Mixed in before a Transformers class with `generate()`: settings that cannot work are refused first."""

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """Transformers' `generate()`, after `check_generate_settings` (see `bigbird.models.generate_checks`)."""
        check_generate_settings(self, generation_config, kwargs)
        return super().generate(inputs, generation_config=generation_config, **kwargs)
