"""Finding checkpoint files in a local directory or on the Hugging Face Hub (through its cache)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    required: bool = True,
) -> Path | None:
    """Path of `filename` inside a local directory or a Hub repository.

    A local directory is read as it is. Anything else is a Hub id, fetched through huggingface_hub's
    cache (so `HF_HUB_OFFLINE=1`, `revision` and `cache_dir` behave as they do in Transformers).
    Returns None when the file does not exist and `required` is False.
    """
    local = Path(name_or_path)
    if local.is_dir():
        path = local / filename
        if path.is_file():
            return path
        if required:
            raise FileNotFoundError(f"{local} has no {filename}: is this the directory of a saved checkpoint?")
        return None
    if local.exists() or str(name_or_path).startswith((".", "/", "~")) or os.sep + os.sep in str(name_or_path):
        raise FileNotFoundError(f"{name_or_path} is not a directory: pass a checkpoint directory or a Hub id")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(
            hf_hub_download(
                str(name_or_path),
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except EntryNotFoundError:
        if required:
            raise FileNotFoundError(f"the Hub repository {name_or_path} has no {filename}") from None
        return None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{name_or_path} is neither a local directory nor a Hub repository: check the name or path"
        ) from None
    except LocalEntryNotFoundError:
        if not required:
            return None
        raise FileNotFoundError(
            f"{filename} of {name_or_path} is not in the local Hugging Face cache and downloads are off "
            "(HF_HUB_OFFLINE=1 or no network): download it once with network access, or pass a local directory"
        ) from None
