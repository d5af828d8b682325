"""Documents for the `bigbird` command: text files, directories, standard input and JSON-lines files.

A text file (or standard input) is one document whose id is its path ("-" for standard input). A JSON-lines
file (name ending in .jsonl, or any input with --jsonl) holds one JSON object per line, e.g.
`{"id": 7, "text": "..."}` or `{"id": 7, "question": "...", "context": "..."}`; a record without "id" is
named `path:line`. Whatever cannot be read (a missing file, binary data such as a .tar or a PDF, text that is
not UTF-8, a bad JSON line) becomes a `Problem` naming the file or record, and reading goes on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Document:
    """One input: its id (a path, "-", or the record's "id") and its fields ("text", "question", "context")."""

    id: Any
    fields: dict[str, str]


@dataclasses.dataclass
class Problem:
    """An input that could not be used, and why."""

    id: Any
    message: str


# the first bytes of common binary formats that are not text in any encoding
MAGIC = {b"\x1f\x8b": "a gzip archive", b"PK\x03\x04": "a zip archive (or .docx, .xlsx, .jar)",
         b"BZh": "a bzip2 archive", b"\xfd7zXZ\x00": "an xz archive", b"7z\xbc\xaf": "a 7-zip archive",
         b"%PDF": "a PDF document", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
         b"\x7fELF": "a program"}


def _binary(data: bytes) -> str | None:
    """What binary data looks like ("a gzip archive", ...), or None when it may be text."""
    kind = next((kind for magic, kind in MAGIC.items() if data.startswith(magic)), None)
    if kind is None and b"\x00" in data[:8192]:  # text has no NUL bytes; tar, images and programs do
        kind = "a tar archive" if data[257:262] == b"ustar" else "binary data"
    return kind


def _decode(data: bytes, name: str) -> str | Problem:
    kind = _binary(data)
    if kind is not None:
        return Problem(name, f"not text: {kind}; extract or convert it to a text file first")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        return Problem(name, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}): convert it "
                             "to UTF-8, e.g. with iconv -f latin1 -t utf-8")


def _read_bytes(source: str) -> bytes | Problem:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        return Problem(source, "no such file")
    except PermissionError:
        return Problem(source, "cannot be read: permission denied")
    except OSError as error:
        return Problem(source, f"cannot be read: {error.strerror or error}")


def _records(text: str, source: str, main_field: str) -> Iterator[Document | Problem]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield Problem(name, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(record, dict):
            yield Problem(name, f"a JSON line must be an object like {{\"id\": 1, \"{main_field}\": \"...\"}}")
            continue
        fields = {key: value for key, value in record.items() if key != "id"}
        bad = [key for key, value in fields.items() if not isinstance(value, str)]
        if bad:
            yield Problem(record.get("id", name), f"fields {bad} must be strings")
            continue
        yield Document(record.get("id", name), fields)


def expand(sources: list[str]) -> list[str]:
    """Inputs with each directory replaced by its files (sorted, hidden files left out, not recursive)."""
    out = []
    for source in sources:
        path = Path(source)
        if source != "-" and path.is_dir():
            out.extend(str(child) for child in sorted(path.iterdir()) if child.is_file()
                       and not child.name.startswith("."))
        else:
            out.append(source)
    return out


def read(sources: list[str], jsonl: bool, main_field: str) -> Iterator[Document | Problem]:
    """The documents of every input in order; a text input becomes `{main_field: its text}`."""
    for source in expand(sources):
        data = _read_bytes(source)
        text = data if isinstance(data, Problem) else _decode(data, "standard input" if source == "-" else source)
        if isinstance(text, Problem):
            yield text
        elif jsonl or source.endswith(".jsonl"):
            yield from _records(text, source, main_field)
        else:
            yield Document(source, {main_field: text})
