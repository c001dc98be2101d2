"""Prompt files: the one reader of workload files, ours (``params/prompts/*.yaml``) and the public AWS sample's.

The engines (``engines/workloads.py``) and the sweep validation (``params.py``) both read prompt files through
:func:`read_prompt_file`, so every format is understood in one place. The AWS tier-sweep sample's
``prompts.json`` (``{"small": {"text": ..., "description": ...}, "medium": ..., "large": ...}``: one prompt per
size) becomes a ``single`` workload with one prompt per size, so ``cell.workload: path/to/prompts.json`` (or
``PROMPTS_FILE``) runs the sample's prompts unchanged.

The request texts are assembled here too (:class:`RequestText`, ``*_requests``, :func:`tool_specs`,
:func:`tool_result`): the engines' workloads send them and the plan and the preflight
(``token_estimate.estimate_request_tokens``) count them, one implementation for both (the plan may not import
the engines).

>>> from_sample_json({"small": {"text": "Hi?", "description": "tiny"}}, source="prompts.json")["prompts"]["small"]
[{'id': 'small', 'text': 'Hi?', 'description': 'tiny'}]
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bedrock_lab.errors import ConfigError

#: file names that name a prompt file (anything else names a workload in params/prompts/)
PROMPT_SUFFIXES = (".yaml", ".yml", ".json")


def is_prompt_path(name: str | os.PathLike[str]) -> bool:
    """True when ``name`` is a path to a prompt file rather than a workload name."""
    return str(name).lower().endswith(PROMPT_SUFFIXES)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook refusing a key given twice (json.loads would silently keep the last one)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}: JSON would keep only the last one")
        out[key] = value
    return out


def from_sample_json(data: Any, *, source: str) -> dict[str, Any]:
    """The sample's ``prompts.json`` mapping (size -> ``{"text", "description"}``, or size -> text) as a
    ``single`` workload; a missing or empty text is a :class:`ConfigError` naming the size."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("a prompts.json maps each prompt size to {\"text\": ..., \"description\": ...}",
                          source=source, value=type(data).__name__ if not isinstance(data, Mapping) else "{}",
                          allowed='{"small": {"text": "..."}, "medium": {...}, "large": {...}}')  # fmt: skip
    prompts: dict[str, list[dict[str, Any]]] = {}
    for size, entry in data.items():
        text = entry.get("text") if isinstance(entry, Mapping) else entry
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("each prompt size needs a non-empty text", source=source,
                              key=f"{size}.text" if isinstance(entry, Mapping) else str(size), value=text,
                              allowed='{"text": "the prompt", "description": "optional"}')  # fmt: skip
        item: dict[str, Any] = {"id": str(size), "text": text.strip()}
        if isinstance(entry, Mapping) and entry.get("description"):
            item["description"] = str(entry["description"])
        prompts[str(size)] = [item]
    return {"kind": "single", "system": None, "format": "aws-sample prompts.json", "prompts": prompts}


