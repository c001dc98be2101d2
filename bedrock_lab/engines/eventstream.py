"""Reading streamed answers: ``application/vnd.amazon.eventstream`` (ConverseStream, InvokeModelWithResponseStream)
without botocore's parser, frames decoded and checked, their events fed to a :class:`ResponseParser`; and Chat
Completions' server-sent events (:class:`SseReader`, the same interface: :func:`stream_reader` picks one).

Sans-IO, so both engines share it: the burst engine feeds it aiohttp's bytes, the Locust user's direct client
urllib3's. Why not botocore's ``EventStreamBuffer`` and ``EventStream``: the same checks and errors at ~2.5 instead
of ~6.6 us a frame, and no per-event shape parsing (a ConverseStream answer is ~20 frames).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from botocore.eventstream import (
    ChecksumMismatch,
    DuplicateHeader,
    InvalidHeadersLength,
    InvalidPayloadLength,
    ParserError,
)

from bedrock_lab.engines.formats import CHAT_API, ResponseParser, SseDecoder

__all__ = ["EventStreamReader", "FrameDecoder", "ParserError", "SseReader", "frame_message", "stream_reader"]

_PRELUDE = struct.Struct("!III")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_FIXED = {2: struct.Struct("!b"), 3: struct.Struct("!h"), 4: struct.Struct("!i"), 5: struct.Struct("!q"),
          8: struct.Struct("!q")}  # fmt: skip
_MAX_HEADERS = 128 * 1024  # botocore's limits
_MAX_PAYLOAD = 16 * 1024 * 1024


class FrameDecoder:
    """``application/vnd.amazon.eventstream`` frames: prelude and message CRC32 checked, headers unpacked.

    Why not botocore's ``EventStreamBuffer``: same checks and errors at ~2.5 instead of ~6.6 us a frame (a
    ConverseStream answer is ~20 frames). botocore's exception classes are reused so error codes do not change.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        """The complete frames in ``data`` and what was buffered: ``(headers, payload)`` each."""
        buf = self._buf
        buf += data
        out = []
        pos, n = 0, len(buf)
        view = memoryview(buf)
        try:
            while n - pos >= 12:
                total, hlen, prelude_crc = _PRELUDE.unpack_from(buf, pos)
                if n - pos < total:
                    break
                crc = zlib.crc32(view[pos : pos + 8])
                if crc != prelude_crc:
                    raise ChecksumMismatch(prelude_crc, crc)
                if hlen > _MAX_HEADERS:
                    raise InvalidHeadersLength(hlen)
                plen = total - hlen - 16
                if not 0 <= plen <= _MAX_PAYLOAD:
                    raise InvalidPayloadLength(plen)
                crc = zlib.crc32(view[pos + 8 : pos + total - 4], crc)
                message_crc = _U32.unpack_from(buf, pos + total - 4)[0]
                if crc != message_crc:
                    raise ChecksumMismatch(message_crc, crc)
                start = pos + 12
                out.append((_headers(buf, start, start + hlen), bytes(view[start + hlen : pos + total - 4])))
                pos += total
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out


def _headers(data: bytearray, pos: int, end: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        while pos < end:
            n = data[pos]
            name = data[pos + 1 : pos + 1 + n].decode("utf-8")
            kind = data[pos + 1 + n]
            pos += n + 2
            value: Any
            if kind == 7 or kind == 6:  # string, bytes
                size = _U16.unpack_from(data, pos)[0]
                raw = data[pos + 2 : pos + 2 + size]
                value = raw.decode("utf-8") if kind == 7 else bytes(raw)
                pos += 2 + size
            elif kind == 0 or kind == 1:
                value = kind == 0
            elif kind in _FIXED:
                fmt = _FIXED[kind]
                value = fmt.unpack_from(data, pos)[0]
                pos += fmt.size
            elif kind == 9:  # uuid
                value = bytes(data[pos : pos + 16])
                pos += 16
            else:
                raise ParserError(f"unknown event-stream header type {kind}")
            if name in out:
                raise DuplicateHeader(name)
            out[name] = value
    except (struct.error, IndexError) as exc:
        raise ParserError(f"malformed event-stream headers: {exc}") from exc
    if pos != end:
        raise ParserError("event-stream headers overrun their length")
    return out




def frame_message(payload: bytes, headers: Any) -> str | None:
    """The message of an exception frame inside an event stream."""
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        return payload[:300].decode("utf-8", "replace") or None
    msg = body.get("message") or body.get("Message") if isinstance(body, dict) else None
    return str(msg) if msg else headers.get(":error-message")


class EventStreamReader:
    """An event-stream answer's bytes in, its events fed to ``parser``.

    :meth:`feed` returns how many of the events in ``data`` carried content (each is a chunk arrival for the
    caller's clock) and, when the stream holds an exception frame, its ``(code, message)``. A corrupt frame
    raises :class:`ParserError` (or ``ValueError`` for an undecodable payload): a broken stream."""

    __slots__ = ("_frames", "_parser", "_invoke")

    def __init__(self, parser: ResponseParser) -> None:
        self._frames = FrameDecoder()
        self._parser = parser
        self._invoke = parser.api == "invoke-stream"

    def feed(self, data: bytes) -> tuple[int, tuple[str, str | None] | None]:
        texts = 0
        parser = self._parser
        for h, raw in self._frames.feed(data):
            if h.get(":message-type") != "event":
                code = h.get(":exception-type") or h.get(":error-code") or "exception"
                return texts, (str(code), frame_message(raw, h))
            payload = json.loads(raw) if raw else {}
            if self._invoke:
                if h.get(":event-type") != "chunk":
                    continue
                text = parser.feed_invoke_chunk(json.loads(base64.b64decode(payload.get("bytes", ""))))
            else:
                text = parser.feed_converse_event(h.get(":event-type", ""), payload)
            if text:
                texts += 1
        return texts, None


class SseReader:
    """A Chat Completions stream's bytes in (server-sent events, ``data: {chunk}`` each, ``data: [DONE]`` last),
    its chunks fed to ``parser``; :meth:`feed` answers like :meth:`EventStreamReader.feed`: the content chunks in
    ``data`` and, for an ``error`` object mid-stream (the OpenAI SDK raises on it too), its ``(code, message)``."""

    __slots__ = ("_sse", "_parser")

    def __init__(self, parser: ResponseParser) -> None:
        self._sse = SseDecoder()
        self._parser = parser

    def feed(self, data: bytes) -> tuple[int, tuple[str, str | None] | None]:
        texts = 0
        parser = self._parser
        for obj in self._sse.feed(data):
            err = parser.feed_chat_event(obj)
            if err is not None:
                return texts, err
            if parser.chat_text:
                texts += 1
        return texts, None


def stream_reader(parser: ResponseParser) -> EventStreamReader | SseReader:
    """The reader of a streamed answer of ``parser.api``: SSE for chat-completions, else the event stream."""
    return SseReader(parser) if parser.api == CHAT_API else EventStreamReader(parser)
