"""Request validation and response bodies for Converse and each InvokeModel provider format.

Every format answers three questions the server needs: how many input tokens and how many output tokens
at most (``parse``), what the whole response body looks like (``full_body``), and what its stream chunks
look like (``stream_head`` before the first content, ``stream_delta`` per content chunk, ``stream_tail``
after the last). The server appends ``amazon-bedrock-invocationMetrics`` to the last InvokeModel chunk.

Validation messages follow the wording Bedrock uses ("Malformed input request: #: extraneous key [stream]
is not permitted, please reformat your input and try again.") so clients see what they would see on AWS.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab.catalog import ModelSpec
from bedrock_lab.emulator.text import count_tokens, generated_text
from bedrock_lab.emulator.tools import schema_instance, tool_use_id
from bedrock_lab.tokens import count_texts, token_starts


class ApiError(Exception):
    """An error response: status, AWS error code (x-amzn-ErrorType) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param: str | None = None  #: the request field at fault (OpenAI errors' ``param``), when known


def validation(message: str) -> ApiError:
    return ApiError(400, "ValidationException", message)


def _malformed(detail: str) -> ApiError:
    return validation(f"Malformed input request: {detail}, please reformat your input and try again.")


@dataclass
class Prompt:
    """What the load model needs from a request body."""

    input_tokens: int
    max_tokens: int  #: resolved: the request's value or the format/model default
    stop_sequences: list[str] = field(default_factory=list)
    features: Features | None = None  #: tools, cache points, guardrail, reasoning (Converse and Anthropic only)


@dataclass
class Result:
    """A generated answer, shared by every format."""

    model_id: str  #: as the client sent it
    request_id: str
    input_tokens: int
    output_tokens: int
    finished: bool  #: True = natural end (end_turn) or a stop sequence, False = hit maxTokens
    text: str = ""
    stop_sequence: str | None = None  #: the stop sequence the answer was cut at, if any
    blocks: list[Block] = field(default_factory=list)  #: a structured answer (reasoning, tool call); [] = text
    stop_reason: str | None = None  #: overrides the natural stop reason (tool_use, guardrail_intervened, ...)
    cached: bool = False  #: the request had cache points: usage carries the cache fields
    cache_read: int = 0  #: prompt tokens read from the cache (not in input_tokens)
    cache_write: int = 0  #: prompt tokens written to the cache (not in input_tokens)
    cache_ttl: str = "5m"
    trace: dict[str, Any] | None = None  #: Converse ``trace`` (guardrail assessment)
    response_fields: dict[str, Any] | None = None  #: additionalModelResponseFields
    guardrail_action: str | None = None  #: InvokeModel ``amazon-bedrock-guardrailAction`` (INTERVENED / NONE)


# -- stop sequences -----------------------------------------------------------------------------------


def stop_cut(text_offset: int, output_tokens: int, stops: list[str]) -> tuple[int, str, str] | None:
    """Where a stop sequence ends the answer: (tokens to the cut, text before it, the sequence), or None.

    The earliest occurrence in the would-be answer wins (like the model stopping as soon as it emits it); the
    text ends just before it and the tokens are those of that text, so usage matches what the client sees.
    """
    if not stops or output_tokens <= 0:
        return None
    full = generated_text(text_offset, output_tokens)
    hits = [(i, s) for s in stops if s and (i := full.find(s)) >= 0]
    if not hits:
        return None
    at, seq = min(hits)
    text = full[:at]
    return count_tokens(text), text, seq


def cut_chunks(chunk_tokens: list[int], chunk_offsets: list[float], n: int) -> tuple[list[int], list[float]]:
    """The first chunks of a schedule carrying ``n`` tokens (the last one shortened); at least one chunk, so a
    stream still has its first frame even when the answer is cut to nothing."""
    tokens: list[int] = []
    left = n
    for k in chunk_tokens:
        take = min(k, left)
        tokens.append(take)
        left -= take
        if left <= 0:
            break
    return tokens, chunk_offsets[:len(tokens)]


# -- shared checks ------------------------------------------------------------------------------------


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_keys(body: dict[str, Any], allowed: set[str], required: tuple[str, ...]) -> None:
    for k in body:
        if k not in allowed:
            raise _malformed(f"#: extraneous key [{k}] is not permitted")
    for k in required:
        if k not in body:
            raise _malformed(f"#: required key [{k}] not found")


def _check_range(path: str, v: object, lo: float, hi: float, integer: bool = False) -> None:
    if v is None:
        return
    if not isinstance(v, int | float) or not _is_num(v) or (integer and not float(v).is_integer()):
        raise _malformed(f"#/{path}: expected type: {'Integer' if integer else 'Number'}, found: {type(v).__name__}")
    if v < lo:
        raise _malformed(f"#/{path}: {v} is not greater or equal to {lo:g}")
    if v > hi:
        raise _malformed(f"#/{path}: {v} is not less or equal to {hi:g}")


def _max_tokens(path: str, v: object, default: int, spec: ModelSpec) -> int:
    if v is None:
        return min(default, spec.max_output_tokens)
    _check_range(path, v, 1, math.inf, integer=True)
    n = int(v) if isinstance(v, int | float) else 0
    if n > spec.max_output_tokens:
        raise validation(f"The maximum tokens you requested exceeds the model limit of {spec.max_output_tokens}. "
                         f"Try again with a maximum tokens value that is lower than {spec.max_output_tokens}.")
    return n


def _stops(path: str, v: object) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _malformed(f"#/{path}: expected type: JSONArray of strings")
    return list(v)


_IMAGE_CHARGE = "img " * 400  #: a fixed charge per image, like a small picture
_MEDIA_CHARGE = "media " * 800  #: a fixed charge per video/audio block or binary document


def _json_text(v: object) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _decoded_doc(raw: object) -> str:
    """The text of a document given as bytes (base64 on the wire): decoded when it is UTF-8 text."""
    if not isinstance(raw, str):
        return _MEDIA_CHARGE
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return _MEDIA_CHARGE


def _block_texts(b: dict[str, Any], path: str, typed: bool, used: set[str]) -> list[str]:
    """The texts one content block bills as input (``used`` collects the features it needs: images, documents,
    tools). Converse blocks are unions ({text}, {toolResult}, ...); Anthropic blocks carry ``type``."""
    kind = b.get("type") if typed else next((k for k in b if k != "cachePoint"), "cachePoint")
    if typed and kind is None and "text" in b:
        kind = "text"
    if kind == "text":
        t = b.get("text")
        if not isinstance(t, str):
            raise _malformed(f"#/{path}/text: expected type: String, found: {type(t).__name__}")
        return [t]
    if kind == "image":
        used.add("images")
        return [_IMAGE_CHARGE]
    if kind in ("video", "audio"):
        return [_MEDIA_CHARGE]
    if kind == "document":
        used.add("documents")
        doc = b if typed else b.get("document")
        src = doc.get("source") if isinstance(doc, dict) else None
        if not isinstance(src, dict):
            return []
        if typed:  # {type: text, data} or {type: base64, data}
            data = src.get("data")
            return [data if src.get("type") == "text" and isinstance(data, str) else _decoded_doc(data)]
        if isinstance(src.get("text"), str):
            return [src["text"]]
        if isinstance(src.get("content"), list):
            return [c["text"] for c in src["content"] if isinstance(c, dict) and isinstance(c.get("text"), str)]
        return [_decoded_doc(src.get("bytes"))]
    if kind in ("toolUse", "tool_use"):
        used.add("tool_blocks")
        tu = b if typed else b.get("toolUse")
        if not isinstance(tu, dict):
            raise _malformed(f"#/{path}/toolUse: expected type: JSONObject")
        return [str(tu.get("name", "")), _json_text(tu.get("input", {}))]
    if kind in ("toolResult", "tool_result"):
        used.add("tool_blocks")
        used.add("tool_result")
        tr = b if typed else b.get("toolResult")
        if not isinstance(tr, dict):
            raise _malformed(f"#/{path}/toolResult: expected type: JSONObject")
        content = tr.get("content", [])
        if isinstance(content, str):
            return [content]
        out: list[str] = []
        for c in content if isinstance(content, list) else []:
            if not isinstance(c, dict):
                continue
            if isinstance(c.get("text"), str):
                out.append(c["text"])
            elif "json" in c:
                out.append(_json_text(c["json"]))
            elif "image" in c or c.get("type") == "image":
                out.append(_IMAGE_CHARGE)
            elif "document" in c or c.get("type") == "document":
                out += _block_texts(c, path, typed, used)
        return out
    if kind == "guardContent":
        gc = b.get("guardContent")
        txt = gc.get("text") if isinstance(gc, dict) else None
        if isinstance(txt, dict) and isinstance(txt.get("text"), str):
            return [txt["text"]]
        return [_IMAGE_CHARGE] if isinstance(gc, dict) and "image" in gc else []
    if kind in ("reasoningContent", "thinking"):
        if typed:
            return [str(b.get("thinking", ""))]
        rc = b.get("reasoningContent")
        rt = rc.get("reasoningText") if isinstance(rc, dict) else None
        return [str(rt.get("text", ""))] if isinstance(rt, dict) else []
    return []  # cachePoint, citations, redacted reasoning, search results: no billed text here


