"""What every bigbird model class adds to its Transformers base: checks of its config, of the files
`from_pretrained` reads and of a head's training targets, two switches, and `gelu_new` as one fused kernel."""

from __future__ import annotations

import functools

from .activations import fuse_gelu_new
from .attention import check_attention_type, check_random_plan
from .checks.config import check_config
from .checks.generate import check_generate_settings
from .checks.labels import checked_forward, label_check
from .loading import check_checkpoint


def _checking_config(init):
    """`init` (a model class's `__init__`) that first refuses a config that cannot work (`check_config`)."""

    @functools.wraps(init)
    def init_with_checks(self, config, *args, **kwargs):
        check_config(config)
        init(self, config, *args, **kwargs)

    init_with_checks.checks_config = True
    return init_with_checks


class BigBirdFamilyMixin:
    """Mixed in before a Transformers `PreTrainedModel` class of the BigBird or BigBird-Pegasus family.

    Every class of the family checks its config before its `__init__` builds a module, and a head class's
    (inherited, Transformers') forward checks its training targets before computing (see `checks.config` and
    `checks.labels`); both wrappers are put on each class as it is defined and keep the signatures.
    """

    # outputs are gathered by our forwards, not by Transformers' hooks on its own module classes
    _can_record_outputs = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not getattr(cls.__init__, "checks_config", False):
            cls.__init__ = _checking_config(cls.__init__)
        check = label_check(cls)
        if check is not None and not getattr(cls.forward, "checks_labels", False):
            cls.forward = checked_forward(cls.forward, check)

    def post_init(self):
        """Transformers' `post_init` (weights, gradient-checkpointing and tying set-up), then `fuse_gelu_new`."""
        super().post_init()
        fuse_gelu_new(self)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Transformers' `from_pretrained`, after checks that name what is wrong (see `check_checkpoint`): a missing
        directory, an id that is not cached while offline, a checkpoint of another model type, config values that
        cannot build a model, a damaged config.json, weights file or generation_config.json."""
        if pretrained_model_name_or_path is not None:
            check_checkpoint(pretrained_model_name_or_path, cls, kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @property
    def attention_type(self) -> str:
        """"original_full" or "block_sparse": what inputs above the fallback bound run (the config's setting)."""
        return self.config.attention_type

    def set_attention_type(self, value: str) -> None:
        """"original_full" or "block_sparse" for every layer (the weights are shared by both); saved in the config."""
        self.config.attention_type = check_attention_type(value)

    def set_random_plan(self, value: str) -> None:
        """"transformers" (Transformers' plans) or "paper" (the original BigBird code's seeded plans, in training
        and at inference alike); saved in the config as `random_plan`."""
        self.config.random_plan = check_random_plan(value)


class CheckedGenerateMixin:
    """Mixed in before a Transformers class with `generate()`: settings that cannot work are refused first."""

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """Transformers' `generate()`, after `check_generate_settings` (see `bigbird.models.checks.generate`)."""
        check_generate_settings(self, generation_config, kwargs, inputs)
        return super().generate(inputs, generation_config=generation_config, **kwargs)
