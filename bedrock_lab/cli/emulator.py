"""`bedrock-lab emulator`: run the embedded Bedrock Runtime on loopback until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from typing import TYPE_CHECKING

from bedrock_lab.errors import ConfigError

if TYPE_CHECKING:
    from bedrock_lab.emulator import EmulatorConfig

SUMMARY = "run the embedded Bedrock Runtime emulator on loopback"
DESCRIPTION = """\
Run the embedded Amazon Bedrock Runtime emulator (Converse, ConverseStream, InvokeModel,
InvokeModelWithResponseStream, CountTokens, OpenAI Chat Completions at /openai/v1) with the latency, capacity, quota and fault model of the
catalog. Prints exactly one line `listening on http://HOST:PORT` when ready, then serves until SIGINT/SIGTERM.

Point clients at it with endpoint_url=URL or AWS_ENDPOINT_URL_BEDROCK_RUNTIME=URL (any region, any
credentials; --strict-auth verifies SigV4 signatures against AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).

examples:
  bedrock-lab emulator --port 8765
  bedrock-lab emulator --port 0 --seed 7 --time-scale 0.1 --capacity 8 --timing-log timing.jsonl
  bedrock-lab emulator --fault error_503=0.02 --fault stream_throttle=0.01 --tpm-quota 100000
  bedrock-lab emulator --tls --strict-auth        # HTTPS + verified Bedrock API keys (boto3 bearer auth)
  bedrock-lab emulator --overlay outputs/fit/overlay.yaml        # replay a calibrated service (bedrock-lab calibrate)
  bedrock-lab emulator --background pattern=constant --background level=0.9   # other customers share capacity
"""


def _kv(text: str) -> tuple[str, float]:
    """NAME=VALUE where VALUE is a number (:func:`_kv_any`, words refused)."""
    key, value = _kv_any(text)
    if isinstance(value, str):
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a number")
    return key, value


def _kv_any(text: str) -> tuple[str, float | str]:
    """NAME=VALUE where VALUE is a number or (``pattern=daily``) a word."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        return key.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default 8765)")
    parser.add_argument("--catalog", default=None, help="model catalog YAML (default: params/catalog.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every latency by this (0.05 = 20x faster; default 1)")
    parser.add_argument("--capacity", type=int, default=None, help="concurrent capacity of every model")
    parser.add_argument("--tpm-quota", type=int, default=None, help="tokens-per-minute quota of every model")
    parser.add_argument("--max-queue-ms", type=float, default=30_000.0,
                        help="longest admission wait before ThrottlingException (default 30000)")
    parser.add_argument("--fault", type=_kv, action="append", default=[], metavar="NAME=RATE",
                        help="fault rate for every model: error_500, error_503, error_408, model_not_ready, "
                             "stream_throttle, stream_error, drop, stall (probability) or stall_ms")
    parser.add_argument("--latency", type=_kv, action="append", default=[], metavar="KNOB=VALUE",
                        help="latency knob for every model (ttft_ms, tokens_per_s, chunk_tokens, ...)")
    parser.add_argument("--overlay", action="append", default=[], metavar="FILE",
                        help="catalog overlay merged onto the catalog (repeatable; `bedrock-lab calibrate` writes one)")
    parser.add_argument("--background", type=_kv_any, action="append", default=[], metavar="KNOB=VALUE",
                        help="other customers' demand on every model: pattern=none|constant|daily|bursts, level "
                             "(fraction of capacity), amplitude, period_s, burst_level, burst_every_s, burst_s, "
                             "hold_ms, priority_share, flex_share (docs/emulator.md, Shared capacity)")
    parser.add_argument("--strict-auth", action="store_true",
                        help="verify SigV4 signatures and Bedrock API keys (short-term keys against "
                             "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; a long-term key must equal "
                             "AWS_BEARER_TOKEN_BEDROCK)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a certificate made at start (botocore sends API keys only over "
                             "HTTPS); prints how to trust its CA bundle on stderr")
    parser.add_argument("--tls-dir", default=None, metavar="DIR",
                        help="with --tls: write the CA bundle (bedrock-lab-emulator-ca.pem) here (default: a new "
                             "temporary folder)")
    parser.add_argument("--timing-log", default=None, help="write one JSON line per request to this file")
    parser.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default="asyncio",
                        help="asyncio (default, lowest emit lag), uvloop (less CPU; must be installed) or auto")
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                        help="stop when process PID is no longer this emulator's parent (set by run_emulator, "
                             "so a SIGKILLed sweep never leaves an emulator behind)")
    parser.add_argument("--header-timeout", type=float, default=20.0, metavar="S",
                        help="a request's headers must arrive within S seconds of its first byte, else 408 and the "
                             "connection is closed (default 20)")
    parser.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                        help="a request's body must arrive within S seconds of its headers, else 408 and close "
                             "(default 60)")
    parser.add_argument("--idle-timeout", type=float, default=75.0, metavar="S",
                        help="close a keep-alive connection idle for S seconds, or one that sends nothing "
                             "(default 75)")
    parser.add_argument("--max-json-depth", type=int, default=64, metavar="N",
                        help="JSON bodies nested deeper than N levels are malformed input: 400 (default 64)")
    parser.add_argument("--max-body-bytes", type=int, default=25_000_000, help=argparse.SUPPRESS)


