"""The local token estimate: one approximate tokenizer shared by the plan, the preflight and the emulator.

No model's tokenizer is loaded (each provider has its own, and most are not public), so a token here is a run of
up to 4 word characters or one punctuation character, and whitespace is free. English prose comes out near the
usual "1 token ~ 4 characters". It is the emulator's ground truth, so against the emulator the plan's input
tokens are exact; against AWS it is an approximation, and the sweep runner and preflight ask the target's
CountTokens operation instead where it answers (see docs/sweeps.md).

Counts are additive over texts separated by whitespace, so a request's input is the sum over its texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN_RE = re.compile(r"\w{1,4}|[^\w\s]")


def count_tokens(text: str) -> int:
    """Approximate token count of ``text`` (see the module docstring)."""
    return len(_TOKEN_RE.findall(text)) if text else 0


def token_starts(text: str) -> list[int]:
    """Where each token of ``text`` starts (character offsets): a stream cuts a text between tokens, so its
    chunks carry exactly the tokens it bills."""
    return [m.start() for m in _TOKEN_RE.finditer(text)] if text else []


def count_texts(texts: Iterable[str]) -> int:
    """Tokens of several texts (a request's system prompt and message texts), with no per-message overhead."""
    return sum(count_tokens(t) for t in texts)


def count_request(system: str | None, turns: Iterable[tuple[str, str]]) -> int:
    """Input tokens of one Converse request: its system prompt plus every message's text, as the emulator counts
    them (roles and JSON framing are free; InvokeModel bodies of flat-prompt formats add role labels)."""
    return count_tokens(system or "") + count_texts(text for _, text in turns)


__all__ = ["count_request", "count_texts", "count_tokens", "token_starts"]
