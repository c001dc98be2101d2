"""Workloads: what each request asks. Built-ins come from ``params/prompts/*.yaml`` and are selected by file name.

Every YAML file there with a ``kind`` (single, mix, chat, summarise) is a workload named after the file, so a
new prompt set is a new file, not new code (a path to the AWS sample's ``prompts.json`` is a ``single`` workload
too: every prompt file is read by :func:`bedrock_lab.prompts.read_prompt_file`). A workload hands each worker a :class:`Conversation` (state such as
a growing chat history lives there, never shared between workers) and validates each answer: a 200 without
content is a failure with error_kind ``"client"`` and error_code ``"EmptyResponse"`` (the service answered, but
the client cannot use the answer), and a summarisation that must be JSON but is not gives ``"InvalidJSON"``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_lab.engines.formats import Turn
from bedrock_lab.errors import ConfigError
from bedrock_lab.prompts import is_prompt_path, read_prompt_file

KINDS = ("single", "mix", "chat", "summarise")


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


def validate_answer(item: WorkItem, text: str) -> str | None:
    """error_code when a successful response is unusable, else None."""
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

    def observe(self, item: WorkItem, text: str | None, ok: bool) -> None:
        pass


class ChatConversation(Conversation):
    """History grows with the assistant's real answers; restarts after the last scripted turn."""

    def __init__(self, workload: Workload, rng: random.Random) -> None:
        super().__init__(workload, rng)
        self.history: list[Turn] = []
        self.turn = 0

    def next(self) -> WorkItem:
        turns = self.workload.data["turns"]
        if self.turn >= len(turns):
            self.history, self.turn = [], 0
        user = str(turns[self.turn])
        return WorkItem(f"chat-turn{self.turn + 1}", "chat", [*self.history, ("user", user)],
                        self.workload.system, self.workload.data.get("max_tokens"))  # fmt: skip

    def observe(self, item: WorkItem, text: str | None, ok: bool) -> None:
        if ok and text:
            self.history = [*item.turns, ("assistant", text)]
            self.turn += 1
        else:  # a failed turn is asked again; the history stays consistent
            pass


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
        self.system = self.data.get("system") or None
        if self.kind == "single":
            self._items = self._sized(self.prompt_size)
        elif self.kind == "mix":
            self._mix()
        elif self.kind == "summarise":
            docs = self.data.get("documents") or []
            if not docs:
                raise ConfigError("needs at least one document", source=self.source, key="documents")
            instr = str(self.data.get("instruction", "")).strip()
            self._items = [
                WorkItem(str(d["id"]), "summarise", [("user", f"{instr}\n\n{d['text']}".strip())], self.system,
                         self.data.get("max_tokens"), bool(self.data.get("require_json", False)))  # fmt: skip
                for d in docs
            ]
        elif self.kind == "chat" and not self.data.get("turns"):
            raise ConfigError("needs at least one turn", source=self.source, key="turns")

    def _sized(self, size: str, *, data: dict[str, Any] | None = None, source: str | None = None) -> list[WorkItem]:
        prompts = (data or self.data).get("prompts") or {}
        if size not in prompts or not prompts[size]:
            raise ConfigError("unknown prompt size", source=source or self.source, key="prompt_size", value=size,
                              allowed=", ".join(prompts))  # fmt: skip
        return [WorkItem(str(p["id"]), size, [("user", str(p["text"]).strip())], self.system) for p in prompts[size]]

    def _mix(self) -> None:
        tasks = self.data.get("tasks") or []
        if not tasks:
            raise ConfigError("needs at least one task", source=self.source, key="tasks")
        single = None
        for i, t in enumerate(tasks):
            weight = float(t.get("weight", 1))
            if weight <= 0:
                raise ConfigError("must be > 0", source=self.source, key=f"tasks[{i}].weight", value=weight)
            if "text" in t:
                item = WorkItem(str(t["id"]), str(t["id"]), [("user", str(t["text"]).strip())], self.system,
                                t.get("max_tokens"))  # fmt: skip
                self._items.append(item)
            else:
                if single is None:
                    path = Path(self.source).with_name("single.yaml") if self.source else default_prompts_dir()
                    single = _read_yaml(path if path.name == "single.yaml" else path / "single.yaml")
                pool = self._sized(str(t.get("size", "small")), data=single, source="single.yaml")
                for p in pool:
                    p.prompt_id, p.max_tokens = f"{t['id']}:{p.prompt_id}", t.get("max_tokens")
                self._items.append(pool)  # type: ignore[arg-type]  # a list: one of them is drawn
            self._weights.append(weight)

    def draw(self, rng: random.Random) -> WorkItem:
        if self.kind == "mix":
            choice: Any = rng.choices(self._items, weights=self._weights)[0]
            return rng.choice(choice) if isinstance(choice, list) else choice
        return rng.choice(self._items)

    def conversation(self, rng: random.Random) -> Conversation:
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