def read_prompt_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A prompt file as a workload mapping (with ``kind``). YAML is ours; JSON is either a workload with a ``kind``
    or the AWS sample's ``prompts.json``. Any problem is a :class:`ConfigError` naming the file."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("prompt file not found", source=source, value=source,
                          allowed="a params/prompts/*.yaml file or a prompts.json") from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt file: {exc}", source=source) from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON: {exc}", source=source, allowed="a JSON object") from None
        return data if isinstance(data, dict) and "kind" in data else from_sample_json(data, source=source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping", source=source, value=type(data).__name__, allowed="kind, prompts, ...")
    return data


# --------------------------------------------------------------------------------------------- request texts


@dataclass(frozen=True)
class RequestText:
    """The content of one request a workload sends: the engines wrap it (``WorkItem``), the plan counts it."""

    prompt_id: str
    prompt_size: str
    turns: tuple[tuple[str, str], ...]  #: (role, text)
    system: str | None = None
    max_tokens: int | None = None  #: overrides the run's max_tokens when set
    require_json: bool = False


def workload_system(data: Mapping[str, Any]) -> str | None:
    """The workload's system prompt (None when it has none)."""
    return str(data.get("system") or "") or None


def sized_requests(data: Mapping[str, Any], size: str, *, system: str | None, source: str) -> list[RequestText]:
    """A ``single`` file's prompts of one size class, each under ``system`` (a mix uses its own)."""
    prompts = data.get("prompts") or {}
    if size not in prompts or not prompts[size]:
        raise ConfigError("unknown prompt size", source=source, key="prompt_size", value=size,
                          allowed=", ".join(prompts))  # fmt: skip
    return [RequestText(str(p["id"]), size, (("user", str(p["text"]).strip()),), system) for p in prompts[size]]


def summarise_requests(data: Mapping[str, Any], *, source: str) -> list[RequestText]:
    """One request per document: the instruction, a blank line, the document."""
    docs = data.get("documents") or []
    if not docs:
        raise ConfigError("needs at least one document", source=source, key="documents")
    instr = str(data.get("instruction", "")).strip()
    return [RequestText(str(d["id"]), "summarise", (("user", f"{instr}\n\n{d['text']}".strip()),),
                        workload_system(data), data.get("max_tokens"), bool(data.get("require_json", False)))
            for d in docs]  # fmt: skip


def entry_requests(data: Mapping[str, Any], key: str, *, kind: str, source: str) -> list[RequestText]:
    """``key``: a list of {id, text} (the questions of ``cached``, the tasks of ``agent``), each one user turn."""
    entries = data.get(key) or []
    if not entries:
        raise ConfigError(f"needs at least one entry in {key}", source=source, key=key)
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not str(e.get("text", "")).strip():
            raise ConfigError("each entry needs an id and a non-empty text", source=source,
                              key=f"{key}[{i}]", value=e, allowed="{id: ..., text: ...}")  # fmt: skip
        out.append(RequestText(str(e.get("id", i)), kind, (("user", str(e["text"]).strip()),), workload_system(data),
                               e.get("max_tokens", data.get("max_tokens"))))  # fmt: skip
    return out


def mix_requests(data: Mapping[str, Any], single: Callable[[], Any], *,
                 source: str) -> list[tuple[float, RequestText | list[RequestText]]]:  # fmt: skip
    """A mix's tasks with their weights: a task with a text is one request; a task naming a ``size`` is the pool of
    ``single.yaml``'s prompts of that size under the mix's system prompt (one of them is drawn). ``single`` is a
    callable returning single.yaml's data, read only when a task needs it."""
    tasks = data.get("tasks") or []
    if not tasks:
        raise ConfigError("needs at least one task", source=source, key="tasks")
    system = workload_system(data)
    out: list[tuple[float, RequestText | list[RequestText]]] = []
    single_data: Any = None
    for i, t in enumerate(tasks):
        weight = float(t.get("weight", 1))
        if weight <= 0:
            raise ConfigError("must be > 0", source=source, key=f"tasks[{i}].weight", value=weight)
        if "text" in t:
            out.append((weight, RequestText(str(t["id"]), str(t["id"]), (("user", str(t["text"]).strip()),), system,
                                            t.get("max_tokens"))))  # fmt: skip
            continue
        single_data = single() if single_data is None else single_data
        pool = sized_requests(single_data, str(t.get("size", "small")), system=system, source="single.yaml")
        out.append((weight, [RequestText(f"{t['id']}:{p.prompt_id}", p.prompt_size, p.turns, system,
                                         t.get("max_tokens")) for p in pool]))  # fmt: skip
    return out


def chat_request(data: Mapping[str, Any], history: tuple[tuple[str, str], ...], turn: int) -> RequestText:
    """Chat turn ``turn`` (0-based): the earlier turns and answers (``history``), then the scripted user turn."""
    return RequestText(f"chat-turn{turn + 1}", "chat", (*history, ("user", str(data["turns"][turn]))),
                       workload_system(data), data.get("max_tokens"))  # fmt: skip


def tool_specs(data: Mapping[str, Any], *, source: str) -> tuple[dict[str, Any], ...]:
    """An agent's tools as Converse ``toolSpec`` entries (name, description, inputSchema.json)."""
    tools = data.get("tools") or []
    if not tools:
        raise ConfigError("needs at least one tool", source=source, key="tools")
    specs = []
    for i, t in enumerate(tools):
        schema = t.get("input_schema") if isinstance(t, dict) else None
        if not isinstance(schema, dict) or not t.get("name"):
            raise ConfigError("each tool needs a name and an input_schema (JSON schema object)",
                              source=source, key=f"tools[{i}]", value=t,
                              allowed="{name, description, input_schema, result}")  # fmt: skip
        specs.append({"toolSpec": {"name": str(t["name"]), "description": str(t.get("description") or t["name"]),
                                   "inputSchema": {"json": schema}}})  # fmt: skip
    return tuple(specs)


def tool_result_templates(data: Mapping[str, Any]) -> dict[str, str]:
    """Each tool's ``result`` template by tool name."""
    return {str(t["name"]): str(t.get("result") or "{}") for t in data.get("tools") or [] if isinstance(t, dict)}


def tool_result(template: str, call_input: Any) -> str:
    """A tool's answer to one call: ``template`` with each ``{field}`` replaced by the call's input (``unknown``
    when the call has none), so the answer is deterministic."""
    values = call_input if isinstance(call_input, dict) else {}
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "unknown")), template)


