"""Workloads: what each request asks. Built-ins come from ``params/prompts/*.yaml`` and are selected by file name.

Every YAML file there with a ``kind`` (single, mix, chat, summarise, cached, agent) is a workload named after the file, so a
new prompt set is a new file, not new code (a path to the AWS sample's ``prompts.json`` is a ``single`` workload
too: every prompt file is read by :func:`bedrock_lab.prompts.read_prompt_file`). A workload hands each worker a :class:`Conversation` (state such as
a growing chat history lives there, never shared between workers) and validates each answer: a 200 without
content is a failure with error_kind ``"client"`` and error_code ``"EmptyResponse"`` (the service answered, but
the client cannot use the answer), and a summarisation that must be JSON but is not gives ``"InvalidJSON"``.

Production workloads (issue 13): ``cached`` sends one long shared system prompt behind a ``cachePoint`` and a
varying question (the first request writes the cache, later ones read it); ``agent`` runs tasks as loops: the
prompt with a tool (``toolConfig``), the model's ``toolUse``, the engine's ``toolResult``, the final answer. Each
turn is a record with the task's ``task_id`` and its ``turn``; a tool call whose input misses a required field of
the tool's schema is a ``client`` failure ``InvalidToolInput`` (a structured-output client would fail there).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_lab import prompts
from bedrock_lab.engines.formats import RequestOptions, Turn
from bedrock_lab.errors import ConfigError
from bedrock_lab.prompts import RequestText, is_prompt_path, read_prompt_file

KINDS = ("single", "mix", "chat", "summarise", "cached", "agent")


def default_prompts_dir() -> Path:
    """``params/prompts`` of the repository (override with BEDROCK_LAB_PROMPTS_DIR)."""
    env = os.environ.get("BEDROCK_LAB_PROMPTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "params" / "prompts"


@dataclass
class WorkItem:
    """One request's content."""

    prompt_id: str
    prompt_size: str
    turns: list[Turn]
    system: str | None = None
    max_tokens: int | None = None  #: overrides the run's max_tokens when set
    require_json: bool = False
    options: RequestOptions | None = None  #: cache point, tools, raw Converse messages (agent turns > 1)
    task_id: str | None = None  #: agent: the task this turn belongs to
    turn: int | None = None  #: agent: 1-based turn within the task

    @classmethod
    def of(cls, r: RequestText) -> WorkItem:
        """The request texts :mod:`bedrock_lab.prompts` assembled (the plan counts the same ones)."""
        return cls(r.prompt_id, r.prompt_size, list(r.turns), r.system, r.max_tokens, r.require_json)


def validate_answer(item: WorkItem, text: str, tool_uses: list[dict[str, Any]] | None = None) -> str | None:
    """error_code when a successful response is unusable, else None. A tool call is an answer: its input must be
    an object with the required fields of the tool's input schema (what structured-output clients parse)."""
    if tool_uses:
        return _check_tool_input(item, tool_uses)
    if not text.strip():
        return "EmptyResponse"
    if item.require_json:
        body = text.strip()
        if body.startswith("```"):
            body = body.strip("`").removeprefix("json").strip()
        try:
            if not isinstance(json.loads(body), dict):
                return "InvalidJSON"
        except ValueError:
            return "InvalidJSON"
    return None


