"""AWS event-stream frame encoder (application/vnd.amazon.eventstream), the part botocore has no code for.

Frame: ``[total u32][headers_len u32][prelude_crc u32][headers][payload][message_crc u32]``, big-endian,
CRC32 as zlib computes it. Header blocks are built once per (message type, event type) and cached, so a
frame costs two ``crc32`` calls and one join.
"""

from __future__ import annotations

import functools
import struct
import zlib

_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


def _header(name: str, value: str) -> bytes:
    n = name.encode()
    v = value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


@functools.lru_cache(maxsize=256)
def event_headers(event_type: str) -> bytes:
    """Header block of an ``event`` message with this ``:event-type``."""
    return (_header(":event-type", event_type) + _header(":content-type", "application/json")
            + _header(":message-type", "event"))


@functools.lru_cache(maxsize=64)
def exception_headers(exception_type: str) -> bytes:
    """Header block of an ``exception`` message (``:exception-type`` is the lower-camel member name)."""
    return (_header(":exception-type", exception_type) + _header(":content-type", "application/json")
            + _header(":message-type", "exception"))


def encode_frame(headers: bytes, payload: bytes) -> bytes:
    """One complete frame with both CRCs."""
    total = 16 + len(headers) + len(payload)
    prelude = _PRELUDE.pack(total, len(headers))
    prelude_crc = zlib.crc32(prelude)
    body = prelude + _U32.pack(prelude_crc) + headers + payload
    return body + _U32.pack(zlib.crc32(body))


def event_frame(event_type: str, payload: bytes) -> bytes:
    return encode_frame(event_headers(event_type), payload)


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    return encode_frame(exception_headers(exception_type), payload)
