"""`use_in_transformers()`: Transformers' Auto classes and `transformers.pipeline` build bigbird's classes."""

from __future__ import annotations

import transformers

from . import bigbird, pegasus

# Auto class -> (model type -> bigbird class name)
_AUTO_CLASSES = {
    "AutoModel": {"big_bird": "BigBirdModel", "bigbird_pegasus": "BigBirdPegasusModel"},
    "AutoModelForPreTraining": {"big_bird": "BigBirdForPreTraining",
                                "bigbird_pegasus": "BigBirdPegasusForConditionalGeneration"},
    "AutoModelForMaskedLM": {"big_bird": "BigBirdForMaskedLM"},
    "AutoModelForCausalLM": {"big_bird": "BigBirdForCausalLM"},
    "AutoModelForSequenceClassification": {"big_bird": "BigBirdForSequenceClassification",
                                           "bigbird_pegasus": "BigBirdPegasusForSequenceClassification"},
    "AutoModelForMultipleChoice": {"big_bird": "BigBirdForMultipleChoice"},
    "AutoModelForTokenClassification": {"big_bird": "BigBirdForTokenClassification"},
    "AutoModelForQuestionAnswering": {"big_bird": "BigBirdForQuestionAnswering",
                                      "bigbird_pegasus": "BigBirdPegasusForQuestionAnswering"},
    "AutoModelForSeq2SeqLM": {"bigbird_pegasus": "BigBirdPegasusForConditionalGeneration"},
}
_CONFIGS = {"big_bird": transformers.BigBirdConfig, "bigbird_pegasus": transformers.BigBirdPegasusConfig}
_MODULES = {"big_bird": bigbird, "bigbird_pegasus": pegasus}


def use_in_transformers() -> None:
    """Register bigbird's classes with Transformers' Auto classes for `big_bird` and `bigbird_pegasus`
    checkpoints, so `AutoModel...from_pretrained(...)` and `transformers.pipeline(...)` build them.

    Calling it again changes nothing. The classes keep Transformers' names, so pipelines accept them.
    """
    for auto_name, classes in _AUTO_CLASSES.items():
        auto_class = getattr(transformers, auto_name)
        for model_type, class_name in classes.items():
            auto_class.register(_CONFIGS[model_type], getattr(_MODULES[model_type], class_name), exist_ok=True)