class Conversation:
    """Per-worker request source. ``next()`` gives the next item; ``observe()`` sees its answer."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        self.workload = workload
        self.rng = rng

    def next(self) -> WorkItem:
        return self.workload.draw(self.rng)

    def observe(self, item: WorkItem, text: str | None, ok: bool,
                tool_uses: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        pass


class ChatConversation(Conversation):
    """History grows with the assistant's real answers; restarts after the last scripted turn."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        super().__init__(workload, rng)
        self.history: list[Turn] = []
        self.turn = 0

    def next(self) -> WorkItem:
        if self.turn >= len(self.workload.data["turns"]):
            self.history, self.turn = [], 0
        return WorkItem.of(prompts.chat_request(self.workload.data, tuple(self.history), self.turn))

    def observe(self, item: WorkItem, text: str | None, ok: bool,
                tool_uses: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        if ok and text:
            self.history = [*item.turns, ("assistant", text)]
            self.turn += 1
        else:  # a failed turn is asked again; the history stays consistent
            pass


def _check_tool_input(item: WorkItem, tool_uses: list[dict[str, Any]]) -> str | None:
    """"InvalidToolInput" when a tool call names no offered tool, or its input is not an object with the
    required fields (and basic JSON types) of that tool's input schema."""
    specs = {t["toolSpec"]["name"]: t["toolSpec"] for t in (item.options.tools if item.options else ())}
    for use in tool_uses:
        spec = specs.get(str(use.get("name")))
        data = use.get("input")
        if spec is None or not isinstance(data, dict):
            return "InvalidToolInput"
        schema = (spec.get("inputSchema") or {}).get("json") or {}
        if any(k not in data for k in schema.get("required") or []):
            return "InvalidToolInput"
        for key, prop in (schema.get("properties") or {}).items():
            want = _JSON_TYPES.get(str(prop.get("type")))
            if key in data and want is not None and not isinstance(data[key], want):
                return "InvalidToolInput"
            if key in data and "enum" in prop and data[key] not in prop["enum"]:
                return "InvalidToolInput"
    return None


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "number": (int, float),
                                                    "boolean": bool, "object": dict, "array": list}  # fmt: skip


