"""Token counting and generated text, consistent with each other and across every body format.

The tokenizer is the package's local token estimate, :func:`bedrock_lab.tokens.count_tokens` (one source of truth:
the plan counts a sweep's prompts with the same function, so its input tokens match what the emulator bills).
Generated text uses only words of at most 4 letters separated by single spaces, so every generated word is
exactly one token: a chunk of ``k`` words is ``k`` tokens, and the usage numbers match the text exactly.
"""

from __future__ import annotations

import random

from bedrock_lab.tokens import count_tokens

_SOURCE = (
    "the lab runs load on a cold and warm path so we can see how each tier acts when the "
    "pool is full or near idle time to first byte grows with the size of the input and each "
    "new word adds one more step we keep the rate even yet add some noise per gap which is "
    "what real fleets show at peak and off peak it is a toy but it is fair"
)
_WORDS = [w for w in _SOURCE.split(" ") if len(w) <= 4]  # one token each
_VOCAB_SIZE = 4096
_rng = random.Random(20240307)
#: fixed pseudo-random word sequence; a request reads a window of it starting at its own offset
VOCAB: tuple[str, ...] = tuple(_rng.choice(_WORDS) for _ in range(_VOCAB_SIZE))
_DOUBLED = VOCAB + VOCAB


def generated_words(offset: int, start: int, n: int) -> str:
    """Words ``start .. start+n`` of a generated answer whose stream begins at ``offset``; a leading space
    separates it from the previous chunk (none for the first)."""
    if n <= 0:
        return ""
    out: list[str] = []
    i = (offset + start) % _VOCAB_SIZE
    while n > 0:
        take = min(n, _VOCAB_SIZE)
        out.append(" ".join(_DOUBLED[i:i + take]))
        n -= take
        i = (i + take) % _VOCAB_SIZE
    text = " ".join(out)
    return text if start == 0 else " " + text


def generated_text(offset: int, n: int) -> str:
    """The whole answer of ``n`` tokens."""
    return generated_words(offset, 0, n)


__all__ = ["VOCAB", "count_tokens", "generated_text", "generated_words"]
