"""Reading SentencePiece `.model` files without the `sentencepiece` or `protobuf` packages.

A `.model` file is a serialized `ModelProto`: repeated `SentencePiece {piece, score, type}` (field 1), a
`TrainerSpec` (field 2) and a `NormalizerSpec` (field 3). Only the parts a tokenizer needs are decoded. The
pieces (96k in Pegasus) are decoded with NumPy over the whole run of them; odd encodings take a general path.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class SentencePieceModel:
    """The pieces of a SentencePiece model (texts, unigram log-probabilities, kinds: NORMAL, CONTROL, ...), the ids
    its trainer gave the special pieces, and its normalizer table."""

    pieces: list[str]
    scores: list[float]
    types: list[int]
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


def _parse_piece(data: bytes) -> tuple[str, float, int]:
    """Decode one `SentencePiece` message with the general field reader."""
    piece, score, kind = "", 0.0, NORMAL
    for number, wire, value in _fields(data):
        if number == 1 and wire == _LENGTH_DELIMITED:
            piece = bytes(value).decode("utf-8")
        elif number == 2 and wire == _FIXED32:
            (score,) = struct.unpack("<f", value)
        elif number == 3 and wire == _VARINT:
            kind = value
    return piece, score, kind


_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as `surrogateescape` decodes them


def _decode_texts(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The UTF-8 texts at `buf[starts[i] : starts[i] + lengths[i]]`, decoded in one call (0xFF never occurs in
    UTF-8, so it separates them)."""
    spans = lengths + 1
    ends = np.cumsum(spans)
    index = np.repeat(starts - (ends - spans), spans) + np.arange(int(ends[-1]))
    joined = buf[index]
    joined[ends - 1] = 0xFF
    text = joined.tobytes().decode("utf-8", "surrogateescape")
    texts = text.split("\udcff")[:-1]
    if len(texts) != len(starts) or _ESCAPED.search(text.replace("\udcff", "")):
        raise _ProtoError("a piece is not valid UTF-8")
    return texts


def _read_pieces(data: bytes, model: dict[str, list]) -> int:
    """Decode the run of `pieces` fields (field 1) at the start of `data` into `model`; return where it ends.

    Only the chain of record starts is followed in Python. Records in the usual encoding (message under 128 bytes:
    piece text, score, optional one-byte type) are decoded with NumPy; any other goes through `_parse_piece`.
    """
    size, pos, starts = len(data), 0, []
    while pos + 1 < size and data[pos] == _PIECE_KEY and data[pos + 1] < 0x80:
        starts.append(pos + 2)
        pos += 2 + data[pos + 1]
    if pos > size:
        raise _ProtoError("message ends inside a field")
    if not starts:
        return pos
    buf = np.frombuffer(data + bytes(272), np.uint8)  # zero tail: reads past a short record stay in bounds
    start = np.asarray(starts, np.int64)
    stop = start + buf[start - 1]
    text_length = buf[start + 1].astype(np.int64)
    text_end = start + 2 + text_length
    typed = (stop == text_end + 7) & (buf[text_end + 5] == _TYPE_KEY) & (buf[text_end + 6] < 0x80)
    usual = (buf[start] == _PIECE_KEY) & (text_length < 0x80) & (buf[text_end] == _SCORE_KEY)
    usual &= (stop == text_end + 5) | typed
    score_bytes = buf[(text_end + 1)[:, None] + np.arange(4)]
    scores = score_bytes.view("<f4")[:, 0].tolist()
    types = np.where(typed, buf[text_end + 6], NORMAL).tolist()
    texts = _decode_texts(buf, start + 2, np.where(usual, text_length, 0))
    for row in np.flatnonzero(~usual).tolist():
        texts[row], scores[row], types[row] = _parse_piece(data[starts[row] : int(stop[row])])
    model["pieces"], model["scores"], model["types"] = texts, scores, types
    return pos


_TRAINER_FIELDS = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}


def read_sentencepiece_model(path: str | os.PathLike) -> SentencePieceModel:
    """Parse a SentencePiece `.model` file; ValueError naming the file if it is not one."""
    path = Path(path)
    data = path.read_bytes()
    model: dict[str, list] = {"pieces": [], "scores": [], "types": []}
    trainer: dict[str, int] = {}
    charsmap = None
    try:
        end = _read_pieces(data, model)
        for number, wire, value in _fields(memoryview(data)[end:]):
            if wire != _LENGTH_DELIMITED:
                continue
            if number == 1:
                for key, item in zip(("pieces", "scores", "types"), _parse_piece(value)):
                    model[key].append(item)
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
    if not model["pieces"]:
        raise ValueError(f"{path} is not a valid SentencePiece model: it holds no vocabulary pieces")
    return SentencePieceModel(**model, precompiled_charsmap=charsmap, **trainer)
