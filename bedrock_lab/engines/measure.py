"""Turning one request's clock readings into a :class:`RequestRecord` (shared by both engines)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab.engines.formats import ResponseParser
from bedrock_lab.engines.health import clean_message
from bedrock_lab.records import RequestRecord

GROUND_TRUTH_HEADERS = {
    "x-bedrock-lab-queue-ms": "server_queue_s",
    "x-bedrock-lab-ttft-ms": "server_ttft_s",
    "x-bedrock-lab-decode-ms": "server_decode_s",
}


def _q(sorted_vals: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def tpot(ttft_s: float | None, e2e_s: float | None, output_tokens: int | None) -> float | None:
    """Time per output token from the service's own token count: (e2e - TTFT) / (output tokens - 1).

    The inter-chunk gaps (``itl_*``) are not per token: Bedrock (and the emulator) send several tokens a chunk.
    """
    if ttft_s is None or e2e_s is None or output_tokens is None or output_tokens < 2:
        return None
    return max(0.0, e2e_s - ttft_s) / (output_tokens - 1)


@dataclass
class Measurement:
    """Clock readings of one request. ``t0`` is the monotonic reference latencies are measured from
    (the intended start in open loop, the actual send otherwise)."""

    t0: float
    send_mono: float
    start_epoch: float
    intended_epoch: float | None = None
    chunk_mono: list[float] = field(default_factory=list)
    end_mono: float | None = None
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error_kind: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retries: int = 0

    @classmethod
    def begin(cls, intended_mono: float | None = None, mono_to_epoch: float | None = None) -> Measurement:
        now_mono, now_epoch = time.monotonic(), time.time()
        if intended_mono is None:
            return cls(t0=now_mono, send_mono=now_mono, start_epoch=now_epoch)
        offset = mono_to_epoch if mono_to_epoch is not None else now_epoch - now_mono
        return cls(t0=intended_mono, send_mono=now_mono, start_epoch=now_epoch, intended_epoch=intended_mono + offset)

    def chunk(self) -> None:
        self.chunk_mono.append(time.monotonic())

    def finish(self) -> None:
        self.end_mono = time.monotonic()

    def fail(self, kind: str, code: str | None, status: int | None = None, message: object = None) -> None:
        """Record the first failure of this request (later ones are consequences of it)."""
        if self.error_kind is None:
            self.error_kind, self.error_code, self.error_message = kind, code, clean_message(message)
        if status is not None:
            self.http_status = status

    def to_record(self, parser: ResponseParser | None, *, streaming: bool, keep_chunk_times: bool,
                  **identity: Any) -> RequestRecord:  # fmt: skip
        chunks = self.chunk_mono
        ttft = (chunks[0] - self.t0) if (streaming and chunks) else None
        e2e = (self.end_mono - self.t0) if self.end_mono is not None else None
        gaps = sorted(b - a for a, b in zip(chunks, chunks[1:], strict=False))
        h = {k.lower(): v for k, v in self.headers.items()}
        server: dict[str, Any] = {}
        for name, col in GROUND_TRUTH_HEADERS.items():
            try:
                server[col] = float(h[name]) / 1000.0 if name in h else None
            except ValueError:
                server[col] = None
        rec = RequestRecord(
            intended_start=self.intended_epoch,
            start=self.start_epoch,
            schedule_lag_s=(self.send_mono - self.t0) if self.intended_epoch is not None else None,
            ttft_s=ttft,
            e2e_s=e2e,
            itl_mean_s=(sum(gaps) / len(gaps)) if streaming and gaps else None,
            itl_p50_s=_q(gaps, 0.5) if streaming and gaps else None,
            itl_p95_s=_q(gaps, 0.95) if streaming and gaps else None,
            itl_max_s=gaps[-1] if streaming and gaps else None,
            n_chunks=len(chunks) if streaming else None,
            tpot_s=tpot(ttft, e2e, parser.output_tokens if parser else None) if streaming else None,
            chunk_times=[c - self.send_mono for c in chunks] if keep_chunk_times and streaming else None,
            input_tokens=parser.input_tokens if parser else None,
            output_tokens=parser.output_tokens if parser else None,
            status="error" if self.error_kind else "ok",
            error_kind=self.error_kind,
            error_code=self.error_code,
            error_message=self.error_message,
            http_status=self.http_status,
            retries=self.retries,
            server_request_id=h.get("x-amzn-requestid"),
            server_latency_s=parser.latency_s if parser else None,
            tier_served=parser.tier_served if parser else None,
            **server,
            **identity,
        )
        return rec