def _text_of_blocks(blocks: object, path: str, *, typed: bool, used: set[str] | None = None) -> list[str]:
    """Texts of a content list; ``typed`` = Anthropic style ({type: text, text}) else Converse style ({text})."""
    if isinstance(blocks, str) and typed:
        return [blocks]
    if not isinstance(blocks, list):
        raise _malformed(f"#/{path}: expected type: JSONArray, found: {type(blocks).__name__}")
    out = []
    sink = used if used is not None else set()
    for i, b in enumerate(blocks):
        if not isinstance(b, dict):
            raise _malformed(f"#/{path}/{i}: expected type: JSONObject, found: {type(b).__name__}")
        out += _block_texts(b, f"{path}/{i}", typed, sink)
    return out


def _message_list(msgs: object, path: str) -> list[Any]:
    """An InvokeModel body's ``messages`` (anthropic, nova) as Bedrock's JSON schema checks it: a non-empty array."""
    if not isinstance(msgs, list):
        raise _malformed(f"#/{path}: expected type: JSONArray, found: {type(msgs).__name__}")
    if not msgs:
        raise validation("A conversation must start with a user message. Try again with a conversation that "
                         "starts with a user message.")
    return msgs


def _message(m: object, path: str, i: int) -> dict[str, Any]:
    """Message ``i`` of :func:`_message_list`: an object with a user/assistant role (the first the user's) and
    a content key; one check for the anthropic and nova bodies, so their errors stay the same."""
    if not isinstance(m, dict):
        raise _malformed(f"#/{path}/{i}: expected type: JSONObject, found: {type(m).__name__}")
    role = m.get("role")
    if role not in ("user", "assistant"):
        raise _malformed(f"#/{path}/{i}/role: {role!r} is not a valid enum value (user, assistant)")
    if i == 0 and role != "user":
        raise validation("A conversation must start with a user message. Try again with a conversation "
                         "that starts with a user message.")
    if "content" not in m:
        raise _malformed(f"#/{path}/{i}: required key [content] not found")
    return m


def _messages(msgs: object, path: str, *, typed: bool) -> list[str]:
    texts: list[str] = []
    for i, m in enumerate(_message_list(msgs, path)):
        texts += _text_of_blocks(_message(m, path, i)["content"], f"{path}/{i}/content", typed=typed)
    return texts


def _system(v: object, path: str, *, typed: bool) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return _text_of_blocks(v, path, typed=typed)


# -- formats --------------------------------------------------------------------------------------------


class Format:
    """Base: one provider body format. Subclasses fill in the JSON shapes."""

    name = ""
    stop_reasons = ("end_turn", "max_tokens")
    stop_sequence_reason = ""  #: the stop reason for a stop-sequence cut; empty = the natural-end reason
    guardrail_reason = ""  #: the stop reason of a guardrail's blocked answer; empty = the natural-end reason

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        raise NotImplementedError

    def stop(self, r: Result) -> str:
        if r.stop_reason == "guardrail_intervened":  # InvokeModel: the body's amazon-bedrock-guardrailAction says it
            return self.guardrail_reason or self.stop_reasons[0]
        if r.stop_reason is not None:
            return r.stop_reason
        if r.stop_sequence is not None and self.stop_sequence_reason:
            return self.stop_sequence_reason
        return self.stop_reasons[0] if r.finished else self.stop_reasons[1]

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        raise NotImplementedError

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        return []

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        raise NotImplementedError

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return []

    def stream_block_events(self, r: Result, start: int, k: int, first: bool, last: bool) -> list[dict[str, Any]]:
        """The chunks of tokens ``start .. start+k`` of a structured answer (``r.blocks``). A plain-text format
        has only text blocks here (a guardrail's blocked message): one delta with their text."""
        text = "".join(b.piece(a, e) for _, b, a, e in _pieces(r, start, k) if b.kind == "text")
        return [self.stream_delta(r, text, start + k, first, last)]


#: Anthropic Messages API versions (``anthropic-version`` values, YYYY-MM-DD): the anthropic SDK's Bedrock client
#: sends its own API version as ``anthropic_version`` when the body has none (2.x sends "2026-10-21").
_ANTHROPIC_DATE = re.compile(r"(?:bedrock-)?(\d{4})-(\d{2})-(\d{2})")
_ANTHROPIC_VERSIONS_SINCE = datetime.date(2023, 1, 1)


def _anthropic_version_ok(v: object) -> bool:
    """``bedrock-2023-05-31`` (the documented value) or a dated Anthropic API version, ``[bedrock-]YYYY-MM-DD``."""
    if not isinstance(v, str):
        return False
    m = _ANTHROPIC_DATE.fullmatch(v)
    if m is None:
        return False
    try:
        day = datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return day >= _ANTHROPIC_VERSIONS_SINCE


class Anthropic(Format):
    name = "anthropic"
    stop_sequence_reason = "stop_sequence"
    _allowed = {"anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "temperature", "top_p",
                "top_k", "stop_sequences", "tools", "tool_choice", "thinking", "metadata", "output_config"}  # fmt: skip

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("anthropic_version", "max_tokens", "messages"))
        if not _anthropic_version_ok(body["anthropic_version"]):
            raise _malformed(f"#/anthropic_version: {body['anthropic_version']!r} is not a valid version "
                             "(bedrock-2023-05-31)")
        mt = _max_tokens("max_tokens", body["max_tokens"], spec.max_output_tokens, spec)
        _check_range("temperature", body.get("temperature"), 0, 1)
        _check_range("top_p", body.get("top_p"), 0, 1)
        _check_range("top_k", body.get("top_k"), 0, 500, integer=True)
        tokens, feats = _walk_anthropic(body, spec, mt)
        feats.output_schema = _anthropic_output(body.get("output_config"), spec)
        return Prompt(tokens, mt, _stops("stop_sequences", body.get("stop_sequences")), feats if feats.any else None)

    def stream_block_events(self, r: Result, start: int, k: int, first: bool, last: bool) -> list[dict[str, Any]]:
        return anthropic_stream_events(r, start, k, last)

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"id": "msg_bdrk_" + r.request_id.replace("-", "")[:24], "type": "message", "role": "assistant",
                "model": spec.model_id.split(".", 1)[1].split(":")[0], "content": anthropic_content(r),
                "stop_reason": self.stop(r), "stop_sequence": r.stop_sequence, "usage": anthropic_usage(r)}  # fmt: skip

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        msg = self.full_body(r, spec)
        msg.update(content=[], stop_reason=None, stop_sequence=None, usage={**anthropic_usage(r), "output_tokens": 1})
        if r.blocks:  # each block opens itself (anthropic_stream_events)
            return [{"type": "message_start", "message": msg}]
        return [{"type": "message_start", "message": msg},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return [*([] if r.blocks else [{"type": "content_block_stop", "index": 0}]),
                {"type": "message_delta", "delta": {"stop_reason": self.stop(r), "stop_sequence": r.stop_sequence},
                 "usage": {"output_tokens": r.output_tokens}},
                {"type": "message_stop"}]  # fmt: skip


class AnthropicText(Format):
    name = "anthropic-text"
    stop_reasons = ("stop_sequence", "max_tokens")
    _allowed = {"prompt", "max_tokens_to_sample", "temperature", "top_p", "top_k", "stop_sequences",
                "anthropic_version"}  # fmt: skip

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("prompt", "max_tokens_to_sample"))
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            raise _malformed(f"#/prompt: expected type: String, found: {type(prompt).__name__}")
        if "\n\nHuman:" not in prompt or not prompt.rstrip().endswith("\n\nAssistant:"):
            raise validation('Invalid prompt: prompt must start with "\n\nHuman:" turn after an optional system '
                             'prompt and end with "\n\nAssistant:" turn')
        mt = _max_tokens("max_tokens_to_sample", body["max_tokens_to_sample"], spec.max_output_tokens, spec)
        _check_range("temperature", body.get("temperature"), 0, 1)
        _check_range("top_p", body.get("top_p"), 0, 1)
        return Prompt(count_tokens(prompt), mt, _stops("stop_sequences", body.get("stop_sequences")))

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"type": "completion", "completion": " " + r.text, "stop_reason": self.stop(r), "stop": self._stop_seq(r)}

    @staticmethod
    def _stop_seq(r: Result) -> str | None:
        if r.stop_sequence is not None:
            return r.stop_sequence
        return "\n\nHuman:" if r.finished else None

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"type": "completion", "completion": (" " + text) if first else text,
                "stop_reason": self.stop(r) if last else None,
                "stop": self._stop_seq(r) if last else None}  # fmt: skip