def json_text(value: Any) -> str:
    """A JSON value as text (compact, keys sorted: whitespace and key order are free for a token count)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def tool_spec_texts(spec: Mapping[str, Any]) -> list[str]:
    """The texts a ``toolSpec`` bills as input on every request that offers it: name, description, JSON schema."""
    ts = spec["toolSpec"]
    return [str(ts["name"]), str(ts.get("description", "")), json_text(ts["inputSchema"]["json"])]


def tool_call_texts(name: str, call_input: Any) -> list[str]:
    """The texts a ``toolUse`` block bills as input when it is sent back: the tool's name and its input."""
    return [str(name), json_text(call_input)]


#: the stand-in value of a string property before the run (tool inputs are the model's; two short words)
STAND_IN_WORDS = "alpha echo"


def stand_in_input(schema: Any, *, optional: bool) -> Any:
    """A plausible tool input for ``schema`` before the run (the model writes the real one): each required
    property (and every optional one with ``optional``), strings as :data:`STAND_IN_WORDS`, the first enum value."""
    s = schema if isinstance(schema, dict) else {}
    if "enum" in s and isinstance(s["enum"], list) and s["enum"]:
        return s["enum"][0]
    kind = s.get("type", "object" if "properties" in s else "string")
    if kind == "object":
        props: dict[str, Any] = s["properties"] if isinstance(s.get("properties"), dict) else {}
        required: list[Any] = s["required"] if isinstance(s.get("required"), list) else []
        return {k: stand_in_input(v, optional=optional) for k, v in props.items() if optional or k in required}
    if kind == "array":
        return [stand_in_input(s.get("items"), optional=optional)]
    if kind in ("integer", "number"):
        return 12
    if kind == "boolean":
        return True
    return STAND_IN_WORDS


__all__ = ["PROMPT_SUFFIXES", "STAND_IN_WORDS", "RequestText", "chat_request", "entry_requests", "from_sample_json",
           "is_prompt_path", "json_text", "mix_requests", "read_prompt_file", "sized_requests", "stand_in_input",
           "summarise_requests", "tool_call_texts", "tool_result", "tool_result_templates", "tool_spec_texts",
           "tool_specs", "workload_system"]
