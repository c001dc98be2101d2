"""Request builders and response parsers for the four Runtime APIs and every provider body format.

One :class:`PreparedRequest` carries both forms of the same request: the raw HTTP pieces (path, headers, body)
that the async engine signs and sends, and the keyword arguments of the boto3 call that the Locust user makes.
:class:`ResponseParser` turns events (ConverseStream), provider chunks (InvokeModelWithResponseStream) or whole
bodies into content text, token usage, tier served and service latency.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bedrock_lab.catalog import APIS, PROVIDER_FORMATS, TIERS, split_model_id
from bedrock_lab.errors import ConfigError

#: API name (records) -> (URI suffix, boto3 method)
API_ROUTES: dict[str, tuple[str, str]] = {
    "converse": ("converse", "converse"),
    "converse-stream": ("converse-stream", "converse_stream"),
    "invoke": ("invoke", "invoke_model"),
    "invoke-stream": ("invoke-with-response-stream", "invoke_model_with_response_stream"),
}


def base_model_id(model_id: str) -> str:
    """Strip an ARN and a cross-region prefix: ``arn:...:inference-profile/us.x.y`` -> ``x.y``
    (the catalog's model-id grammar, :func:`bedrock_lab.catalog.split_model_id`)."""
    return split_model_id(model_id)[1]


def guess_provider_format(model_id: str) -> str:
    """Provider body format from the id alone (used when the catalog does not know the model)."""
    mid = base_model_id(model_id)
    if re.match(r"anthropic\.claude-(v2|instant)", mid):
        return "anthropic-text"
    for prefix, fmt in (("anthropic.", "anthropic"), ("amazon.titan", "titan"), ("amazon.nova", "nova"),
                        ("meta.", "llama"), ("mistral.", "mistral"), ("openai.", "openai")):  # fmt: skip
        if mid.startswith(prefix):
            return fmt
    raise ConfigError("cannot tell the provider body format of this model id; pass provider_format",
                      key="model_id", value=model_id, allowed=", ".join(PROVIDER_FORMATS))  # fmt: skip


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Any:
    try:
        from bedrock_lab.catalog import load_catalog

        return load_catalog()
    except Exception:  # no/invalid catalog: fall back to the id
        return None


def provider_format_for(model_id: str) -> str:
    """Provider format from the model catalog when it knows the model, else guessed from the id."""
    cat = _default_catalog()
    spec = None
    if cat is not None:
        with contextlib.suppress(Exception):
            spec = cat.get(model_id)
    fmt = getattr(spec, "provider_format", None)
    return fmt if fmt in PROVIDER_FORMATS else guess_provider_format(model_id)


Turn = tuple[str, str]  # (role "user"/"assistant", text)


@dataclass
class PreparedRequest:
    api: str
    model_id: str
    provider_format: str
    path: str  #: URI path, model id percent-encoded like botocore does
    headers: dict[str, str]
    body: bytes
    boto3_method: str
    boto3_kwargs: dict[str, Any]
    tier: str | None = None

    @property
    def streaming(self) -> bool:
        return self.api.endswith("-stream") or self.api == CHAT_API  # chat-completions is always streamed


def _check(api: str, tier: str | None, fmt: str | None) -> None:
    if api not in APIS:
        raise ConfigError("unknown API", key="api", value=api, allowed=", ".join(APIS))
    if tier is not None and tier not in TIERS:
        raise ConfigError("unknown service tier", key="tier", value=tier, allowed=", ".join(TIERS))
    if fmt is not None and fmt not in PROVIDER_FORMATS:
        raise ConfigError("unknown provider format", key="provider_format", value=fmt,
                          allowed=", ".join(PROVIDER_FORMATS))  # fmt: skip


@dataclass(frozen=True)
class RequestOptions:
    """Production features of one request, in AWS's Converse shapes (botocore's bedrock-runtime model):
    ``inferenceConfig.stopSequences``, ``guardrailConfig`` {guardrailIdentifier, guardrailVersion}, a
    ``cachePoint`` {type: default} system block after the system prompt, ``toolConfig`` {tools: [{toolSpec}],
    toolChoice}, and ``messages``: raw Converse messages (toolUse / toolResult blocks) sent instead of the turns'
    text blocks. InvokeModel bodies carry the stop sequences and the guardrail headers; tools and raw messages go
    into the anthropic body (``tools``, ``tool_choice``, tool_use / tool_result blocks) and the nova body
    (``toolConfig``, Converse's blocks), other bodies have none; a cache point goes into the anthropic body as
    ``cache_control`` and into the nova body as a ``cachePoint`` block."""

    stop_sequences: tuple[str, ...] = ()
    guardrail: tuple[str, str] | None = None  #: (identifier, version)
    cache_system: bool = False
    tools: tuple[dict[str, Any], ...] = ()  #: Converse ``tools`` entries ({"toolSpec": {...}})
    tool_choice: dict[str, Any] | None = None
    messages: tuple[dict[str, Any], ...] = ()

    def apply_converse(self, body: dict[str, Any]) -> None:
        if self.messages:
            body["messages"] = [dict(m) for m in self.messages]
        if self.stop_sequences:
            body["inferenceConfig"]["stopSequences"] = list(self.stop_sequences)
        if self.cache_system and body.get("system"):
            body["system"].append({"cachePoint": {"type": "default"}})
        if self.tools:
            body["toolConfig"] = {"tools": [dict(t) for t in self.tools]}
            if self.tool_choice:
                body["toolConfig"]["toolChoice"] = dict(self.tool_choice)
        if self.guardrail:
            body["guardrailConfig"] = {"guardrailIdentifier": self.guardrail[0], "guardrailVersion": self.guardrail[1]}


def converse_body(turns: list[Turn], system: str | None, max_tokens: int, temperature: float | None,
                  tier: str | None, options: RequestOptions | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "messages": [{"role": r, "content": [{"text": t}]} for r, t in turns],
        "inferenceConfig": {"maxTokens": max_tokens},
    }
    if temperature is not None:
        body["inferenceConfig"]["temperature"] = temperature
    if system:
        body["system"] = [{"text": system}]
    if tier:
        body["serviceTier"] = {"type": tier}
    if options is not None:
        options.apply_converse(body)
    return body


#: where each InvokeModel body format takes stop sequences (None: the format has none)
_INVOKE_STOP: dict[str, tuple[str, ...] | None] = {
    "anthropic": ("stop_sequences",), "anthropic-text": ("stop_sequences",),
    "titan": ("textGenerationConfig", "stopSequences"), "nova": ("inferenceConfig", "stopSequences"),
    "llama": None, "mistral": ("stop",),
}  # fmt: skip


#: InvokeModel body formats that take tools: anthropic (Messages API tools) and nova (messages-v1 toolConfig)
INVOKE_TOOL_FORMATS = ("anthropic", "nova")


def anthropic_tools(tools: tuple[dict[str, Any], ...], choice: dict[str, Any] | None) -> dict[str, Any]:
    """Converse ``tools`` ({toolSpec: {name, description, inputSchema: {json}}}) and ``toolChoice`` ({auto: {}},
    {any: {}}, {tool: {name}}) as the Anthropic Messages body's ``tools`` and ``tool_choice``."""
    out: dict[str, Any] = {"tools": []}
    for t in tools:
        spec = t["toolSpec"]
        tool = {"name": spec["name"], "input_schema": (spec.get("inputSchema") or {}).get("json", {"type": "object"})}
        if spec.get("description"):
            tool["description"] = spec["description"]
        out["tools"].append(tool)
    if choice:
        kind, arg = next(iter(choice.items()))
        out["tool_choice"] = {"type": kind, **({"name": arg["name"]} if kind == "tool" else {})}
    return out


def anthropic_messages(messages: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """Converse messages (text, toolUse, toolResult blocks) as Anthropic Messages content blocks (text, tool_use,
    tool_result): the agent workload keeps one conversation and each API gets it in its own shape."""
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks: list[dict[str, Any]] = []
        for b in m["content"]:
            if "text" in b:
                blocks.append({"type": "text", "text": b["text"]})
            elif "toolUse" in b:
                tu = b["toolUse"]
                blocks.append({"type": "tool_use", "id": tu["toolUseId"], "name": tu["name"], "input": tu["input"]})
            elif "toolResult" in b:
                tr = b["toolResult"]
                content = [{"type": "text", "text": c["text"]} if "text" in c else
                           {"type": "text", "text": json.dumps(c.get("json"))} for c in tr.get("content", [])]
                block = {"type": "tool_result", "tool_use_id": tr["toolUseId"], "content": content}
                if tr.get("status") == "error":
                    block["is_error"] = True
                blocks.append(block)
        out.append({"role": m["role"], "content": blocks})
    return out


def _apply_invoke_options(fmt: str, body: dict[str, Any], options: RequestOptions) -> None:
    if options.tools or options.messages:
        if fmt not in INVOKE_TOOL_FORMATS:
            raise ConfigError("tool use (the agent workload) on InvokeModel needs a body format with tools",
                              key="api", value=f"invoke ({fmt})",
                              allowed=f"converse, converse-stream, or a model of format {', '.join(INVOKE_TOOL_FORMATS)}")  # fmt: skip
        if fmt == "anthropic":
            if options.messages:
                body["messages"] = anthropic_messages(options.messages)
            if options.tools:
                body.update(anthropic_tools(options.tools, options.tool_choice))
        else:  # nova: messages-v1 has Converse's shapes
            if options.messages:
                body["messages"] = [dict(m) for m in options.messages]
            if options.tools:
                body["toolConfig"] = {"tools": [dict(t) for t in options.tools]}
                if options.tool_choice:
                    body["toolConfig"]["toolChoice"] = dict(options.tool_choice)
    if options.stop_sequences:
        where = _INVOKE_STOP.get(fmt)
        if where is None:
            raise ConfigError("this InvokeModel body format has no stop sequences", key="stop_sequences",
                              value=fmt, allowed="a Converse API, or another model")  # fmt: skip
        node = body
        for key in where[:-1]:
            node = node.setdefault(key, {})
        node[where[-1]] = list(options.stop_sequences)
    if options.cache_system and body.get("system"):
        if fmt == "anthropic":
            body["system"] = [{"type": "text", "text": body["system"], "cache_control": {"type": "ephemeral"}}]
        elif fmt == "nova":
            body["system"].append({"cachePoint": {"type": "default"}})


def chat_body(turns: list[Turn], system: str | None, max_tokens: int, temperature: float | None, *,
              model: str | None = None, stream: bool = False, tier: str | None = None) -> dict[str, Any]:  # fmt: skip
    """An OpenAI Chat Completions body (the ``chat-completions`` API and the ``openai`` InvokeModel format): the
    system prompt as a ``developer`` message; streamed with ``stream_options.include_usage`` so usage arrives."""
    msgs = [{"role": "developer", "content": system}] if system else []
    body: dict[str, Any] = {"messages": msgs + [{"role": r, "content": t} for r, t in turns],
                            "max_completion_tokens": max_tokens}  # fmt: skip
    if model is not None:
        body = {"model": model, **body}
    if temperature is not None:
        body["temperature"] = temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if tier:
        body["service_tier"] = tier
    return body


#: the OpenAI Chat Completions API (Bedrock's ``/openai/v1/chat/completions``, or any OpenAI-compatible server)
CHAT_API = "chat-completions"
CHAT_PATH = "/chat/completions"  #: relative to the target's ``openai_base_url``
CHAT_FORMAT = "openai-chat"  #: PreparedRequest.provider_format of a chat-completions request
_CHAT_MAX_STOPS = 4


def chat_request(model_id: str, turns: list[Turn], *, system: str | None = None, max_tokens: int = 256,
                 temperature: float | None = None, tier: str | None = None,
                 options: RequestOptions | None = None) -> PreparedRequest:  # fmt: skip
    """A streamed Chat Completions request (``stream_options.include_usage``: the usage chunk gives the token counts;
    the tier goes in ``service_tier``). Stop sequences map to ``stop``; tools, guardrails and cache points are
    Converse features the kit does not send on this API."""
    if tier is not None and tier not in TIERS:
        raise ConfigError("unknown service tier", key="tier", value=tier, allowed=", ".join(TIERS))
    body = chat_body(turns, system, max_tokens, temperature, model=model_id, stream=True, tier=tier)
    if options is not None:
        if options.tools or options.messages or options.guardrail or options.cache_system:
            raise ConfigError("tools, guardrails and cache points need a Converse API", key="api", value=CHAT_API,
                              allowed="converse, converse-stream")  # fmt: skip
        if options.stop_sequences:
            if len(options.stop_sequences) > _CHAT_MAX_STOPS:
                raise ConfigError(f"the Chat Completions API takes at most {_CHAT_MAX_STOPS} stop sequences",
                                  key="stop_sequences", value=list(options.stop_sequences))  # fmt: skip
            body["stop"] = list(options.stop_sequences)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    return PreparedRequest(CHAT_API, model_id, CHAT_FORMAT, CHAT_PATH, headers, json.dumps(body).encode(), "",
                           {"body": body}, tier)  # fmt: skip


class SseDecoder:
    """Server-sent events of a Chat Completions stream (``data: {json}`` lines, events split by a blank line,
    ``data: [DONE]`` last) -> the JSON value of each data line, :attr:`DONE` for ``[DONE]``. Comment lines
    (``: ping``) and ``event:`` / ``id:`` lines are skipped. Shared by both engines."""

    DONE: Any = object()

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        *events, self._buf = buf.split(b"\n\n")
        out: list[Any] = []
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    out.append(self.DONE if payload == b"[DONE]" else json.loads(payload))
        return out


def _flat_prompt(turns: list[Turn], user: str, assistant: str, sep: str) -> str:
    lines = [f"{user if r == 'user' else assistant}{t}" for r, t in turns]
    return sep.join(lines)


def provider_body(fmt: str, turns: list[Turn], system: str | None, max_tokens: int,
                  temperature: float | None) -> dict[str, Any]:  # fmt: skip
    """InvokeModel body for one provider format (see the protocol reference, section 4)."""
    temp = {} if temperature is None else {"temperature": temperature}
    if fmt == "anthropic":
        body: dict[str, Any] = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": r, "content": [{"type": "text", "text": t}]} for r, t in turns],
            **temp,
        }
        if system:
            body["system"] = system
        return body
    if fmt == "anthropic-text":
        prompt = "".join(f"\n\n{'Human' if r == 'user' else 'Assistant'}: {t}" for r, t in turns) + "\n\nAssistant:"
        if system:
            prompt = system + prompt
        return {"prompt": prompt, "max_tokens_to_sample": max_tokens, **temp}
    if fmt == "titan":
        text = _flat_prompt(turns, "User: ", "Bot: ", "\n") + "\nBot:"
        if system:
            text = system + "\n\n" + text
        cfg: dict[str, Any] = {"maxTokenCount": max_tokens}
        if temperature is not None:
            cfg["temperature"] = temperature
        return {"inputText": text, "textGenerationConfig": cfg}
    if fmt == "nova":
        inf: dict[str, Any] = {"maxTokens": max_tokens}
        if temperature is not None:
            inf["temperature"] = temperature
        body = {
            "schemaVersion": "messages-v1",
            "messages": [{"role": r, "content": [{"text": t}]} for r, t in turns],
            "inferenceConfig": inf,
        }
        if system:
            body["system"] = [{"text": system}]
        return body
    if fmt == "llama":
        parts = ["<|begin_of_text|>"]
        if system:
            parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>")
        parts += [f"<|start_header_id|>{r}<|end_header_id|>\n\n{t}<|eot_id|>" for r, t in turns]
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        return {"prompt": "".join(parts), "max_gen_len": max_tokens, **temp}
    if fmt == "mistral":
        prompt = "<s>"
        for r, t in turns:
            if r == "user":
                prompt += f"[INST] {(system + chr(10) + chr(10)) if system and prompt == '<s>' else ''}{t} [/INST]"
            else:
                prompt += f" {t}</s>"
        return {"prompt": prompt, "max_tokens": max_tokens, **temp}
    if fmt == "openai":  # the Chat Completions body (gpt-oss); InvokeModel takes it without model / stream
        return chat_body(turns, system, max_tokens, temperature)
    raise ConfigError("unknown provider format", key="provider_format", value=fmt, allowed=", ".join(PROVIDER_FORMATS))


def build_request(
    api: str,
    model_id: str,
    turns: list[Turn] | str,
    *,
    system: str | None = None,
    max_tokens: int = 256,
    temperature: float | None = None,
    tier: str | None = None,
    provider_format: str | None = None,
    options: RequestOptions | None = None,
) -> PreparedRequest:
    """Build one request. ``model_id`` is sent as given: a base id, a prefixed inference profile or an ARN.
    ``options``: stop sequences, guardrail, cache point, tools (:class:`RequestOptions`)."""
    if isinstance(turns, str):
        turns = [("user", turns)]
    if not turns or turns[-1][0] != "user":
        raise ConfigError("a request needs at least one turn and must end with a user turn", key="messages")
    if max_tokens < 1:
        raise ConfigError("must be >= 1", key="max_tokens", value=max_tokens)
    if api == CHAT_API:
        return chat_request(model_id, list(turns), system=system, max_tokens=max_tokens, temperature=temperature,
                            tier=tier, options=options)  # fmt: skip
    fmt = provider_format or (provider_format_for(model_id) if api.startswith("invoke") else "converse")
    _check(api, tier, None if fmt == "converse" else fmt)
    suffix, method = API_ROUTES[api]
    path = f"/model/{quote(model_id, safe='')}/{suffix}"
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if api.startswith("converse"):
        body = converse_body(list(turns), system, max_tokens, temperature, tier, options)
        kwargs: dict[str, Any] = {"modelId": model_id, **body}
        headers["Accept"] = "application/json"
    else:
        body = provider_body(fmt, list(turns), system, max_tokens, temperature)
        if options is not None:
            _apply_invoke_options(fmt, body, options)
        kwargs = {"modelId": model_id, "body": json.dumps(body).encode(), "contentType": "application/json",
                  "accept": "application/json"}  # fmt: skip
        headers["X-Amzn-Bedrock-Accept" if api == "invoke-stream" else "Accept"] = "application/json"
        if tier:
            kwargs["serviceTier"] = tier
            headers["X-Amzn-Bedrock-Service-Tier"] = tier
        if options is not None and options.guardrail:  # InvokeModel: guardrailIdentifier / guardrailVersion headers
            kwargs["guardrailIdentifier"], kwargs["guardrailVersion"] = options.guardrail
            headers["X-Amzn-Bedrock-GuardrailIdentifier"], headers["X-Amzn-Bedrock-GuardrailVersion"] = options.guardrail
    raw = json.dumps(body).encode() if api.startswith("converse") else kwargs["body"]
    return PreparedRequest(api, model_id, fmt, path, headers, raw, method, kwargs, tier)


# ---------------------------------------------------------------------------------------------- parsing
@dataclass
class ResponseParser:
    """Accumulates what a response says; ``feed_*`` return the content text carried by one event/chunk."""

    api: str
    provider_format: str
    text_parts: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    tier_served: str | None = None
    latency_s: float | None = None
    stop_reason: str | None = None
    completed: bool = False  #: the final event/chunk (messageStop/metadata/invocation metrics) was seen
    chat_text: str = ""  #: the content of the last chat-completions event fed (feed_chat_event)
    cache_read_tokens: int | None = None  #: usage cacheReadInputTokens (anthropic: cache_read_input_tokens)
    cache_write_tokens: int | None = None  #: usage cacheWriteInputTokens (anthropic: cache_creation_input_tokens)
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  #: toolUse blocks: toolUseId, name, input
    _tool_json: list[str] = field(default_factory=list, repr=False)  #: the streamed input of the open toolUse

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def _add(self, text: str | None) -> str:
        if text:
            self.text_parts.append(text)
            return text
        return ""

    # ConverseStream ------------------------------------------------------------------------------
    def feed_converse_event(self, event_type: str, payload: dict[str, Any]) -> str:
        """The text of one event; a toolUse input fragment is returned too (it is content: the first one is the
        answer's first token) but kept out of :attr:`text` and gathered into :attr:`tool_uses`."""
        if event_type == "contentBlockDelta":
            delta = payload.get("delta") or {}
            if "toolUse" in delta:
                part = str((delta.get("toolUse") or {}).get("input") or "")
                self._tool_json.append(part)
                return part
            return self._add(delta.get("text"))
        if event_type == "contentBlockStart":
            start = (payload.get("start") or {}).get("toolUse")
            if start:
                self._close_tool()
                self.tool_uses.append({"toolUseId": start.get("toolUseId"), "name": start.get("name"), "input": {}})
                self._tool_json = []
            return ""
        if event_type == "contentBlockStop":
            self._close_tool()
            return ""
        if event_type == "messageStop":
            self.stop_reason = payload.get("stopReason")
        elif event_type == "metadata":
            self._usage_converse(payload)
            self.completed = True
        return ""

    def _close_tool(self) -> None:
        """The open toolUse block ends: its streamed input fragments are one JSON document."""
        if self.tool_uses and self._tool_json:
            raw = "".join(self._tool_json)
            try:
                self.tool_uses[-1]["input"] = json.loads(raw) if raw.strip() else {}
            except ValueError:
                self.tool_uses[-1]["input"] = raw  # malformed: kept as sent, the workload decides
        self._tool_json = []

    def _usage_converse(self, payload: dict[str, Any]) -> None:
        usage = payload.get("usage") or {}
        self.input_tokens = usage.get("inputTokens", self.input_tokens)
        self.output_tokens = usage.get("outputTokens", self.output_tokens)
        # Converse: cacheRead/WriteInputTokens; a Nova InvokeModel body: cacheRead/WriteInputTokenCount
        self.cache_read_tokens = usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount",
                                                                             self.cache_read_tokens))
        self.cache_write_tokens = usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount",
                                                                               self.cache_write_tokens))  # fmt: skip
        lat = (payload.get("metrics") or {}).get("latencyMs")
        if lat is not None:
            self.latency_s = float(lat) / 1000.0
        tier = (payload.get("serviceTier") or {}).get("type")
        if tier:
            self.tier_served = tier

    def feed_body(self, raw: bytes, headers: dict[str, str] | None = None) -> bool:
        """A whole (non-streamed) Converse or InvokeModel answer as received; False when it is not JSON."""
        try:
            body = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(body, dict):
            return False
        if self.api == "converse":
            self.feed_converse_body(body)
        else:
            self.feed_invoke_body(body, headers)
        return True

    def feed_converse_body(self, body: dict[str, Any]) -> None:
        for block in ((body.get("output") or {}).get("message") or {}).get("content") or []:
            self._add(block.get("text"))
            if isinstance(block.get("toolUse"), dict):
                tu = block["toolUse"]
                self.tool_uses.append({"toolUseId": tu.get("toolUseId"), "name": tu.get("name"),
                                       "input": tu.get("input", {})})  # fmt: skip
        self.stop_reason = body.get("stopReason")
        self._usage_converse(body)
        self.completed = True

    # InvokeModel(WithResponseStream) ---------------------------------------------------------------
    def feed_invoke_chunk(self, chunk: dict[str, Any]) -> str:
        """One provider JSON chunk of InvokeModelWithResponseStream."""
        out = self._feed_invoke_chunk(chunk)
        self._guardrail_action(chunk)
        return out

    def _guardrail_action(self, body: dict[str, Any]) -> None:
        """InvokeModel with a guardrail: ``amazon-bedrock-guardrailAction: INTERVENED`` in the body (a stream: its
        last chunk) is recorded as the stop reason ``guardrail_intervened``, Converse's name for it, so records
        of every API say it the same way (the body formats' own stop reasons do not)."""
        if body.get("amazon-bedrock-guardrailAction") == "INTERVENED":
            self.stop_reason = "guardrail_intervened"

    def _feed_invoke_chunk(self, chunk: dict[str, Any]) -> str:
        metrics = chunk.get("amazon-bedrock-invocationMetrics")
        if metrics:
            self.input_tokens = metrics.get("inputTokenCount", self.input_tokens)
            self.output_tokens = metrics.get("outputTokenCount", self.output_tokens)
            self.cache_read_tokens = metrics.get("cacheReadInputTokenCount", self.cache_read_tokens)
            self.cache_write_tokens = metrics.get("cacheWriteInputTokenCount", self.cache_write_tokens)
            if metrics.get("invocationLatency") is not None:
                self.latency_s = float(metrics["invocationLatency"]) / 1000.0
            self.completed = True
        fmt = self.provider_format
        if fmt == "anthropic":
            kind = chunk.get("type")
            if kind == "content_block_delta":
                delta = chunk.get("delta") or {}
                if delta.get("type") == "input_json_delta":  # a tool call's input, as partial JSON (content too)
                    part = str(delta.get("partial_json") or "")
                    self._tool_json.append(part)
                    return part
                return self._add(delta.get("text"))
            if kind == "content_block_start":
                block = chunk.get("content_block") or {}
                if block.get("type") == "tool_use":
                    self._close_tool()
                    self.tool_uses.append({"toolUseId": block.get("id"), "name": block.get("name"), "input": {}})
                return ""
            if kind == "content_block_stop":
                self._close_tool()
                return ""
            if kind == "message_start":
                usage = (chunk.get("message") or {}).get("usage") or {}
                self.input_tokens = usage.get("input_tokens", self.input_tokens)
                self._usage_anthropic_cache(usage)
            elif kind == "message_delta":
                self.stop_reason = (chunk.get("delta") or {}).get("stop_reason") or self.stop_reason
                out = (chunk.get("usage") or {}).get("output_tokens")
                if out is not None and not metrics:
                    self.output_tokens = out
            return ""
        if fmt == "anthropic-text":
            self.stop_reason = chunk.get("stop_reason") or self.stop_reason
            return self._add(chunk.get("completion"))
        if fmt == "titan":
            self.stop_reason = chunk.get("completionReason") or self.stop_reason
            if not metrics:
                self.input_tokens = chunk.get("inputTextTokenCount", self.input_tokens)
                self.output_tokens = chunk.get("totalOutputTextTokenCount", self.output_tokens)
            return self._add(chunk.get("outputText"))
        if fmt == "nova":  # messages-v1 chunks are ConverseStream's events, one per chunk
            for name in ("contentBlockDelta", "contentBlockStart", "contentBlockStop"):
                if name in chunk:
                    return self.feed_converse_event(name, chunk[name] or {})
            if "messageStop" in chunk:
                self.stop_reason = (chunk["messageStop"] or {}).get("stopReason")
            if "metadata" in chunk and not metrics:
                self._usage_converse(chunk["metadata"] or {})
            return ""
        if fmt == "llama":
            self.stop_reason = chunk.get("stop_reason") or self.stop_reason
            if not metrics:
                self.input_tokens = chunk.get("prompt_token_count") or self.input_tokens
                self.output_tokens = chunk.get("generation_token_count") or self.output_tokens
            return self._add(chunk.get("generation"))
        if fmt == "mistral":
            outs = chunk.get("outputs") or []
            if outs:
                self.stop_reason = outs[0].get("stop_reason") or self.stop_reason
                return self._add(outs[0].get("text"))
        return ""

    def feed_invoke_body(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """A whole InvokeModel response body (+ its headers: token counts, latency, tier)."""
        fmt = self.provider_format
        if fmt == "anthropic":
            for block in body.get("content") or []:
                if block.get("type", "text") == "text":
                    self._add(block.get("text"))
                elif block.get("type") == "tool_use":
                    self.tool_uses.append({"toolUseId": block.get("id"), "name": block.get("name"),
                                           "input": block.get("input", {})})  # fmt: skip
            usage = body.get("usage") or {}
            self.input_tokens, self.output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
            self._usage_anthropic_cache(usage)
            self.stop_reason = body.get("stop_reason")
        elif fmt == "anthropic-text":
            self._add(body.get("completion"))
            self.stop_reason = body.get("stop_reason")
        elif fmt == "titan":
            res = (body.get("results") or [{}])[0]
            self._add(res.get("outputText"))
            self.input_tokens, self.output_tokens = body.get("inputTextTokenCount"), res.get("tokenCount")
            self.stop_reason = res.get("completionReason")
        elif fmt == "nova":
            self.feed_converse_body(body)
        elif fmt == "llama":
            self._add(body.get("generation"))
            self.input_tokens, self.output_tokens = body.get("prompt_token_count"), body.get("generation_token_count")
            self.stop_reason = body.get("stop_reason")
        elif fmt == "mistral":
            outs = body.get("outputs") or [{}]
            self._add(outs[0].get("text"))
            self.stop_reason = outs[0].get("stop_reason")
        self._guardrail_action(body)
        self.completed = True
        if headers:
            h = {k.lower(): v for k, v in headers.items()}
            if "x-amzn-bedrock-input-token-count" in h:
                self.input_tokens = int(h["x-amzn-bedrock-input-token-count"])
            if "x-amzn-bedrock-output-token-count" in h:
                self.output_tokens = int(h["x-amzn-bedrock-output-token-count"])
            if "x-amzn-bedrock-cache-read-input-token-count" in h:
                self.cache_read_tokens = int(h["x-amzn-bedrock-cache-read-input-token-count"])
            if "x-amzn-bedrock-cache-write-input-token-count" in h:
                self.cache_write_tokens = int(h["x-amzn-bedrock-cache-write-input-token-count"])
            if "x-amzn-bedrock-invocation-latency" in h:
                self.latency_s = float(h["x-amzn-bedrock-invocation-latency"]) / 1000.0
            if h.get("x-amzn-bedrock-service-tier"):
                self.tier_served = h["x-amzn-bedrock-service-tier"]

    def _usage_anthropic_cache(self, usage: dict[str, Any]) -> None:
        self.cache_read_tokens = usage.get("cache_read_input_tokens", self.cache_read_tokens)
        self.cache_write_tokens = usage.get("cache_creation_input_tokens", self.cache_write_tokens)

    # Chat Completions -------------------------------------------------------------------------------
    def feed_chat_chunk(self, chunk: dict[str, Any]) -> str:
        """One ``chat.completion.chunk`` of a Chat Completions stream: its content (a reasoning delta counts as
        content for the timing, as a first token, but stays out of :attr:`text`), usage, finish reason, tier."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = usage.get("prompt_tokens", self.input_tokens)
            self.output_tokens = usage.get("completion_tokens", self.output_tokens)
        if chunk.get("service_tier"):
            self.tier_served = str(chunk["service_tier"])
        out = ""
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                self.stop_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            out += self._add(delta.get("content"))
            out = out or str(delta.get("reasoning_content") or delta.get("reasoning") or "")
        return out

    def feed_chat_done(self) -> None:
        """``data: [DONE]``: the stream ended as the protocol says it ends."""
        self.completed = True

    def feed_chat_event(self, obj: Any) -> tuple[str, str | None] | None:
        """One decoded SSE data line (:class:`SseDecoder`): a chunk, ``DONE``, or an ``error`` object, returned as
        (code, message) (the stream's failure; the OpenAI SDK raises on it too). :attr:`chat_text` = its content."""
        self.chat_text = ""
        if obj is SseDecoder.DONE:
            self.feed_chat_done()
            return None
        err = obj.get("error") if isinstance(obj, dict) else None
        if err:
            info = err if isinstance(err, dict) else {"message": str(err)}
            return str(info.get("code") or info.get("type") or "error"), info.get("message")
        if isinstance(obj, dict):
            self.chat_text = self.feed_chat_chunk(obj)
        return None

    def apply_headers(self, headers: dict[str, str]) -> None:
        h = {k.lower(): v for k, v in headers.items()}
        if self.tier_served is None and h.get("x-amzn-bedrock-service-tier"):
            self.tier_served = h["x-amzn-bedrock-service-tier"]


# ------------------------------------------------------------------------------------------- errors
_THROTTLE = {"ThrottlingException", "ModelNotReadyException", "throttlingException", "TooManyRequestsException"}
_SERVER = {"InternalServerException", "ServiceUnavailableException", "ModelErrorException",
           "internalServerException", "serviceUnavailableException"}  # fmt: skip
_TIMEOUT = {"ModelTimeoutException", "modelTimeoutException", "ReadTimeout", "ReadTimeoutError", "TimeoutError"}
_STREAM = {"modelStreamErrorException", "ModelStreamErrorException"}


def error_info(headers: Any, raw: bytes) -> tuple[str | None, str | None]:
    """(code, message) of an AWS JSON error response: ``x-amzn-ErrorType`` or the body's ``__type``/``code``,
    and the body's ``message``/``Message`` (also the OpenAI shape, ``{"error": {...}}``). Both engines use it."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if isinstance(body.get("error"), dict):  # the OpenAI shape: {"error": {"message", "type", "code"}}
        body = body["error"]
    et = headers.get("x-amzn-ErrorType")
    code = et.split(":", 1)[0] if et else (body.get("code") or body.get("__type"))
    code = str(code).rsplit("#", 1)[-1] if code else None
    message = body.get("message") or body.get("Message")
    if message is None and not body and raw:
        message = raw[:300].decode("utf-8", "replace")
    return code, (str(message) if message is not None else None)


def classify_http_error(status: int | None, code: str | None) -> str:
    """error_kind of an error answered before the stream started (HTTP status + x-amzn-ErrorType code)."""
    if code in _THROTTLE or status == 429:
        return "throttled"
    if code in _TIMEOUT or status == 408:
        return "timeout"
    if code in _STREAM:
        return "stream" if status is None else "server"
    if code in _SERVER or (status is not None and status >= 500) or status == 424:
        return "server"
    if status is not None and 400 <= status < 500:
        return "validation"
    return "client"


def classify_stream_error(code: str | None) -> str:
    """error_kind of an exception frame inside a stream: throttling stays "throttled", timeouts "timeout",
    everything else (modelStreamErrorException, internalServerException, ...) is "stream"."""
    if code in _THROTTLE:
        return "throttled"
    if code in _TIMEOUT:
        return "timeout"
    return "stream"


#: codes the engines retry when retries are on (botocore standard mode: throttling + transient)
RETRYABLE_CODES = {"ThrottlingException", "ModelNotReadyException", "InternalServerException",
                   "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException"}  # fmt: skip
RETRYABLE_STATUS = {500, 502, 503, 504}