class Titan(Format):
    name = "titan"
    stop_reasons = ("FINISH", "LENGTH")
    stop_sequence_reason = "STOP_CRITERIA_MET"  #: Titan Text's completionReason when a stop sequence ends it
    guardrail_reason = "CONTENT_FILTERED"  #: Titan Text's completionReason for filtered content
    _cfg = {"maxTokenCount", "temperature", "topP", "stopSequences"}

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, {"inputText", "textGenerationConfig"}, ("inputText",))
        text = body["inputText"]
        if not isinstance(text, str):
            raise _malformed(f"#/inputText: expected type: String, found: {type(text).__name__}")
        if not text.strip():
            raise validation("Malformed input request: #/inputText: expected minLength: 1, actual: 0, please "
                             "reformat your input and try again.")
        cfg = body.get("textGenerationConfig") or {}
        if not isinstance(cfg, dict):
            raise _malformed("#/textGenerationConfig: expected type: JSONObject")
        for k in cfg:
            if k not in self._cfg:
                raise _malformed(f"#/textGenerationConfig: extraneous key [{k}] is not permitted")
        mt = _max_tokens("textGenerationConfig/maxTokenCount", cfg.get("maxTokenCount"), 512, spec)
        _check_range("textGenerationConfig/temperature", cfg.get("temperature"), 0, 1)
        _check_range("textGenerationConfig/topP", cfg.get("topP"), 0, 1)
        return Prompt(count_tokens(text), mt, _stops("textGenerationConfig/stopSequences", cfg.get("stopSequences")))

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"inputTextTokenCount": r.input_tokens,
                "results": [{"tokenCount": r.output_tokens, "outputText": r.text, "completionReason": self.stop(r)}]}

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"outputText": text, "index": 0, "totalOutputTextTokenCount": done_tokens,
                "completionReason": self.stop(r) if last else None, "inputTextTokenCount": r.input_tokens}


class Nova(Format):
    """Amazon Nova's messages-v1 body: Converse's shapes in a body of its own, so its content (tools, cache points,
    validation) is read by the Converse walker; usage says ``cacheRead/WriteInputTokenCount``."""

    name = "nova"
    stop_sequence_reason = "stop_sequence"  #: Nova's stopReason values follow Converse's
    guardrail_reason = "guardrail_intervened"
    _allowed = {"schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"}
    _cfg = {"maxTokens", "max_new_tokens", "temperature", "topP", "top_p", "topK", "top_k", "stopSequences",
            "reasoningConfig"}  # fmt: skip

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("messages",))
        if body.get("schemaVersion", "messages-v1") != "messages-v1":
            raise validation(f"Malformed input request: #/schemaVersion: {body['schemaVersion']!r} is not a valid "
                             "enum value (messages-v1), please reformat your input and try again.")
        cfg = body.get("inferenceConfig") or {}
        if not isinstance(cfg, dict):
            raise _malformed("#/inferenceConfig: expected type: JSONObject")
        for k in cfg:
            if k not in self._cfg:
                raise _malformed(f"#/inferenceConfig: extraneous key [{k}] is not permitted")
        raw_mt = cfg.get("maxTokens", cfg.get("max_new_tokens"))
        mt = _max_tokens("inferenceConfig/maxTokens", raw_mt, spec.max_output_tokens, spec)
        _check_range("inferenceConfig/temperature", cfg.get("temperature"), 0, 1)
        _check_range("inferenceConfig/topP", cfg.get("topP", cfg.get("top_p")), 0, 1)
        if not isinstance(body["messages"], list):
            raise _malformed(f"#/messages: expected type: JSONArray, found: {type(body['messages']).__name__}")
        tokens, feats = _walk_converse(body, spec, False)  # Converse's content rules, tools and cache points
        return Prompt(tokens, mt, _stops("inferenceConfig/stopSequences", cfg.get("stopSequences")),
                      feats if feats.any else None)  # fmt: skip

    @staticmethod
    def _usage(r: Result, total: bool) -> dict[str, Any]:
        u: dict[str, Any] = {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens}
        if total:
            u["totalTokens"] = r.input_tokens + r.output_tokens + r.cache_read + r.cache_write
        if total or r.cached:
            u.update(cacheReadInputTokenCount=r.cache_read, cacheWriteInputTokenCount=r.cache_write)
        return u

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"output": {"message": {"role": "assistant", "content": converse_content(r)}},
                "stopReason": self.stop(r), "usage": self._usage(r, True)}  # fmt: skip

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        return [{"messageStart": {"role": "assistant"}}]

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return [*([] if r.blocks else [{"contentBlockStop": {"contentBlockIndex": 0}}]),
                {"messageStop": {"stopReason": self.stop(r)}},
                {"metadata": {"usage": self._usage(r, False), "metrics": {}, "trace": {}}}]  # fmt: skip

    def stream_block_events(self, r: Result, start: int, k: int, first: bool, last: bool) -> list[dict[str, Any]]:
        return [{name: payload} for name, payload in converse_stream_events(r, start, k, last)]


class Llama(Format):
    name = "llama"
    stop_reasons = ("stop", "length")
    _allowed = {"prompt", "temperature", "top_p", "max_gen_len", "images"}

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("prompt",))
        if not isinstance(body["prompt"], str):
            raise _malformed(f"#/prompt: expected type: String, found: {type(body['prompt']).__name__}")
        mt = _max_tokens("max_gen_len", body.get("max_gen_len"), 512, spec)
        _check_range("temperature", body.get("temperature"), 0, 1)
        _check_range("top_p", body.get("top_p"), 0, 1)
        return Prompt(count_tokens(body["prompt"]), mt)

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"generation": r.text, "prompt_token_count": r.input_tokens,
                "generation_token_count": r.output_tokens, "stop_reason": self.stop(r)}

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"generation": text, "prompt_token_count": r.input_tokens if first else None,
                "generation_token_count": done_tokens, "stop_reason": self.stop(r) if last else None}


