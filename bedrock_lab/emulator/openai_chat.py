"""The OpenAI Chat Completions operation of Bedrock Runtime: ``POST /openai/v1/chat/completions``.

Bedrock serves the OpenAI open-weight models (``openai.gpt-oss-20b-1:0``, ``openai.gpt-oss-120b-1:0``) through the
OpenAI "Create chat completion" API as well as through InvokeModel / Converse (AWS user guide, "Invoke a model with
the OpenAI Chat Completions API" and "OpenAI models"). The OpenAI Python SDK works unchanged against it:
``OpenAI(base_url=<emulator>/openai/v1, api_key=<Bedrock API key>)``.

Here: the request validation (``parse_chat``, shared with the ``openai`` InvokeModel body format), the
``chat.completion`` body, the server-sent-event stream of ``chat.completion.chunk`` objects ending with
``data: [DONE]`` (plus a usage chunk with ``stream_options.include_usage``), and errors in the shape the SDK
parses (``{"error": {"message", "type", "code", "param"}}``; 400 / 401 / 404 / 429 / 5xx). The load model is the
server's: ``EmulatorServer._serve`` draws the faults, takes the quota, queues for capacity and plans the schedule
exactly as for Converse, then hands the response to :func:`respond`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bedrock_lab.catalog import TIERS, ModelSpec, split_model_id
from bedrock_lab.emulator.load import MSG_TOO_MANY_TOKENS, Schedule
from bedrock_lab.emulator.providers import FORMATS, ApiError, Format, Prompt, Result, validation
from bedrock_lab.emulator.streamjob import ScheduledStream
from bedrock_lab.emulator.text import count_tokens, generated_text

if TYPE_CHECKING:
    from bedrock_lab.emulator.server import EmulatorServer, _Req

log = logging.getLogger("bedrock_lab.emulator")

PATH = "/openai/v1/chat/completions"
OP = "chat-completions"  #: timing-log ``op`` of a whole answer
OP_STREAM = "chat-completions-stream"  #: timing-log ``op`` of a streamed answer (``"stream": true``)
FORMAT = "chat-completions"  #: the server's response-format name for this operation
SSE = "text/event-stream"
_MAX_STOPS = 4  #: the OpenAI API takes at most 4 stop sequences
#: OpenAI ``service_tier`` values -> the Bedrock tier that serves them (``auto`` = the default tier)
SERVICE_TIERS = {"auto": "default", **{t: t for t in TIERS}}
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: request fields of OpenAI's Create chat completion; those not listed in _USED are accepted and ignored
_KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stream",
          "stream_options", "stop", "service_tier", "n", "frequency_penalty", "presence_penalty", "seed", "user",
          "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice", "parallel_tool_calls", "response_format",
          "reasoning_effort", "metadata", "store", "modalities", "prediction", "audio", "verbosity",
          "web_search_options", "safety_identifier", "prompt_cache_key", "functions", "function_call",
          # vLLM's sampling extensions, which OpenAI-compatible load tools send (GuideLLM: ignore_eos)
          "ignore_eos", "min_tokens", "top_k", "min_p", "repetition_penalty", "skip_special_tokens"}  # fmt: skip
#: AWS error code -> (HTTP status on this path, OpenAI error type, OpenAI error code)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "ValidationException": (400, "invalid_request_error", "invalid_request"),
    "SerializationException": (400, "invalid_request_error", "invalid_json"),
    "MissingAuthenticationTokenException": (401, "authentication_error", "missing_api_key"),
    "IncompleteSignatureException": (401, "authentication_error", "invalid_signature"),
    "UnrecognizedClientException": (401, "authentication_error", "invalid_api_key"),
    "InvalidSignatureException": (401, "authentication_error", "invalid_signature"),
    "ExpiredTokenException": (401, "authentication_error", "expired_api_key"),
    "AccessDeniedException": (403, "permission_error", "access_denied"),
    "ResourceNotFoundException": (404, "not_found_error", "model_not_found"),
    "UnknownOperationException": (404, "not_found_error", "unknown_url"),
    "RequestTimeoutException": (408, "timeout_error", "request_timeout"),
    "ModelTimeoutException": (408, "timeout_error", "model_timeout"),
    "ThrottlingException": (429, "rate_limit_error", "rate_limit_exceeded"),
    "ModelNotReadyException": (429, "rate_limit_error", "model_not_ready"),
    "InternalServerException": (500, "server_error", "internal_error"),
    "ServiceUnavailableException": (503, "server_error", "service_unavailable"),
}


@dataclass
class ChatRequest:
    """What the server needs from a Chat Completions body."""

    model: str  #: as sent
    prompt: Prompt
    stream: bool = False
    include_usage: bool = False
    tier: str | None = None  #: the Bedrock tier asked for (``service_tier``), None = default


def _bad(message: str, param: str | None = None) -> ApiError:
    err = validation(message)
    err.param = param
    return err


def _num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _content_texts(content: object, where: str) -> list[str]:
    """A message's ``content``: a string, null (assistant / tool calls) or a list of parts ({type: text, text})."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{where}': expected a string or an array of content parts, but got "
                   f"{type(content).__name__} instead.", where)  # fmt: skip
    out: list[str] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(f"Invalid content part at '{where}[{i}]': expected an object with a 'type'.", f"{where}[{i}]")
        if part["type"] in ("text", "input_text", "refusal"):
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise _bad(f"Invalid type for '{where}[{i}].text': expected a string.", f"{where}[{i}].text")
            out.append(text)
        else:  # the gpt-oss models take text only (AWS: "support only text input and text output")
            raise _bad(f"Invalid content part type {part['type']!r} at '{where}[{i}]': this model supports text "
                       "content only.", f"{where}[{i}].type")  # fmt: skip
    return out


