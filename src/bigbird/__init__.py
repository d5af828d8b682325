"""bigbird-torch: BigBird and BigBird-Pegasus with Transformers' checkpoints, names and numbers."""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "config": ["BigBirdConfig", "BigBirdPegasusConfig"],
    "modeling_bigbird": [
        "BigBirdModel",
        "BigBirdForPreTraining",
        "BigBirdForMaskedLM",
        "BigBirdForCausalLM",
        "BigBirdForSequenceClassification",
        "BigBirdForMultipleChoice",
        "BigBirdForTokenClassification",
        "BigBirdForQuestionAnswering",
    ],
    "modeling_pegasus": [
        "BigBirdPegasusModel",
        "BigBirdPegasusForConditionalGeneration",
        "BigBirdPegasusForSequenceClassification",
        "BigBirdPegasusForQuestionAnswering",
        "BigBirdPegasusForCausalLM",
    ],
    "tokenization": ["BigBirdTokenizer", "PegasusTokenizer"],
    "ops": ["block_plan", "block_sparse_attention", "reference_attention", "BlockPlan"],
    "pipelines": ["classify", "answer", "summarize", "fill_mask"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bigbird' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
