"""The emulator holds the way production HTTP servers hold: header, body and idle timeouts, a JSON nesting limit,
AWS-shaped answers to malformed HTTP, no tracebacks for client mistakes, one timing-log line per request however
it ended (shutdown included), no unauthenticated state change, and arrival / write times for overhead splits.

Waits are blocking socket reads with a socket timeout (never sleeps); bounds are generous (limit + 5 s)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from emu_helpers import make_client, raw_post, user

from bedrock_lab.emulator import (
    H_ARRIVAL,
    H_PRE,
    H_QUEUE,
    H_RESPONSE,
    H_TTFT,
    Emulator,
    EmulatorConfig,
    fetch_stats,
    run_emulator,
)

NOVA = "amazon.nova-lite-v1:0"
NOVA_PATH = "/model/amazon.nova-lite-v1%3A0"
AUTH = ("X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 "
        "Credential=testing/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n")
ERR_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def _connect(emu: Emulator, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection((emu.host, emu.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def _request(path: str, body: bytes, extra: str = "", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{AUTH}{extra}"
            f"Content-Length: {n}\r\n\r\n").encode() + body  # fmt: skip


def _status_headers_body(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _converse_body(max_tokens: int = 8) -> bytes:
    return json.dumps({"messages": user(), "inferenceConfig": {"maxTokens": max_tokens}}).encode()


# -- connection limits ---------------------------------------------------------------------------------------
def test_a_half_sent_header_is_answered_408_and_closed_within_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    with run_emulator(time_scale=0.02, header_timeout_s=0.5, timing_log=log) as emu:
        s = _connect(emu)
        t0 = time.monotonic()
        s.sendall(b"POST /model/amazon.nova-lite-v1%3A0/converse HTTP/1.1\r\nHost: x\r\nContent-Ty")
        raw = _read_until_closed(s)
        elapsed = time.monotonic() - t0
        s.close()
        assert 0.4 <= elapsed < 0.5 + 5
        status, headers, body = _status_headers_body(raw)
        assert status == 408 and headers["x-amzn-errortype"] == "RequestTimeoutException" + ERR_SUFFIX
        assert "0.5 s" in json.loads(body)["message"]
        make_client(emu.url).converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 3})
    lines = _log_lines(log)
    assert [x["outcome"] for x in lines] == ["header_timeout", "ok"]
    assert lines[0]["status"] == 408 and lines[0]["error_code"] == "RequestTimeoutException"


def test_a_body_that_stops_coming_is_answered_408_and_closed_within_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    with run_emulator(time_scale=0.02, body_timeout_s=0.5, timing_log=log) as emu:
        s = _connect(emu)
        t0 = time.monotonic()
        s.sendall(_request(f"{NOVA_PATH}/converse", b'{"messages": [', length=500))
        raw = _read_until_closed(s)
        elapsed = time.monotonic() - t0
        s.close()
        assert 0.4 <= elapsed < 0.5 + 5
        status, headers, body = _status_headers_body(raw)
        assert status == 408 and headers["x-amzn-errortype"].startswith("RequestTimeoutException:")
        assert "body did not arrive" in json.loads(body)["message"]
        make_client(emu.url).converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 3})
    lines = _log_lines(log)
    assert [x["outcome"] for x in lines] == ["body_timeout", "ok"]
    assert lines[0]["op"] == "converse" and lines[0]["arrival_unix"] > 0


def test_idle_keep_alive_and_silent_connections_are_closed_within_the_limit() -> None:
    with run_emulator(time_scale=0.02, idle_timeout_s=0.5) as emu:
        silent = _connect(emu)
        t0 = time.monotonic()
        assert _read_until_closed(silent) == b""  # never sent a byte
        assert time.monotonic() - t0 < 0.5 + 5
        silent.close()
        s = _connect(emu)
        s.sendall(_request(f"{NOVA_PATH}/converse", _converse_body(3)))
        t0 = time.monotonic()
        raw = _read_until_closed(s)  # the answer, then the idle keep-alive connection is closed
        assert time.monotonic() - t0 < 0.5 + 5
        s.close()
        assert raw.startswith(b"HTTP/1.1 200 ")


def test_a_slow_header_does_not_hold_up_other_clients() -> None:
    with run_emulator(time_scale=0.02, header_timeout_s=3.0) as emu:
        slow = [_connect(emu) for _ in range(20)]
        for s in slow:
            s.sendall(b"POST /model/x/converse HTTP/1.1\r\nHo")
        r = make_client(emu.url).converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 3})
        assert r["stopReason"] in ("end_turn", "max_tokens")
        for s in slow:
            s.close()


# -- malformed input ------------------------------------------------------------------------------------------
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("op", "code"), [("converse", "SerializationException"),
                                          ("invoke", "ValidationException"),
                                          ("count-tokens", "SerializationException")])  # fmt: skip
@pytest.mark.parametrize("depth", [65, 100_000])
def test_json_nested_past_the_limit_is_malformed_input_not_a_500(post: Any, op: str, code: str, depth: int) -> None:
    body = '{"messages": ' + _nested(depth) + "}"
    status, headers, doc = post(f"{NOVA_PATH}/{op}", body)
    assert status == 400 and headers["x-amzn-errortype"] == code + ERR_SUFFIX
    assert "nested deeper than 64 levels" in doc["message"]


def test_json_at_the_nesting_limit_is_parsed(post: Any) -> None:
    # 64 levels: the top object plus 63 nested lists; parsed, then refused by the Converse validation itself
    status, headers, doc = post(f"{NOVA_PATH}/converse", '{"messages": ' + _nested(63) + "}")
    assert status == 400 and "nested" not in doc["message"]
    assert headers["x-amzn-errortype"].startswith("ValidationException:")


def test_invoke_base64_body_of_count_tokens_has_the_same_limit(post: Any) -> None:
    import base64

    inner = base64.b64encode(('{"messages": ' + _nested(200) + "}").encode()).decode()
    status, _, doc = post(f"{NOVA_PATH}/count-tokens", json.dumps({"input": {"invokeModel": {"body": inner}}}))
    assert status == 400 and "nested deeper than 64 levels" in doc["message"]


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"POST /model/x/converse HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)),  # a TLS ClientHello on the HTTP port
])  # fmt: skip
def test_malformed_http_gets_an_aws_shaped_400(emulator: Emulator, raw: bytes) -> None:
    s = _connect(emulator)
    s.sendall(raw)
    answer = _read_until_closed(s)
    s.close()
    status, headers, body = _status_headers_body(answer)
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException" + ERR_SUFFIX
    assert headers["x-amzn-requestid"] and json.loads(body)["message"].startswith("Malformed HTTP request")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])  # zlib: always there (br needs brotli)
def test_a_body_its_content_encoding_does_not_describe_is_an_aws_shaped_400(post: Any, encoding: str) -> None:
    status, headers, doc = post(f"{NOVA_PATH}/converse", _converse_body(), {"Content-Encoding": encoding})
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException" + ERR_SUFFIX
    assert doc["message"] == f"Malformed HTTP request body: Can not decode content-encoding: {encoding}"


def test_client_mistakes_and_disconnects_leave_no_traceback_on_stderr(tmp_path: Path) -> None:
    """The CLI process (what subprocess mode runs): garbage, deep JSON, a client that vanishes mid-stream and
    one that vanishes while queued; then SIGTERM. stderr holds only the stop line."""
    cmd = [sys.executable, "-m", "bedrock_lab", "emulator", "--port", "0", "--time-scale", "0.2",
           "--capacity", "1", "--timing-log", str(tmp_path / "t.jsonl")]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening on http://"), line
        host, port = line.split("http://")[1].strip().rsplit(":", 1)
        emu_addr = (host, int(port))

        def conn() -> socket.socket:
            s = socket.create_connection(emu_addr, timeout=10)
            s.settimeout(10)
            return s

        s = conn()
        s.sendall(b"GARBAGE / HTTP/1.1\r\n\r\n")
        _read_until_closed(s)
        s.close()
        s = conn()
        s.sendall(_request(f"{NOVA_PATH}/converse", ('{"messages": ' + _nested(50_000) + "}").encode()))
        assert s.recv(100).startswith(b"HTTP/1.1 400")
        s.close()
        streaming = conn()  # holds the only slot, then vanishes after the first bytes of its stream
        streaming.sendall(_request(f"{NOVA_PATH}/converse-stream", _converse_body(300)))
        assert streaming.recv(100).startswith(b"HTTP/1.1 200")
        queued = conn()  # waits for the slot, then vanishes
        queued.sendall(_request(f"{NOVA_PATH}/converse", _converse_body(3)))
        for s in (streaming, queued):  # abortive close (RST), the rudest disconnect
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        s = conn()  # a body its Content-Encoding does not describe
        s.sendall(_request(f"{NOVA_PATH}/converse", _converse_body(3), extra="Content-Encoding: gzip\r\n"))
        assert s.recv(100).startswith(b"HTTP/1.1 400")
        s.close()
        s = conn()  # the server still answers after all that
        s.sendall(_request(f"{NOVA_PATH}/count-tokens", json.dumps({"input": {"converse": {"messages": user()}}})
                           .encode()))  # fmt: skip
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in err and "Error" not in err, err
    lines = _log_lines(tmp_path / "t.jsonl")
    outcomes = sorted(x["outcome"] for x in lines)  # lines are written when requests end: order varies
    assert outcomes == ["client_disconnected", "client_disconnected", "error", "error", "error", "ok"], outcomes


# -- every request gets its timing-log line -------------------------------------------------------------------
def test_timing_log_has_a_line_for_every_request_however_it_ended(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    with run_emulator(time_scale=1.0, timing_log=log, max_body_bytes=2000,
                      latency={"tokens_per_s": 20, "output_median_tokens": 0}) as emu:  # fmt: skip
        assert raw_post(emu.url, f"{NOVA_PATH}/converse", _converse_body(), {"Authorization": None})[0] == 403
        assert raw_post(emu.url, "/no/such/route", b"{}")[0] == 404
        assert raw_post(emu.url, f"{NOVA_PATH}/converse", b"x" * 5000)[0] == 413
        assert raw_post(emu.url, f"{NOVA_PATH}/converse", b"{not json")[0] == 400
        assert raw_post(emu.url, "/model/no.such-model-v1/converse", _converse_body())[0] == 400
        in_flight = _connect(emu)  # a 300-token stream at 20 tokens/s: 15 s, still going at shutdown
        in_flight.sendall(_request(f"{NOVA_PATH}/converse-stream", _converse_body(300)))
        assert in_flight.recv(100).startswith(b"HTTP/1.1 200")
    in_flight.close()
    lines = _log_lines(log)
    got = [(x["status"], x["error_code"], x["outcome"]) for x in lines]
    assert got == [(403, "MissingAuthenticationTokenException", "error"), (404, "UnknownOperationException", "error"),
                   (413, "ValidationException", "error"), (400, "SerializationException", "error"),
                   (400, "ValidationException", "error"), (200, "EmulatorShutdown", "shutdown")]  # fmt: skip
    assert all(x["arrival_unix"] > 0 and x["request_id"] for x in lines)
    assert lines[-1]["frames"] >= 1 and lines[-1]["op"] == "converse-stream"


# -- no unauthenticated state change --------------------------------------------------------------------------
def test_stats_reset_needs_the_same_auth_as_the_operations() -> None:
    with run_emulator(time_scale=0.02, strict_auth=True, credentials={"lab-access": "lab-secret"}) as emu:
        url = emu.url + "/_bedrock_lab/stats"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as r:  # reading needs nothing
            assert "emit_lag" in json.loads(r.read())
        with pytest.raises(urllib.error.HTTPError) as exc:
            opener.open(url + "?reset=1", timeout=10)
        assert exc.value.code == 403
        assert exc.value.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException:")
        with pytest.raises(urllib.error.HTTPError) as exc:  # signed, but with a key the emulator does not know
            fetch_stats(emu.url, reset=True, credentials={"someone-else": "other-secret"})
        assert exc.value.code == 403
        c = boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1",
                         aws_access_key_id="lab-access", aws_secret_access_key="lab-secret")  # fmt: skip
        s = c.converse_stream(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 8})
        list(s["stream"])
        assert emu.stats()["emit_lag"]["frames"] > 0
        emu.stats(reset=True)  # signed with the emulator's credentials: allowed
        assert emu.stats()["emit_lag"]["frames"] == 0


# -- arrival and write times ----------------------------------------------------------------------------------
def test_arrival_response_and_frame_write_times_bracket_the_schedule(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    with run_emulator(time_scale=0.05, timing_log=log, latency={"output_median_tokens": 0}) as emu:
        c = make_client(emu.url)
        t0 = time.time()
        r = c.converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 8})
        t1 = time.time()
        h = r["ResponseMetadata"]["HTTPHeaders"]
        arrival, sent = float(h[H_ARRIVAL]), float(h[H_RESPONSE])
        assert t0 <= arrival <= sent <= t1
        assert float(h[H_PRE]) >= float(h[H_QUEUE])
        t0 = time.time()
        s = c.converse_stream(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 40})
        list(s["stream"])
        t1 = time.time()
        hs = s["ResponseMetadata"]["HTTPHeaders"]
        assert t0 <= float(hs[H_ARRIVAL]) <= float(hs[H_RESPONSE]) <= t1
    line = _log_lines(log)[-1]
    assert line["request_id"] == hs["x-amzn-requestid"]
    assert line["ttft_ms"] == pytest.approx(float(hs[H_TTFT]), abs=0.01)
    assert line["ttft_ms"] == pytest.approx(line["pre_ms"] + (line["chunk_offsets_ms"][0] - line["pre_ms"]))
    # one write per scheduled content chunk, none before its time, the first after the intended TTFT
    assert line["frames"] == len(line["frame_write_ms"]) == len(line["chunk_offsets_ms"])
    for actual, intended in zip(line["frame_write_ms"], line["chunk_offsets_ms"], strict=True):
        assert actual >= intended - 1.0  # wall clock vs loop clock: within a millisecond
    assert line["first_frame_unix"] >= line["arrival_unix"] + line["ttft_ms"] / 1000 - 0.001
    assert line["last_frame_unix"] <= t1


@pytest.mark.parametrize(("key", "value"), [("header_timeout_s", 0), ("body_timeout_s", -1), ("idle_timeout_s", True),
                                            ("idle_timeout_s", 1e9), ("max_json_depth", 2), ("max_json_depth", 1.5)])
def test_limits_are_validated_with_the_key_and_what_is_allowed(key: str, value: Any) -> None:
    from bedrock_lab.emulator import check_overrides
    from bedrock_lab.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        check_overrides({key: value})
    assert exc.value.key == key and exc.value.allowed


def test_limits_reach_the_cli_process() -> None:
    args = EmulatorConfig(header_timeout_s=1.5, body_timeout_s=2.5, idle_timeout_s=3.5, max_json_depth=10).cli_args()
    for flag, value in (("--header-timeout", "1.5"), ("--body-timeout", "2.5"), ("--idle-timeout", "3.5"),
                        ("--max-json-depth", "10")):
        assert args[args.index(flag) + 1] == value
    with run_emulator(mode="subprocess", header_timeout_s=0.5) as emu:
        s = _connect(emu)
        t0 = time.monotonic()
        s.sendall(b"POST /x HTTP/1.1\r\nHo")
        assert _read_until_closed(s).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - t0 < 0.5 + 5
        s.close()


def test_expect_100_continue_is_honoured(emulator: Emulator) -> None:
    """What aiohttp's router did for us before the emulator moved to aiohttp's low-level server."""
    body = _converse_body(3)
    s = _connect(emulator)
    s.sendall(_request(f"{NOVA_PATH}/converse", b"", extra="Expect: 100-continue\r\n", length=len(body)))
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    assert s.recv(100).startswith(b"HTTP/1.1 200 OK")
    s.close()
    status, headers, _ = raw_post(emulator.url, f"{NOVA_PATH}/converse", body, {"Expect": "teapot"})
    assert status == 417 and headers["x-amzn-errortype"].startswith("ValidationException:")


def test_binding_beyond_loopback_warns_in_thread_mode() -> None:
    from bedrock_lab.emulator import beyond_loopback
    from bedrock_lab.errors import EmulatorError

    assert beyond_loopback("127.0.0.2") is None and beyond_loopback("::1") is None
    assert beyond_loopback("localhost") is None
    assert "beyond loopback" in (beyond_loopback("0.0.0.0") or "")
    # 192.0.2.1 (TEST-NET-1) is no interface of this machine: the warning comes first, then the bind fails, so the
    # test never listens beyond loopback
    with pytest.warns(UserWarning, match="beyond loopback"), pytest.raises(EmulatorError):
        Emulator(EmulatorConfig(host="192.0.2.1"), "thread").start()


def test_cli_defaults_are_the_emulator_defaults() -> None:
    import argparse

    from bedrock_lab.cli import emulator as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    cfg = EmulatorConfig()
    for flag, field in (("header_timeout", "header_timeout_s"), ("body_timeout", "body_timeout_s"),
                        ("idle_timeout", "idle_timeout_s"), ("max_json_depth", "max_json_depth"),
                        ("max_queue_ms", "max_queue_ms"), ("max_body_bytes", "max_body_bytes")):
        assert getattr(args, flag) == getattr(cfg, field), flag