def _max_tokens(doc: dict[str, Any], spec: ModelSpec) -> int:
    a, b = doc.get("max_completion_tokens"), doc.get("max_tokens")
    if a is not None and b is not None and a != b:
        raise _bad("Set only one of 'max_completion_tokens' and 'max_tokens' (max_tokens is deprecated).",
                   "max_tokens")  # fmt: skip
    name = "max_completion_tokens" if a is not None else "max_tokens"
    v = a if a is not None else b
    if v is None:
        return spec.max_output_tokens
    if not _num(v) or not float(v).is_integer():
        raise _bad(f"Invalid type for '{name}': expected an integer, but got {v!r} instead.", name)
    if v < 1:
        raise _bad(f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {v} instead.", name)
    if v > spec.max_output_tokens:
        raise _bad(f"'{name}' is too large: {int(v)}. This model supports at most {spec.max_output_tokens} "
                   "completion tokens.", name)  # fmt: skip
    return int(v)


def _range(doc: dict[str, Any], name: str, lo: float, hi: float) -> None:
    v = doc.get(name)
    if v is None:
        return
    if not _num(v):
        raise _bad(f"Invalid type for '{name}': expected a number, but got {type(v).__name__} instead.", name)
    if not lo <= v <= hi:
        raise _bad(f"Invalid '{name}': {v} is out of range. Expected a value between {lo:g} and {hi:g}.", name)


def _stops(v: object) -> list[str]:
    if v is None:
        return []
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _bad("Invalid type for 'stop': expected a string or an array of strings.", "stop")
    if len(stops) > _MAX_STOPS:
        raise _bad(f"Invalid 'stop': array too long. Expected an array with maximum length {_MAX_STOPS}, but got "
                   f"an array with length {len(stops)} instead.", "stop")  # fmt: skip
    return [s for s in stops if s]


def parse_chat(doc: object, spec: ModelSpec, *, invoke: bool = False) -> ChatRequest:
    """Validate a Create chat completion body for ``spec`` and count its input tokens (all message texts).

    ``invoke=True``: the same body sent through InvokeModel (``model`` may be omitted; no ``stream_options``)."""
    if not isinstance(doc, dict):
        raise _bad("The request body must be a JSON object.")
    for k in doc:
        if k not in _KNOWN:
            raise _bad(f"Unrecognized request argument supplied: {k}", k)
    model = doc.get("model")
    if model is None and not invoke:
        raise _bad("Missing required parameter: 'model'.", "model")
    if model is not None and not isinstance(model, str):
        raise _bad("Invalid type for 'model': expected a string.", "model")
    msgs = doc.get("messages")
    if msgs is None:
        raise _bad("Missing required parameter: 'messages'.", "messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("Invalid 'messages': expected a non-empty array of messages.", "messages")
    texts: list[str] = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _bad(f"Invalid type for 'messages[{i}]': expected an object.", f"messages[{i}]")
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(f"Invalid value for 'messages[{i}].role': {role!r}. Supported values are: "
                       f"{', '.join(repr(r) for r in _ROLES[:5])}.", f"messages[{i}].role")  # fmt: skip
        if "content" not in m and role != "assistant":
            raise _bad(f"Missing required parameter: 'messages[{i}].content'.", f"messages[{i}].content")
        texts += _content_texts(m.get("content"), f"messages[{i}].content")
    if doc.get("n") not in (None, 1):
        raise _bad("Invalid 'n': this model supports only n = 1.", "n")
    max_tokens = _max_tokens(doc, spec)
    _range(doc, "temperature", 0, 2)
    _range(doc, "top_p", 0, 1)
    stream = doc.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("Invalid type for 'stream': expected a boolean.", "stream")
    include_usage = False
    opts = doc.get("stream_options")
    if opts is not None:
        if not stream:
            raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        if not isinstance(opts, dict):
            raise _bad("Invalid type for 'stream_options': expected an object.", "stream_options")
        iu = opts.get("include_usage", False)
        if not isinstance(iu, bool):
            raise _bad("Invalid type for 'stream_options.include_usage': expected a boolean.",
                       "stream_options.include_usage")  # fmt: skip
        include_usage = iu
    tier_raw = doc.get("service_tier")
    tier = None
    if tier_raw is not None:
        if tier_raw not in SERVICE_TIERS:
            raise _bad(f"Invalid value for 'service_tier': {tier_raw!r}. Supported values are: "
                       f"{', '.join(repr(t) for t in SERVICE_TIERS)}.", "service_tier")  # fmt: skip
        tier = SERVICE_TIERS[str(tier_raw)]
        if tier not in spec.tiers:
            raise _bad(f"The service tier '{tier}' is not supported for model {spec.model_id}. Supported tiers: "
                       f"{', '.join(spec.tiers)}.", "service_tier")  # fmt: skip
    prompt = Prompt(sum(map(count_tokens, texts)), max_tokens, _stops(doc.get("stop")))
    return ChatRequest(model or spec.model_id, prompt, stream, include_usage, tier)


# -- response bodies ----------------------------------------------------------------------------------


def completion_id(request_id: str) -> str:
    return "chatcmpl-" + request_id.replace("-", "")


def finish_reason(r: Result) -> str:
    """``stop`` for a natural end or a stop sequence, ``length`` when max tokens cut the answer."""
    return "stop" if r.finished or r.stop_sequence is not None else "length"


def usage(r: Result) -> dict[str, int]:
    return {"prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens}  # fmt: skip


def completion_body(r: Result, tier: str | None, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object (OpenAI's shape; ``service_tier`` = the Bedrock tier that served it)."""
    return {"id": completion_id(r.request_id), "object": "chat.completion", "created": created, "model": r.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r.text, "refusal": None},
                         "logprobs": None, "finish_reason": finish_reason(r)}],
            "usage": usage(r), "service_tier": tier, "system_fingerprint": None}  # fmt: skip


def chunk(r: Result, created: int, delta: dict[str, Any], finish: str | None = None, *,
          include_usage: bool = False, tier: str | None = None) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"id": completion_id(r.request_id), "object": "chat.completion.chunk", "created": created,
                           "model": r.model_id, "service_tier": tier, "system_fingerprint": None,
                           "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    if include_usage:
        out["usage"] = None
    return out


def error_response(err: ApiError, request_id: str, arrival_unix: float = 0.0) -> web.Response:
    """An AWS error in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}`` with the status the
    SDK maps to its exception classes; ``x-amzn-ErrorType`` keeps the AWS code for clients that read it."""
    status, kind, code = _ERRORS.get(err.code, (err.status, "invalid_request_error" if err.status < 500 else
                                                "server_error", err.code))  # fmt: skip
    body = {"error": {"message": err.message, "type": kind, "code": code, "param": err.param}}
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id,
               "x-amzn-ErrorType": err.code + ":http://internal.amazon.com/coral/com.amazon.bedrock/"}  # fmt: skip
    if arrival_unix:
        headers["x-bedrock-lab-arrival-unix"] = f"{arrival_unix:.6f}"
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


# -- the operation ---------------------------------------------------------------------------------------


async def handle(server: EmulatorServer, request: web.BaseRequest, req: _Req) -> web.StreamResponse:
    """Route, authorise and validate one Chat Completions call, then serve it through the server's load model."""
    req.op = OP
    path = request.raw_path.split("?", 1)[0]
    if path != PATH or request.method != "POST":
        raise ApiError(404, "UnknownOperationException", f"Unknown operation: {request.method} {path[:200]}")
    body = await server._read_body(request)
    server.authorize(request, body)
    ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise validation(f"Unsupported Content-Type {ctype!r}: send application/json.")
    doc = server._loads(body or b"{}", converse=True)
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, str) or not model:
        parse_chat(doc, _ANY_SPEC)  # the missing/invalid model (or an earlier problem) as a 400
    req.model_id = str(model)
    spec = server.s.catalog.get(str(model))
    if spec is None:
        raise ApiError(404, "ResourceNotFoundException", f"The model `{model}` does not exist or you do not have "
                       "access to it.")  # fmt: skip
    req.seq = server.seq
    server.seq += 1
    chat = parse_chat(doc, spec)
    if chat.stream:
        req.op = OP_STREAM
    if chat.prompt.input_tokens > spec.context_window:
        raise validation(f"This model's maximum context length is {spec.context_window} tokens. However, your "
                         f"messages resulted in {chat.prompt.input_tokens} tokens.")  # fmt: skip
    tier = chat.tier or "default"
    req.tier, req.input_tokens, req.max_tokens = tier, chat.prompt.input_tokens, chat.prompt.max_tokens
    req.extra["include_usage"] = chat.include_usage
    return await server._serve(request, req, spec, chat.prompt, FORMAT, tier, False, None)


