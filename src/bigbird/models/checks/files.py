"""The files of a checkpoint directory that `from_pretrained` will read, checked cheaply before Transformers reads them.

Transformers' own errors for a damaged file do not name it (safetensors' "Error while deserializing header:
header too large", a bare `KeyError: 'weight_map'`), or give torch's long `weights_only` advice, or are no
errors at all (a generation_config.json that is not JSON is skipped without a word). These checks read only
headers, JSON files and (for .bin files) the pickled index of the tensors, never the tensor data.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import zipfile
from pathlib import Path

import torch

SAFETENSORS_HEADER_LIMIT = 100_000_000  # the safetensors library refuses longer headers
_DOWNLOAD_AGAIN = "download it again (e.g. `hf download`) or save the model again with save_pretrained()"


def read_json_object(path: Path, fix: str = "save the model again") -> dict:
    """The JSON object in `path`; ValueError naming the file when it is not valid JSON or not an object."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is damaged: not valid JSON ({error}); {fix}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} is damaged: it holds a JSON {type(values).__name__}, not an object; "
                         f"{fix}")
    return values


def check_safetensors(path: Path) -> None:
    """Raise ValueError when `path` is not a whole safetensors file: too short, not one at all (an HTML page saved
    under its name), a header that is not JSON, or fewer (or more) bytes of tensor data than the header says."""
    size = path.stat().st_size
    with path.open("rb") as file:
        start = file.read(8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else None
        if length is None or length > min(size - 8, SAFETENSORS_HEADER_LIMIT):
            looks = f" (it starts with {start!r}: a web page or a text saved under that name?)" \
                if start.lstrip()[:1] in (b"<", b"{") else ""
            raise ValueError(f"{path} ({size} bytes) is not a safetensors file{looks}: {_DOWNLOAD_AGAIN}")
        header = file.read(length)
    try:
        entries = json.loads(header)
        data_end = max([0] + [entry["data_offsets"][1] for name, entry in entries.items() if name != "__metadata__"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise ValueError(f"{path} is damaged: its safetensors header is not a valid table of tensors; "
                         f"{_DOWNLOAD_AGAIN}") from None
    held = size - 8 - length
    if held != data_end:
        state = "truncated" if held < data_end else "damaged (it has bytes after its last tensor)"
        raise ValueError(f"{path} is {state}: its header describes {data_end} bytes of tensor data, the file holds "
                         f"{held}; {_DOWNLOAD_AGAIN}")


def check_torch_weights(path: Path) -> None:
    """Raise ValueError when torch.load(weights_only=True) refuses `path`: pickled code or objects, or a damaged
    file. Zip files (every torch.save since torch 1.6) are memory-mapped, so their tensor data is not read."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        called = re.search(r"GLOBAL ([\w.]+)", str(error))
        if called is None:
            raise ValueError(f"{path} is not a PyTorch weights file or is damaged: {_DOWNLOAD_AGAIN}") from None
        raise ValueError(
            f"{path} holds pickled code ({called.group(1)}), not only tensors, and bigbird loads only tensors from "
            f".bin files (torch.load with weights_only=True): if you trust its source, re-save its tensors as "
            f"model.safetensors (safetensors.torch.save_file) and load that") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path} is damaged ({str(error).splitlines()[0]}): {_DOWNLOAD_AGAIN}") from None


def _with_variant(name: str, variant: str | None) -> str:
    """Transformers' file name for a weights variant: model.safetensors -> model.fp16.safetensors."""
    if not variant:
        return name
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}.{variant}.{suffix}"


def _weights_file(directory: Path, kwargs: dict) -> Path | None:
    """The weights file or shard index Transformers will read from `directory` (its order of preference)."""
    safe = kwargs.get("use_safetensors")
    names = (["model.safetensors", "model.safetensors.index.json"] if safe is not False else []) + \
        (["pytorch_model.bin", "pytorch_model.bin.index.json"] if not safe else [])
    for name in names:
        path = directory / _with_variant(name, kwargs.get("variant"))
        if path.is_file():
            return path
    return None


def _shards(index: Path, local: bool) -> list[Path]:
    """The shard files an index lists that are in its directory (in a local directory all must be)."""
    weight_map = read_json_object(index).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(name, str) for name in weight_map.values()):
        raise ValueError(f"{index} is damaged: it has no \"weight_map\" object (tensor name -> shard file); "
                         "save the model again")
    shards = [index.parent / name for name in sorted(set(weight_map.values()))]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if local and missing:
        raise FileNotFoundError(f"{index} lists shards that are not in {index.parent}: {', '.join(missing)}; copy "
                                "them there or save the model again")
    return [shard for shard in shards if shard.is_file()]


def check_checkpoint_files(directory: Path, generates: bool, kwargs: dict, local: bool) -> None:
    """Check the weights (and, for a class with generate(), generation_config.json) that `from_pretrained(...,
    **kwargs)` will read from `directory`. `local`: a directory of the user's, not a Hub cache snapshot (whose
    missing files Transformers downloads)."""
    if generates and (directory / "generation_config.json").is_file():
        read_json_object(directory / "generation_config.json")
    if kwargs.get("state_dict") is not None or kwargs.get("gguf_file") is not None:
        return
    weights = _weights_file(directory, kwargs)
    if weights is None:
        return
    files = _shards(weights, local) if weights.name.endswith(".json") else [weights]
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors(file)
        elif kwargs.get("weights_only", True):
            check_torch_weights(file)
