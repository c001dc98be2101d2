"""The event-stream reader both engines use: frames as botocore decodes them, CRCs checked, events fed to the
parser, an exception frame handed back with its code and message."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, ParserError

from bedrock_lab.emulator.eventstream import event_frame, exception_frame
from bedrock_lab.engines import ResponseParser
from bedrock_lab.engines.eventstream import EventStreamReader, FrameDecoder


def _answer() -> list[bytes]:
    frames = [event_frame("messageStart", b'{"role":"assistant"}')]
    frames += [event_frame("contentBlockDelta", json.dumps({"delta": {"text": f"w{i} \u00e9"}}).encode())
               for i in range(12)]  # fmt: skip
    frames += [event_frame("messageStop", b'{"stopReason":"end_turn"}'), event_frame("metadata", b""),
               exception_frame("throttlingException", b'{"message":"slow down"}')]  # fmt: skip
    return frames


def _botocore(stream: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(stream)
    return [(m.headers, m.payload) for m in buf]


@pytest.mark.parametrize("cut", [1, 7, 13, 64, 1000])
def test_frame_decoder_matches_botocore_at_any_read_size(cut: int) -> None:
    stream = b"".join(_answer())
    dec = FrameDecoder()
    got = [f for i in range(0, len(stream), cut) for f in dec.feed(stream[i : i + cut])]
    assert got == _botocore(stream) and len(got) == len(_answer())


def test_frame_decoder_checks_both_crcs() -> None:
    frame = bytearray(_answer()[1])
    bad_payload = frame.copy()
    bad_payload[-6] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        FrameDecoder().feed(bytes(bad_payload))
    bad_prelude = frame.copy()
    bad_prelude[3] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        FrameDecoder().feed(bytes(bad_prelude) + bytes(frame) * 2)
    assert isinstance(ChecksumMismatch(1, 2), ParserError)  # the engine records it as a stream error


def test_reader_feeds_the_parser_and_counts_content_events_at_any_read_size() -> None:
    stream = b"".join(_answer())
    for cut in (1, 9, 64, len(stream)):
        parser = ResponseParser("converse-stream", "converse")
        reader = EventStreamReader(parser)
        texts, failure = 0, None
        for i in range(0, len(stream), cut):
            n, failure = reader.feed(stream[i : i + cut])
            texts += n
            if failure is not None:
                break
        # 12 deltas of text, then the exception frame that ends the stream with the service's code and message
        assert texts == 12 and failure == ("throttlingException", "slow down")
        assert parser.text == "".join(f"w{i} \u00e9" for i in range(12)) and parser.stop_reason == "end_turn"


def test_reader_decodes_invoke_chunks() -> None:
    chunk = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}}
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(chunk).encode()).decode()}).encode()
    parser = ResponseParser("invoke-stream", "anthropic")
    assert EventStreamReader(parser).feed(event_frame("chunk", payload) * 3) == (3, None)
    assert parser.text == "hihihi"
