"""Where a checkpoint comes from, and what it holds, checked before any weight is read.

Transformers resolves files (a local directory, a Hub id, the Hugging Face cache) and loads them; this module
only turns the cases where its messages leave a user guessing into errors that say what is wrong and what to
do: a directory that does not exist or holds no config.json, a Hub id that is not in the local cache while
downloads are off, a damaged config.json, a checkpoint of another model type, config values that cannot build
a model, damaged weight files (see `checks.files`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from huggingface_hub import constants as hub_constants
from transformers.utils import cached_file
from transformers.utils import logging as transformers_logging

from .checks.config import check_config_file
from .checks.files import check_checkpoint_files, read_json_object

# keyword arguments of `from_pretrained` that say where files come from; the rest configure the model
HUB_ARGUMENTS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _offline(hub_kwargs: dict) -> bool:
    return bool(hub_kwargs.get("local_files_only")) or hub_constants.HF_HUB_OFFLINE


def config_path(name_or_path: str | os.PathLike, **hub_kwargs) -> Path:
    """The config.json of a local checkpoint directory or of a Hub id (downloaded or from the cache).

    Raises FileNotFoundError for a missing directory or file, OSError for an id that cannot be had.
    """
    name = os.fspath(name_or_path)
    subfolder = hub_kwargs.get("subfolder") or ""
    if os.path.isdir(name):
        path = Path(name, subfolder, "config.json")
        if not path.is_file():
            raise FileNotFoundError(f"{Path(name, subfolder)} has no config.json, so it is not a saved model: "
                                    "point to the directory that save_pretrained() wrote")
        return path
    if os.path.exists(name):
        raise FileNotFoundError(f"{name} is a file: pass the directory that holds config.json and the weights")
    if _looks_like_path(name):
        raise FileNotFoundError(f"no such directory: {name} (check the path; it is not a Hub model id either)")
    try:
        resolved = cached_file(name, "config.json", **{k: v for k, v in hub_kwargs.items() if k in HUB_ARGUMENTS})
    except OSError as error:
        if _offline(hub_kwargs):
            raise OSError(
                f"{name!r} is neither a local directory nor a model in the local Hugging Face cache "
                f"({hub_kwargs.get('cache_dir') or hub_constants.HF_HUB_CACHE}), and downloads are off (HF_HUB_OFFLINE=1 or local_files_only): "
                f"download it once where the network is reachable (`hf download {name}`), or pass a local "
                "directory saved with save_pretrained()"
            ) from None
        raise OSError(f"could not get config.json of {name!r} from the Hugging Face Hub: {error}") from None
    if resolved is None:
        raise FileNotFoundError(f"the Hub repository {name!r} has no config.json: it is not a Transformers model")
    return Path(resolved)


def read_config(name_or_path: str | os.PathLike, **hub_kwargs) -> dict:
    """config.json of a checkpoint as a dict, with an error naming the file when it is not a JSON object."""
    return read_json_object(config_path(name_or_path, **hub_kwargs))


def _check_model_type(values: dict, name_or_path, model_type: str, loader: str) -> None:
    found = values.get("model_type")
    if found != model_type:
        raise ValueError(
            f"{os.fspath(name_or_path)} is a {found!r} checkpoint, but {loader} loads {model_type!r} checkpoints: "
            f"use the class for {found!r} models (transformers.AutoModel picks it), or a {model_type!r} checkpoint"
        )


def check_checkpoint(name_or_path: str | os.PathLike, model_class, kwargs: dict) -> None:
    """What `model_class.from_pretrained(name_or_path, **kwargs)` will read, checked before Transformers reads it:
    config.json (unless `config=` is given): its model type and values; then the weight files and, for a class
    with generate(), generation_config.json, where they are on this machine already."""
    hub_kwargs = {key: kwargs[key] for key in HUB_ARGUMENTS if key in kwargs}
    local = os.path.isdir(name_or_path)
    if kwargs.get("config") is None:
        path = config_path(name_or_path, **hub_kwargs)
        values = read_json_object(path)
        _check_model_type(values, name_or_path, model_class.config_class.model_type, model_class.__name__)
        check_config_file(values, path, kwargs)
        directory = path.parent
    elif local:
        directory = Path(name_or_path, hub_kwargs.get("subfolder") or "")
    else:
        return
    check_checkpoint_files(directory, model_class.can_generate(), kwargs, local)


@contextlib.contextmanager
def quiet_transformers():
    """Transformers' loading reports and progress bars off, for callers that report what matters themselves."""
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()

