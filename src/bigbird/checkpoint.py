"""Transformers checkpoints: one declarative key table per model family, strict loading and saving.

A family's `KeyTable` pairs our module paths with Transformers' (`{i}` stands for a layer index), for
the base model (the part that Transformers' head classes hold under `base_prefix`, e.g. `bert.`) and
for the heads. A rule renames a module path and everything under it, so `("layers.{i}.attn.q_proj",
"encoder.layer.{i}.attention.self.query")` maps both `.weight` and `.bias`.

Loading is strict: a checkpoint key that no rule knows, a weight the model needs that the checkpoint
lacks, and a shape that disagrees with the config are errors naming the keys. Tolerated: tied weights
(an output embedding that is the input embedding), Transformers-only aliases of tied weights, old
`position_ids` / `token_type_ids` buffers, a base checkpoint loaded into a head class (the head is
initialised anew, with a warning naming its weights), and a head checkpoint loaded into the base class
or another head class (the unused weights are named in a warning).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .hub import resolve_file

if TYPE_CHECKING:
    from .modeling_utils import PreTrainedModel

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"


def _compile(pattern: str) -> re.Pattern:
    regex = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{j\}", r"(?P<j>\d+)")
    return re.compile(rf"^{regex}(?P<rest>\..+)?$")


@dataclasses.dataclass(frozen=True)
class KeyTable:
    """Our parameter names <-> Transformers' for one model family.

    `base_prefix`: the attribute under which head classes hold the base model; the same in both worlds.
    `base`: (ours, theirs) module paths relative to the base model.
    `heads`: (ours, theirs) module paths relative to a head class.
    `optional`: our base module paths a checkpoint may lack (e.g. a pooler); they are initialised anew.
    `aliases`: Transformers keys that name a tied copy of another key (alias -> source).
    `ignored`: regular expressions of Transformers keys that are dropped (old buffers).
    """

    base_prefix: str
    base: tuple[tuple[str, str], ...]
    heads: tuple[tuple[str, str], ...] = ()
    optional: tuple[str, ...] = ()
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)
    ignored: tuple[str, ...] = (r"(^|\.)embeddings\.(position_ids|token_type_ids)$",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules", {
            (part, direction): [(_compile(src), dst) for src, dst in (pairs if direction == "ours" else
                                                                      [(b, a) for a, b in pairs])]
            for part, pairs in (("base", self.base), ("heads", self.heads))
            for direction in ("ours", "theirs")
        })

    def _map(self, key: str, part: str, direction: str) -> str | None:
        matches = []
        for regex, target in self._rules[(part, direction)]:
            found = regex.match(key)
            if found:
                groups = found.groupdict()
                matches.append(target.format(**{k: v for k, v in groups.items() if k != "rest"}) + (groups["rest"] or ""))
        if len(matches) > 1:
            raise ValueError(f"key {key!r} matches several rules of the key table: {matches}")
        return matches[0] if matches else None

    def to_theirs(self, key: str, *, prefixed: bool) -> str | None:
        """Transformers' key for our key (None if no rule knows it). `prefixed`: the key is a head class's."""
        return self._translate(key, prefixed, "ours")

    def to_ours(self, key: str, *, prefixed: bool) -> str | None:
        """Our key for a Transformers key (None if no rule knows it). `prefixed`: the key is a head class's."""
        return self._translate(key, prefixed, "theirs")

    def _translate(self, key: str, prefixed: bool, direction: str) -> str | None:
        if not prefixed:
            return self._map(key, "base", direction)
        head = self.base_prefix + "."
        if key.startswith(head):
            mapped = self._map(key[len(head):], "base", direction)
            return None if mapped is None else head + mapped
        return self._map(key, "heads", direction)

    def is_ignored(self, their_key: str) -> bool:
        return any(re.search(pattern, their_key) for pattern in self.ignored)

    def is_optional(self, our_key: str, *, prefixed: bool) -> bool:
        """Whether our key may be missing from a checkpoint (a head or an optional base module)."""
        head = self.base_prefix + "."
        if prefixed and not our_key.startswith(head):
            return True
        base_key = our_key[len(head):] if prefixed else our_key
        return any(base_key == path or base_key.startswith(path + ".") for path in self.optional)


