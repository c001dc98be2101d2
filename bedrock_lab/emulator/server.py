"""The aiohttp server: connection limits, routing on the raw path, auth, validation, admission, frame scheduling.

One request goes: headers parsed (arrival time noted, header timer stopped) -> parse path (raw, so ``%2F``
inside an ARN never splits it) -> read the body (body timer) -> auth -> validate -> pre-response faults ->
token quota -> capacity queue -> response headers (with the intended timing as ground truth) -> frames written
at their scheduled times -> release slot, refund unused quota -> one timing-log line, however it ended.
Any exception becomes an AWS-shaped error response; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import IO, Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bedrock_lab.catalog import FAULT_KINDS, TIERS, Catalog, ModelSpec, split_model_id
from bedrock_lab.emulator import auth, guardrails, openai_chat
from bedrock_lab.emulator import eventstream as es
from bedrock_lab.emulator.background import Background, start_background
from bedrock_lab.emulator.caching import CacheUse, PromptCache
from bedrock_lab.emulator.load import (
    MSG_TOO_MANY_TOKENS,
    PRE_FAULT_ERRORS,
    Capacity,
    EmitStats,
    Schedule,
    TokenBucket,
    draw,
    plan,
)
from bedrock_lab.emulator.providers import (
    FORMATS,
    ApiError,
    Features,
    Prompt,
    Result,
    Shape,
    converse_body,
    converse_stop,
    converse_stream_events,
    converse_usage,
    count_tokens_input,
    cut_chunks,
    finish_answer,
    invoke_guardrail,
    parse_converse,
    response_fields,
    shape_answer,
    stop_cut,
    validation,
)
from bedrock_lab.emulator.scheduler import FrameScheduler
from bedrock_lab.emulator.streamjob import ScheduledStream
from bedrock_lab.emulator.text import generated_text

log = logging.getLogger("bedrock_lab.emulator")

H_QUEUE = "x-bedrock-lab-queue-ms"
H_PRE = "x-bedrock-lab-pre-ms"
H_TTFT = "x-bedrock-lab-ttft-ms"
H_DECODE = "x-bedrock-lab-decode-ms"
H_SEQ = "x-bedrock-lab-seq"
H_ARRIVAL = "x-bedrock-lab-arrival-unix"
H_RESPONSE = "x-bedrock-lab-response-unix"
H_CACHE_READ = "x-bedrock-lab-cache-read-tokens"  #: prompt tokens read from the prompt cache (ground truth)
H_CACHE_WRITE = "x-bedrock-lab-cache-write-tokens"  #: prompt tokens written to it
OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens")
STATS_PATH = "/_bedrock_lab/stats"
SHUTDOWN_GRACE_S = 1.0  #: in-flight requests get this long to finish when the server stops
_JSON = "application/json"
_ES = "application/vnd.amazon.eventstream"
_ERR_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_time = time.time


@dataclass
class ServerSettings:
    """Everything the running server needs; built by :class:`bedrock_lab.emulator.EmulatorConfig`."""

    catalog: Catalog
    seed: int = 0
    time_scale: float = 1.0
    max_queue_ms: float = 30_000.0
    credentials: dict[str, str] | None = None  #: strict SigV4 when set (access key -> secret key)
    timing_log: str | None = None
    max_body_bytes: int = 25_000_000
    header_timeout_s: float = 20.0  #: first byte of a request -> end of its headers
    body_timeout_s: float = 60.0  #: end of the headers -> end of the body
    idle_timeout_s: float = 75.0  #: an idle keep-alive connection (or one that never sends a byte) is closed
    max_json_depth: int = 64  #: deeper JSON bodies are malformed input (400), never a RecursionError
    api_keys: frozenset[str] | None = None  #: strict mode: the long-term Bedrock API keys accepted (auth.py)


@dataclass
class _ModelState:
    spec: ModelSpec
    capacity: Capacity
    bucket: TokenBucket
    background: Background | None = None  #: other customers' demand on the same capacity (background.py)


@dataclass(eq=False)  # hashed by identity: the set of requests in flight
class _Req:
    """Per-request bookkeeping, also the timing-log line."""

    request_id: str
    op: str
    model_id: str = ""
    seq: int = -1
    arrival: float = 0.0  #: loop time when the headers were parsed
    arrival_unix: float = 0.0  #: wall clock of the same moment, for joining with client records
    tier: str = "default"
    status: int = 200
    error_code: str | None = None
    outcome: str = "ok"  #: ok, error, client_disconnected, emulated_drop, body_timeout, shutdown
    input_tokens: int = 0
    output_tokens: int = 0
    max_tokens: int = 0
    queue_s: float = 0.0
    pre_s: float = 0.0  #: arrival -> admission (body read, validation, queue): the schedule starts after it
    response_unix: float = 0.0  #: wall clock when the response head (and for whole responses the body) left
    writes: list[float] | None = None  #: wall clock of every stream write (one per scheduled tick)
    schedule: Schedule | None = None
    fault: str | None = None
    logged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class _BodyTimeout(asyncio.TimeoutError):
    """The body did not arrive within ``body_timeout_s`` of the headers (set on the payload stream)."""


class _Request(web.BaseRequest):
    """A request that carries the moment its headers were parsed (set by the protocol)."""

    ATTRS = web.BaseRequest.ATTRS | frozenset(["bl_arrival"])
    bl_arrival: tuple[float, float] | None = None  #: (wall clock, loop time)


class _Protocol(web.RequestHandler):
    """aiohttp's HTTP/1.1 connection handler plus what production servers hold that aiohttp lacks.

    aiohttp has an idle keep-alive timeout (``keepalive_timeout``, also armed when a connection opens) but no
    header or body read timeout: a client could hold a half-sent header or body forever. Here a timer starts
    when bytes of a new request arrive and stops when its headers are parsed (``header_timeout_s``: 408 and
    close); another runs from the headers to the end of the body (``body_timeout_s``: the read fails, 408).
    The parse time of each request's headers is noted here, as early as the server can know the request.
    Malformed HTTP gets an AWS-shaped 400 and no traceback.
    """

    __slots__ = ("_arrivals", "_bl", "_body", "_body_timer", "_hdr_timer")

    def __init__(self, manager: web.Server, emu: EmulatorServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._bl = emu
        self._arrivals: deque[tuple[float, float]] = deque()
        self._hdr_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: Any = None  #: payload stream of the last parsed request while its body is incomplete

    def data_received(self, data: bytes) -> None:
        body = self._body
        in_body = body is not None and not body.is_eof()
        count = self._request_count
        super().data_received(data)
        new = self._request_count - count
        if new:
            stamp = (_time(), self._loop.time())
            self._arrivals.extend([stamp] * new)
            self._cancel_timers()
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._body = payload
                self._body_timer = self._loop.call_later(self._bl.s.body_timeout_s, self._body_expired, payload)
        elif in_body:
            if body.is_eof():
                self._cancel_timers()
        elif data and self._hdr_timer is None and not self._force_close:
            self._hdr_timer = self._loop.call_later(self._bl.s.header_timeout_s, self._header_expired)

    def _cancel_timers(self) -> None:
        if self._hdr_timer is not None:
            self._hdr_timer.cancel()
            self._hdr_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _header_expired(self) -> None:
        self._hdr_timer = None
        tr = self.transport
        if tr is None or self._force_close:
            return
        err = ApiError(408, "RequestTimeoutException", f"The request headers did not arrive within "
                       f"{self._bl.s.header_timeout_s:g} s.")  # fmt: skip
        req = _Req(str(uuid.uuid4()), "?", status=408, error_code=err.code, outcome="header_timeout")
        req.arrival_unix = _time()
        if not self._request_in_progress:  # an answer in the middle of another response would corrupt it
            body = json.dumps({"message": err.message}).encode()
            tr.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nx-amzn-ErrorType: "
                     + (err.code + _ERR_SUFFIX).encode() + b"\r\nx-amzn-RequestId: " + req.request_id.encode()
                     + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))  # fmt: skip
        self._bl.finished(req)
        self.force_close()

    def _body_expired(self, payload: Any) -> None:
        self._body_timer = None
        self._body = None
        if not payload.is_eof():
            payload.set_exception(_BodyTimeout(f"The request body did not arrive within "
                                               f"{self._bl.s.body_timeout_s:g} s of its headers."))  # fmt: skip

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp logs a body it could not decode (read again while lingering) as an unhandled exception: that
        is the client's mistake, already answered 400; only other errors keep their traceback."""
        if isinstance(kwargs.get("exc_info"), RequestPayloadError | ConnectionError | asyncio.TimeoutError):
            log.debug("emulator: %s", kwargs.get("exc_info"))
            return
        super().log_exception(*args, **kwargs)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:  # fmt: skip
        """Malformed HTTP (aiohttp's parser refused it) or an error that escaped the handler: AWS's shape."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; nothing can be answered")
        rid = str(uuid.uuid4())
        if status >= 500:
            log.error("emulator: unexpected error handling a request", exc_info=exc)
            err = ApiError(500, "InternalServerException", "The system encountered an unexpected error.")
        else:  # the client's mistake: a short debug line, never a traceback
            log.debug("emulator: malformed HTTP request: %s", message or exc)
            text = " ".join(str(message or exc or "bad request").split())[:300]
            err = ApiError(status, "ValidationException", f"Malformed HTTP request: {text}")
        req = _Req(rid, "?", status=err.status, error_code=err.code, outcome="error")
        arrival = getattr(request, "bl_arrival", None)
        if arrival is not None:
            req.arrival_unix, req.arrival = arrival
        self._bl.finished(req)
        resp = _error_response(err, rid, req.arrival_unix)
        resp.force_close()
        return resp


class _HttpServer(web.Server):
    """aiohttp's low-level server, building our protocol and our requests (body size limit, arrival time)."""

    def __init__(self, emu: EmulatorServer) -> None:
        super().__init__(emu.handle, request_factory=self._request)
        self._emu = emu

    def __call__(self) -> _Protocol:
        s = self._emu.s
        return _Protocol(self, self._emu, loop=self._loop, keepalive_timeout=s.idle_timeout_s,
                         max_field_size=65536, access_log=None)  # fmt: skip

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> _Request:
        req = _Request(message, payload, protocol, writer, task, self._loop,
                       client_max_size=self._emu.s.max_body_bytes + 1)  # fmt: skip
        arrivals = getattr(protocol, "_arrivals", None)
        if arrivals:
            req.bl_arrival = arrivals.popleft()
        return req