#: a stand-in model for validating a body whose model is missing (only ``max_output_tokens`` and tiers matter)
_ANY_SPEC = ModelSpec("?", "?", "openai", TIERS, {}, 1, 1 << 30, 1 << 30)


async def respond(server: EmulatorServer, request: web.BaseRequest, req: _Req, sch: Schedule, result: Result,
                  headers: dict[str, str], admitted: float, tier: str, streaming: bool) -> web.StreamResponse:  # fmt: skip
    """The admitted request's answer: one ``chat.completion`` when its schedule ends, or the SSE stream."""
    loop = asyncio.get_running_loop()
    created = int(time.time())
    if not streaming:
        delay = admitted + sch.chunk_offsets[-1] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if result.stop_sequence is None:
            result.text = generated_text(sch.text_offset, sch.output_tokens)
        headers["Content-Type"] = "application/json"
        data = json.dumps(completion_body(result, tier, created)).encode()
        req.response_unix = time.time()
        headers["x-bedrock-lab-response-unix"] = f"{req.response_unix:.6f}"
        return web.Response(body=data, headers=headers)
    headers.update({"Content-Type": SSE, "Cache-Control": "no-cache"})
    req.response_unix = time.time()
    headers["x-bedrock-lab-response-unix"] = f"{req.response_unix:.6f}"
    resp = web.StreamResponse(status=200, headers=headers)
    await resp.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away before the first event")
    server.active_streams += 1
    server.max_active_streams = max(server.max_active_streams, server.active_streams)
    try:
        job = _SseJob(server, transport, req, sch, result, admitted, loop, tier, created,
                      bool(req.extra.get("include_usage")))  # fmt: skip
        if await job.run():
            await resp.write_eof()
    finally:
        server.active_streams -= 1
    return resp


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class _SseJob(ScheduledStream):
    """Writes one SSE stream on the schedule (:class:`~bedrock_lab.emulator.streamjob.ScheduledStream`, like the
    event-stream writer): the role chunk with the first content, one chunk per content chunk, then the finish
    chunk, the usage chunk (when asked) and ``data: [DONE]`` with the last content."""

    __slots__ = ("created", "include_usage")
    what = "SSE event"

    def __init__(self, server: EmulatorServer, transport: asyncio.BaseTransport, req: _Req, sch: Schedule,
                 result: Result, admitted: float, loop: asyncio.AbstractEventLoop, tier: str, created: int,
                 include_usage: bool) -> None:  # fmt: skip
        super().__init__(server, transport, req, sch, result, admitted, loop, tier)
        self.created, self.include_usage = created, include_usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event(chunk(self.result, self.created, delta, finish, include_usage=self.include_usage,
                            tier=self.tier))  # fmt: skip

    def _emit(self) -> None:
        if self._client_gone():
            return
        sch, i, r = self.sch, self.i, self.result
        if sch.fault is not None and i == sch.fault_chunk:
            self._fault(sch.fault)
            return
        k = sch.chunk_tokens[i]
        last = i == self.n - 1
        text = self._text(k, last)
        parts: list[bytes] = []
        if i == 0:
            parts.append(self._chunk({"role": "assistant", "content": "", "refusal": None}))
        parts.append(self._chunk({"content": text}))
        if last:
            parts.append(self._chunk({}, finish_reason(r)))
            if self.include_usage:
                parts.append(_event({"id": completion_id(r.request_id), "object": "chat.completion.chunk",
                                     "created": self.created, "model": r.model_id, "service_tier": self.tier,
                                     "system_fingerprint": None, "choices": [], "usage": usage(r)}))  # fmt: skip
            parts.append(b"data: [DONE]\n\n")
        self._send(b"".join(parts))
        self._next(last)

    def _fault(self, fault: str) -> None:
        """Mid-stream faults: ``drop`` closes the connection; the others send an ``error`` event (the OpenAI SDK
        raises ``APIError`` on it) and end the stream without ``[DONE]``."""
        req = self.req
        if self._dropped():
            return
        throttle = fault == "stream_throttle"
        code = "throttlingException" if throttle else "modelStreamErrorException"
        msg = MSG_TOO_MANY_TOKENS if throttle else ("The system encountered an unexpected error during processing. "
                                                    "Try your request again.")  # fmt: skip
        err = {"message": msg, "type": "rate_limit_error" if throttle else "server_error", "code": code,
               "param": None}  # fmt: skip
        self._send(_event({"error": err}))
        req.error_code, req.outcome = code, "error"
        self._finish(True)


