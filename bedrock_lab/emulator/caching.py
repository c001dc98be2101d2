"""Prompt caching: which prefix of a request is read from the cache and which is written to it.

A cache entry is keyed by model + the hash of the prompt prefix before a cache point (tools, then system, then
messages: the order Bedrock builds its prefix in). Only points whose prefix reaches the model's minimum tokens
per checkpoint count (shorter ones are ignored, as on AWS). The longest live entry among a request's points is
read (``cacheReadInputTokens``); the tokens from there to its longest point are written
(``cacheWriteInputTokens``); every point from the read one on gets its TTL (re)started: reads refresh an entry,
as Bedrock's cache does. TTLs (5 min default, ``ttl: 1h`` where the model allows) are multiplied by the
emulator's ``time_scale`` like every other duration. A read skips the prefill of the cached tokens in the TTFT
model (``load.plan(cached_tokens=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bedrock_lab.catalog import CACHE_TTLS, CacheProfile
from bedrock_lab.emulator.providers import CachePoint

_PURGE_AT = 50_000  #: entries before expired ones are swept


@dataclass
class CacheUse:
    """What one request got from the cache."""

    read: int = 0  #: prompt tokens read from the cache
    write: int = 0  #: prompt tokens written to it
    ttl: str = "5m"  #: TTL of the written entry


class PromptCache:
    """The prefix cache of one emulator (every model; entries expire on the loop clock)."""

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def use(self, model_id: str, points: list[CachePoint], cache: CacheProfile, now: float,
            time_scale: float) -> CacheUse:  # fmt: skip
        """Look the request's points up at ``now`` (seconds, loop time), then store / refresh them."""
        live = [p for p in points if p.tokens >= cache.min_tokens]
        if not live:
            return CacheUse()
        read = 0
        for p in live:
            if self._expiry.get((model_id, p.key), -1.0) > now:
                read = max(read, p.tokens)
        longest = max(live, key=lambda p: p.tokens)
        for p in live:
            if p.tokens >= read:
                self._expiry[(model_id, p.key)] = now + CACHE_TTLS[p.ttl] * time_scale
        if len(self._expiry) > _PURGE_AT:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
        return CacheUse(read, max(0, longest.tokens - read), longest.ttl)


__all__ = ["CacheUse", "PromptCache"]