class Mistral(Format):
    name = "mistral"
    stop_reasons = ("stop", "length")
    stop_sequence_reason = "stop"  #: Mistral documents "stop" for a natural end and for a stop sequence alike
    _allowed = {"prompt", "max_tokens", "stop", "temperature", "top_p", "top_k"}

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("prompt",))
        if not isinstance(body["prompt"], str):
            raise _malformed(f"#/prompt: expected type: String, found: {type(body['prompt']).__name__}")
        mt = _max_tokens("max_tokens", body.get("max_tokens"), spec.max_output_tokens, spec)
        _check_range("temperature", body.get("temperature"), 0, 1)
        _check_range("top_p", body.get("top_p"), 0, 1)
        _check_range("top_k", body.get("top_k"), 0, 200, integer=True)
        return Prompt(count_tokens(body["prompt"]), mt, _stops("stop", body.get("stop")))

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"outputs": [{"text": r.text, "stop_reason": self.stop(r)}]}

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"outputs": [{"text": text, "stop_reason": self.stop(r) if last else None}]}


FORMATS: dict[str, Format] = {f.name: f for f in (Anthropic(), AnthropicText(), Titan(), Nova(), Llama(), Mistral())}


# -- production features: tools, prompt caching, guardrails, reasoning (docs/emulator.md) --------------------


@dataclass
class CachePoint:
    """A cache checkpoint: the prompt tokens before it and a hash of that prefix (tools, system, messages)."""

    tokens: int
    key: str
    ttl: str = "5m"


@dataclass
class Features:
    """What a Converse or Anthropic request asks beyond plain text; set by the parsers, used by the server."""

    style: str = "converse"  #: "converse" or "anthropic": the shapes of the answer
    key: str = ""  #: hash of the request's content: seeds the tool input and the reasoning length
    tool: tuple[str, dict[str, Any]] | None = None  #: the tool the answer calls: (name, input JSON schema)
    cache_points: list[CachePoint] = field(default_factory=list)
    guardrail: dict[str, str] | None = None  #: guardrailIdentifier, guardrailVersion, trace, streamProcessingMode
    reasoning_budget: int = 0  #: 0 = no reasoning
    response_paths: list[str] = field(default_factory=list)  #: additionalModelResponseFieldPaths
    output_schema: dict[str, Any] | None = None  #: structured output: the JSON schema the answer's text satisfies

    @property
    def any(self) -> bool:
        return bool(self.tool or self.cache_points or self.guardrail or self.reasoning_budget
                    or self.response_paths or self.output_schema is not None)  # fmt: skip


@dataclass
class Block:
    """One content block of a structured answer, in stream order, with the output tokens it carries."""

    kind: str  #: "reasoning", "text" or "tool_use"
    text: str  #: the reasoning text, the answer text, or the tool input as JSON
    tokens: int
    full: bool = True  #: False = cut by maxTokens
    tool_id: str = ""
    name: str = ""
    signature: str = ""
    value: Any = None  #: the tool input (a JSON document)

    def piece(self, a: int, b: int) -> str:
        """The text of tokens ``a .. b`` of this block (pieces of consecutive ranges concatenate to the text)."""
        starts = token_starts(self.text)
        lo = 0 if a <= 0 else (starts[a] if a < len(starts) else len(self.text))
        hi = len(self.text) if b >= len(starts) else starts[b]
        return self.text[lo:hi]


@dataclass
class Shape:
    """The answer decided before the schedule: reasoning first, then a tool call, a blocked text or free text."""

    reasoning_tokens: int = 0
    fixed: Block | None = None  #: a tool call or the guardrail's blocked text (its length is fixed)
    stop: str | None = None  #: the stop reason when the fixed block is complete

    @property
    def fixed_tokens(self) -> int | None:
        return self.fixed.tokens if self.fixed is not None else None


def shape_answer(f: Features, seed: int, seq: int, blocked: str | None) -> Shape:
    """Decide the answer's blocks: a blocked text when a guardrail intervened, else a tool call when the request
    gets one; reasoning before either when asked. Seeded by the request's content (and the seed)."""
    rng = random.Random(f"{seed}:{f.key}")
    sh = Shape()
    if f.reasoning_budget and blocked is None:  # 25-75% of the budget
        sh.reasoning_tokens = max(1, round(f.reasoning_budget * rng.uniform(0.25, 0.75)))
    if blocked is not None:
        sh.fixed, sh.stop = Block("text", blocked, count_tokens(blocked)), "guardrail_intervened"
    elif f.tool is not None:
        name, schema = f.tool
        value = schema_instance(schema, rng)
        text = json.dumps(value)
        prefix = "toolu_bdrk_" if f.style == "anthropic" else "tooluse_"
        sh.fixed = Block("tool_use", text, count_tokens(text), tool_id=tool_use_id(random.Random(f"{seed}:{seq}:id"),
                         prefix), name=name, value=value)  # fmt: skip
        sh.stop = "tool_use"
    elif f.output_schema is not None:  # structured output: the text is a JSON instance of the schema
        text = json.dumps(schema_instance(f.output_schema, rng))
        sh.fixed, sh.stop = Block("text", text, count_tokens(text)), "end_turn"
    return sh


def finish_answer(r: Result, f: Features, sh: Shape, text_offset: int, seed: int) -> None:
    """Fill ``r.blocks`` from the shape and the scheduled output tokens (``r.output_tokens``), which maxTokens may
    have cut: reasoning first (its own words), then the fixed block or the generated text."""
    left = r.output_tokens
    blocks: list[Block] = []
    if sh.reasoning_tokens:
        n = min(sh.reasoning_tokens, left)
        words = generated_text((text_offset + 997) % 4096, sh.reasoning_tokens)
        sig = base64.b64encode(hashlib.sha256(f"{seed}:{f.key}:{r.request_id}".encode()).digest() * 2).decode()
        blocks.append(Block("reasoning", generated_text((text_offset + 997) % 4096, n) if n < sh.reasoning_tokens
                            else words, n, n == sh.reasoning_tokens, signature=sig))  # fmt: skip
        left -= n
    if sh.fixed is not None:
        fx = sh.fixed
        n = min(fx.tokens, left)
        if n > 0:
            cut = n < fx.tokens
            b = Block(fx.kind, fx.text, fx.tokens, not cut, fx.tool_id, fx.name, value=fx.value)
            if cut:
                b.text, b.tokens = b.piece(0, n), n
            blocks.append(b)
        r.stop_reason = sh.stop if n == fx.tokens else "max_tokens"
    elif left > 0 or not blocks:
        blocks.append(Block("text", generated_text(text_offset, left), left))
        r.text = blocks[-1].text
    if sh.fixed is None and r.stop_reason is None and sh.reasoning_tokens and left <= 0 and not r.finished:
        r.stop_reason = "max_tokens"
    r.blocks = blocks
    if not r.text:  # plain-text formats (InvokeModel bodies without blocks) answer with the text blocks
        r.text = "".join(b.text for b in blocks if b.kind == "text")


