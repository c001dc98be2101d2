"""Request validation and response bodies for Converse and each InvokeModel provider format.

Every format answers three questions the server needs: how many input tokens and how many output tokens
at most (``parse``), what the whole response body looks like (``full_body``), and what its stream chunks
look like (``stream_head`` before the first content, ``stream_delta`` per content chunk, ``stream_tail``
after the last). The server appends ``amazon-bedrock-invocationMetrics`` to the last InvokeModel chunk.

Validation messages follow the wording Bedrock uses ("Malformed input request: #: extraneous key [stream]
is not permitted, please reformat your input and try again.") so clients see what they would see on AWS.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab.catalog import ModelSpec
from bedrock_lab.emulator.text import count_tokens, generated_text
from bedrock_lab.tokens import count_texts


class ApiError(Exception):
    """An error response: status, AWS error code (x-amzn-ErrorType) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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


def _text_of_blocks(blocks: object, path: str, *, typed: bool) -> list[str]:
    """Texts of a content list; ``typed`` = Anthropic style ({type: text, text}) else Converse style ({text})."""
    if isinstance(blocks, str) and typed:
        return [blocks]
    if not isinstance(blocks, list):
        raise _malformed(f"#/{path}: expected type: JSONArray, found: {type(blocks).__name__}")
    out = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict):
            raise _malformed(f"#/{path}/{i}: expected type: JSONObject, found: {type(b).__name__}")
        t = b.get("text")
        if t is not None:
            if not isinstance(t, str):
                raise _malformed(f"#/{path}/{i}/text: expected type: String, found: {type(t).__name__}")
            out.append(t)
        elif "image" in b or b.get("type") == "image":
            out.append("img " * 400)  # a fixed charge per image, like a small picture
    return out


def _messages(msgs: object, path: str, *, typed: bool) -> list[str]:
    if not isinstance(msgs, list):
        raise _malformed(f"#/{path}: expected type: JSONArray, found: {type(msgs).__name__}")
    if not msgs:
        raise validation("A conversation must start with a user message. Try again with a conversation that "
                         "starts with a user message.")
    texts: list[str] = []
    for i, m in enumerate(msgs):
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
        texts += _text_of_blocks(m["content"], f"{path}/{i}/content", typed=typed)
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

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        raise NotImplementedError

    def stop(self, r: Result) -> str:
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
                "top_k", "stop_sequences", "tools", "tool_choice", "thinking", "metadata"}  # fmt: skip

    def parse(self, body: dict[str, Any], spec: ModelSpec) -> Prompt:
        _check_keys(body, self._allowed, ("anthropic_version", "max_tokens", "messages"))
        if not _anthropic_version_ok(body["anthropic_version"]):
            raise _malformed(f"#/anthropic_version: {body['anthropic_version']!r} is not a valid version "
                             "(bedrock-2023-05-31)")
        mt = _max_tokens("max_tokens", body["max_tokens"], spec.max_output_tokens, spec)
        _check_range("temperature", body.get("temperature"), 0, 1)
        _check_range("top_p", body.get("top_p"), 0, 1)
        _check_range("top_k", body.get("top_k"), 0, 500, integer=True)
        texts = _system(body.get("system"), "system", typed=True) + _messages(body["messages"], "messages", typed=True)
        return Prompt(sum(map(count_tokens, texts)), mt, _stops("stop_sequences", body.get("stop_sequences")))

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"id": "msg_bdrk_" + r.request_id.replace("-", "")[:24], "type": "message", "role": "assistant",
                "model": spec.model_id.split(".", 1)[1].split(":")[0], "content": [{"type": "text", "text": r.text}],
                "stop_reason": self.stop(r), "stop_sequence": r.stop_sequence,
                "usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}}  # fmt: skip

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        msg = self.full_body(r, spec)
        msg.update(content=[], stop_reason=None, stop_sequence=None, usage={"input_tokens": r.input_tokens, "output_tokens": 1})
        return [{"type": "message_start", "message": msg},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return [{"type": "content_block_stop", "index": 0},
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
    name = "nova"
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
        texts = _system(body.get("system"), "system", typed=False) + _messages(body["messages"], "messages",
                                                                                 typed=False)
        return Prompt(sum(map(count_tokens, texts)), mt, _stops("inferenceConfig/stopSequences",
                                                                 cfg.get("stopSequences")))

    def full_body(self, r: Result, spec: ModelSpec) -> dict[str, Any]:
        return {"output": {"message": {"role": "assistant", "content": [{"text": r.text}]}},
                "stopReason": self.stop(r),
                "usage": {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                          "totalTokens": r.input_tokens + r.output_tokens,
                          "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}}  # fmt: skip

    def stream_head(self, r: Result, spec: ModelSpec) -> list[dict[str, Any]]:
        return [{"messageStart": {"role": "assistant"}}]

    def stream_delta(self, r: Result, text: str, done_tokens: int, first: bool, last: bool) -> dict[str, Any]:
        return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}

    def stream_tail(self, r: Result) -> list[dict[str, Any]]:
        return [{"contentBlockStop": {"contentBlockIndex": 0}},
                {"messageStop": {"stopReason": self.stop(r)}},
                {"metadata": {"usage": {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens},
                              "metrics": {}, "trace": {}}}]  # fmt: skip


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


# -- Converse -----------------------------------------------------------------------------------------

_CONVERSE_KEYS = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "projectIdentifier",
                  "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
                  "requestMetadata", "performanceConfig", "serviceTier", "outputConfig"}  # fmt: skip


def _coral(path: str, value: object, constraint: str) -> ApiError:
    return validation(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                      f"{constraint}")


def parse_converse(body: dict[str, Any], spec: ModelSpec) -> Prompt:
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
    texts = _system(body.get("system"), "system", typed=False) + _messages(body["messages"], "messages", typed=False)
    return Prompt(sum(map(count_tokens, texts)), max_tokens, stops)


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
    if r.stop_sequence is not None:
        return "stop_sequence"
    return "end_turn" if r.finished else "max_tokens"


def converse_body(r: Result, latency_ms: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": r.text}]}},
            "stopReason": converse_stop(r),
            "usage": {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                      "totalTokens": r.input_tokens + r.output_tokens},
            "metrics": {"latencyMs": latency_ms}, **extra}  # fmt: skip


def count_tokens_input(body: dict[str, Any], spec: ModelSpec, decode_b64: Callable[[str], dict[str, Any]]) -> int:
    """CountTokens: ``{"input": {"converse": {...}}}`` or ``{"input": {"invokeModel": {"body": b64}}}``."""
    inp = body.get("input")
    if not isinstance(inp, dict) or len(inp) != 1 or next(iter(inp)) not in ("converse", "invokeModel"):
        raise validation("input must contain exactly one of converse or invokeModel")
    if "converse" in inp:
        conv = inp["converse"]
        if not isinstance(conv, dict):
            raise validation("input.converse must be an object")
        texts = _system(conv.get("system"), "system", typed=False) + _messages(conv.get("messages", []),
                                                                               "messages", typed=False)
        return count_texts(texts)  # what parse_converse bills for the same request: no per-message overhead
    raw = inp["invokeModel"].get("body") if isinstance(inp["invokeModel"], dict) else None
    if not isinstance(raw, str):
        raise validation("input.invokeModel.body is required")
    return FORMATS[spec.provider_format].parse(decode_b64(raw), spec).input_tokens
