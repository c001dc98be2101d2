"""Service level objectives and goodput.

Goodput is the share (and rate) of *all* requests sent that succeeded **and** met every SLO::

    good_i  = ok_i  and  ttft_i <= T_ttft  and  e2e_i <= T_e2e  and  itl_i <= T_itl  and  tps_i >= T_tps
    goodput = sum(good) / n_requests          (Wilson CI, see :mod:`bedrock_lab.stats.rates`)
    goodput_rps = completions per second of the good requests (rates.completion_rate)

Failures count as not good, so throttling lowers goodput instead of silently disappearing. A threshold
left as None is not checked; a metric missing for a request (no TTFT for a non-streaming call, no
inter-token gap for a single-chunk answer) does not fail that criterion. Following DistServe (Zhong et
al. 2024, "DistServe: Disaggregating Prefill and Decoding for Goodput-optimized LLM Serving").

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"cell_id": "c", "status": ["ok", "ok", "error"], "ttft_s": [0.5, 2.0, None],
...                    "e2e_s": [3.0, 4.0, None], "start": [0.0, 1.0, 2.0]})
>>> round(float(goodput(df, SLO(ttft_s=1.0, e2e_s=10.0))["goodput"].iloc[0]), 3)
0.333
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import config_of, default_by, groups, metric_values, ok_mask
from bedrock_lab.stats.rates import completion_rate, wilson_interval


@dataclass(frozen=True, slots=True)
class SLO:
    """Per-request thresholds (seconds; tokens/s is a minimum) and the goodput a configuration must reach."""

    ttft_s: float | None = 1.0
    e2e_s: float | None = 10.0
    itl_s: float | None = None  #: maximum mean gap between content chunks (``itl_mean_s``; a chunk holds several tokens)
    tpot_s: float | None = None  #: maximum time per output token (``tpot_s``, from the service's token counts)
    tokens_per_s: float | None = None  #: minimum output tokens per second
    goodput_target: float = 0.95  #: share of requests that must be good for a configuration to "meet the SLOs"

    def __post_init__(self) -> None:
        for name in ("ttft_s", "e2e_s", "itl_s", "tpot_s", "tokens_per_s"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and v > 0):
                raise StatsError(f"SLO {name} must be a positive number or None, got {v!r}")
        if not 0 < self.goodput_target <= 1:
            raise StatsError(f"SLO goodput_target must be in (0, 1], got {self.goodput_target}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object] | None) -> SLO:
        """Build from a params dict such as ``{"ttft_s": 1, "e2e_s": 10}`` (unknown keys are an error)."""
        if data is None:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise StatsError(f"unknown SLO key(s) {sorted(unknown)} (allowed: {sorted(known)})")
        return cls(**data)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT <= {self.ttft_s:g} s")
        if self.e2e_s is not None:
            parts.append(f"end-to-end <= {self.e2e_s:g} s")
        if self.itl_s is not None:
            parts.append(f"inter-chunk gap <= {self.itl_s:g} s")
        if self.tpot_s is not None:
            parts.append(f"time per output token <= {self.tpot_s * 1000:g} ms")
        if self.tokens_per_s is not None:
            parts.append(f"output >= {self.tokens_per_s:g} tokens/s")
        return " and ".join(parts) or "no thresholds"


def meets_slo(df: pd.DataFrame, slo: SLO) -> pd.Series:
    """Boolean Series: the request succeeded and met every SLO threshold that applies to it."""
    good = ok_mask(df).to_numpy(bool).copy()
    checks = (("ttft_s", slo.ttft_s, False), ("e2e_s", slo.e2e_s, False),
              ("itl_mean_s", slo.itl_s, False), ("tpot_s", slo.tpot_s, False),
              ("tokens_per_s", slo.tokens_per_s, True))
    for metric, threshold, is_min in checks:
        if threshold is None:
            continue
        if metric not in df.columns and metric not in ("tokens_per_s", "tpot_s"):
            continue
        v = metric_values(df, metric).to_numpy(float)
        with np.errstate(invalid="ignore"):
            fail = (v < threshold) if is_min else (v > threshold)
        good &= ~np.nan_to_num(fail, nan=False).astype(bool)
    return pd.Series(good, index=df.index, name="good")


def goodput(
    df: pd.DataFrame, slo: SLO | None = None, by: Sequence[str] | None = None, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Per group: ``n_requests``, ``n_good``, ``goodput`` (+``_lo``/``_hi``), ``goodput_rps``,
    ``meets_target`` (point estimate >= target) and ``meets_target_confident`` (lower bound >= target)."""
    slo = slo or SLO()
    by = list(by) if by else default_by(df)
    good_all = meets_slo(df, slo)
    rows = [{**keys, **config_of(sub, exclude=by),
             **goodput_row(sub, good_all.loc[sub.index], slo, confidence)} for keys, sub in groups(df, by)]
    return pd.DataFrame(rows)


def goodput_row(sub: pd.DataFrame, good: pd.Series, slo: SLO, confidence: float = 0.95) -> dict[str, object]:
    """The goodput columns of :func:`goodput` for one group, given its :func:`meets_slo` mask."""
    n = len(sub)
    k = int(good.sum())
    lo, hi = wilson_interval(k, n, confidence)
    return {"n_requests": n, "n_good": k, "goodput": k / n if n else float("nan"), "goodput_lo": lo,
            "goodput_hi": hi, "goodput_rps": completion_rate(sub, good),
            "meets_target": bool(n and k / n >= slo.goodput_target),
            "meets_target_confident": bool(n and lo >= slo.goodput_target)}
