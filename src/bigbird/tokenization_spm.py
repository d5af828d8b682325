"""Reading SentencePiece `.model` files without the `sentencepiece` or `protobuf` packages.

A `.model` file is a serialized `ModelProto`: repeated `SentencePiece {piece, score, type}` (field 1), a
`TrainerSpec` (field 2) and a `NormalizerSpec` (field 3). Only the parts a tokenizer needs are decoded.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class SentencePiece(NamedTuple):
    """One vocabulary entry: its text, its unigram log-probability and its kind (NORMAL, CONTROL, ...)."""

    piece: str
    score: float
    type: int = NORMAL


@dataclass(frozen=True)
class SentencePieceModel:
    """The pieces of a SentencePiece model, the ids its trainer gave the special pieces, and its normalizer table."""

    pieces: list[SentencePiece]
    model_type: int = UNIGRAM
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    precompiled_charsmap: bytes | None = None


class _ProtoError(ValueError):
    pass


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _ProtoError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield (field number, wire type, value) of one protobuf message; value is an int or a bytes slice."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _ProtoError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _FIXED64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == _LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == _FIXED32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise _ProtoError("message ends inside a field")
        yield number, wire, value


def _int32(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_PIECE_KEY, _SCORE_KEY, _TYPE_KEY = (1 << 3) | _LENGTH_DELIMITED, (2 << 3) | _FIXED32, (3 << 3) | _VARINT
_unpack_float = struct.Struct("<f").unpack_from


def _parse_piece(data: bytes) -> SentencePiece:
    # Fast path for the usual encoding (piece, score, optional type, each once and short); anything else goes
    # through the general field reader.
    size = len(data)
    if size > 2 and data[0] == _PIECE_KEY and data[1] < 0x80:
        end = 2 + data[1]
        if end + 5 <= size and data[end] == _SCORE_KEY:
            piece = data[2:end].decode("utf-8")
            (score,) = _unpack_float(data, end + 1)
            if end + 5 == size:
                return SentencePiece(piece, score)
            if end + 7 == size and data[end + 5] == _TYPE_KEY and data[end + 6] < 0x80:
                return SentencePiece(piece, score, data[end + 6])
    piece, score, kind = "", 0.0, NORMAL
    for number, wire, value in _fields(data):
        if number == 1 and wire == _LENGTH_DELIMITED:
            piece = value.decode("utf-8")
        elif number == 2 and wire == _FIXED32:
            (score,) = struct.unpack("<f", value)
        elif number == 3 and wire == _VARINT:
            kind = value
    return SentencePiece(piece, score, kind)


_TRAINER_FIELDS = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}


def read_sentencepiece_model(path: str | os.PathLike) -> SentencePieceModel:
    """Parse a SentencePiece `.model` file; ValueError naming the file if it is not one."""
    path = Path(path)
    data = path.read_bytes()
    pieces: list[SentencePiece] = []
    trainer: dict[str, int] = {}
    charsmap = None
    try:
        for number, wire, value in _fields(data):
            if wire != _LENGTH_DELIMITED:
                continue
            if number == 1:
                pieces.append(_parse_piece(value))
            elif number == 2:
                for field, field_wire, field_value in _fields(value):
                    if field in _TRAINER_FIELDS and field_wire == _VARINT:
                        trainer[_TRAINER_FIELDS[field]] = _int32(field_value)
            elif number == 3:
                for field, field_wire, field_value in _fields(value):
                    if field == 2 and field_wire == _LENGTH_DELIMITED:
                        charsmap = bytes(field_value) or None
    except (_ProtoError, UnicodeDecodeError, struct.error) as error:
        raise ValueError(f"{path} is not a valid SentencePiece model (corrupt protobuf: {error})") from None
    if not pieces:
        raise ValueError(f"{path} is not a valid SentencePiece model: it holds no vocabulary pieces")
    return SentencePieceModel(pieces=pieces, precompiled_charsmap=charsmap, **trainer)