class AgentConversation(Conversation):
    """A user session as a loop of turns: the task's prompt with the tools; each ``toolUse`` answered with the
    tool's ``toolResult`` (the YAML's ``result`` template filled from the call's input); the task ends with a
    text answer, at ``max_turns``, or at a failed turn (the task then failed: a user would start over)."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        super().__init__(workload, rng)
        self.n_tasks = 0
        self._reset()

    def _reset(self) -> None:
        self.task: WorkItem | None = None
        self.messages: list[dict[str, Any]] = []
        self.turns: list[Turn] = []
        self.turn = 0

    def next(self) -> WorkItem:
        w = self.workload
        if self.task is None:
            self.task = w.draw(self.rng)
            self.n_tasks += 1
            self.task_id = f"{self.rng.getrandbits(40):010x}-{self.n_tasks}"
            self.turns = list(self.task.turns)
            self.messages = [{"role": "user", "content": [{"text": t}]} for _, t in self.turns]
        self.turn += 1
        first = self.turn == 1
        choice = w.data.get("first_tool_choice") if first else None
        options = RequestOptions(tools=w.tools, tool_choice={str(choice): {}} if choice else None,
                                 messages=() if first else tuple(self.messages))  # fmt: skip
        return WorkItem(self.task.prompt_id, "agent", list(self.turns), w.system, self.task.max_tokens,
                        options=options, task_id=self.task_id, turn=self.turn)  # fmt: skip

    def observe(self, item: WorkItem, text: str | None, ok: bool,
                tool_uses: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        max_turns = int(self.workload.data.get("max_turns") or 4)
        if not ok or not tool_uses or self.turn >= max_turns:
            self._reset()  # a final answer, a failed turn, or the turn budget: the task is over
            return
        content: list[dict[str, Any]] = [{"text": text}] if text and text.strip() else []
        content += [{"toolUse": {"toolUseId": u["toolUseId"], "name": u["name"], "input": u["input"]}}
                    for u in tool_uses]  # fmt: skip
        results = [self.workload.tool_result(u) for u in tool_uses]
        self.messages += [
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"toolResult": {"toolUseId": u["toolUseId"], "content": [{"text": r}],
                                                         "status": "success"}} for u, r in zip(tool_uses, results,
                                                                                               strict=True)]},
        ]  # fmt: skip
        # the same turns as text, for the local token estimate (roles and JSON framing are free there)
        calls = [t for u in tool_uses for t in prompts.tool_call_texts(u["name"], u["input"])]
        self.turns += [("assistant", " ".join([text or "", *calls]).strip()), ("user", "\n".join(results))]


@dataclass
class Workload:
    """A named prompt set of one kind, loaded from YAML (see params/prompts/)."""

    name: str
    kind: str
    data: dict[str, Any]
    prompt_size: str = "small"
    source: str = ""
    _items: list[WorkItem] = field(default_factory=list, repr=False)
    _weights: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError("unknown workload kind", source=self.source, key="kind", value=self.kind,
                              allowed=", ".join(KINDS))  # fmt: skip
        self.system = prompts.workload_system(self.data)
        if self.kind == "single":
            self._items = self._sized(self.prompt_size)
        elif self.kind == "mix":
            self._mix()
        elif self.kind == "summarise":
            self._items = [WorkItem.of(r) for r in prompts.summarise_requests(self.data, source=self.source)]
        elif self.kind == "chat" and not self.data.get("turns"):
            raise ConfigError("needs at least one turn", source=self.source, key="turns")
        elif self.kind == "cached":
            self._cached()
        elif self.kind == "agent":
            self._agent()

    def _texts(self, key: str) -> list[WorkItem]:
        """``key``: a list of {id, text} (the questions of ``cached``, the tasks of ``agent``)."""
        return [WorkItem.of(r) for r in prompts.entry_requests(self.data, key, kind=self.kind, source=self.source)]

    def _cached(self) -> None:
        if not self.system:
            raise ConfigError("needs the long shared system prompt that is cached", source=self.source, key="system")
        self._items = self._texts("questions")
        for item in self._items:
            item.options = RequestOptions(cache_system=True)

    def _agent(self) -> None:
        self.tools: tuple[dict[str, Any], ...] = prompts.tool_specs(self.data, source=self.source)
        self._results = prompts.tool_result_templates(self.data)
        self._items = self._texts("tasks")

    def tool_result(self, use: dict[str, Any]) -> str:
        """The tool's answer to one call: its ``result`` template filled from the call's input
        (:func:`bedrock_lab.prompts.tool_result`)."""
        return prompts.tool_result(self._results.get(str(use.get("name")), "no such tool"), use.get("input"))

    def _sized(self, size: str) -> list[WorkItem]:
        return [WorkItem.of(r) for r in prompts.sized_requests(self.data, size, system=self.system,
                                                                source=self.source)]  # fmt: skip

    def _mix(self) -> None:
        def single() -> dict[str, Any]:
            path = Path(self.source).with_name("single.yaml") if self.source else default_prompts_dir()
            return _read_yaml(path if path.name == "single.yaml" else path / "single.yaml")

        for weight, choice in prompts.mix_requests(self.data, single, source=self.source):
            self._items.append([WorkItem.of(r) for r in choice] if isinstance(choice, list)  # type: ignore[arg-type]
                               else WorkItem.of(choice))  # a list: one of them is drawn
            self._weights.append(weight)

    def draw(self, rng: random.Random) -> WorkItem:
        if self.kind == "mix":
            choice: Any = rng.choices(self._items, weights=self._weights)[0]
            return rng.choice(choice) if isinstance(choice, list) else choice
        return rng.choice(self._items)

    def conversation(self, rng: random.Random) -> Conversation:
        if self.kind == "agent":
            return AgentConversation(self, rng)
        return ChatConversation(self, rng) if self.kind == "chat" else Conversation(self, rng)


def _read_yaml(path: Path) -> dict[str, Any]:
    """A prompt file through the one reader (YAML, or the AWS sample's prompts.json): :mod:`bedrock_lab.prompts`."""
    return read_prompt_file(path)


def available_workloads(prompts_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Workload names found in the prompts folder."""
    folder = Path(prompts_dir) if prompts_dir else default_prompts_dir()
    return sorted(p.stem for p in folder.glob("*.yaml") if "kind" in (_read_yaml(p) or {}))


def load_workload(name: str, prompt_size: str = "small", prompts_dir: str | os.PathLike[str] | None = None) -> Workload:
    """Workload ``name`` (a file ``<name>.yaml`` in the prompts folder, or a path to a YAML file or to the AWS
    sample's ``prompts.json``)."""
    path = Path(name)
    if not is_prompt_path(name):
        folder = Path(prompts_dir) if prompts_dir else default_prompts_dir()
        path = folder / f"{name}.yaml"
        if not path.exists():
            raise ConfigError("unknown workload", key="workload", value=name,
                              allowed=", ".join(available_workloads(folder)))  # fmt: skip
    data = _read_yaml(path)
    return Workload(path.stem, str(data.get("kind", "")), data, prompt_size, str(path))
