"""Emulator benchmark: how late do stream frames leave versus the intended schedule, by concurrency?

    .venv/bin/python bench/emulator_bench.py                       # 100, 500, 1000, 2000 streams
    .venv/bin/python bench/emulator_bench.py --levels 100 500 --max-tokens 100

The emulator runs as its own process (`bedrock-lab emulator`, one asyncio loop = one core). A separate client
process opens N connections at once (spread over --ramp-s), sends one ConverseStream request on each and reads
the event stream to the end with raw asyncio sockets (no botocore: the client must be cheaper than the server).

Reported per level:
- emit lag p50/p99/max: server-side, actual frame write time minus intended time (every content frame);
- client TTFT error p50/p99: client-measured time to the first body byte minus the intended TTFT header
  (includes the client's own scheduling delay, so it is an upper bound of the measurement error);
- frames/s the server wrote, the CPU share of the emulator process (100% = one core) and its CPU time per
  frame (request handling included), which is less sensitive to other load on the machine than the lags.
The profile is fixed (--tokens-per-s, --chunk-tokens, --max-tokens, --ttft-ms) so runs are comparable.

With --split the emulator also writes its timing log, and each request's TTFT overhead (client-measured minus
the intended ``x-bedrock-lab-ttft-ms``, which runs from the server's arrival stamp) is split by wall clock, joined
on the request id, into: client send -> server arrival (client write + loopback in + header parse), the server's
work before the schedule (``pre_ms``: body, auth, validation, queue; inside the intended TTFT, reported for
reference), the first frame's lateness (first write minus arrival + intended TTFT) and first write -> client's
first body byte (loopback out + client loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "amazon.nova-lite-v1%3A0"


def _body(max_tokens: int) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": [{"text": "benchmark prompt " * 20}]}],
                       "inferenceConfig": {"maxTokens": max_tokens}}).encode()  # fmt: skip


class _Stream(asyncio.Protocol):
    """One connection, one request; notes when the first body byte arrives and when the stream ends.

    A bare Protocol (no StreamReader) keeps the client's per-frame cost far below the server's."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[float, float, str, float, float]]) -> None:
        self.request, self.done = request, done
        self.buf = b""
        self.t0 = self.first = 0.0
        self.sent_unix = self.first_unix = 0.0
        self.request_id = ""
        self.truth = float("nan")
        self.in_body = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.t0 = time.perf_counter()
        self.sent_unix = time.time()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.buf += data
            if b"\r\n\r\n" not in self.buf:
                return
            head, data = self.buf.split(b"\r\n\r\n", 1)
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"x-bedrock-lab-ttft-ms:"):
                    self.truth = float(line.split(b":", 1)[1])
                elif line.lower().startswith(b"x-amzn-requestid:"):
                    self.request_id = line.split(b":", 1)[1].strip().decode()
            self.in_body = True
            if not data:
                return
        if not self.first:
            self.first = time.perf_counter()
            self.first_unix = time.time()
        self.tail = (self.tail + data)[-5:]
        if self.tail == b"0\r\n\r\n" and not self.done.done():
            self.done.set_result(((self.first - self.t0) * 1000.0, self.truth, self.request_id, self.sent_unix,
                                  self.first_unix))  # fmt: skip
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed early: {exc}"))


async def _one(host: str, port: int, request: bytes, delay: float, out: list[tuple[float, float, str, float, float]]) -> None:
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[float, float, str, float, float]] = loop.create_future()
    await loop.create_connection(lambda: _Stream(request, done), host, port)
    out.append(await done)