# -- the same body through InvokeModel (provider format "openai") ---------------------------------------


class OpenAIFormat(Format):
    """InvokeModel / InvokeModelWithResponseStream with a Chat Completions body (the gpt-oss models): the body and
    the stream chunks are the Chat Completions objects; the last chunk carries the invocation metrics."""

    name = "openai"

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        chat = parse_chat(body, spec, invoke=True)
        if chat.model is not None and split_model_id(chat.model)[1] != spec.model_id:
            raise validation(f"The model in the body ({chat.model}) does not match the model in the URI.")
        return chat.prompt

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return completion_body(r, None, int(time.time()))

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        return [chunk(r, int(time.time()), {"role": "assistant", "content": ""})]

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return chunk(r, int(time.time()), {"content": text})

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return [chunk(r, int(time.time()), {}, finish_reason(r))]


# providers.FORMATS is the server's table of InvokeModel formats; this module owns the "openai" one (registered
# on import: the server imports this module, so the table is complete whenever the emulator package is loaded)
FORMATS.setdefault(OpenAIFormat.name, OpenAIFormat())

__all__ = ["FORMAT", "OP", "OP_STREAM", "PATH", "SERVICE_TIERS", "ChatRequest", "OpenAIFormat", "completion_body",
           "error_response", "handle", "parse_chat", "respond"]  # fmt: skip
