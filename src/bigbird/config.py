"""Model configurations: dataclasses whose fields are Transformers' config.json keys.

`ConfigBase` holds what every configuration shares: reading and writing config.json, keeping fields
this library does not know (they are written back unchanged), and attribute aliases such as
Pegasus' `hidden_size` -> `d_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from .hub import resolve_file


@dataclasses.dataclass
class ConfigBase:
    """Shared behaviour of the dataclass configurations (subclasses add the fields)."""

    model_type: ClassVar[str] = ""
    attribute_map: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        if not hasattr(self, "extra"):
            object.__setattr__(self, "extra", {})

    def __getattr__(self, name: str) -> Any:
        alias = type(self).attribute_map.get(name)
        if alias is not None:
            return getattr(self, alias)
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).attribute_map.get(name, name)
        if name in {f.name for f in dataclasses.fields(self)} or name == "extra":
            object.__setattr__(self, name, value)
        else:
            self.__dict__.setdefault("extra", {})[name] = value

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any):
        """Build from a config.json dictionary; unknown keys are kept in `extra` and written back."""
        values = {**values, **overrides}
        model_type = values.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"this checkpoint is a {model_type!r} model, but {cls.__name__} reads {cls.model_type!r} checkpoints: "
                "load it with the class for its model type"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        known, extra = {}, {}
        for key, value in values.items():
            key = cls.attribute_map.get(key, key)
            (known if key in names else extra)[key] = value
        config = cls(**known)
        config.__dict__["extra"] = extra
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config.json dictionary: every field, the kept unknown keys, and `model_type`."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(self.__dict__.get("extra", {}))
        values["model_type"] = self.model_type
        return dict(sorted(values.items()))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, **overrides: Any):
        """Read config.json from a checkpoint directory or Hub id; keyword arguments override its fields."""
        path = resolve_file(name_or_path, "config.json", revision=revision, cache_dir=cache_dir,
                            local_files_only=local_files_only, token=token)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({error}): the checkpoint's config.json is damaged") from None
        return cls.from_dict(values, **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n",
                                               encoding="utf-8")