# ---------------------------------------------------------------- our model <-> their state dict

def has_base_prefix(model: nn.Module, table: KeyTable) -> bool:
    """Whether `model` is a head class (it holds the base model under `table.base_prefix`)."""
    return isinstance(getattr(model, table.base_prefix, None), nn.Module)


def tied_keys(model: nn.Module) -> dict[str, str]:
    """Our keys whose tensor is another key's (tied weights): alias -> the first key holding the tensor."""
    first, tied = {}, {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            tied[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return tied


def to_transformers_state_dict(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The model's weights under Transformers' keys, each tied tensor once (under its first name)."""
    table, prefixed = model.key_table, has_base_prefix(model, model.key_table)
    tied = tied_keys(model)
    state = {}
    for key, tensor in model.state_dict().items():
        if key in tied:
            continue
        theirs = table.to_theirs(key, prefixed=prefixed)
        if theirs is None:
            raise KeyError(f"{type(model).__name__} has a weight {key!r} that its key table does not map")
        state[theirs] = tensor
    return state


@dataclasses.dataclass
class LoadPlan:
    """How a checkpoint's weights go into a model: our key -> tensor, and what the warnings name."""

    tensors: dict[str, torch.Tensor]
    new_keys: list[str]  # ours
    unused_keys: list[str]  # Transformers'



def plan_load(model: PreTrainedModel, state: dict[str, torch.Tensor], source: str) -> LoadPlan:
    """Match a Transformers state dict against the model (which may live on the meta device).

    Raises a ValueError naming the unknown keys, the missing weights or the shape mismatches.
    """
    table, prefixed = model.key_table, has_base_prefix(model, model.key_table)
    state = _adapt_prefix(state, table, prefixed)
    ours = model.state_dict(keep_vars=True)
    tied = tied_keys(model)
    tensors, unknown, unused, mismatched = {}, [], [], []
    for key, tensor in state.items():
        if table.is_ignored(key):
            continue
        if key in table.aliases:
            if table.aliases[key] in state:
                continue
            key = table.aliases[key]
        our_key = table.to_ours(key, prefixed=prefixed)
        if our_key is None:
            (unused if _is_head_key(key, table, prefixed) else unknown).append(key)
        elif our_key not in ours:
            unused.append(key)
        elif our_key in tied:
            continue
        elif tuple(tensor.shape) != tuple(ours[our_key].shape):
            mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)}, model {tuple(ours[our_key].shape)}")
        else:
            tensors[our_key] = tensor
    missing = [key for key in ours if key not in tensors and key not in tied]
    required = [table.to_theirs(key, prefixed=prefixed) for key in missing
                if not table.is_optional(key, prefixed=prefixed)]
    if unknown:
        raise ValueError(
            f"{source} has weights that {type(model).__name__} does not know: {_names(unknown)}. "
            "Is it a checkpoint of this model family? Load it with the class of its architecture"
        )
    if mismatched:
        raise ValueError(
            f"{source} has weights whose shapes disagree with the config: {_names(mismatched)}. The checkpoint's "
            "config.json does not describe its weights, or an override changed a size: drop that override"
        )
    if required:
        raise ValueError(
            f"{source} lacks weights that {type(model).__name__} needs: {_names(required)}. The checkpoint is "
            "incomplete or of another architecture: re-save it completely"
        )
    return LoadPlan(tensors, missing, unused)


def _adapt_prefix(state: dict[str, torch.Tensor], table: KeyTable, prefixed: bool) -> dict[str, torch.Tensor]:
    """Add the base prefix to a base checkpoint loaded into a head class (Transformers does the same)."""
    head = table.base_prefix + "."
    if prefixed and not any(key.startswith(head) for key in state):
        return {head + key: tensor for key, tensor in state.items()}
    if not prefixed and any(key.startswith(head) for key in state):
        return {key[len(head):] if key.startswith(head) else key: tensor for key, tensor in state.items()}
    return state


def _is_head_key(key: str, table: KeyTable, prefixed: bool) -> bool:
    """A key of one of the family's head classes (used by another class than the one being loaded)."""
    return not prefixed and table.to_ours(key, prefixed=True) is not None


def _names(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# ---------------------------------------------------------------- files

def read_state_dict(name_or_path: str | os.PathLike, **hub: object) -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint's weights (Transformers' keys) and the file they came from.

    Looks for model.safetensors, then a sharded model.safetensors.index.json, then pytorch_model.bin
    (read with `weights_only=True`).
    """
    from safetensors.torch import load_file

    path = resolve_file(name_or_path, SAFE_WEIGHTS, required=False, **hub)
    if path is not None:
        return load_file(str(path)), str(path)
    index = resolve_file(name_or_path, SAFE_INDEX, required=False, **hub)
    if index is not None:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_file(str(resolve_file(name_or_path, shard, **hub))))
        return state, str(index)
    path = resolve_file(name_or_path, TORCH_WEIGHTS, required=False, **hub)
    if path is not None:
        return torch.load(path, map_location="cpu", weights_only=True), str(path)
    raise FileNotFoundError(
        f"{name_or_path} has no weights: expected {SAFE_WEIGHTS}, {SAFE_INDEX} or {TORCH_WEIGHTS}. Save the model "
        "with save_pretrained, or download the complete checkpoint"
    )


def resolve_dtype(dtype: torch.dtype | str | None, config) -> torch.dtype:
    """torch dtype from a dtype, its name ("bfloat16"), "auto" (the checkpoint's) or None (float32)."""
    if dtype is None:
        return torch.float32
    if dtype == "auto":
        dtype = config.__dict__.get("extra", {}).get("dtype") or config.__dict__.get("extra", {}).get("torch_dtype") \
            or "float32"
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"dtype {dtype!r} is not a torch dtype: pass e.g. torch.float32 or 'bfloat16'")
        return resolved
    return dtype


def load_pretrained(cls: type[PreTrainedModel], name_or_path: str | os.PathLike, *,
                    dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                    revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False, token: str | bool | None = None,
                    **overrides: object) -> PreTrainedModel:
    """Build `cls` from a checkpoint directory or Hub id (see `PreTrainedModel.from_pretrained`)."""
    hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    config = cls.config_class.from_pretrained(name_or_path, **hub, **overrides)
    state, source = read_state_dict(name_or_path, **hub)
    with torch.device("meta"):
        model = cls(config)
    model.to(resolve_dtype(dtype, config))
    plan = plan_load(model, state, source)
    model.to_empty(device=device or "cpu")
    model.tie_weights()
    new = set(plan.new_keys)
    for module_name, module in model.named_modules():
        own = {f"{module_name}.{name}" if module_name else name for name, _ in module.named_parameters(recurse=False)}
        own |= {f"{module_name}.{name}" if module_name else name for name, _ in module.named_buffers(recurse=False)}
        if own & new:
            model._init_weights(module)
    with torch.no_grad():
        ours = model.state_dict(keep_vars=True)
        for key, tensor in plan.tensors.items():
            ours[key].copy_(tensor)
    if plan.new_keys:
        prefixed = has_base_prefix(model, model.key_table)
        names = [model.key_table.to_theirs(key, prefixed=prefixed) for key in plan.new_keys]
        warnings.warn(
            f"{cls.__name__} weights not in {source} were newly initialised: {_names(names)}. "
            "Train the model on a downstream task before using it for predictions",
            stacklevel=3,
        )
    if plan.unused_keys:
        warnings.warn(f"weights of {source} that {cls.__name__} does not use: {_names(plan.unused_keys)}",
                      stacklevel=3)
    return model.eval()


def save_pretrained(model: PreTrainedModel, directory: str | os.PathLike) -> None:
    """Write config.json (with `model_type`, `architectures`, `dtype`) and model.safetensors under Transformers'
    keys, each tied tensor once, so that Transformers' `from_pretrained` reads the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    config["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tensors = {key: tensor.detach().to("cpu").contiguous() for key, tensor in to_transformers_state_dict(model).items()}
    save_file(tensors, str(directory / SAFE_WEIGHTS), metadata={"format": "pt"})
