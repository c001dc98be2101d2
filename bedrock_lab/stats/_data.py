"""Shared helpers: metric columns derived from records, grouping keys, input validation.

Every public function of :mod:`bedrock_lab.stats` takes the records DataFrame of
:func:`bedrock_lab.records.load_records` (one row per request) or plain arrays, and validates
with :class:`~bedrock_lab.errors.StatsError` instead of ``assert``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError

#: the four per-request metrics every summary reports (seconds, seconds, seconds, tokens per second)
METRICS: tuple[str, ...] = ("ttft_s", "itl_mean_s", "e2e_s", "tokens_per_s")
#: metrics where a larger value is better (all others: smaller is better)
HIGHER_IS_BETTER: frozenset[str] = frozenset({"tokens_per_s"})
#: columns that identify a configuration of a sweep
CONFIG_COLUMNS: tuple[str, ...] = ("model_id", "tier_requested", "prompt_size", "users")


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "records") -> None:
    """Raise :class:`StatsError` naming every missing column."""
    if not isinstance(df, pd.DataFrame):
        raise StatsError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StatsError(f"{what} lack column(s) {missing}; have {list(df.columns)}")


def as_float_array(x: object, name: str = "sample", *, min_n: int = 1, positive: bool = False) -> np.ndarray:
    """1-D float array without NaN/inf; raises when fewer than ``min_n`` values remain."""
    try:
        arr = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise StatsError(f"{name} is not numeric: {exc}") from exc
    arr = arr[np.isfinite(arr)]
    if positive:
        arr = arr[arr > 0]
    if arr.size < min_n:
        raise StatsError(f"{name} has {arr.size} usable value(s); at least {min_n} needed")
    return arr


def tokens_per_second(df: pd.DataFrame) -> pd.Series:
    """Output tokens per second of decoding for each request.

    ``output_tokens / (e2e_s - ttft_s)`` for streaming requests (decode time only), and
    ``output_tokens / e2e_s`` when ``ttft_s`` is missing (non-streaming). Missing tokens, and a
    non-positive denominator, give NaN rather than inf.
    """
    tokens = pd.to_numeric(df.get("output_tokens"), errors="coerce").astype(float)
    e2e = pd.to_numeric(df.get("e2e_s"), errors="coerce").astype(float)
    ttft = pd.to_numeric(df.get("ttft_s"), errors="coerce").astype(float) if "ttft_s" in df else e2e * np.nan
    denom = (e2e - ttft).where(ttft.notna(), e2e)
    out = tokens / denom.where(denom > 0)
    return out.astype(float)


def metric_values(df: pd.DataFrame, metric: str) -> pd.Series:
    """The float series of a metric (a record column, or the derived ``tokens_per_s``)."""
    if metric == "tpot_s" and "tpot_s" not in df.columns:
        return time_per_output_token(df)
    if metric == "tokens_per_s":
        if "tokens_per_s" in df.columns:
            return pd.to_numeric(df["tokens_per_s"], errors="coerce").astype(float)
        require_columns(df, ["output_tokens", "e2e_s"])
        return tokens_per_second(df)
    require_columns(df, [metric])
    return pd.to_numeric(df[metric], errors="coerce").astype(float)


def time_per_output_token(df: pd.DataFrame) -> pd.Series:
    """``tpot_s`` of each request: the record's column, else (e2e_s - ttft_s) / (output_tokens - 1) (records
    written before the column existed); NaN for non-streaming requests and answers of fewer than 2 tokens."""
    if "tpot_s" in df.columns and df["tpot_s"].notna().any():
        return pd.to_numeric(df["tpot_s"], errors="coerce").astype(float)
    if not {"ttft_s", "e2e_s", "output_tokens"} <= set(df.columns):
        return pd.Series(np.nan, index=df.index, dtype=float)
    tokens = pd.to_numeric(df["output_tokens"], errors="coerce").astype(float)
    decode = pd.to_numeric(df["e2e_s"], errors="coerce") - pd.to_numeric(df["ttft_s"], errors="coerce")
    return (decode.clip(lower=0) / (tokens - 1).where(tokens >= 2)).astype(float)


def with_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the records with ``tokens_per_s`` and ``tpot_s`` added (when they can be computed)."""
    out = df.copy()
    if "tokens_per_s" not in out.columns and {"output_tokens", "e2e_s"} <= set(out.columns):
        out["tokens_per_s"] = tokens_per_second(out)
    out["tpot_s"] = time_per_output_token(out)
    return out


def ok_mask(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of successful requests (``status == "ok"``; all rows if there is no status)."""
    if "status" not in df.columns:
        return pd.Series(True, index=df.index)
    return pd.Series(equals(df["status"], "ok"), index=df.index)


def equals(col: pd.Series, value: str) -> np.ndarray:
    """Boolean array ``col == value`` with missing values False, for any string-like dtype (no conversion)."""
    return np.asarray(col.eq(value).fillna(False), dtype=bool)


def error_kind_is(df: pd.DataFrame, kind: str) -> np.ndarray:
    """Boolean array: the request failed with this ``error_kind`` (all False without the column)."""
    if "error_kind" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return equals(df["error_kind"], kind) & ~ok_mask(df).to_numpy()


def default_by(df: pd.DataFrame) -> list[str]:
    """Group by sweep cell when there is one, otherwise by the configuration columns present."""
    if "cell_id" in df.columns and (df["cell_id"].notna() & df["cell_id"].ne("").fillna(False)).any():
        return ["cell_id"]
    cols = [c for c in CONFIG_COLUMNS if c in df.columns]
    if not cols:
        raise StatsError("records have neither cell_id nor configuration columns to group by")
    return cols


def groups(df: pd.DataFrame, by: Sequence[str]) -> Iterable[tuple[dict[str, object], pd.DataFrame]]:
    """Yield ``(keys, sub-frame)`` per group, keeping missing keys (None tiers) as their own group."""
    by = list(by)
    require_columns(df, by)
    if df.empty:
        return
    for key, sub in df.groupby(by, dropna=False, sort=True, observed=True):
        values = key if isinstance(key, tuple) else (key,)
        yield {k: (None if _isna(v) else v) for k, v in zip(by, values, strict=True)}, sub


def config_of(sub: pd.DataFrame, exclude: Sequence[str] = ()) -> dict[str, object]:
    """The configuration columns of a group (first value; None when missing)."""
    out: dict[str, object] = {}
    for c in (*CONFIG_COLUMNS, "rate_rps", "api"):
        if c in sub.columns and c not in exclude:
            v = sub[c].iloc[0] if len(sub) else None
            out[c] = None if _isna(v) else v
    return out


def _isna(v: object) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def subsample(x: np.ndarray, cap: int | None, rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """At most ``cap`` values drawn without replacement (the whole array when it is small enough)."""
    if cap is None or x.size <= cap:
        return x
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.choice(x, size=cap, replace=False)