GC_FULL_EVERY_S = 60.0


def _tune_gc(loop: asyncio.AbstractEventLoop) -> None:
    """This process only serves: automatic full collections (50-110 ms pauses with 2,000 open streams, and
    they free next to nothing: request objects die by reference counting) are replaced by one scheduled
    full collection a minute, and start-up objects are frozen out of the collector's view."""
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1_000_000_000)

    def full() -> None:
        gc.collect()
        loop.call_later(GC_FULL_EVERY_S, full)

    loop.call_later(GC_FULL_EVERY_S, full)


PARENT_POLL_S = 1.0


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """A parent killed with SIGKILL cannot stop us; when it dies we are re-parented, and we stop."""
    while not stop.is_set():
        if os.getppid() != pid:
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


async def _serve(cfg: EmulatorConfig, parent_pid: int | None = None) -> None:
    from bedrock_lab.emulator.server import EmulatorServer

    server = EmulatorServer(cfg.settings())
    material = None
    if cfg.tls:
        from bedrock_lab.emulator.tls import make_tls

        material = make_tls(cfg.host, cfg.tls_dir)
    try:
        port = await server.listen(cfg.host, cfg.port, ssl_context=material.context if material else None)
    except BaseException:
        await server.close()
        raise
    _tune_gc(asyncio.get_running_loop())
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(f"listening on {'https' if material else 'http'}://{host}:{port}", flush=True)
    if material is not None:
        from bedrock_lab.emulator.tls import trust_hint

        print(f"bedrock-lab emulator: {trust_hint(material.ca_bundle)}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        await stop.wait()
    finally:
        if watcher:
            watcher.cancel()
        await server.close()


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.emulator import EmulatorConfig

    cfg = EmulatorConfig(
        host=args.host, port=args.port, seed=args.seed, catalog=args.catalog, time_scale=args.time_scale,
        capacity=args.capacity, tpm_quota=args.tpm_quota, max_queue_ms=args.max_queue_ms,
        faults=dict(args.fault), latency=dict(args.latency), strict_auth=args.strict_auth,
        overlay=list(args.overlay) or None, background=dict(args.background),
        timing_log=args.timing_log, max_body_bytes=args.max_body_bytes, event_loop=args.event_loop,
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout, idle_timeout_s=args.idle_timeout,
        max_json_depth=args.max_json_depth, tls=args.tls, tls_dir=args.tls_dir,
    )  # fmt: skip
    cfg.validate()
    from bedrock_lab.emulator import beyond_loopback, close_loop, new_event_loop

    warning = beyond_loopback(cfg.host)
    if warning:
        print(f"bedrock-lab emulator: warning: {warning}", file=sys.stderr)

    loop = new_event_loop(cfg.event_loop)
    try:
        loop.run_until_complete(_serve(cfg, args.exit_with_parent))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", key="port",
                          value=args.port) from exc
    finally:
        close_loop(loop)
    print("bedrock-lab emulator: stopped", file=sys.stderr)
    return 0
