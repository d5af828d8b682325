"""bigbird-torch: BigBird and BigBird-Pegasus with Transformers' checkpoints, names and numbers, faster.

Configs and tokenizers are Transformers' own classes, re-exported here so that one import serves.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "transformers": ["BigBirdConfig", "BigBirdPegasusConfig", "BigBirdTokenizer", "PegasusTokenizer"],
    "models.bigbird": [
        "BigBirdModel",
        "BigBirdForPreTraining",
        "BigBirdForMaskedLM",
        "BigBirdForCausalLM",
        "BigBirdForSequenceClassification",
        "BigBirdForMultipleChoice",
        "BigBirdForTokenClassification",
        "BigBirdForQuestionAnswering",
    ],
    "models.pegasus": [
        "BigBirdPegasusModel",
        "BigBirdPegasusForConditionalGeneration",
        "BigBirdPegasusForSequenceClassification",
        "BigBirdPegasusForQuestionAnswering",
        "BigBirdPegasusForCausalLM",
    ],
    "models.auto": ["use_in_transformers"],
    "ops": ["block_plan", "block_sparse_attention", "reference_attention", "BlockPlan"],
    "pipelines": ["classify", "answer", "summarize", "fill_mask"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bigbird' has no attribute {name!r}")
    package = None if module == "transformers" else __name__
    value = getattr(import_module(module if package is None else f".{module}", package), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
