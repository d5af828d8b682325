"""`bigbird train`: data, the training loop, evaluation metrics, run state for --resume, torchrun glue.

Names are imported on first use, so that reading `TrainSettings` (the CLI's parser does) loads no model code.
"""

from importlib import import_module

_MODULE_OF = {"DataError": "data", "train": "loop", "warnings_as_lines": "report", "ResumeError": "run_state",
              "TrainSettings": "settings", "resume_settings": "settings", "settings_from_flags": "settings"}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'bigbird.training' has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value
