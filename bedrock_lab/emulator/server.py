"""The aiohttp application: routing on the raw path, auth, validation, admission, and frame scheduling.

One request goes: parse path (raw, so ``%2F`` inside an ARN never splits it) -> auth -> read and validate
the body -> pre-response faults -> token quota -> capacity queue -> response headers (with the intended
timing as ground truth) -> frames written at their scheduled times -> release slot, refund unused quota.
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
from dataclasses import dataclass, field, replace
from typing import IO, Any

from aiohttp import web

from bedrock_lab.catalog import FAULT_KINDS, TIERS, Catalog, ModelSpec, split_model_id
from bedrock_lab.emulator import eventstream as es
from bedrock_lab.emulator import sigv4
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
    Prompt,
    Result,
    converse_body,
    count_tokens_input,
    parse_converse,
    validation,
)
from bedrock_lab.emulator.scheduler import FrameScheduler
from bedrock_lab.emulator.text import generated_text, generated_words

log = logging.getLogger("bedrock_lab.emulator")

H_QUEUE = "x-bedrock-lab-queue-ms"
H_TTFT = "x-bedrock-lab-ttft-ms"
H_DECODE = "x-bedrock-lab-decode-ms"
H_SEQ = "x-bedrock-lab-seq"
OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens")
STATS_PATH = "/_bedrock_lab/stats"
_JSON = "application/json"
_ES = "application/vnd.amazon.eventstream"
_ERR_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


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


@dataclass
class _ModelState:
    spec: ModelSpec
    capacity: Capacity
    bucket: TokenBucket


@dataclass
class _Req:
    """Per-request bookkeeping, also the timing-log line."""

    request_id: str
    op: str
    model_id: str = ""
    seq: int = -1
    arrival: float = 0.0  #: loop time
    arrival_epoch: float = 0.0  #: wall clock, for joining with client records
    tier: str = "default"
    status: int = 200
    error_code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    max_tokens: int = 0
    queue_s: float = 0.0
    schedule: Schedule | None = None
    fault: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _error_response(err: ApiError, request_id: str) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps({"message": err.message}).encode(),
        headers={"Content-Type": _JSON, "x-amzn-ErrorType": err.code + _ERR_SUFFIX, "x-amzn-RequestId": request_id},
    )


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
        self._scheduler: FrameScheduler | None = None

    def scheduler(self, loop: asyncio.AbstractEventLoop) -> FrameScheduler:
        if self._scheduler is None or self._scheduler.loop is not loop:
            self._scheduler = FrameScheduler(loop)
        return self._scheduler

    # -- lifecycle ------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.s.max_body_bytes + 1, handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def state(self, spec: ModelSpec) -> _ModelState:
        st = self.models.get(spec.model_id)
        if st is None:
            st = _ModelState(spec, Capacity(spec.latency.capacity), TokenBucket(float(spec.tpm_quota)))
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
                           "quota_tokens_left": round(v.bucket.level)} for k, v in self.models.items()},
        }  # fmt: skip

    # -- entry point ----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        rid = str(uuid.uuid4())
        req = _Req(rid, "?")
        try:
            resp = await self._handle(request, req)
        except ApiError as err:
            req.status, req.error_code = err.status, err.code
            resp = _error_response(err, rid)
        except ConnectionError:  # the client went away, or an emulated drop: nothing left to answer
            req.status = 499
            req.error_code = req.error_code or "ClientDisconnected"
            resp = web.Response(status=499)
        except asyncio.CancelledError:
            req.status, req.error_code = 499, "ClientDisconnected"
            raise
        except Exception as exc:  # the server must keep serving whatever happens
            log.exception("emulator: unexpected error in %s", request.path)
            req.status, req.error_code = 500, "InternalServerException"
            resp = _error_response(ApiError(500, "InternalServerException", f"Internal error: {type(exc).__name__}"), rid)
        finally:
            key = req.error_code or "ok"
            self.counts[key] = self.counts.get(key, 0) + 1
            if self._log is not None and req.seq >= 0:
                self._write_log(req)
        return resp

    def _write_log(self, req: _Req) -> None:
        sch = req.schedule
        line = {
            "ts": time.time(), "arrival_ts": req.arrival_epoch, "request_id": req.request_id, "seq": req.seq, "op": req.op, "model_id": req.model_id,
            "tier": req.tier, "status": req.status, "error_code": req.error_code, "fault": req.fault,
            "input_tokens": req.input_tokens, "output_tokens": req.output_tokens, "max_tokens": req.max_tokens,
            "queue_ms": round(req.queue_s * 1000, 3),
            "ttft_ms": round((req.queue_s + sch.ttft_s) * 1000, 3) if sch else None,
            "decode_ms": round(sch.decode_s * 1000, 3) if sch else None,
            "chunk_offsets_ms": [round((req.queue_s + o) * 1000, 2) for o in sch.chunk_offsets] if sch else None,
            **req.extra,
        }  # fmt: skip
        if self._log is not None:
            self._log.write(json.dumps(line) + "\n")

    async def _handle(self, request: web.Request, req: _Req) -> web.StreamResponse:
        raw = request.raw_path
        path = raw.split("?", 1)[0]
        if request.method == "GET" and path == STATS_PATH:  # not an AWS API: the lab's own counters
            out = self.stats()
            if request.query.get("reset"):
                self.emit = EmitStats()
            return web.json_response(out, headers={"x-amzn-RequestId": req.request_id})
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in OPERATIONS or request.method != "POST":
            raise ApiError(404, "UnknownOperationException", f"Unknown operation: {request.method} {path}")
        req.op = parts[3]
        model_raw = urllib.parse.unquote(parts[2])
        req.model_id = model_raw
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "ValidationException", f"Request body exceeds the maximum size of "
                           f"{self.s.max_body_bytes} bytes.") from None
        sigv4.check(request.method, raw, request.headers, body, self.s.credentials)
        spec = self._resolve(model_raw)
        req.seq = self.seq
        self.seq += 1
        req.arrival = asyncio.get_running_loop().time()
        req.arrival_epoch = time.time()
        if req.op in ("converse", "converse-stream", "count-tokens"):
            ctype = request.headers.get("Content-Type", _JSON).split(";")[0].strip().lower()
            if ctype not in (_JSON, "application/x-amz-json-1.1", ""):
                raise validation(f"Unsupported Content-Type {ctype!r}: send application/json.")
            try:
                doc = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "SerializationException", "The request body is not valid JSON.") from None
            if not isinstance(doc, dict):
                raise ApiError(400, "SerializationException", "The request body must be a JSON object.")
            if req.op == "count-tokens":
                n = count_tokens_input(doc, spec, self._b64json)
                req.input_tokens = n
                return web.json_response({"inputTokens": n}, headers={"x-amzn-RequestId": req.request_id})
            prompt = parse_converse(doc, spec)
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
            tier = self._tier(spec, request.headers.get("X-Amzn-Bedrock-Service-Tier"), request.headers)
            perf = request.headers.get("X-Amzn-Bedrock-PerformanceConfig-Latency")
            fmt_name = spec.provider_format
        if perf is not None and perf not in ("standard", "optimized"):
            raise validation(f"1 validation error detected: Value '{perf}' at 'performanceConfig.latency' failed "
                             "to satisfy constraint: Member must satisfy enum value set: [standard, optimized]")
        if prompt.input_tokens > spec.context_window:
            raise validation(f"Input is too long for requested model. The prompt has {prompt.input_tokens} tokens; "
                             f"the limit of {spec.model_id} is {spec.context_window}.")
        req.tier, req.input_tokens, req.max_tokens = tier, prompt.input_tokens, prompt.max_tokens
        optimized = perf == "optimized" and spec.latency_optimized
        served_perf = ("optimized" if optimized else "standard") if perf is not None else None
        return await self._serve(request, req, spec, prompt, fmt_name, tier, optimized, served_perf)

    # -- helpers -------------------------------------------------------------------------------------
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

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise validation("Malformed input request, please reformat your input and try again.") from None
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
    async def _serve(self, request: web.Request, req: _Req, spec: ModelSpec, prompt: Prompt, fmt_name: str,
                     tier: str, optimized: bool, served_perf: str | None) -> web.StreamResponse:  # fmt: skip
        d = draw(self.s.seed, req.seq, spec.faults)
        loop = asyncio.get_running_loop()
        if d.pre_fault:
            req.fault = d.pre_fault
            raise PRE_FAULT_ERRORS[d.pre_fault]
        streaming = req.op in ("converse-stream", "invoke-with-response-stream")
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
            sch = plan(d, spec, spec.latency, input_tokens=prompt.input_tokens, max_tokens=prompt.max_tokens,
                       tier=tier, busy_fraction=st.capacity.busy_fraction, time_scale=self.s.time_scale,
                       optimized=optimized, stall_ms=spec.faults.stall_ms)  # fmt: skip
            if d.stall:
                req.fault = "stall"
            if streaming and sch.fault:
                req.fault = sch.fault
            req.schedule = sch
            req.output_tokens = sch.output_tokens
            refund = (prompt.max_tokens - sch.output_tokens) * spec.output_quota_burn
            admitted = loop.time()
            result = Result(req.model_id, req.request_id, prompt.input_tokens, sch.output_tokens, sch.finished)
            headers = {
                "x-amzn-RequestId": req.request_id,
                H_QUEUE: f"{req.queue_s * 1000:.3f}",
                H_TTFT: f"{(req.queue_s + sch.ttft_s) * 1000:.3f}",
                H_DECODE: f"{sch.decode_s * 1000:.3f}",
                H_SEQ: str(req.seq),
            }
            if streaming:
                return await self._stream(request, req, spec, fmt_name, tier, served_perf, sch, result, headers,
                                          admitted)  # fmt: skip
            return await self._whole(req, spec, fmt_name, tier, served_perf, sch, result, headers, admitted)
        finally:
            st.capacity.release()
            if refund > 0:
                st.bucket.give_back(refund)

    @staticmethod
    def _drop(request: web.Request) -> None:
        tr = request.transport
        if tr is not None:
            tr.abort()

    async def _whole(self, req: _Req, spec: ModelSpec, fmt_name: str, tier: str, served_perf: str | None,
                     sch: Schedule, result: Result, headers: dict[str, str], admitted: float) -> web.Response:  # fmt: skip
        loop = asyncio.get_running_loop()
        delay = admitted + sch.chunk_offsets[-1] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.text = generated_text(sch.text_offset, sch.output_tokens)
        latency_ms = int(round((loop.time() - req.arrival) * 1000))
        if fmt_name == "converse":
            extra: dict[str, Any] = {"serviceTier": {"type": tier}}
            if served_perf:
                extra["performanceConfig"] = {"latency": served_perf}
            body = converse_body(result, latency_ms, extra)
        else:
            body = FORMATS[fmt_name].full_body(result, spec)
            headers.update({
                "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
                "X-Amzn-Bedrock-Output-Token-Count": str(result.output_tokens),
                "X-Amzn-Bedrock-Invocation-Latency": str(latency_ms),
                "X-Amzn-Bedrock-Service-Tier": tier,
            })  # fmt: skip
            if served_perf:
                headers["X-Amzn-Bedrock-PerformanceConfig-Latency"] = served_perf
        headers["Content-Type"] = _JSON
        return web.Response(body=json.dumps(body).encode(), headers=headers)

    async def _stream(self, request: web.Request, req: _Req, spec: ModelSpec, fmt_name: str, tier: str,
                      served_perf: str | None, sch: Schedule, result: Result, headers: dict[str, str],
                      admitted: float) -> web.StreamResponse:  # fmt: skip
        loop = asyncio.get_running_loop()
        headers["Content-Type"] = _ES
        if fmt_name != "converse":
            headers["X-Amzn-Bedrock-Content-Type"] = _JSON
            headers["X-Amzn-Bedrock-Service-Tier"] = tier
            if served_perf:
                headers["X-Amzn-Bedrock-PerformanceConfig-Latency"] = served_perf
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(request)
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        try:
            await self._frames(request, resp, req, spec, fmt_name, tier, served_perf, sch, result, admitted, loop)
        finally:
            self.active_streams -= 1
        return resp

    async def _frames(self, request: web.Request, resp: web.StreamResponse, req: _Req, spec: ModelSpec,
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
        return {"inputTokenCount": result.input_tokens, "outputTokenCount": result.output_tokens,
                "invocationLatency": int(round((loop.time() - req.arrival) * 1000)),
                "firstByteLatency": first_byte_ms}  # fmt: skip


_MAX_BUFFERED = 4 << 20  # a client this far behind is treated as gone (bounded memory per stream)


class _StreamJob:
    """Writes one event stream on schedule with ``loop.call_at`` callbacks, straight to the transport.

    Why not a coroutine with ``await asyncio.sleep`` per frame: a callback costs one timer handle instead of
    a future plus a task step, which matters at thousands of concurrent streams. Frames due at the same tick
    (messageStart + first delta, last delta + stop + metadata) go out in one HTTP chunk; every tick is its
    own write (one flush per scheduled frame). HTTP chunked framing is added here; aiohttp sent the headers
    and writes the terminating chunk.
    """

    __slots__ = ("admitted", "chunk", "done", "fault", "first_byte_ms", "fmt", "i", "loop", "n", "req",
                 "result", "sch", "sched", "served_perf", "server", "spec", "tier", "tokens", "transport")  # fmt: skip

    def __init__(self, server: EmulatorServer, transport: asyncio.BaseTransport, req: _Req, spec: ModelSpec,
                 fmt_name: str, tier: str, served_perf: str | None, sch: Schedule, result: Result, admitted: float,
                 loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        self.server, self.transport, self.req, self.spec = server, transport, req, spec
        self.fmt = None if fmt_name == "converse" else FORMATS[fmt_name]
        self.tier, self.served_perf, self.sch, self.result = tier, served_perf, sch, result
        self.admitted, self.loop = admitted, loop
        self.sched = server.scheduler(loop)
        self.n = len(sch.chunk_tokens)
        self.i = 0
        self.tokens = 0
        self.first_byte_ms = 0
        self.fault = sch.fault
        self.done: asyncio.Future[bool] = loop.create_future()

    async def run(self) -> bool:
        """True when the stream ended normally or with an exception frame (send the terminator)."""
        self.sched.at(self.admitted + self.sch.chunk_offsets[0], self._tick)
        return await self.done

    def _finish(self, ok: bool) -> None:
        if not self.done.done():
            self.done.set_result(ok)

    def _send(self, data: bytes) -> None:
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))  # type: ignore[attr-defined]

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        inner = base64.b64encode(json.dumps(obj).encode())
        return es.event_frame("chunk", b'{"bytes":"' + inner + b'"}')

    def _tick(self) -> None:
        try:
            self._emit()
        except Exception:  # never leave the handler waiting
            log.exception("emulator: stream frame failed")
            self._finish(False)

    def _emit(self) -> None:
        tr = self.transport
        if tr.is_closing() or tr.get_write_buffer_size() > _MAX_BUFFERED:  # type: ignore[attr-defined]
            self.req.error_code = self.req.error_code or "ClientDisconnected"
            if not tr.is_closing():
                tr.abort()  # type: ignore[attr-defined]
            self._finish(False)
            return
        loop, sch, i, req = self.loop, self.sch, self.i, self.req
        now = loop.time()
        self.server.emit.add(now - self.admitted - sch.chunk_offsets[i])
        if self.fault is not None and i == sch.fault_chunk:
            self._fault()
            return
        k = sch.chunk_tokens[i]
        text = generated_words(sch.text_offset, self.tokens, k)
        self.tokens += k
        last = i == self.n - 1
        result, fmt = self.result, self.fmt
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
                (tail[-1] if tail else obj)["amazon-bedrock-invocationMetrics"] = metrics
            frames.append(self._chunk(obj))
            frames += [self._chunk(c) for c in tail]
        self._send(b"".join(frames))
        if last:
            self._finish(True)
            return
        self.i = i + 1
        self.sched.at(self.admitted + sch.chunk_offsets[i + 1], self._tick)

    def _converse_tail(self, now: float) -> list[bytes]:
        r = self.result
        meta: dict[str, Any] = {
            "usage": {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                      "totalTokens": r.input_tokens + r.output_tokens},
            "metrics": {"latencyMs": int(round((now - self.req.arrival) * 1000))},
            "serviceTier": {"type": self.tier}}  # fmt: skip
        if self.served_perf:
            meta["performanceConfig"] = {"latency": self.served_perf}
        stop = "end_turn" if r.finished else "max_tokens"
        return [es.event_frame("contentBlockStop", b'{"contentBlockIndex":0}'),
                es.event_frame("messageStop", b'{"stopReason":"%s"}' % stop.encode()),
                es.event_frame("metadata", json.dumps(meta).encode())]  # fmt: skip

    def _fault(self) -> None:
        req = self.req
        if self.fault == "drop":
            req.error_code = "EmulatedDrop"
            self.transport.abort()  # type: ignore[attr-defined]
            self._finish(False)
            return
        throttle = self.fault == "stream_throttle"
        exc = "throttlingException" if throttle else "modelStreamErrorException"
        payload: dict[str, Any] = {"message": MSG_TOO_MANY_TOKENS if throttle else (
            "The system encountered an unexpected error during processing. Try your request again.")}
        if not throttle:
            payload.update(originalStatusCode=500, originalMessage="Model stream interrupted")
        self._send(es.exception_frame(exc, json.dumps(payload).encode()))
        req.error_code = exc
        self._finish(True)


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
    return Catalog(models, catalog.source)


__all__ = ["FAULT_KINDS", "H_DECODE", "H_QUEUE", "H_SEQ", "H_TTFT", "EmulatorServer", "ServerSettings",
           "apply_overrides"]  # fmt: skip