def _walk_converse(body: dict[str, Any], spec: ModelSpec, streaming: bool) -> tuple[int, Features]:
    """Validate the content of a Converse request like the service does and count its input tokens; collect the
    cache points (in prefix order: tools, system, messages) and what the answer will be."""
    f = Features("converse")
    used: set[str] = set()
    hasher = hashlib.sha256()
    tokens = 0
    cache = spec.cache

    def add(texts: list[str], raw: object) -> None:
        nonlocal tokens
        tokens += count_texts(texts)
        hasher.update(_json_text(raw).encode())

    def point(where: str, cp: object) -> None:
        if cache is None or where not in cache.fields:
            raise validation("You invoked an unsupported model or your request did not allow prompt caching. See "
                             "the documentation for more information.")
        ttl = cp.get("ttl", "5m") if isinstance(cp, dict) else "5m"
        if not isinstance(cp, dict) or cp.get("type") != "default":
            raise _coral(f"{where}.cachePoint.type", cp, "Member must satisfy enum value set: [default]")
        if ttl not in cache.ttls:
            raise validation(f"The cache TTL '{ttl}' is not supported for model {spec.model_id}. Supported TTLs: "
                             f"{', '.join(cache.ttls)}.")
        f.cache_points.append(CachePoint(tokens, hasher.hexdigest(), str(ttl)))

    tools = _tool_config(body.get("toolConfig"), spec, streaming, add, point)
    system = body.get("system")
    if system is not None:
        if not isinstance(system, list):
            raise _coral("system", system, "Member must be a list")
        for j, b in enumerate(system):
            if not isinstance(b, dict):
                raise _malformed(f"#/system/{j}: expected type: JSONObject")
            if "cachePoint" in b:
                point("system", b["cachePoint"])
                continue
            if "text" in b:
                if "system" not in spec.features:
                    raise validation("This model doesn't support system messages. Try again without the system "
                                     "field, or with a model that supports them.")
                if not isinstance(b["text"], str) or not b["text"].strip():
                    raise validation(f"The text field in the SystemContentBlock object at system.{j} is blank. Add "
                                     "text to the text field, and try again.")
            add(_block_texts(b, f"system/{j}", False, used), b)
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        raise _coral("messages", msgs, "Member must be a list")
    if not msgs:
        raise validation("A conversation must start with a user message. Try again with a conversation that "
                         "starts with a user message.")
    last_user_result = False
    prev_role = None
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _malformed(f"#/messages/{i}: expected type: JSONObject, found: {type(m).__name__}")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _coral(f"messages.{i}.member.role", role, "Member must satisfy enum value set: [user, assistant]")
        if i == 0 and role != "user":
            raise validation("A conversation must start with a user message. Try again with a conversation "
                             "that starts with a user message.")
        if role == prev_role:
            raise validation("A conversation must alternate between user and assistant roles. Make sure the "
                             "conversation alternates between user and assistant roles and try again.")
        prev_role = role
        content = m.get("content")
        if not isinstance(content, list):
            raise _coral(f"messages.{i}.member.content", content, "Member must be a list")
        if not content:
            raise validation(f"The content field in the Message object at messages.{i} is empty. Add a "
                             "ContentBlock object to the content field and try again.")
        here: set[str] = set()
        for j, b in enumerate(content):
            if not isinstance(b, dict):
                raise _malformed(f"#/messages/{i}/content/{j}: expected type: JSONObject")
            if "cachePoint" in b:
                point("messages", b["cachePoint"])
                continue
            if "text" in b and isinstance(b["text"], str) and not b["text"].strip():
                raise validation(f"The text field in the ContentBlock object at messages.{i}.content.{j} is "
                                 "blank. Add text to the text field, and try again.")
            add(_block_texts(b, f"messages/{i}/content/{j}", False, here), b)
        used |= here
        if role == "user":
            last_user_result = "tool_result" in here
    if "tool_blocks" in used and tools is None:
        raise validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    for feat, what in (("images", "image"), ("documents", "document")):
        if feat in used and feat not in spec.features:
            raise validation(f"This model doesn't support the {what} content block that you provided. Try again "
                             "with a supported content block.")
    if len(f.cache_points) > (cache.max_checkpoints if cache else 0):
        raise validation(f"The number of cache points in the request exceeds the maximum of "
                         f"{cache.max_checkpoints if cache else 0}. Remove cache points and try again.")
    f.key = hasher.hexdigest()
    if tools is not None:
        f.tool = _tool_choice(tools, last_user_result, f.key)
    return tokens, f


def _tool_config(cfg: object, spec: ModelSpec, streaming: bool, add: Callable[[list[str], object], None],
                 point: Callable[[str, object], None]) -> tuple[list[tuple[str, dict[str, Any]]], str, str] | None:  # fmt: skip
    """toolConfig: the tools (name, schema), the toolChoice kind and the named tool; None without toolConfig."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise _coral("toolConfig", cfg, "Member must be a structure")
    if "tools" not in spec.features:
        raise validation("This model doesn't support tool use.")
    if streaming and "tool_streaming" not in spec.features:
        raise validation("This model doesn't support tool use in streaming mode.")
    raw = cfg.get("tools")
    if not isinstance(raw, list) or not raw:
        raise _coral("toolConfig.tools", raw, "Member must have length greater than or equal to 1")
    tools: list[tuple[str, dict[str, Any]]] = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or len(t) != 1:
            raise _coral(f"toolConfig.tools.{i}", t, "Member must be a union with exactly one member set")
        if "cachePoint" in t:
            point("tools", t["cachePoint"])
            continue
        ts = t.get("toolSpec")
        if not isinstance(ts, dict):
            raise validation(f"The tool at toolConfig.tools.{i} is not supported by this model: use toolSpec.")
        name = ts.get("name")
        if not isinstance(name, str) or _TOOL_NAME.fullmatch(name) is None:
            raise _coral(f"toolConfig.tools.{i}.member.toolSpec.name", name,
                         f"Member must satisfy regular expression pattern: {_TOOL_NAME.pattern}")
        schema = ts.get("inputSchema")
        js = schema.get("json") if isinstance(schema, dict) else None
        if not isinstance(js, dict):
            raise validation(f"The inputSchema of tool {name} (toolConfig.tools.{i}) must hold a JSON schema object "
                             "in its json field.")
        if any(n == name for n, _ in tools):
            raise validation(f"The toolConfig field contains duplicate tool names: {name}. Tool names must be "
                             "unique.")
        tools.append((name, js))
        add([name, str(ts.get("description", "")), _json_text(js)], t)
    choice = cfg.get("toolChoice", {"auto": {}})
    if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
        raise _coral("toolConfig.toolChoice", choice, "Member must be a union with exactly one member set "
                     "(auto, any, tool)")
    kind = next(iter(choice))
    named = ""
    if kind == "tool":
        named = str(choice["tool"].get("name")) if isinstance(choice["tool"], dict) else ""
        if not any(n == named for n, _ in tools):
            raise validation(f"The tool {named} in toolChoice is not in the tools of toolConfig. Try again with a "
                             "tool name from toolConfig.tools.")
    if not tools:
        raise validation("The toolConfig field must contain at least one toolSpec.")
    return tools, kind, str(named)


_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _tool_choice(tools: tuple[list[tuple[str, dict[str, Any]]], str, str], after_result: bool,
                 key: str) -> tuple[str, dict[str, Any]] | None:  # fmt: skip
    """The emulator's rule: ``any``/``tool`` always call a tool; ``auto`` calls one unless the last user turn
    carries a toolResult (then the model answers in text). Which tool under auto/any: seeded by the content."""
    specs, kind, named = tools
    if kind == "tool":
        return next(t for t in specs if t[0] == named)
    if kind == "auto" and after_result:
        return None
    return specs[int(key[:8], 16) % len(specs)] if len(specs) > 1 else specs[0]


def _reasoning(extra: object, spec: ModelSpec, max_tokens: int, *, path: str = "additionalModelRequestFields") -> int:
    """The reasoning budget a request asks (0 = none): Anthropic ``thinking`` {type: enabled, budget_tokens} or
    Amazon Nova ``reasoningConfig`` {type: enabled, maxReasoningEffort: low/medium/high}."""
    if not isinstance(extra, dict):
        return 0
    th = extra.get("thinking")
    rc = extra.get("reasoningConfig")
    if th is None and rc is None:
        return 0
    if "reasoning" not in spec.features:
        key = "thinking" if th is not None else "reasoningConfig"
        raise validation(f"The model returned the following errors: {key}: Extra inputs are not permitted "
                         f"({spec.model_id} does not support reasoning; remove {path}.{key}).")
    if th is not None:
        if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled"):
            raise validation(f"The model returned the following errors: {path}.thinking.type: Input should be "
                             "'enabled' or 'disabled'")
        if th["type"] == "disabled":
            return 0
        b = th.get("budget_tokens")
        if not isinstance(b, int | float) or not _is_num(b) or not float(b).is_integer() or b < 1024:
            raise validation("The model returned the following errors: thinking.enabled.budget_tokens: Input "
                             "should be greater than or equal to 1024")
        if b >= max_tokens:
            raise validation("The model returned the following errors: `max_tokens` must be greater than "
                             "`thinking.budget_tokens`. Please consult our documentation at "
                             "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-"
                             "context-window-size")
        return int(b)
    if not isinstance(rc, dict) or rc.get("type") not in ("enabled", "disabled"):
        raise validation(f"Malformed input request: #/{path}/reasoningConfig/type: expected enabled or disabled, "
                         "please reformat your input and try again.")
    if rc["type"] == "disabled":
        return 0
    effort = rc.get("maxReasoningEffort", "low")
    if effort not in _EFFORT:
        raise validation(f"Malformed input request: #/{path}/reasoningConfig/maxReasoningEffort: {effort!r} is not "
                         "a valid enum value (low, medium, high), please reformat your input and try again.")
    return max(1, min(_EFFORT[effort], max_tokens - 1))


_EFFORT = {"low": 512, "medium": 2048, "high": 8192}  #: reasoning budget (tokens) per Nova effort level


def _guardrail(cfg: object, streaming: bool) -> dict[str, str] | None:
    """guardrailConfig's shape (botocore GuardrailConfiguration / GuardrailStreamConfiguration); whether the
    guardrail exists is the server's check (the catalog's guardrails)."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise _coral("guardrailConfig", cfg, "Member must be a structure")
    allowed = {"guardrailIdentifier", "guardrailVersion", "trace"} | ({"streamProcessingMode"} if streaming else set())
    for k in cfg:
        if k not in allowed:
            raise validation(f"Unknown field in request body: guardrailConfig.{k}")
    gid, ver = cfg.get("guardrailIdentifier"), cfg.get("guardrailVersion")
    if not isinstance(gid, str) or not gid or _GUARDRAIL_ID.fullmatch(gid) is None:
        raise _coral("guardrailConfig.guardrailIdentifier", gid,
                     f"Member must satisfy regular expression pattern: {_GUARDRAIL_ID.pattern}")
    if not isinstance(ver, str) or not ver or _GUARDRAIL_VERSION.fullmatch(ver) is None:
        raise _coral("guardrailConfig.guardrailVersion", ver,
                     f"Member must satisfy regular expression pattern: {_GUARDRAIL_VERSION.pattern}")
    trace = cfg.get("trace", "disabled")
    if trace not in ("enabled", "disabled", "enabled_full"):
        raise _coral("guardrailConfig.trace", trace, "Member must satisfy enum value set: [enabled, disabled, "
                     "enabled_full]")
    mode = cfg.get("streamProcessingMode", "sync")
    if mode not in ("sync", "async"):
        raise _coral("guardrailConfig.streamProcessingMode", mode, "Member must satisfy enum value set: [sync, async]")
    return {"guardrailIdentifier": gid, "guardrailVersion": ver, "trace": str(trace), "streamProcessingMode": str(mode)}


