"""The local estimate of a workload's input tokens per request: what the plan prices a sweep's cells with and the
preflight prices a single AWS run with (one estimator for both, so they cannot disagree).

The texts are the ones the engines send, assembled by the same functions (:mod:`bedrock_lab.prompts`), counted
by :func:`bedrock_lab.tokens.count_request`; :class:`TokenEstimate` says which part CountTokens can replace
(``counted``), which it is not asked about (tool specs, later agent turns) and which sits before a cache point.

>>> est = estimate_request_tokens("agent", "small")
>>> est is not None and est.total > est.counted > 0 and est.turns_per_task == 2.0
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_lab import prompts
from bedrock_lab.errors import ConfigError
from bedrock_lab.paths import project_root
from bedrock_lab.prompts import is_prompt_path, read_prompt_file
from bedrock_lab.tokens import count_request, count_texts, count_tokens

__all__ = ["TokenEstimate", "estimate_input_tokens", "estimate_request_tokens", "prompt_file"]


def prompt_file(workload: str, prompts_dir: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The workload's prompt file through the one reader (:func:`bedrock_lab.prompts.read_prompt_file`); None when
    it cannot be read (validation reports that, with the key)."""
    folder = Path(prompts_dir) if prompts_dir else project_root() / "params" / "prompts"
    path = Path(workload) if is_prompt_path(workload) else folder / f"{workload}.yaml"
    try:
        return read_prompt_file(path)
    except ConfigError:
        return None



@dataclass(frozen=True)
class TokenEstimate:
    """Mean input tokens per request of a workload by the local token estimate, and where they sit: what the
    target bills and the plan prices (cache tokens apart, at their own prices)."""

    total: float  #: every input token of a request: system, messages, tool specs (cached ones included)
    counted: float  #: the part CountTokens is asked about (system + the first turn's messages); a count replaces it
    cache_prefix: float = 0.0  #: tokens before the request's cache point (``cached``: the system prompt)
    turns_per_task: float = 1.0  #: ``agent``: requests per task (the task's prompt, then one per tool round)

    @property
    def not_counted(self) -> float:
        """Tokens CountTokens is not asked about (tool specs, later agent turns): kept from the local estimate."""
        return self.total - self.counted


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _agent_estimate(data: Mapping[str, Any], source: str) -> TokenEstimate | None:
    """An agent task as the engines run it: the task's prompt with every tool spec, then one tool round (the
    model's call sent back with the tool's result) and the answer turn, the emulator's rule (docs/emulator.md).
    The call's input is the model's: :func:`bedrock_lab.prompts.stand_in_input` stands in for it (the mean of
    the required-only and the every-property inputs: the emulator adds each optional property with p 1/2)."""
    tasks = prompts.entry_requests(data, "tasks", kind="agent", source=source)
    tools = prompts.tool_specs(data, source=source)
    templates = prompts.tool_result_templates(data)
    tool_tokens = count_texts(t for spec in tools for t in prompts.tool_spec_texts(spec))

    def tool_round(spec: Mapping[str, Any], optional: bool) -> int:
        name, schema = spec["toolSpec"]["name"], spec["toolSpec"]["inputSchema"]["json"]
        call = prompts.stand_in_input(schema, optional=optional)
        result = prompts.tool_result(templates.get(name, "no such tool"), call)
        return count_texts([*prompts.tool_call_texts(name, call), result])

    rounds = [(tool_round(spec, False) + tool_round(spec, True)) / 2 for spec in tools]
    extra = sum(rounds) / len(rounds)  # which tool is called is the model's choice: the mean over the tools
    turns = 2 if int(data.get("max_turns") or 4) >= 2 else 1
    first = [float(count_request(t.system, t.turns)) for t in tasks]
    per_task = [(turns * (f + tool_tokens) + (turns - 1) * extra) / turns for f in first]
    counted = sum(first) / len(first)
    return TokenEstimate(sum(per_task) / len(per_task), counted, 0.0, float(turns))


def estimate_request_tokens(workload: str, size: str, prompts_dir: str | os.PathLike[str] | None = None, *,
                            answer_tokens: float = 0.0) -> TokenEstimate | None:  # fmt: skip
    """Input tokens per request of a workload, counted with the local token estimate
    (:func:`bedrock_lab.tokens.count_request`) over the request texts the engines send, assembled by the same
    functions (:mod:`bedrock_lab.prompts`): the mean over the prompts the engine draws from (uniformly; a mix by
    task weight). A chat turn carries the earlier turns and answers; each answer counts as ``answer_tokens``
    (capped by the chat's max_tokens). ``cached``: the system prompt is the cache prefix; ``agent``: every turn
    of a task (:func:`_agent_estimate`). None when the prompt file cannot be read or is malformed (the sweep
    check and the engines report that, with the key)."""
    data = prompt_file(workload, prompts_dir)
    if not data:
        return None
    source = str(workload)
    kind = data.get("kind")

    def plain(reqs: list[prompts.RequestText]) -> TokenEstimate | None:
        mean = _mean([float(count_request(r.system, r.turns)) for r in reqs])
        return None if mean is None else TokenEstimate(mean, mean)

    try:
        if kind == "single":
            return plain(prompts.sized_requests(data, size, system=prompts.workload_system(data), source=source))
        if kind == "summarise":
            return plain(prompts.summarise_requests(data, source=source))
        if kind == "cached":  # the system prompt sits before the cache point (engines.formats: cache_system)
            got = plain(prompts.entry_requests(data, "questions", kind="cached", source=source))
            prefix = float(count_tokens(prompts.workload_system(data) or ""))
            return None if got is None else TokenEstimate(got.total, got.counted, prefix)
        if kind == "agent":
            return _agent_estimate(data, source)
        if kind == "chat":
            n = len(data.get("turns") or [])
            answer = " ".join(["word"] * int(min(float(answer_tokens), float(data.get("max_tokens") or answer_tokens))))
            history: tuple[tuple[str, str], ...] = ()
            reqs = []
            for i in range(n):  # each answer stood in for by ``answer_tokens`` one-token words
                reqs.append(prompts.chat_request(data, history, i))
                history = (*reqs[-1].turns, ("assistant", answer))
            return plain(reqs)
        if kind == "mix":
            def single() -> dict[str, Any]:
                return prompt_file(str(Path(workload).with_name("single.yaml")) if is_prompt_path(workload)
                                    else "single", prompts_dir) or {}  # fmt: skip

            total = weights = 0.0
            for weight, choice in prompts.mix_requests(data, single, source=source):
                pool = choice if isinstance(choice, list) else [choice]
                mean = _mean([float(count_request(r.system, r.turns)) for r in pool])
                if mean is not None:
                    total, weights = total + weight * mean, weights + weight
            return TokenEstimate(total / weights, total / weights) if weights > 0 else None
    except (ConfigError, KeyError, TypeError, ValueError):
        return None
    return None


def estimate_input_tokens(workload: str, size: str, prompts_dir: str | os.PathLike[str] | None = None, *,
                          answer_tokens: float = 0.0) -> float | None:  # fmt: skip
    """Mean input tokens per request of a workload (every input token, cached ones included):
    :func:`estimate_request_tokens`'s ``total``."""
    got = estimate_request_tokens(workload, size, prompts_dir, answer_tokens=answer_tokens)
    return None if got is None else got.total