async def _client(url: str, streams: int, max_tokens: int, ramp_s: float) -> dict[str, float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = _body(max_tokens)
    request = (f"POST /model/{MODEL}/converse-stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Content-Type: application/json\r\nX-Amz-Date: 20260101T000000Z\r\n"
               "Authorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/bedrock/aws4_request, "
               f"SignedHeaders=host;x-amz-date, Signature=00\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body  # fmt: skip
    out: list[tuple[float, float, str, float, float]] = []
    tasks = [_one(host, int(port), request, ramp_s * i / streams, out) for i in range(streams)]
    res = await asyncio.gather(*tasks, return_exceptions=True)
    errors = sum(isinstance(r, BaseException) for r in res)
    errs = sorted(m - t for m, t, *_ in out)
    q = statistics.quantiles(errs, n=100) if len(errs) >= 2 else [float("nan")] * 99
    return {"ok": len(out), "errors": errors, "ttft_err_p50_ms": statistics.median(errs) if errs else float("nan"),
            "ttft_err_p99_ms": q[98], "requests": [(rid, sent, first) for _, _, rid, sent, first in out]}  # fmt: skip


def _stats(url: str, reset: bool = False) -> dict:
    from bedrock_lab.emulator import fetch_stats

    return fetch_stats(url, reset=reset)  # a reset is a signed request, like an operation


def _q(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")


def split(requests: list[list[Any]], log: Path) -> dict[str, tuple[float, float]]:
    """p50 / p99 (ms) of each part of the TTFT overhead, joined with the timing log on the request id."""
    lines = {x["request_id"]: x for x in map(json.loads, log.read_text().splitlines())}
    parts: dict[str, list[float]] = {"overhead": [], "client_to_arrival": [], "pre (in the intended TTFT)": [],
                                     "first_frame_late": [], "frame_to_client": []}  # fmt: skip
    for rid, sent, first in requests:
        x = lines.get(rid)
        if not x or not x.get("first_frame_unix"):
            continue
        due = x["arrival_unix"] + x["ttft_ms"] / 1000
        parts["overhead"].append((first - sent) * 1000 - x["ttft_ms"])
        parts["client_to_arrival"].append((x["arrival_unix"] - sent) * 1000)
        parts["pre (in the intended TTFT)"].append(x["pre_ms"])
        parts["first_frame_late"].append((x["first_frame_unix"] - due) * 1000)
        parts["frame_to_client"].append((first - x["first_frame_unix"]) * 1000)
    return {k: (_q(v, 0.5), _q(v, 0.99)) for k, v in parts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[100, 500, 1000, 2000])
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--tokens-per-s", type=float, default=50.0)
    ap.add_argument("--chunk-tokens", type=int, default=5)
    ap.add_argument("--ttft-ms", type=float, default=300.0)
    ap.add_argument("--ramp-s", type=float, default=5.0)
    ap.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default="asyncio",
                    help="emulator event loop (the client uses uvloop when installed)")
    ap.add_argument("--split", action="store_true", help="also split each request's TTFT overhead into its parts "
                    "(client -> server, server before the schedule, first frame late, server -> client)")
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        print(json.dumps(loop.run_until_complete(_client(args.url, args.streams, args.max_tokens, args.ramp_s))))
        return 0

    import psutil

    lat = {"ttft_ms": args.ttft_ms, "tokens_per_s": args.tokens_per_s, "chunk_tokens": args.chunk_tokens,
           "output_median_tokens": 0, "contention": 0, "prefill_ms_per_1k": 0}  # fmt: skip
    cmd = [sys.executable, "-m", "bedrock_lab", "emulator", "--port", "0", "--capacity", "100000",
           "--tpm-quota", str(10**12), "--max-queue-ms", "55000", "--event-loop", args.event_loop]  # fmt: skip
    for k, v in lat.items():
        cmd += ["--latency", f"{k}={v}"]
    log = Path(tempfile.mkdtemp(prefix="emulator-bench-")) / "timing.jsonl"
    if args.split:
        cmd += ["--timing-log", str(log)]
    splits: list[tuple[int, dict[str, tuple[float, float]]]] = []
    emu = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = emu.stdout.readline() if emu.stdout else ""
        if not line.startswith("listening on "):
            raise SystemExit(f"emulator did not start: {line!r}")
        url = line.split()[-1]
        proc = psutil.Process(emu.pid)
        frames_per_stream = -(-args.max_tokens // args.chunk_tokens)
        dur = args.ttft_ms / 1000 + args.max_tokens / args.tokens_per_s
        print(f"profile: {args.max_tokens} tokens in chunks of {args.chunk_tokens} at {args.tokens_per_s:g} tok/s "
              f"({frames_per_stream} content frames over ~{dur:.1f} s per stream), ramp {args.ramp_s:g} s, "
              f"{os.cpu_count()} CPUs, event loop {args.event_loop}, load average before "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        rows = []
        for n in args.levels:
            _stats(url, reset=True)
            cpu0, t0 = proc.cpu_times(), time.monotonic()
            cp = subprocess.run([sys.executable, __file__, "--client", "--url", url, "--streams", str(n),
                                 "--max-tokens", str(args.max_tokens), "--ramp-s", str(args.ramp_s)],
                                capture_output=True, text=True, timeout=600)  # fmt: skip
            cpu1, t1 = proc.cpu_times(), time.monotonic()
            if cp.returncode != 0:
                raise SystemExit(cp.stderr)
            client = json.loads(cp.stdout)
            if args.split:
                splits.append((n, split(client["requests"], log)))
                log.write_text("")
            st = _stats(url, reset=True)
            lag = st["emit_lag"]
            cpu_s = cpu1.user + cpu1.system - cpu0.user - cpu0.system
            rows.append((n, client["ok"], client["errors"], lag["frames"], lag["frames"] / (t1 - t0), lag["p50_ms"],
                         lag["p99_ms"], lag["max_ms"], client["ttft_err_p50_ms"], client["ttft_err_p99_ms"],
                         cpu_s / (t1 - t0) * 100, cpu_s / max(1, lag["frames"]) * 1e6))  # fmt: skip
            print(f"  {n} streams done", flush=True)
        print()
        print("| streams | ok | errors | frames | frames/s | emit lag p50 ms | p99 ms | max ms "
              "| client TTFT err p50 ms | p99 ms | emulator CPU % | CPU us/frame |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print("| {} | {} | {} | {} | {:.0f} | {:.2f} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.0f} |"
                  .format(*r))
        for n, parts in splits:
            print(f"\nTTFT overhead split at {n} streams (ms, p50 / p99):\n\n| part | p50 | p99 |\n|---|---:|---:|")
            for k, (p50, p99) in parts.items():
                print(f"| {k} | {p50:.3f} | {p99:.3f} |")
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        emu.terminate()
        emu.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