def _error_response(err: ApiError, request_id: str, arrival_unix: float = 0.0) -> web.Response:
    headers = {"Content-Type": _JSON, "x-amzn-ErrorType": err.code + _ERR_SUFFIX, "x-amzn-RequestId": request_id}
    if arrival_unix:
        headers[H_ARRIVAL] = f"{arrival_unix:.6f}"
    return web.Response(status=err.status, body=json.dumps({"message": err.message}).encode(), headers=headers)


class EmulatorServer:
    """State shared by all requests of one emulator instance."""

    def __init__(self, settings: ServerSettings) -> None:
        self.s = settings
        self.models: dict[str, _ModelState] = {}
        self.seq = 0
        self.emit = EmitStats()
        self.counts: dict[str, int] = {}
        self._log: IO[str] | None = open(settings.timing_log, "a", buffering=1) if settings.timing_log else None  # noqa: SIM115
        self.active_streams = 0
        self.max_active_streams = 0
        self.prompt_cache = PromptCache()  #: prompt-cache entries of every model (caching.py)
        self._scheduler: FrameScheduler | None = None
        self._runner: web.BaseRunner | None = None
        self._inflight: set[_Req] = set()  #: requests whose line is not written yet (written at shutdown)
        self.stopping = False

    def scheduler(self, loop: asyncio.AbstractEventLoop) -> FrameScheduler:
        if self._scheduler is None or self._scheduler.loop is not loop:
            self._scheduler = FrameScheduler(loop)
        return self._scheduler

    # -- lifecycle ------------------------------------------------------------------------------------
    async def listen(self, host: str, port: int, backlog: int = 4096, ssl_context: Any = None) -> int:
        """Start serving on host:port (0 = a free port; HTTPS with ``ssl_context``, see tls.py); returns the port.
        Stop with :meth:`close`."""
        self._runner = web.ServerRunner(_HttpServer(self), handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=backlog, ssl_context=ssl_context)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # aiohttp exposes no public accessor
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def close(self) -> None:
        """Stop: in-flight requests get SHUTDOWN_GRACE_S to finish, the rest are cancelled; every one of them
        gets its timing-log line (outcome ``shutdown``) before the log is closed."""
        self.stopping = True
        for st in self.models.values():
            if st.background is not None:
                st.background.stop()
        try:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
        finally:
            for req in list(self._inflight):  # still running after the grace time and the cancellation
                req.outcome, req.error_code = "shutdown", req.error_code or "EmulatorShutdown"
                if not req.response_unix:
                    req.status = 499
                self.finished(req)
            if self._log:
                self._log.close()
                self._log = None

    def state(self, spec: ModelSpec) -> _ModelState:
        st = self.models.get(spec.model_id)
        if st is None:
            st = _ModelState(spec, Capacity(spec.latency.capacity), TokenBucket(float(spec.tpm_quota)))
            st.background = start_background(spec, st.capacity, seed=self.s.seed, time_scale=self.s.time_scale,
                                             max_queue_s=self.s.max_queue_ms / 1000.0)  # fmt: skip
            self.models[spec.model_id] = st
        return st

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.seq,
            "outcomes": dict(self.counts),
            "emit_lag": self.emit.summary(),
            "active_streams": self.active_streams,
            "max_active_streams": self.max_active_streams,
            "models": {k: {"active": v.capacity.active, "waiting": v.capacity.waiting,
                           "quota_tokens_left": round(v.bucket.level),
                           **({"background": v.background.stats.as_dict()} if v.background else {})}
                       for k, v in self.models.items()},
        }  # fmt: skip

    # -- entry point ----------------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        rid = str(uuid.uuid4())
        req = _Req(rid, "?")
        arrival = getattr(request, "bl_arrival", None)
        if arrival is None:  # not from our protocol (cannot happen in the server): now is the best guess
            arrival = (_time(), asyncio.get_running_loop().time())
        req.arrival_unix, req.arrival = arrival
        self._inflight.add(req)
        try:
            resp = await self._handle(request, req)
            tr = request.transport
            if (tr is None or tr.is_closing()) and req.outcome == "ok":  # gone while queued or being served
                req.error_code, req.outcome = req.error_code or "ClientDisconnected", "client_disconnected"
        except ApiError as err:
            req.status, req.error_code, req.outcome = err.status, err.code, "error"
            resp = self._error(err, req)
        except _BodyTimeout as exc:
            timeout = ApiError(408, "RequestTimeoutException", str(exc))
            req.status, req.error_code, req.outcome = 408, timeout.code, "body_timeout"
            resp = self._error(timeout, req)
            resp.force_close()
        except ConnectionError:  # the client went away, or an emulated drop: nothing left to answer
            req.status = 499
            req.error_code = req.error_code or "ClientDisconnected"
            req.outcome = "emulated_drop" if req.error_code == "EmulatedDrop" else "client_disconnected"
            resp = web.Response(status=499)
        except asyncio.CancelledError:
            if not req.response_unix:  # nothing was sent (a stream keeps the 200 it sent)
                req.status = 499
            if self.stopping:
                req.error_code, req.outcome = req.error_code or "EmulatorShutdown", "shutdown"
            else:
                req.error_code, req.outcome = req.error_code or "ClientDisconnected", "client_disconnected"
            raise
        except Exception as exc:  # the server must keep serving whatever happens
            log.exception("emulator: unexpected error in %s", request.path)
            req.status, req.error_code, req.outcome = 500, "InternalServerException", "error"
            resp = self._error(ApiError(500, "InternalServerException", f"Internal error: {type(exc).__name__}"), req)
        finally:
            self.finished(req)
        return resp

    def _error(self, err: ApiError, req: _Req) -> web.Response:
        """The error answer in the shape of the request's API: AWS's, or OpenAI's on the Chat Completions path."""
        if req.op in (openai_chat.OP, openai_chat.OP_STREAM):
            resp = openai_chat.error_response(err, req.request_id, req.arrival_unix)
            req.status = resp.status
            return resp
        return _error_response(err, req.request_id, req.arrival_unix)

    def authorize(self, request: web.BaseRequest, body: bytes) -> None:
        """SigV4 or a Bedrock API key (auth.py); strict mode verifies either."""
        auth.check(request.method, request.raw_path, request.headers, body, self.s.credentials, self.s.api_keys)

    def finished(self, req: _Req) -> None:
        """Count the outcome and write the request's one timing-log line (once, however it ended)."""
        self._inflight.discard(req)
        if req.logged:
            return
        req.logged = True
        if req.error_code is not None and req.outcome == "ok":  # a mid-stream exception frame
            req.outcome = "error"
        key = req.error_code or "ok"
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._log is not None:
            self._write_log(req)

    def _write_log(self, req: _Req) -> None:
        sch = req.schedule
        w = req.writes
        pre = req.pre_s
        line = {
            "ts": _time(), "request_id": req.request_id, "seq": req.seq, "op": req.op,
            "model_id": req.model_id, "tier": req.tier, "status": req.status, "error_code": req.error_code,
            "outcome": req.outcome, "fault": req.fault,
            "input_tokens": req.input_tokens, "output_tokens": req.output_tokens, "max_tokens": req.max_tokens,
            "arrival_unix": round(req.arrival_unix, 6) if req.arrival_unix else None,
            "queue_ms": round(req.queue_s * 1000, 3),
            "pre_ms": round(pre * 1000, 3) if sch else None,
            "ttft_ms": round((pre + sch.ttft_s) * 1000, 3) if sch else None,
            "decode_ms": round(sch.decode_s * 1000, 3) if sch else None,
            "chunk_offsets_ms": [round((pre + o) * 1000, 3) for o in sch.chunk_offsets] if sch else None,
            "response_unix": round(req.response_unix, 6) if req.response_unix else None,
            "first_frame_unix": round(w[0], 6) if w else None,
            "last_frame_unix": round(w[-1], 6) if w else None,
            "frames": len(w) if w is not None else None,
            "frame_write_ms": [round((t - req.arrival_unix) * 1000, 3) for t in w] if w else None,
            **req.extra,
        }  # fmt: skip
        if self._log is not None:
            self._log.write(json.dumps(line) + "\n")

    async def _handle(self, request: web.BaseRequest, req: _Req) -> web.StreamResponse:
        raw = request.raw_path
        path = raw.split("?", 1)[0]
        if request.method == "GET" and path == STATS_PATH:  # not an AWS API: the lab's own counters
            req.op = "stats"
            out = self.stats()
            if request.query.get("reset"):  # a state change: the same authorization as the operations
                self.authorize(request, await self._read_body(request))
                self.emit = EmitStats()
            return web.json_response(out, headers={"x-amzn-RequestId": req.request_id})
        if path.startswith("/openai/"):  # the OpenAI-compatible Chat Completions API (openai_chat.py)
            return await openai_chat.handle(self, request, req)
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in OPERATIONS or request.method != "POST":
            raise ApiError(404, "UnknownOperationException", f"Unknown operation: {request.method} {path}")
        req.op = parts[3]
        model_raw = urllib.parse.unquote(parts[2])
        req.model_id = model_raw
        body = await self._read_body(request)
        self.authorize(request, body)
        spec = self._resolve(model_raw)
        req.seq = self.seq
        self.seq += 1
        if req.op in ("converse", "converse-stream", "count-tokens"):
            ctype = request.headers.get("Content-Type", _JSON).split(";")[0].strip().lower()
            if ctype not in (_JSON, "application/x-amz-json-1.1", ""):
                raise validation(f"Unsupported Content-Type {ctype!r}: send application/json.")
            doc = self._loads(body or b"{}", converse=True)
            if not isinstance(doc, dict):
                raise ApiError(400, "SerializationException", "The request body must be a JSON object.")
            if req.op == "count-tokens":
                n = count_tokens_input(doc, spec, self._b64json)
                req.input_tokens = n
                return web.json_response({"inputTokens": n}, headers={"x-amzn-RequestId": req.request_id})
            prompt = parse_converse(doc, spec, streaming=req.op == "converse-stream")
            tier = self._tier(spec, (doc.get("serviceTier") or {}).get("type") if isinstance(
                doc.get("serviceTier"), dict) else doc.get("serviceTier"), request.headers)
            perf = (doc.get("performanceConfig") or {}).get("latency") if isinstance(
                doc.get("performanceConfig"), dict) else None
            fmt_name = "converse"
        else:
            ctype = request.headers.get("Content-Type", _JSON).split(";")[0].strip().lower()
            if ctype not in (_JSON, "*/*", ""):
                raise validation(f"The provided Content-Type {ctype!r} is not supported for this model; use "
                                 "application/json.")
            accept_h = "X-Amzn-Bedrock-Accept" if req.op == "invoke-with-response-stream" else "Accept"
            accept = request.headers.get(accept_h, _JSON).split(";")[0].strip().lower()
            if accept not in (_JSON, "*/*", ""):
                raise validation(f"The provided Accept Type {accept!r} is invalid or not supported for this model.")
            doc = self._json_body(body)
            prompt = FORMATS[spec.provider_format].parse(doc, spec)
            gcfg = invoke_guardrail(request.headers.get("X-Amzn-Bedrock-GuardrailIdentifier"),
                                    request.headers.get("X-Amzn-Bedrock-GuardrailVersion"),
                                    request.headers.get("X-Amzn-Bedrock-Trace"))  # fmt: skip
            if gcfg is not None:  # InvokeModel's guardrail comes in headers; the answer says it in the body
                prompt.features = prompt.features or Features("anthropic" if spec.provider_format == "anthropic"
                                                              else "converse")  # fmt: skip
                prompt.features.guardrail = gcfg
            tier = self._tier(spec, request.headers.get("X-Amzn-Bedrock-Service-Tier"), request.headers)
            perf = request.headers.get("X-Amzn-Bedrock-PerformanceConfig-Latency")
            fmt_name = spec.provider_format
        if perf is not None and perf not in ("standard", "optimized"):
            raise validation(f"1 validation error detected: Value '{perf}' at 'performanceConfig.latency' failed "
                             "to satisfy constraint: Member must satisfy enum value set: [standard, optimized]")
        if prompt.input_tokens > spec.context_window:
            raise validation(f"Input is too long for requested model. The prompt has {prompt.input_tokens} tokens; "
                             f"the limit of {spec.model_id} is {spec.context_window}.")
        if prompt.features is not None and prompt.features.guardrail is not None:  # unknown ids fail validation
            guardrails.resolve(self.s.catalog, prompt.features.guardrail)
        req.tier, req.input_tokens, req.max_tokens = tier, prompt.input_tokens, prompt.max_tokens
        optimized = perf == "optimized" and spec.latency_optimized
        served_perf = ("optimized" if optimized else "standard") if perf is not None else None
        return await self._serve(request, req, spec, prompt, fmt_name, tier, optimized, served_perf)

    # -- helpers -------------------------------------------------------------------------------------
    async def _read_body(self, request: web.BaseRequest) -> bytes:
        expect = request.headers.get("Expect")
        if expect is not None and request.version == (1, 1):  # aiohttp's router did this; its low-level server does not
            if expect.lower() != "100-continue":
                raise ApiError(417, "ValidationException", f"Unsupported Expect header: {expect[:100]!r}.")
            if not request.content.is_eof():
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                request.writer.output_size = 0  # the response itself has not started
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "ValidationException", f"Request body exceeds the maximum size of "
                           f"{self.s.max_body_bytes} bytes.") from None
        except RequestPayloadError as exc:  # a body that cannot be decoded (Content-Encoding, chunking)
            text = " ".join(str(exc).split()).removeprefix("400, message: ")[:200]
            raise ApiError(400, "ValidationException", f"Malformed HTTP request body: {text}") from None

    def _resolve(self, model_raw: str) -> ModelSpec:
        spec = self.s.catalog.get(model_raw)
        if spec is not None:
            return spec
        prefix, base = split_model_id(model_raw)
        if base.startswith("arn:"):
            raise ApiError(404, "ResourceNotFoundException", f"The resource {model_raw} was not found. Check the "
                           "model identifier and try again.")
        raise validation("The provided model identifier is invalid.")

    @staticmethod
    def _tier(spec: ModelSpec, requested: object, headers: Any) -> str:
        if requested is None:
            requested = headers.get("X-Amzn-Bedrock-Service-Tier")
        if requested is None:
            return "default"
        if requested not in TIERS:
            raise validation(f"1 validation error detected: Value '{requested}' at 'serviceTier.type' failed to "
                             f"satisfy constraint: Member must satisfy enum value set: [{', '.join(TIERS)}]")
        if requested not in spec.tiers:
            raise validation(f"The service tier '{requested}' is not supported for model {spec.model_id}. "
                             f"Supported tiers: {', '.join(spec.tiers)}.")
        return str(requested)

    def _loads(self, data: bytes, converse: bool) -> Any:
        """JSON with a nesting limit: deeper documents are malformed input, answered as AWS answers it
        (Converse: SerializationException; InvokeModel: ValidationException), never a RecursionError. The check
        costs two ``bytes.count`` calls unless the body holds more brackets than the limit."""
        limit = self.s.max_json_depth
        try:
            doc = json.loads(data)
            deep = data.count(b"[") + data.count(b"{") > limit and _deeper_than(doc, limit)
        except RecursionError:
            deep = True
        except (ValueError, UnicodeDecodeError):
            if converse:
                raise ApiError(400, "SerializationException", "The request body is not valid JSON.") from None
            raise validation("Malformed input request, please reformat your input and try again.") from None
        if deep:
            if converse:
                raise ApiError(400, "SerializationException", f"The request body is nested deeper than {limit} "
                               "levels.")
            raise validation(f"Malformed input request: #: nested deeper than {limit} levels, please reformat "
                             "your input and try again.")
        return doc

    def _json_body(self, body: bytes) -> dict[str, Any]:
        doc = self._loads(body, converse=False)
        if not isinstance(doc, dict):
            raise validation("Malformed input request: #: expected type: JSONObject, please reformat your input "
                             "and try again.")
        return doc

    def _b64json(self, raw: str) -> dict[str, Any]:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise validation("input.invokeModel.body is not valid base64.") from None
        return self._json_body(data)

    # -- serving -------------------------------------------------------------------------------------
    async def _serve(self, request: web.BaseRequest, req: _Req, spec: ModelSpec, prompt: Prompt, fmt_name: str,
                     tier: str, optimized: bool, served_perf: str | None) -> web.StreamResponse:  # fmt: skip
        d = draw(self.s.seed, req.seq, spec.faults)
        loop = asyncio.get_running_loop()
        if d.pre_fault:
            req.fault = d.pre_fault
            raise PRE_FAULT_ERRORS[d.pre_fault]
        streaming = req.op in ("converse-stream", "invoke-with-response-stream", openai_chat.OP_STREAM)
        if d.stream_fault == "drop" and not streaming:
            req.fault, req.error_code = "drop", "EmulatedDrop"
            self._drop(request)
            raise ConnectionResetError("emulated drop")
        st = self.state(spec)
        reserve = prompt.input_tokens + prompt.max_tokens * spec.output_quota_burn
        if not st.bucket.take(reserve):
            raise ApiError(429, "ThrottlingException", MSG_TOO_MANY_TOKENS)
        refund = prompt.max_tokens * spec.output_quota_burn
        try:
            req.queue_s = await st.capacity.acquire(tier, self.s.max_queue_ms / 1000.0)
        except BaseException:
            st.bucket.give_back(reserve)
            raise
        try:
            feats = prompt.features
            use, gd, shape = self._features(spec, prompt, req, loop.time())
            cap = prompt.max_tokens  # a guardrail's blocked message is never cut by maxTokens
            if shape is not None and shape.stop == "guardrail_intervened" and shape.fixed is not None:
                cap = max(cap, shape.fixed.tokens)
            sch = plan(d, spec, spec.latency, input_tokens=prompt.input_tokens, max_tokens=cap,
                       tier=tier, busy_fraction=st.capacity.busy_fraction, time_scale=self.s.time_scale,
                       optimized=optimized, stall_ms=spec.faults.stall_ms, cached_tokens=use.read,
                       extra_ttft_ms=gd.latency_ms if gd else 0.0, fixed_output=shape.fixed_tokens if shape else None,
                       extra_output=shape.reasoning_tokens if shape else 0)  # fmt: skip
            structured = shape is not None and (shape.fixed is not None or shape.reasoning_tokens > 0)
            cut = None if structured else stop_cut(sch.text_offset, sch.output_tokens, prompt.stop_sequences)
            if cut is not None:  # the answer ends before the stop sequence: fewer tokens, fewer chunks
                ct, co = cut_chunks(sch.chunk_tokens, sch.chunk_offsets, cut[0])
                sch = replace(sch, output_tokens=cut[0], finished=True, chunk_tokens=ct, chunk_offsets=co,
                              fault=sch.fault if sch.fault_chunk < len(ct) else None)  # fmt: skip
            if d.stall:
                req.fault = "stall"
            if streaming and sch.fault:
                req.fault = sch.fault
            req.schedule = sch
            req.output_tokens = sch.output_tokens
            refund = (prompt.max_tokens - sch.output_tokens) * spec.output_quota_burn
            admitted = loop.time()
            req.pre_s = pre = max(0.0, admitted - req.arrival)  # the schedule starts here, not at arrival
            result = Result(req.model_id, req.request_id, prompt.input_tokens - use.read - use.write,
                            sch.output_tokens, sch.finished)  # fmt: skip
            if cut is not None:
                result.text, result.stop_sequence = cut[1], cut[2]
            if feats is not None:  # production features: cache usage, guardrail trace, blocks, response fields
                result.cached, result.cache_read, result.cache_write, result.cache_ttl = (
                    bool(feats.cache_points), use.read, use.write, use.ttl)
                result.trace = gd.trace if gd else None
                if gd is not None and fmt_name != "converse":
                    result.guardrail_action = "INTERVENED" if gd.intervened else "NONE"
                if structured and shape is not None:
                    finish_answer(result, feats, shape, sch.text_offset, self.s.seed)
                if feats.response_paths:
                    result.response_fields = response_fields(result, feats.response_paths, spec)
            headers = {
                "x-amzn-RequestId": req.request_id,
                H_QUEUE: f"{req.queue_s * 1000:.3f}",
                H_PRE: f"{pre * 1000:.3f}",
                H_TTFT: f"{(pre + sch.ttft_s) * 1000:.3f}",
                H_DECODE: f"{sch.decode_s * 1000:.3f}",
                H_SEQ: str(req.seq),
                H_ARRIVAL: f"{req.arrival_unix:.6f}",
            }
            if result.cached:
                headers[H_CACHE_READ], headers[H_CACHE_WRITE] = str(use.read), str(use.write)
            if fmt_name == openai_chat.FORMAT:
                return await openai_chat.respond(self, request, req, sch, result, headers, admitted, tier, streaming)
            if streaming:
                return await self._stream(request, req, spec, fmt_name, tier, served_perf, sch, result, headers,
                                          admitted)  # fmt: skip
            return await self._whole(req, spec, fmt_name, tier, served_perf, sch, result, headers, admitted)
        finally:
            st.capacity.release()
            if refund > 0:
                st.bucket.give_back(refund)

    def _features(self, spec: ModelSpec, prompt: Prompt, req: _Req, now: float,
                  ) -> tuple[CacheUse, guardrails.GuardrailDecision | None, Shape | None]:  # fmt: skip
        """Prompt cache lookup, guardrail decision and the answer's shape of a request (providers.Features)."""
        f = prompt.features
        if f is None:
            return CacheUse(), None, None
        use = CacheUse()
        if f.cache_points and spec.cache is not None:
            use = self.prompt_cache.use(spec.model_id, f.cache_points, spec.cache, now, self.s.time_scale)
        gd = None
        if f.guardrail is not None:
            gd = guardrails.decide(guardrails.resolve(self.s.catalog, f.guardrail), f.guardrail, self.s.seed,
                                   req.seq, 4 * prompt.input_tokens)  # fmt: skip
        shape = shape_answer(f, self.s.seed, req.seq, gd.spec.blocked_message if gd and gd.intervened else None)
        req.extra.update(cache_read_tokens=use.read, cache_write_tokens=use.write)
        if gd is not None:
            req.extra["guardrail_intervened"] = gd.intervened
        return use, gd, shape

    @staticmethod
    def _drop(request: web.BaseRequest) -> None:
        tr = request.transport
        if tr is not None:
            tr.abort()

    async def _whole(self, req: _Req, spec: ModelSpec, fmt_name: str, tier: str, served_perf: str | None,
                     sch: Schedule, result: Result, headers: dict[str, str], admitted: float) -> web.Response:  # fmt: skip
        loop = asyncio.get_running_loop()
        delay = admitted + sch.chunk_offsets[-1] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if result.stop_sequence is None and not result.blocks:
            result.text = generated_text(sch.text_offset, sch.output_tokens)
        latency_ms = int(round((loop.time() - req.arrival) * 1000))
        if fmt_name == "converse":
            extra: dict[str, Any] = {"serviceTier": {"type": tier}}
            if served_perf:
                extra["performanceConfig"] = {"latency": served_perf}
            body = converse_body(result, latency_ms, extra)
        else:
            body = {**FORMATS[fmt_name].full_body(result, spec), **invoke_guardrail_fields(result)}
            headers.update({
                "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
                "X-Amzn-Bedrock-Output-Token-Count": str(result.output_tokens),
                "X-Amzn-Bedrock-Invocation-Latency": str(latency_ms),
                "X-Amzn-Bedrock-Service-Tier": tier,
            })  # fmt: skip
            if served_perf:
                headers["X-Amzn-Bedrock-PerformanceConfig-Latency"] = served_perf
            if result.cached:
                headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(result.cache_read)
                headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(result.cache_write)
        headers["Content-Type"] = _JSON
        data = json.dumps(body).encode()
        req.response_unix = _time()
        headers[H_RESPONSE] = f"{req.response_unix:.6f}"
        return web.Response(body=data, headers=headers)

    async def _stream(self, request: web.BaseRequest, req: _Req, spec: ModelSpec, fmt_name: str, tier: str,
                      served_perf: str | None, sch: Schedule, result: Result, headers: dict[str, str],
                      admitted: float) -> web.StreamResponse:  # fmt: skip
        loop = asyncio.get_running_loop()
        headers["Content-Type"] = _ES
        if fmt_name != "converse":
            headers["X-Amzn-Bedrock-Content-Type"] = _JSON
            headers["X-Amzn-Bedrock-Service-Tier"] = tier
            if served_perf:
                headers["X-Amzn-Bedrock-PerformanceConfig-Latency"] = served_perf
        req.response_unix = _time()
        headers[H_RESPONSE] = f"{req.response_unix:.6f}"
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        try:
            await self._frames(request, resp, req, spec, fmt_name, tier, served_perf, sch, result, admitted, loop)
        finally:
            self.active_streams -= 1
        return resp

    async def _frames(self, request: web.BaseRequest, resp: web.StreamResponse, req: _Req, spec: ModelSpec,
                      fmt_name: str, tier: str, served_perf: str | None, sch: Schedule, result: Result,
                      admitted: float, loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away before the first frame")
        job = _StreamJob(self, transport, req, spec, fmt_name, tier, served_perf, sch, result, admitted, loop)
        ended = await job.run()
        if ended:
            await resp.write_eof()

    @staticmethod
    def _metrics(result: Result, req: _Req, first_byte_ms: int, loop: asyncio.AbstractEventLoop) -> dict[str, int]:
        m = {"inputTokenCount": result.input_tokens, "outputTokenCount": result.output_tokens,
             "invocationLatency": int(round((loop.time() - req.arrival) * 1000)),
             "firstByteLatency": first_byte_ms}  # fmt: skip
        if result.cached:
            m.update(cacheReadInputTokenCount=result.cache_read, cacheWriteInputTokenCount=result.cache_write)
        return m


class _StreamJob(ScheduledStream):
    """Writes one event stream (ConverseStream, InvokeModelWithResponseStream) on schedule
    (:class:`~bedrock_lab.emulator.streamjob.ScheduledStream`). Frames due at the same tick (messageStart + first
    delta, last delta + stop + metadata) go out in one HTTP chunk."""

    __slots__ = ("first_byte_ms", "fmt", "served_perf", "spec")

    def __init__(self, server: EmulatorServer, transport: asyncio.BaseTransport, req: _Req, spec: ModelSpec,
                 fmt_name: str, tier: str, served_perf: str | None, sch: Schedule, result: Result, admitted: float,
                 loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        super().__init__(server, transport, req, sch, result, admitted, loop, tier)
        self.spec = spec
        self.fmt = None if fmt_name == "converse" else FORMATS[fmt_name]
        self.served_perf = served_perf
        self.first_byte_ms = 0

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        inner = base64.b64encode(json.dumps(obj).encode())
        return es.event_frame("chunk", b'{"bytes":"' + inner + b'"}')

    def _emit(self) -> None:
        if self._client_gone():
            return
        loop, sch, i, req = self.loop, self.sch, self.i, self.req
        now = loop.time()
        if sch.fault is not None and i == sch.fault_chunk:
            self._fault()
            return
        k = sch.chunk_tokens[i]
        last = i == self.n - 1
        result, fmt = self.result, self.fmt
        if result.blocks:  # a structured answer (reasoning, a tool call, a blocked text): providers builds the events
            self._emit_blocks(i, k, last, now)
            return
        text = self._text(k, last)
        frames: list[bytes] = []
        if i == 0:
            self.first_byte_ms = int(round((now - req.arrival) * 1000))
            if fmt is None:
                frames.append(es.event_frame("messageStart", b'{"role":"assistant"}'))
            else:
                frames += [self._chunk(c) for c in fmt.stream_head(result, self.spec)]
        if fmt is None:  # generated text is plain words: no JSON escaping needed
            frames.append(es.event_frame("contentBlockDelta", b'{"delta":{"text":"%s"},"contentBlockIndex":0}'
                                         % text.encode()))  # fmt: skip
            if last:
                frames += self._converse_tail(now)
        else:
            tail = fmt.stream_tail(result) if last else []
            obj = fmt.stream_delta(result, text, self.tokens, i == 0, last)
            if last:
                metrics = EmulatorServer._metrics(result, req, self.first_byte_ms, loop)
                end = tail[-1] if tail else obj
                end.update(invoke_guardrail_fields(result))
                end["amazon-bedrock-invocationMetrics"] = metrics
            frames.append(self._chunk(obj))
            frames += [self._chunk(c) for c in tail]
        self._send(b"".join(frames))
        self._next(last)

    def _emit_blocks(self, i: int, k: int, last: bool, now: float) -> None:
        result, fmt, req = self.result, self.fmt, self.req
        start = self.tokens
        self.tokens += k
        frames: list[bytes] = []
        if fmt is None:
            if i == 0:
                self.first_byte_ms = int(round((now - req.arrival) * 1000))
                frames.append(es.event_frame("messageStart", b'{"role":"assistant"}'))
            frames += [es.event_frame(name, json.dumps(p).encode())
                       for name, p in converse_stream_events(result, start, k, last)]  # fmt: skip
            if last:
                frames += self._converse_tail(now, block_stop=False)
        else:
            objs: list[dict[str, Any]] = []
            if i == 0:
                self.first_byte_ms = int(round((now - req.arrival) * 1000))
                objs += fmt.stream_head(result, self.spec)
            objs += fmt.stream_block_events(result, start, k, i == 0, last)
            if last:
                objs += fmt.stream_tail(result)
                objs[-1].update(invoke_guardrail_fields(result))
                objs[-1]["amazon-bedrock-invocationMetrics"] = EmulatorServer._metrics(result, req,
                                                                                      self.first_byte_ms, self.loop)
            frames += [self._chunk(c) for c in objs]
        self._send(b"".join(frames))
        self._next(last)

    def _converse_tail(self, now: float, block_stop: bool = True) -> list[bytes]:
        r = self.result
        meta: dict[str, Any] = {
            "usage": converse_usage(r),
            "metrics": {"latencyMs": int(round((now - self.req.arrival) * 1000))},
            "serviceTier": {"type": self.tier}}  # fmt: skip
        if self.served_perf:
            meta["performanceConfig"] = {"latency": self.served_perf}
        if r.trace is not None:
            meta["trace"] = r.trace
        stop: dict[str, Any] = {"stopReason": converse_stop(r)}
        if r.response_fields is not None:
            stop["additionalModelResponseFields"] = r.response_fields
        return [*([es.event_frame("contentBlockStop", b'{"contentBlockIndex":0}')] if block_stop else []),
                es.event_frame("messageStop", json.dumps(stop).encode()),
                es.event_frame("metadata", json.dumps(meta).encode())]  # fmt: skip

    def _fault(self) -> None:
        req = self.req
        if self._dropped():
            return
        throttle = self.sch.fault == "stream_throttle"
        exc = "throttlingException" if throttle else "modelStreamErrorException"
        payload: dict[str, Any] = {"message": MSG_TOO_MANY_TOKENS if throttle else (
            "The system encountered an unexpected error during processing. Try your request again.")}
        if not throttle:
            payload.update(originalStatusCode=500, originalMessage="Model stream interrupted")
        self._send(es.exception_frame(exc, json.dumps(payload).encode()))
        req.error_code, req.outcome = exc, "error"
        self._finish(True)


def invoke_guardrail_fields(r: Result) -> dict[str, Any]:
    """What an InvokeModel answer with a guardrail adds to its body (a stream: to its last chunk), per the
    InvokeModel API reference's guardrail example: ``amazon-bedrock-guardrailAction`` INTERVENED / NONE and, when
    the trace was asked for, ``amazon-bedrock-trace`` {guardrail: ...}."""
    if r.guardrail_action is None:
        return {}
    out: dict[str, Any] = {"amazon-bedrock-guardrailAction": r.guardrail_action}
    if r.trace is not None:
        out["amazon-bedrock-trace"] = r.trace
    return out


def _deeper_than(doc: Any, limit: int) -> bool:
    """True when containers nest more than ``limit`` levels (an iterative walk: no recursion to exhaust)."""
    if not isinstance(doc, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def apply_overrides(catalog: Catalog, *, capacity: int | None = None, tpm_quota: int | None = None,
                    faults: dict[str, float] | None = None, latency: dict[str, float] | None = None) -> Catalog:  # fmt: skip
    """The catalog with every model's capacity / quota / fault rates / latency knobs replaced."""
    models = {}
    for mid, spec in catalog.models.items():
        lat = spec.latency
        if latency:
            lat = replace(lat, **latency)  # type: ignore[arg-type]
        if capacity is not None:
            lat = replace(lat, capacity=capacity)
        fl = replace(spec.faults, **faults) if faults else spec.faults
        models[mid] = replace(spec, latency=lat, faults=fl,
                              tpm_quota=tpm_quota if tpm_quota is not None else spec.tpm_quota)
    return Catalog(models, catalog.source, catalog.guardrails)


__all__ = ["FAULT_KINDS", "H_DECODE", "H_QUEUE", "H_SEQ", "H_TTFT", "EmulatorServer", "ServerSettings",
           "apply_overrides"]  # fmt: skip
