"""Encoder for `application/vnd.amazon.eventstream` frames, as Bedrock's streaming APIs send them.

Frame layout (all integers big-endian):

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers: name length (u8), name, value type (u8; 7 = string), value length (u16), value
    payload
    message CRC32 (u32) over every byte before it

`botocore.eventstream.EventStreamBuffer` is the reference decoder; the tests round-trip through it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING_TYPE = 7


def _crc32(data: bytes, seed: int = 0) -> int:
    return zlib.crc32(data, seed) & 0xFFFFFFFF


def encode_headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode()
        raw_value = value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING_TYPE, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = _PRELUDE.size + _CRC.size + len(raw_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    head = prelude + _CRC.pack(_crc32(prelude)) + raw_headers + payload
    return head + _CRC.pack(_crc32(head))


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """An `event` message, e.g. `contentBlockDelta` or `chunk`, with a JSON payload."""
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, json.dumps(payload).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    """A modelled mid-stream error, e.g. `modelStreamErrorException`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": message}).encode())
