"""The fallback policy both engines share, and the production-feature columns of a record.

Production clients that get throttled (or a server error) often ask a lighter model or another service tier once
instead of failing the user: ``fallback_model`` / ``fallback_tier`` (cell options, :mod:`bedrock_lab.cellspec`).
The burst engine and the Locust user both ask :class:`FallbackPolicy` whether to re-send and where, so the two
engines cannot differ. A fallback is one more attempt of the *same* user request: latencies stay measured from the
first attempt's start (what the user waited), the record says ``fallback=True`` and ``answered_model`` names the
model that answered. Only an answer that has not started is re-sent: a stream that already delivered content and
then failed is a failure (its text cannot be taken back).

>>> p = FallbackPolicy.from_settings("amazon.nova-micro-v1:0", None)
>>> p.applies("throttled", got_content=False), p.applies("validation", got_content=False)
(True, False)
>>> p.route("amazon.nova-lite-v1:0", "priority")
('amazon.nova-micro-v1:0', 'priority')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from bedrock_lab.cellspec import guardrail_pair, stop_sequence_list
from bedrock_lab.engines.formats import RequestOptions, ResponseParser
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.errors import ConfigError

if TYPE_CHECKING:
    from bedrock_lab.engines.spec import BurstSpec
    from bedrock_lab.engines.workloads import WorkItem

#: error kinds that send a request to the fallback: the service could not take it now (quota, capacity, fault)
FALLBACK_ON: tuple[str, ...] = ("throttled", "server")


class FallbackSettings(NamedTuple):
    """The four settings :meth:`FallbackPolicy.of` reads (a BurstSpec has them too; the Locust user builds this)."""

    model_id: str
    tier: str | None
    fallback_model: str | None
    fallback_tier: str | None


@dataclass(frozen=True)
class FallbackPolicy:
    """Where a throttled or failed request goes once: another model, another tier, or both."""

    model_id: str | None = None
    tier: str | None = None

    @classmethod
    def from_settings(cls, fallback_model: str | None, fallback_tier: str | None) -> FallbackPolicy | None:
        """The policy of a cell's ``fallback_model`` / ``fallback_tier`` (None when neither is set)."""
        if not fallback_model and not fallback_tier:
            return None
        return cls(fallback_model or None, fallback_tier or None)

    @classmethod
    def of(cls, spec: FallbackSettings | BurstSpec) -> FallbackPolicy | None:
        """The policy of a :class:`~bedrock_lab.engines.BurstSpec` or the Locust user's :class:`FallbackSettings`;
        a fallback identical to the primary is a :class:`ConfigError` (it would only ask the same quota again)."""
        policy = cls.from_settings(spec.fallback_model, spec.fallback_tier)
        if policy is not None and policy.route(spec.model_id, spec.tier) == (spec.model_id, spec.tier):
            raise ConfigError("the fallback is the cell's own model and tier", key="fallback_model",
                              value=f"{policy.model_id or spec.model_id} [{policy.tier or spec.tier}]",
                              allowed="another (lighter) model id and/or another service tier")  # fmt: skip
        return policy

    def applies(self, error_kind: str | None, *, got_content: bool) -> bool:
        """True when a first attempt that ended with ``error_kind`` goes to the fallback."""
        return error_kind in FALLBACK_ON and not got_content

    def route(self, model_id: str, tier: str | None) -> tuple[str, str | None]:
        """(model id, tier) of the fallback attempt."""
        return self.model_id or model_id, self.tier or tier


def restart(m: Measurement) -> None:
    """Clear a failed first attempt's outcome for the fallback attempt; the clock (``t0``, the start) stays."""
    m.error_kind = m.error_code = m.error_message = None
    m.http_status, m.end_mono = None, None
    m.headers = {}
    m.chunk_mono = []


def request_options(item: WorkItem, stop_sequences: str | None, guardrail: str | None) -> RequestOptions | None:
    """The cell's request options (stop sequences, guardrail) merged with the work item's (cache point, tools,
    raw messages); None when there are none (the request is then exactly what it was before issue 13)."""
    base = item.options
    stops, rail = stop_sequence_list(stop_sequences), guardrail_pair(guardrail)
    if base is None and not stops and rail is None:
        return None
    base = base or RequestOptions()
    return RequestOptions(stop_sequences=stops or base.stop_sequences, guardrail=rail or base.guardrail,
                          cache_system=base.cache_system, tools=base.tools, tool_choice=base.tool_choice,
                          messages=base.messages)  # fmt: skip


def answer_fields(item: WorkItem, parser: ResponseParser | None, *, ok: bool, model_id: str,
                  policy: FallbackPolicy | None, fell_back: bool) -> dict[str, Any]:  # fmt: skip
    """The production columns of a record (:class:`bedrock_lab.records.RequestRecord`): cache tokens, stop
    reason, the model that answered (None when nothing did), whether the fallback was asked (None: no policy),
    and the agent task and turn."""
    return {
        "cache_read_tokens": parser.cache_read_tokens if parser else None,
        "cache_write_tokens": parser.cache_write_tokens if parser else None,
        "stop_reason": parser.stop_reason if parser else None,
        "answered_model": model_id if ok else None,
        "fallback": fell_back if policy is not None else None,
        "task_id": item.task_id,
        "turn": item.turn,
    }


__all__ = ["FALLBACK_ON", "FallbackPolicy", "FallbackSettings", "answer_fields", "request_options", "restart"]