_GUARDRAIL_ID = re.compile(r"([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+)")
_GUARDRAIL_VERSION = re.compile(r"([1-9][0-9]{0,7})|(DRAFT)")


def _response_paths(v: object) -> list[str]:
    """additionalModelResponseFieldPaths: at most 10 JSON pointers (1..256 characters)."""
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(p, str) and 1 <= len(p) <= 256 for p in v):
        raise _coral("additionalModelResponseFieldPaths", v, "Member must be a list of strings of length 1..256")
    if len(v) > 10:
        raise _coral("additionalModelResponseFieldPaths", v, "Member must have length less than or equal to 10")
    return list(v)


def response_fields(r: Result, paths: list[str], spec: ModelSpec) -> dict[str, Any]:
    """additionalModelResponseFields: each JSON pointer resolved in the model's native response (Anthropic:
    stop_sequence, stop_reason, id, model, usage; others: their InvokeModel body's top-level fields)."""
    native: dict[str, Any]
    if spec.provider_format == "anthropic":
        native = FORMATS["anthropic"].full_body(r, spec)
    else:
        native = {"stopReason": converse_stop(r), "stop_sequence": r.stop_sequence}
    out: dict[str, Any] = {}
    for p in paths:
        parts = [s.replace("~1", "/").replace("~0", "~") for s in p.lstrip("/").split("/")] if p.startswith("/") else [p]
        node: Any = native
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None and not (isinstance(native, dict) and parts[-1] in native):
            continue
        dst = out
        for part in parts[:-1]:
            dst = dst.setdefault(part, {})
        dst[parts[-1]] = node
    return out


