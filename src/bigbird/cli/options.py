"""Option types of the `bigbird` command: argparse turns their ArgumentTypeError into a usage error."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

# a comma that starts another KEY=VALUE (a comma inside a JSON value such as [[1,2]] does not)
_NEXT_SETTING = re.compile(r",\s*(?=[A-Za-z_]\w*=)")
_SETTING = re.compile(r"[A-Za-z_]\w*=")


def positive(text: str) -> int:
    """A whole number of at least 1."""
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def count(text: str) -> int:
    """A whole number of at least 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number (0 or more), got {text!r}")
    return int(text)


def settings(text: str) -> list[tuple[str, object]]:
    """KEY=VALUE, or several joined by commas, as (key, value) pairs; a value is read as JSON when it parses
    (numbers, true, [1, 2], ...), else kept as text."""
    pairs = []
    for part in _NEXT_SETTING.split(text.strip()):
        key, sep, value = part.partition("=")
        if not sep or not _SETTING.match(part):
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. num_beams=2), got {part!r}")
        try:
            pairs.append((key, json.loads(value)))
        except json.JSONDecodeError:
            pairs.append((key, value))
    return pairs


def looks_like_setting(source: str) -> bool:
    """An input named KEY=VALUE that is no file: most likely a setting given without its --generate."""
    return bool(_SETTING.match(source)) and not os.path.exists(source)


def output_problem(path: str | None) -> str | None:
    """Why `path` cannot be written (its folder is missing, not writable, or it is a folder), or None."""
    if path is None:
        return None
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        return f"cannot write {path}: it is a directory"
    if not folder.is_dir():
        return f"cannot write {path}: no such directory {folder}"
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"cannot write {path}: permission denied"
    return None


def add_dtype_option(parser, default: str | None = None) -> None:
    """--dtype {auto,float32,bfloat16,float16}: what the model computes in (see `bigbird.precision`); without it,
    `default` (None: the checkpoint's dtype)."""
    from ..precision import CHOICES

    parser.add_argument("--dtype", choices=CHOICES, default=default,
                        help=f"the dtype the model runs in (default: {default or 'the checkpoint' + chr(39) + 's'}); "
                             "auto: bfloat16 on a GPU or on a CPU with native bf16 matrix units (AMX-BF16, "
                             "AVX512-BF16, Arm BF16), else float32")


def note_dtype(reporter, args) -> None:
    """Say what `--dtype auto` chose, and why, on standard error (the run's metadata)."""
    if args.dtype == "auto":
        from ..precision import describe_choice, resolve_dtype

        reporter.note(f"dtype {describe_choice(resolve_dtype('auto', args.device), 'auto', args.device)}")