def _walk_anthropic(body: dict[str, Any], spec: ModelSpec, max_tokens: int) -> tuple[int, Features]:
    """The Anthropic Messages body (InvokeModel): input tokens, ``cache_control`` points (tools, system,
    messages order), ``tools`` / ``tool_choice`` and ``thinking``."""
    f = Features("anthropic")
    used: set[str] = set()
    hasher = hashlib.sha256()
    tokens = 0
    cache = spec.cache

    def add(texts: list[str], raw: object) -> None:
        nonlocal tokens
        tokens += count_texts(texts)
        hasher.update(_json_text({k: v for k, v in raw.items() if k != "cache_control"} if isinstance(raw, dict)
                                 else raw).encode())  # fmt: skip

    def point(where: str, raw: object) -> None:
        cc = raw.get("cache_control") if isinstance(raw, dict) else None
        if cc is None:
            return
        if cache is None or where not in cache.fields:
            raise validation("You invoked an unsupported model or your request did not allow prompt caching. See "
                             "the documentation for more information.")
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            raise _malformed(f"#/{where}: cache_control.type: expected ephemeral")
        ttl = cc.get("ttl", "5m")
        if ttl not in cache.ttls:
            raise validation(f"The cache TTL '{ttl}' is not supported for model {spec.model_id}. Supported TTLs: "
                             f"{', '.join(cache.ttls)}.")
        f.cache_points.append(CachePoint(tokens, hasher.hexdigest(), str(ttl)))

    tools_raw = body.get("tools")
    tools: list[tuple[str, dict[str, Any]]] = []
    if tools_raw is not None:
        if not isinstance(tools_raw, list):
            raise _malformed(f"#/tools: expected type: JSONArray, found: {type(tools_raw).__name__}")
        for i, t in enumerate(tools_raw):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise _malformed(f"#/tools/{i}: required key [name] not found")
            schema = t.get("input_schema")
            if "type" not in t and not isinstance(schema, dict):
                raise _malformed(f"#/tools/{i}: required key [input_schema] not found")
            if isinstance(schema, dict):
                tools.append((t["name"], schema))
            add([t["name"], str(t.get("description", "")), _json_text(schema or {})], t)
            point("tools", t)
        if tools and "tools" not in spec.features:
            raise validation("This model doesn't support tool use.")
    system = body.get("system")
    if isinstance(system, str):
        add([system], system)
    elif system is not None:
        if not isinstance(system, list):
            raise _malformed(f"#/system: expected type: JSONArray, found: {type(system).__name__}")
        for j, b in enumerate(system):
            if not isinstance(b, dict):
                raise _malformed(f"#/system/{j}: expected type: JSONObject")
            add(_block_texts(b, f"system/{j}", True, used), b)
            point("system", b)
    msgs = _message_list(body.get("messages"), "messages")
    last_user_result = False
    for i, m in enumerate(msgs):
        m = _message(m, "messages", i)
        role, content = m["role"], m["content"]
        here: set[str] = set()
        if isinstance(content, str):
            add([content], content)
        elif isinstance(content, list):
            for j, b in enumerate(content):
                if not isinstance(b, dict):
                    raise _malformed(f"#/messages/{i}/content/{j}: expected type: JSONObject")
                add(_block_texts(b, f"messages/{i}/content/{j}", True, here), b)
                point("messages", b)
        else:
            raise _malformed(f"#/messages/{i}/content: expected type: JSONArray, found: {type(content).__name__}")
        used |= here
        if role == "user":
            last_user_result = "tool_result" in here
    if "tool_blocks" in used and not tools:
        raise validation("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    if "images" in used and "images" not in spec.features:
        raise validation("This model doesn't support the image content block that you provided. Try again with a "
                         "supported content block.")
    if len(f.cache_points) > (cache.max_checkpoints if cache else 0):
        raise validation(f"A maximum of {cache.max_checkpoints if cache else 0} blocks with cache_control may be "
                         "provided.")
    f.key = hasher.hexdigest()
    if tools:
        choice = body.get("tool_choice", {"type": "auto"})
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise _malformed("#/tool_choice/type: expected one of auto, any, tool, none")
        named = choice.get("name", "") if kind == "tool" else ""
        if kind == "tool" and not any(n == named for n, _ in tools):
            raise validation(f"Tool '{named}' not found in provided tools")
        if kind != "none":
            f.tool = _tool_choice((tools, kind, str(named)), last_user_result, f.key)
    f.reasoning_budget = _reasoning({"thinking": body["thinking"]} if "thinking" in body else None, spec,
                                    max_tokens, path="#")  # fmt: skip
    return tokens, f


def converse_usage(r: Result) -> dict[str, Any]:
    """Converse TokenUsage: ``inputTokens`` are the uncached ones; cache reads and writes beside them, and in the
    total (what Bedrock bills)."""
    u: dict[str, Any] = {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                         "totalTokens": r.input_tokens + r.output_tokens + r.cache_read + r.cache_write}
    if r.cache_read or r.cache_write or r.cached:
        u["cacheReadInputTokens"] = r.cache_read
        u["cacheWriteInputTokens"] = r.cache_write
        if r.cache_write:
            u["cacheDetails"] = [{"ttl": r.cache_ttl, "inputTokens": r.cache_write}]
    return u


def converse_content(r: Result) -> list[dict[str, Any]]:
    """The message content of a whole Converse answer (a tool call cut by maxTokens is left out: its input is
    not a JSON document)."""
    if not r.blocks:
        return [{"text": r.text}]
    out: list[dict[str, Any]] = []
    for b in r.blocks:
        if b.kind == "reasoning":
            out.append({"reasoningContent": {"reasoningText": {"text": b.text, "signature": b.signature}}})
        elif b.kind == "tool_use":
            if b.full:
                out.append({"toolUse": {"toolUseId": b.tool_id, "name": b.name, "input": b.value}})
        else:
            out.append({"text": b.text})
    return out


def _pieces(r: Result, start: int, k: int) -> list[tuple[int, Block, int, int]]:
    """(block index, block, a, b): the parts of each block that tokens ``start .. start+k`` of the answer carry."""
    out = []
    pos = 0
    for i, b in enumerate(r.blocks):
        lo, hi = max(start, pos), min(start + k, pos + b.tokens)
        if lo < hi or (b.tokens == 0 and start == pos):
            out.append((i, b, lo - pos, hi - pos))
        pos += b.tokens
    return out


def converse_stream_events(r: Result, start: int, k: int, last: bool) -> list[tuple[str, dict[str, Any]]]:
    """ConverseStream events for one scheduled chunk of a structured answer (``r.blocks``): contentBlockStart for
    a tool call, contentBlockDelta (text / reasoningContent / toolUse input as a partial JSON string), the
    reasoning signature, contentBlockStop when a block ends (messageStop and metadata are the server's)."""
    ev: list[tuple[str, dict[str, Any]]] = []
    for i, b, a, e in _pieces(r, start, k):
        if a == 0 and b.kind == "tool_use":
            ev.append(("contentBlockStart", {"start": {"toolUse": {"toolUseId": b.tool_id, "name": b.name}},
                                             "contentBlockIndex": i}))  # fmt: skip
        piece = b.piece(a, e)
        if b.kind == "reasoning":
            ev.append(("contentBlockDelta", {"delta": {"reasoningContent": {"text": piece}}, "contentBlockIndex": i}))
        elif b.kind == "tool_use":
            ev.append(("contentBlockDelta", {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": i}))
        else:
            ev.append(("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": i}))
        if e >= b.tokens or last:
            if b.kind == "reasoning" and b.full:
                ev.append(("contentBlockDelta", {"delta": {"reasoningContent": {"signature": b.signature}},
                                                 "contentBlockIndex": i}))  # fmt: skip
            ev.append(("contentBlockStop", {"contentBlockIndex": i}))
    return ev


def anthropic_content(r: Result) -> list[dict[str, Any]]:
    if not r.blocks:
        return [{"type": "text", "text": r.text}]
    out: list[dict[str, Any]] = []
    for b in r.blocks:
        if b.kind == "reasoning":
            out.append({"type": "thinking", "thinking": b.text, "signature": b.signature})
        elif b.kind == "tool_use":
            out.append({"type": "tool_use", "id": b.tool_id, "name": b.name, "input": b.value if b.full else {}})
        else:
            out.append({"type": "text", "text": b.text})
    return out


def anthropic_stream_events(r: Result, start: int, k: int, last: bool) -> list[dict[str, Any]]:
    """Anthropic Messages stream events for one chunk of a structured answer: content_block_start per block,
    thinking_delta / signature_delta, text_delta, input_json_delta {partial_json}, content_block_stop."""
    ev: list[dict[str, Any]] = []
    for i, b, a, e in _pieces(r, start, k):
        if a == 0:
            cb: dict[str, Any]
            if b.kind == "reasoning":
                cb = {"type": "thinking", "thinking": "", "signature": ""}
            elif b.kind == "tool_use":
                cb = {"type": "tool_use", "id": b.tool_id, "name": b.name, "input": {}}
            else:
                cb = {"type": "text", "text": ""}
            ev.append({"type": "content_block_start", "index": i, "content_block": cb})
        piece = b.piece(a, e)
        if b.kind == "reasoning":
            delta = {"type": "thinking_delta", "thinking": piece}
        elif b.kind == "tool_use":
            delta = {"type": "input_json_delta", "partial_json": piece}
        else:
            delta = {"type": "text_delta", "text": piece}
        ev.append({"type": "content_block_delta", "index": i, "delta": delta})
        if e >= b.tokens or last:
            if b.kind == "reasoning" and b.full:
                ev.append({"type": "content_block_delta", "index": i,
                           "delta": {"type": "signature_delta", "signature": b.signature}})  # fmt: skip
            ev.append({"type": "content_block_stop", "index": i})
    return ev


def anthropic_usage(r: Result) -> dict[str, Any]:
    u: dict[str, Any] = {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}
    if r.cached or r.cache_read or r.cache_write:
        u["cache_creation_input_tokens"] = r.cache_write
        u["cache_read_input_tokens"] = r.cache_read
    return u


# -- Converse -----------------------------------------------------------------------------------------

_CONVERSE_KEYS = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "projectIdentifier",
                  "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
                  "requestMetadata", "performanceConfig", "serviceTier", "outputConfig"}  # fmt: skip


def _coral(path: str, value: object, constraint: str) -> ApiError:
    return validation(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                      f"{constraint}")


def parse_converse(body: dict[str, Any], spec: ModelSpec, *, streaming: bool = False) -> Prompt:
    """Validate a Converse/ConverseStream body (the model's shapes and ranges) and count its input."""
    for k in body:
        if k not in _CONVERSE_KEYS:
            raise validation(f"Unknown field in request body: {k}")
    if "messages" not in body:
        raise validation("The messages field is required. Provide at least one user message.")
    cfg = body.get("inferenceConfig") or {}
    if not isinstance(cfg, dict):
        raise _coral("inferenceConfig", cfg, "Member must be a structure")
    mt = cfg.get("maxTokens")
    if mt is not None and (not _is_num(mt) or not float(mt).is_integer()):
        raise _coral("inferenceConfig.maxTokens", mt, "Member must be an integer")
    if mt is not None and mt < 1:
        raise _coral("inferenceConfig.maxTokens", mt, "Member must have value greater than or equal to 1")
    for key in ("temperature", "topP"):
        v = cfg.get(key)
        if v is None:
            continue
        if not _is_num(v):
            raise _coral(f"inferenceConfig.{key}", v, "Member must be a number")
        if v < 0:
            raise _coral(f"inferenceConfig.{key}", v, "Member must have value greater than or equal to 0")
        if v > 1:
            raise _coral(f"inferenceConfig.{key}", v, "Member must have value less than or equal to 1")
    max_tokens = _max_tokens("inferenceConfig/maxTokens", mt, spec.max_output_tokens, spec)
    stops = _converse_stops(cfg.get("stopSequences"))
    _project(body.get("projectIdentifier"))
    tokens, feats = _walk_converse(body, spec, streaming)
    feats.reasoning_budget = _reasoning(body.get("additionalModelRequestFields"), spec, max_tokens)
    feats.guardrail = _guardrail(body.get("guardrailConfig"), streaming)
    feats.response_paths = _response_paths(body.get("additionalModelResponseFieldPaths"))
    feats.output_schema = _output_config(body.get("outputConfig"), spec)
    return Prompt(tokens, max_tokens, stops, feats if feats.any else None)


def _structured_ok(spec: ModelSpec) -> None:
    if "structured_output" not in spec.features:
        raise validation(f"This model doesn't support structured outputs ({spec.model_id}). Try again without the "
                         "output schema, or with a model that supports structured outputs.")


def _output_config(cfg: object, spec: ModelSpec) -> dict[str, Any] | None:
    """Converse ``outputConfig`` (botocore OutputConfig): ``textFormat`` {type: json_schema, structure: {jsonSchema:
    {schema: <JSON text>, name, description}}} -> the schema the answer's text follows; ``effort`` is accepted."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise _coral("outputConfig", cfg, "Member must be a structure")
    for k in cfg:
        if k not in ("textFormat", "effort"):
            raise validation(f"Unknown field in request body: outputConfig.{k}")
    tf = cfg.get("textFormat")
    if tf is None:
        return None
    if not isinstance(tf, dict) or tf.get("type") != "json_schema":
        raise _coral("outputConfig.textFormat.type", tf.get("type") if isinstance(tf, dict) else tf,
                     "Member must satisfy enum value set: [json_schema]")
    st = tf.get("structure")
    js = st.get("jsonSchema") if isinstance(st, dict) and len(st) == 1 else None
    if not isinstance(js, dict):
        raise _coral("outputConfig.textFormat.structure", st, "Member must be a union with exactly one member set "
                     "(jsonSchema)")
    raw = js.get("schema")
    if not isinstance(raw, str):
        raise _coral("outputConfig.textFormat.structure.jsonSchema.schema", raw, "Member must not be null")
    try:
        schema = json.loads(raw)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise validation("The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON "
                         "schema object.")
    _structured_ok(spec)
    return schema


def _anthropic_output(cfg: object, spec: ModelSpec) -> dict[str, Any] | None:
    """Anthropic ``output_config`` {format: {type: json_schema, schema}} (InvokeModel structured outputs)."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise _malformed("#/output_config: expected type: JSONObject")
    fmt = cfg.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _malformed("#/output_config/format: expected {type: json_schema, schema: {...}}")
    _structured_ok(spec)
    return dict(fmt["schema"])


def invoke_guardrail(identifier: str | None, version: str | None, trace: str | None) -> dict[str, str] | None:
    """InvokeModel's guardrail headers (botocore InvokeModelRequest: ``X-Amzn-Bedrock-GuardrailIdentifier``,
    ``-GuardrailVersion``, ``X-Amzn-Bedrock-Trace`` ENABLED / DISABLED / ENABLED_FULL) as a guardrailConfig; None
    without an identifier (botocore's patterns allow the empty string)."""
    if trace is not None and trace not in ("ENABLED", "DISABLED", "ENABLED_FULL"):
        raise _coral("trace", trace, "Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_FULL]")
    if not identifier:
        if version:
            raise validation("A guardrail version was provided without a guardrail identifier. Provide both, or "
                             "neither.")
        return None
    if not version:
        raise validation("A guardrail identifier was provided without a guardrail version. Provide both, or "
                         "neither.")
    if len(identifier) > 2048 or _GUARDRAIL_ID.fullmatch(identifier) is None:
        raise _coral("guardrailIdentifier", identifier, f"Member must satisfy regular expression pattern: "
                     f"{_GUARDRAIL_ID.pattern}")
    if _GUARDRAIL_VERSION.fullmatch(version) is None:
        raise _coral("guardrailVersion", version, f"Member must satisfy regular expression pattern: "
                     f"{_GUARDRAIL_VERSION.pattern}")
    return {"guardrailIdentifier": identifier, "guardrailVersion": version, "trace": (trace or "DISABLED").lower(),
            "streamProcessingMode": "sync"}  # fmt: skip


def _converse_stops(v: object) -> list[str]:
    """botocore's InferenceConfigurationStopSequencesList: at most 2500 non-empty strings."""
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _coral("inferenceConfig.stopSequences", v, "Member must be a list of strings")
    if len(v) > 2500:
        raise _coral("inferenceConfig.stopSequences", v, "Member must have length less than or equal to 2500")
    for s in v:
        if not s:
            raise _coral("inferenceConfig.stopSequences", v, "Member must satisfy constraint: [Member must have "
                         "length greater than or equal to 1]")
    return list(v)


#: botocore's ProjectIdentifier shape (1..2048 chars): a project id or a bedrock project ARN
_PROJECT = re.compile(r"([a-zA-Z0-9_-]+|arn:aws(|-us-gov|-cn|-iso|-iso-b|-iso-f|-eusc):bedrock:[0-9a-z-]{1,20}:"
                      r"[0-9]{12}:project/[a-zA-Z0-9_-]+)")


def _project(v: object) -> None:
    """Accept a well-formed projectIdentifier (the emulator has one project space: every id is active)."""
    if v is None:
        return
    if not isinstance(v, str):
        raise _coral("projectIdentifier", v, "Member must be a string")
    if not 1 <= len(v) <= 2048:
        raise _coral("projectIdentifier", v, "Member must have length between 1 and 2048")
    if _PROJECT.fullmatch(v) is None:
        raise _coral("projectIdentifier", v, f"Member must satisfy regular expression pattern: {_PROJECT.pattern}")


def converse_stop(r: Result) -> str:
    """Converse's stopReason for a result (one source for the whole body and the stream's messageStop)."""
    if r.stop_reason is not None:
        return r.stop_reason
    if r.stop_sequence is not None:
        return "stop_sequence"
    return "end_turn" if r.finished else "max_tokens"


def converse_body(r: Result, latency_ms: int, extra: dict[str, Any]) -> dict[str, Any]:
    body = {"output": {"message": {"role": "assistant", "content": converse_content(r)}},
            "stopReason": converse_stop(r), "usage": converse_usage(r),
            "metrics": {"latencyMs": latency_ms}, **extra}  # fmt: skip
    if r.response_fields is not None:
        body["additionalModelResponseFields"] = r.response_fields
    if r.trace is not None:
        body["trace"] = r.trace
    return body


def count_tokens_input(body: dict[str, Any], spec: ModelSpec, decode_b64: Callable[[str], dict[str, Any]]) -> int:
    """CountTokens: ``{"input": {"converse": {...}}}`` or ``{"input": {"invokeModel": {"body": b64}}}``."""
    inp = body.get("input")
    if not isinstance(inp, dict) or len(inp) != 1 or next(iter(inp)) not in ("converse", "invokeModel"):
        raise validation("input must contain exactly one of converse or invokeModel")
    if "converse" in inp:
        conv = inp["converse"]
        if not isinstance(conv, dict):
            raise validation("input.converse must be an object")
        return _walk_converse(conv, spec, False)[0]  # what parse_converse bills for the same request
    raw = inp["invokeModel"].get("body") if isinstance(inp["invokeModel"], dict) else None
    if not isinstance(raw, str):
        raise validation("input.invokeModel.body is required")
    return FORMATS[spec.provider_format].parse(decode_b64(raw), spec).input_tokens
