"""Calibration: fit the emulator's latency profile to measured records, so the emulator replays *that* service.

The fit uses the emulator's own parametrisation (``bedrock_lab.emulator.load.plan``), per model:

* TTFT (service part: queue wait removed) = (``ttft_ms`` + ``prefill_ms_per_1k`` x input/1000) x
  lognormal(0, ``ttft_sigma``): least squares on log TTFT, which is the lognormal maximum likelihood. The
  prefill slope needs at least two clearly different prompt sizes; otherwise it is kept from the catalog.
* Decode: each gap after the first chunk is ``k / tps x lognormal(0, jitter)``, so a request's decode time
  has mean ``T x e^(j^2/2) / tps`` and variance ``S x (e^(j^2) - 1) x (e^(j^2/2) / tps)^2`` (T: tokens after the
  first chunk, S: sum of squared chunk sizes after the first). Method of moments over the requests of the
  lowest load (the contention slow-down grows with load) gives ``tps`` per tier (``tier_speed`` relative to
  default) and ``jitter``.
* ``chunk_tokens``: the k for which ``n_chunks == ceil(output / k)`` holds most often.
* Output length: lognormal median/sigma by censored maximum likelihood (answers cut at maxTokens are
  right-censored at maxTokens; maxTokens comes from the sweep's plan, else a mass point at the maximum).
* Faults: the share of each modelled error among requests of the lowest load.

Queueing: records with ``server_queue_s`` (the emulator's ground truth) have it subtracted and, with
``server_ttft_s`` / ``server_decode_s``, are fitted on the emulator's intended schedule. The emulator's own time
before admission (body read, validation: ``pre`` minus the queue, real time that ``time_scale`` does not shrink)
stays in; its timing log (``timing_log=``) has ``pre_ms`` per request, and with it the fit uses exactly the sampled
schedule. Records without ground truth (AWS)
are fitted on the lowest-load cells of each model only, where queueing is least. The emulator's ``time_scale``
(read from the sweep file, or given) divides every time, so the overlay is in real milliseconds.

Not fitted (kept from the catalog, named in the notes): ``capacity``, ``contention``, the tokens-per-minute
quota and stalls. The report's replay samples the fitted profile with ``load.plan`` itself.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import optimize, stats

from bedrock_lab._files import atomic_path
from bedrock_lab.catalog import TIERS, Catalog, FaultProfile, apply_overlay, load_catalog, split_model_id
from bedrock_lab.emulator.load import draw, plan
from bedrock_lab.errors import StatsError
from bedrock_lab.store import read_sweep

#: AWS error code (as engines record it) -> the emulator fault that produces it
FAULT_CODES = {
    "InternalServerException": "error_500",
    "ServiceUnavailableException": "error_503",
    "ModelTimeoutException": "error_408",
    "ModelNotReadyException": "model_not_ready",
    "throttlingException": "stream_throttle",
    "modelStreamErrorException": "stream_error",
    "ModelStreamErrorException": "stream_error",
}
#: quantiles the fit report compares
QUANTILES = (0.5, 0.9, 0.95, 0.99)
#: metrics the fit report compares, with their unit
METRICS = {"ttft_ms": "ms", "tpot_ms": "ms", "decode_ms": "ms", "output_tokens": "tokens"}
_MIN_RECORDS = 30


@dataclass
class ModelFit:
    """The fitted knobs of one model (only what the data identifies) and what could not be fitted."""

    model_id: str
    n: int  #: successful records used
    latency: dict[str, float] = field(default_factory=dict)
    tier_speed: dict[str, float] = field(default_factory=dict)
    faults: dict[str, float] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)  #: successful records per tier
    chunk_match: float = math.nan  #: share of records whose n_chunks == ceil(output / chunk_tokens)
    notes: list[str] = field(default_factory=list)

    def overlay_entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"latency": {k: _round(v) for k, v in self.latency.items()}}
        if self.tier_speed:
            out["tier_speed"] = {k: round(v, 4) for k, v in self.tier_speed.items()}
        if self.faults:
            out["faults"] = {k: round(v, 6) for k, v in self.faults.items()}
        return out


@dataclass
class Calibration:
    """Fits per model, the replay comparison and the error/throttle rates by load."""

    fits: dict[str, ModelFit]
    source: str
    time_scale: float
    comparison: pd.DataFrame  #: model, tier, metric, unit, n, measured/replayed quantiles, ks, wasserstein_rel
    rates: pd.DataFrame  #: model, tier, load, n, error_rate, throttle_rate
    flags: list[str] = field(default_factory=list)  #: where the model cannot reproduce the data
    qq: pd.DataFrame = field(default_factory=pd.DataFrame)  #: model, tier, metric, q, measured, replayed (charts)

    def overlay(self) -> dict[str, Any]:
        """The catalog overlay (``bedrock-lab emulator --overlay``): only the fitted fields per model."""
        return {"version": 1,
                "meta": {"kind": "calibration", "fitted_on": self.source, "time_scale": self.time_scale,
                         "records": {m: f.n for m, f in self.fits.items()},
                         "not_fitted": "capacity, contention, tpm_quota, stalls (kept from the catalog)"},
                "models": {m: f.overlay_entry() for m, f in self.fits.items()}}  # fmt: skip

    def write_overlay(self, path: str | os.PathLike[str]) -> Path:
        text = "# bedrock-lab catalog overlay fitted by `bedrock-lab calibrate` (docs/emulator.md, Calibration)\n"
        text += yaml.safe_dump(self.overlay(), sort_keys=False)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
        return Path(path)


def _round(v: float) -> float | int:
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1:
        return int(v)
    return float(f"{v:.5g}")


# -- reading -------------------------------------------------------------------------------------------


def _sweep_time_scale(cfg: dict[str, Any] | None) -> float | None:
    target = (cfg or {}).get("target") or {}
    if target.get("kind", "emulator") != "emulator":
        return None
    ts = (target.get("emulator_overrides") or {}).get("time_scale")
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None


def prepare(df: pd.DataFrame, *, time_scale: float = 1.0,
            max_tokens: dict[str, int] | int | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per request with the service-side quantities the fit uses (real seconds, queue removed).

    Columns added: ``base_model``, ``tier``, ``load``, ``ok``, ``ttft_svc_s``, ``decode_svc_s``, ``cap``.
    ``max_tokens``: per cell id (a sweep's plan) or one value for all; else detected from a mass point.
    """
    if df.empty:
        raise StatsError("no records to calibrate from")
    out = df.copy()
    out["base_model"] = [split_model_id(str(m))[1] for m in out["model_id"]]
    served = out["tier_served"] if "tier_served" in out else pd.Series(None, index=out.index)
    out["tier"] = served.fillna(out["tier_requested"]).fillna("default").astype(str)
    load = out["users"].astype(float) if "users" in out else pd.Series(np.nan, index=out.index)
    if "rate_rps" in out:
        load = load.fillna(out["rate_rps"].astype(float))
    out["load"] = load.fillna(0.0)
    out["ok"] = out["status"] == "ok"
    queue = pd.to_numeric(out.get("server_queue_s"), errors="coerce").fillna(0.0)
    if "server_pre_s" in out:  # the emulator's timing log: all of its time before the schedule, queue included
        queue = pd.to_numeric(out["server_pre_s"], errors="coerce").fillna(queue)
    sttft = pd.to_numeric(out.get("server_ttft_s"), errors="coerce")
    cttft = pd.to_numeric(out["ttft_s"], errors="coerce")
    ttft = sttft.where(sttft.notna(), cttft) - queue
    out["ttft_svc_s"] = ttft / time_scale
    sdec = pd.to_numeric(out.get("server_decode_s"), errors="coerce")
    cdec = pd.to_numeric(out["e2e_s"], errors="coerce") - cttft
    out["decode_svc_s"] = sdec.where(sdec.notna(), cdec) / time_scale
    if isinstance(max_tokens, int):
        out["cap"] = float(max_tokens)
    elif isinstance(max_tokens, dict) and max_tokens:
        out["cap"] = out["cell_id"].map(lambda c: max_tokens.get(str(c))).astype(float)
    else:
        out["cap"] = np.nan
    for _, idx in out[out["ok"]].groupby("base_model").groups.items():
        if out.loc[idx, "cap"].isna().all():
            out.loc[idx, "cap"] = _detect_cap(out.loc[idx, "output_tokens"])
    return out


def _detect_cap(out_tokens: pd.Series) -> float:
    """maxTokens from a mass point at the largest output (answers cut there), else NaN (no censoring seen)."""
    y = pd.to_numeric(out_tokens, errors="coerce").dropna()
    if y.empty:
        return math.nan
    top = y.max()
    hits = int((y == top).sum())
    return float(top) if hits >= 3 and hits >= 0.002 * len(y) else math.nan


def read_timing_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``server_request_id`` -> ``server_pre_s`` (arrival to admission) from an emulator timing log (JSON lines)."""
    import json

    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: the rest is still good
                if isinstance(d, dict) and d.get("pre_ms") is not None and d.get("request_id"):
                    rows.append((str(d["request_id"]), float(d["pre_ms"]) / 1000.0))
    except OSError as exc:
        raise StatsError(f"cannot read the timing log {path}: {exc.strerror}") from exc
    return pd.DataFrame(rows, columns=["server_request_id", "server_pre_s"]).drop_duplicates("server_request_id")


def load_measured(path: str | os.PathLike[str], *, time_scale: float | None = None,
                  max_tokens: int | None = None,
                  timing_log: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, float, str]:  # fmt: skip
    """A sweep folder (valid cells, through ``store.read_sweep``) or a records folder, prepared for the fit
    (with the emulator's timing log, when given, joined on the request id). Returns the frame, the time scale
    used and a description of the source."""
    sw = read_sweep(path)
    ts = time_scale if time_scale is not None else (_sweep_time_scale(sw.sweep_config) or 1.0)
    if not ts > 0:
        raise StatsError(f"time_scale must be > 0, got {ts}")
    caps: dict[str, int] | int | None = max_tokens
    if caps is None and sw.plan:
        caps = {str(c["cell_id"]): int(c["max_tokens"]) for c in sw.plan.get("cells", [])
                if isinstance(c, dict) and isinstance(c.get("max_tokens"), int)}  # fmt: skip
    records = sw.records
    if timing_log is not None:
        records = records.merge(read_timing_log(timing_log), on="server_request_id", how="left")
    return prepare(records, time_scale=ts, max_tokens=caps), ts, str(sw.root)


# -- the fits ------------------------------------------------------------------------------------------


def fit_ttft(input_tokens: np.ndarray, ttft_ms: np.ndarray, *,
             prefill_fixed: float | None = None) -> tuple[float, float, float]:  # fmt: skip
    """(ttft_ms, prefill_ms_per_1k, sigma) of median = a + b x input/1000 with lognormal spread.

    ``prefill_fixed``: keep b (when the prompts do not span enough sizes to identify it)."""
    x = np.asarray(input_tokens, float) / 1000.0
    y = np.log(np.asarray(ttft_ms, float))
    if prefill_fixed is not None:
        b = float(prefill_fixed)
        res = optimize.minimize_scalar(lambda la: float(np.sum((y - np.log(np.exp(la) + b * x)) ** 2)),
                                       bounds=(-10, 15), method="bounded")  # fmt: skip
        a = float(np.exp(res.x))
    else:
        med = float(np.exp(np.median(y)))
        sol = optimize.least_squares(lambda p: y - np.log(np.exp(p[0]) + np.exp(p[1]) * x),
                                     x0=[math.log(med), math.log(max(med * 0.05, 1e-3))])  # fmt: skip
        a, b = float(np.exp(sol.x[0])), float(np.exp(sol.x[1]))
    r = y - np.log(a + b * x)
    sigma = float(np.sqrt(np.mean(r**2)))
    return a, b, sigma


def _chunk_sizes(out: int, k: int) -> list[int]:
    return [min(k, out - i) for i in range(0, out, k)]


def fit_chunks(out_tokens: np.ndarray, n_chunks: np.ndarray, k_max: int = 64) -> tuple[int, float]:
    """(chunk_tokens, share of records it reproduces exactly)."""
    o = np.asarray(out_tokens, int)
    n = np.asarray(n_chunks, int)
    best = (1, -1.0)
    for k in range(1, k_max + 1):
        share = float(np.mean(-(-o // k) == n))
        if share > best[1]:
            best = (k, share)
    return best


def fit_decode(decode_s: np.ndarray, out_tokens: np.ndarray, k: int) -> tuple[float, float]:
    """(tokens_per_s, jitter) by the method of moments on per-request decode times (module docstring)."""
    d = np.asarray(decode_s, float)
    o = np.asarray(out_tokens, int)
    t = np.array([sum(_chunk_sizes(int(x), k)[1:]) for x in o], float)
    s = np.array([sum(c * c for c in _chunk_sizes(int(x), k)[1:]) for x in o], float)
    keep = (t > 0) & np.isfinite(d) & (d > 0)
    d, t, s = d[keep], t[keep], s[keep]
    if len(d) < 2:
        raise StatsError("too few streamed answers with more than one chunk to fit the decode speed")
    c = float(d.sum() / t.sum())  # e^(j^2/2) / tps, seconds per token
    v = float(np.mean((d - t * c) ** 2 / (s * c * c)))
    jitter = math.sqrt(math.log1p(max(v, 0.0)))
    return math.exp(jitter**2 / 2) / c, jitter


def fit_output(out_tokens: np.ndarray, cap: np.ndarray) -> tuple[float, float, float]:
    """(median, sigma, censored share) of a lognormal answer length, right-censored at ``cap`` (NaN: none)."""
    y = np.asarray(out_tokens, float)
    c = np.asarray(cap, float)
    cens = np.isfinite(c) & (y >= c)
    ly = np.log(np.maximum(y, 1.0))
    if cens.all():
        return 0.0, 0.0, 1.0
    mu0, s0 = float(np.mean(ly[~cens])), max(float(np.std(ly[~cens])), 0.05)

    def nll(p: np.ndarray) -> float:
        mu, sg = p[0], math.exp(p[1])
        ll = stats.norm.logpdf(ly[~cens], mu, sg).sum()
        if cens.any():
            ll += stats.norm.logsf(np.log(c[cens]), mu, sg).sum()
        return float(-ll)

    res = optimize.minimize(nll, x0=[mu0, math.log(s0)], method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})  # fmt: skip
    return float(math.exp(res.x[0])), float(math.exp(res.x[1])), float(cens.mean())


def fit_faults(df: pd.DataFrame) -> dict[str, float]:
    """Fault rates among all requests (successes and errors), undoing the emulator's first-hit order."""
    codes = df["error_code"].map(FAULT_CODES)
    drops = (df["error_kind"] == "connection") & df["error_code"].isna()
    n = len(df)
    out: dict[str, float] = {}
    left = n
    for kind in ("error_500", "error_503", "error_408", "model_not_ready"):  # load.PRE_FAULTS order
        hits = int((codes == kind).sum())
        if hits and left:
            out[kind] = hits / left
        left -= hits
    for kind in ("stream_throttle", "stream_error"):
        hits = int((codes == kind).sum())
        if hits:
            out[kind] = hits / max(1, left)
    if drops.any():
        out["drop"] = int(drops.sum()) / max(1, left)
    return out


def bimodality(x: np.ndarray) -> float:
    """Sarle's bimodality coefficient (> 0.555, the uniform's value, suggests two modes)."""
    x = np.asarray(x, float)
    n = len(x)
    if n < 4:
        return math.nan
    g = float(stats.skew(x, bias=False))
    k = float(stats.kurtosis(x, bias=False))
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


# -- calibration ---------------------------------------------------------------------------------------


def _low_load(g: pd.DataFrame) -> pd.DataFrame:
    return g[g["load"] == g["load"].min()]


def fit_model(g: pd.DataFrame, catalog: Catalog) -> ModelFit:
    """Fit one model's records (all tiers) from :func:`prepare`."""
    base = catalog.resolve(str(g["base_model"].iloc[0]))
    fit = ModelFit(base.model_id, int(g["ok"].sum()))
    has_queue = g["server_queue_s"].notna().any() if "server_queue_s" in g else False
    low = _low_load(g)
    if not has_queue and g["load"].nunique() > 1:
        fit.notes.append(f"no queue ground truth (AWS): fitted on the lowest load only ({low['load'].min():g})")
    ok = (g if has_queue else low)
    ok = ok[ok["ok"]]
    fit.tiers = {str(t): int(n) for t, n in ok["tier"].value_counts().items()}
    if len(ok) < _MIN_RECORDS:
        raise StatsError(f"{base.model_id}: only {len(ok)} successful records; calibration needs {_MIN_RECORDS}+")
    lat: dict[str, float] = {}
    # TTFT
    tt = ok[ok["ttft_svc_s"].notna() & (ok["ttft_svc_s"] > 0) & ok["input_tokens"].notna()]
    if len(tt) >= _MIN_RECORDS:
        x = tt["input_tokens"].to_numpy(float)
        spread = np.quantile(x, 0.9) - np.quantile(x, 0.1)
        fixed = None if spread >= 100 else base.latency.prefill_ms_per_1k
        a, b, sg = fit_ttft(x, tt["ttft_svc_s"].to_numpy(float) * 1000.0, prefill_fixed=fixed)
        lat["ttft_ms"], lat["ttft_sigma"] = a, sg
        if fixed is None:
            lat["prefill_ms_per_1k"] = b
        else:
            fit.notes.append("prefill_ms_per_1k kept from the catalog: the prompts span fewer than 100 tokens")
        resid = np.log(tt["ttft_svc_s"].to_numpy(float) * 1000.0) - np.log(a + b * x / 1000.0)
        bc = bimodality(resid)
        if bc > 0.555:
            fit.notes.append(f"TTFT looks bimodal (bimodality coefficient {bc:.2f} > 0.555): one lognormal "
                             "cannot reproduce it")
        by_tier = tt.assign(r=resid).groupby("tier")["r"].median()
        if len(by_tier) > 1 and float(by_tier.max() - by_tier.min()) > math.log(1.1):
            fit.notes.append("TTFT differs by tier by more than 10% (" + ", ".join(
                f"{t} x{math.exp(v):.2f}" for t, v in by_tier.items()) + "); the emulator's TTFT is per model")
    else:
        fit.notes.append("no TTFT (non-streaming records): TTFT knobs kept")
    # chunks, decode
    st = ok[ok["n_chunks"].notna() & (ok["n_chunks"] > 0) & ok["output_tokens"].notna()]
    if len(st) >= _MIN_RECORDS:
        k, share = fit_chunks(st["output_tokens"].to_numpy(int), st["n_chunks"].to_numpy(int))
        lat["chunk_tokens"] = k
        fit.chunk_match = share
        if share < 0.9:
            fit.notes.append(f"chunk sizes vary: chunk_tokens {k} reproduces {share:.0%} of the chunk counts")
        dec = _low_load(st)  # the decode slow-down (contention) grows with load, on AWS and in the emulator
        tps: dict[str, float] = {}
        jit: list[tuple[float, int]] = []
        for tier, gt in dec.groupby("tier"):
            if len(gt) < _MIN_RECORDS:
                continue
            r, j = fit_decode(gt["decode_svc_s"].to_numpy(float), gt["output_tokens"].to_numpy(int), k)
            tps[str(tier)] = r
            jit.append((j, len(gt)))
        if tps:
            if "default" in tps:
                lat["tokens_per_s"] = tps["default"]
            else:
                t0 = next(t for t in TIERS if t in tps)
                lat["tokens_per_s"] = tps[t0] / base.tier_speed.get(t0, 1.0)
                fit.notes.append(f"no default-tier records: tokens_per_s from {t0} / its catalog tier_speed")
            fit.tier_speed = {t: v / lat["tokens_per_s"] for t, v in tps.items() if t != "default"}
            lat["jitter"] = sum(j * n for j, n in jit) / sum(n for _, n in jit)
        else:  # say so: a replay with the catalog's decode speed is then compared against the measured one
            fit.notes.append(f"fewer than {_MIN_RECORDS} streamed records per tier at the lowest load "
                             f"({len(dec)} in all): tokens_per_s, tier_speed and jitter kept from the catalog")
    else:
        fit.notes.append("no streamed chunks: decode knobs kept")
    # output length
    ol = ok[ok["output_tokens"].notna()]
    med, sg, cens = fit_output(ol["output_tokens"].to_numpy(float), ol["cap"].to_numpy(float))
    if cens > 0.9 and med > 0:
        fit.notes.append(f"{cens:.0%} of answers hit maxTokens: the answer length is not observed; "
                         "output_median_tokens and output_sigma kept from the catalog")
    else:
        lat["output_median_tokens"] = int(round(med))
        if med > 0:
            lat["output_sigma"] = sg
        if cens > 0.5:
            fit.notes.append(f"{cens:.0%} of answers hit maxTokens: the length distribution is mostly unobserved")
    fit.latency = lat
    fit.faults = fit_faults(low)
    fit.notes.append("not fitted (kept from the catalog): capacity, contention, tpm_quota, stalls")
    return fit


def _replay(g: pd.DataFrame, catalog: Catalog, seed: int) -> pd.DataFrame:
    """Sample the fitted profile with the emulator's own ``load.plan`` for each measured request's inputs."""
    rows = []
    none = FaultProfile()
    for i, r in enumerate(g.itertuples(index=False)):
        spec = catalog.resolve(str(r.base_model))
        cap = int(r.cap) if isinstance(r.cap, float) and math.isfinite(r.cap) else spec.max_output_tokens
        sch = plan(draw(seed, i, none), spec, spec.latency, input_tokens=int(r.input_tokens or 0), max_tokens=cap,
                   tier=str(r.tier), busy_fraction=0.0, time_scale=1.0, optimized=False, stall_ms=0.0)  # fmt: skip
        rows.append((sch.ttft_s, sch.decode_s, sch.output_tokens))
    out = pd.DataFrame(rows, columns=["ttft_svc_s", "decode_svc_s", "output_tokens"])
    out["tier"] = g["tier"].to_numpy()
    return out


def _metrics(df: pd.DataFrame) -> dict[str, np.ndarray]:
    o = df["output_tokens"].to_numpy(float)
    d = df["decode_svc_s"].to_numpy(float)
    tpot = np.where(o > 1, d / np.maximum(o - 1, 1), np.nan)
    return {"ttft_ms": df["ttft_svc_s"].to_numpy(float) * 1000.0, "tpot_ms": tpot * 1000.0,
            "decode_ms": d * 1000.0, "output_tokens": o}  # fmt: skip


def compare(measured: pd.DataFrame, replayed: pd.DataFrame, model: str) -> list[dict[str, Any]]:
    """Per tier and metric: quantiles of both, the KS statistic and the Wasserstein distance / measured median."""
    rows = []
    for tier in sorted(measured["tier"].unique()):
        mm = _metrics(measured[measured["tier"] == tier])
        rr = _metrics(replayed[replayed["tier"] == tier])
        for name, unit in METRICS.items():
            a, b = mm[name], rr[name]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if len(a) < 2 or len(b) < 2:
                continue
            row: dict[str, Any] = {"model": model, "tier": tier, "metric": name, "unit": unit, "n": len(a)}
            for q in QUANTILES:
                row[f"measured_p{round(q * 100)}"] = float(np.quantile(a, q))
                row[f"replayed_p{round(q * 100)}"] = float(np.quantile(b, q))
            ks = stats.ks_2samp(a, b, method="asymp")
            row["ks"], row["ks_p"] = float(ks.statistic), float(ks.pvalue)
            med = float(np.median(a))
            row["wasserstein_rel"] = float(stats.wasserstein_distance(a, b)) / med if med > 0 else math.nan
            rows.append(row)
    return rows


def qq_table(measured: pd.DataFrame, replayed: pd.DataFrame, model: str,
             metrics: tuple[str, ...] = ("ttft_ms", "tpot_ms")) -> list[dict[str, Any]]:  # fmt: skip
    """Quantile pairs (q = 0.02 .. 0.98 and 0.99) of measured and replayed, per tier: the fit report's QQ chart."""
    qs = [*np.round(np.linspace(0.02, 0.98, 49), 2), 0.99]
    rows = []
    for tier in sorted(measured["tier"].unique()):
        mm = _metrics(measured[measured["tier"] == tier])
        rr = _metrics(replayed[replayed["tier"] == tier])
        for name in metrics:
            a, b = mm[name][np.isfinite(mm[name])], rr[name][np.isfinite(rr[name])]
            if len(a) < 2 or len(b) < 2:
                continue
            for q, x, y in zip(qs, np.quantile(a, qs), np.quantile(b, qs), strict=True):
                rows.append({"model": model, "tier": tier, "metric": name, "q": float(q), "measured": float(x),
                             "replayed": float(y)})  # fmt: skip
    return rows


def qq_svg(cal: Calibration, model: str) -> str:
    """The QQ chart of one model (TTFT and TPOT, a colour per tier, the y = x line): an inline SVG, no scripts."""
    import altair as alt
    import vl_convert as vlc

    d = cal.qq[cal.qq["model"] == model] if not cal.qq.empty else cal.qq
    if d.empty:
        return ""
    panels = []
    for metric in ("ttft_ms", "tpot_ms"):
        m = d[d["metric"] == metric]
        if m.empty:
            continue
        label = metric.removesuffix("_ms").upper()
        lo, hi = float(min(m["measured"].min(), m["replayed"].min())), float(max(m["measured"].max(), m["replayed"].max()))
        diag = alt.Chart(pd.DataFrame({"measured": [lo, hi], "replayed": [lo, hi]})).mark_line(
            color="#999", strokeDash=[4, 4]).encode(x="measured:Q", y="replayed:Q")
        pts = alt.Chart(m).mark_point(filled=True, size=30).encode(
            x=alt.X("measured:Q", title=f"measured {label} (ms)", scale=alt.Scale(zero=False)),
            y=alt.Y("replayed:Q", title=f"replayed {label} (ms)", scale=alt.Scale(zero=False)),
            color=alt.Color("tier:N", title="tier"), tooltip=["tier", "q", "measured", "replayed"])
        panels.append((diag + pts).properties(width=300, height=260, title=f"{label} quantiles, measured vs replayed"))
    chart = alt.hconcat(*panels).properties(title=f"{model}: points on the dashed line = reproduced")
    return str(vlc.vegalite_to_svg(chart.to_json()))


def rates_by_load(df: pd.DataFrame) -> pd.DataFrame:
    """Error and throttle rates per model, tier and load level (throttles depend on load, not a fixed rate)."""
    g = df.assign(throttled=df["error_kind"] == "throttled", error=df["status"] != "ok")
    out = g.groupby(["base_model", "tier", "load"]).agg(n=("ok", "size"), error_rate=("error", "mean"),
                                                        throttle_rate=("throttled", "mean")).reset_index()  # fmt: skip
    return out.rename(columns={"base_model": "model"})


def calibrate(path: str | os.PathLike[str], *, catalog: Catalog | str | os.PathLike[str] | None = None,
              time_scale: float | None = None, max_tokens: int | None = None, seed: int = 0,
              timing_log: str | os.PathLike[str] | None = None) -> Calibration:  # fmt: skip
    """Fit every model in a sweep or records folder; see the module docstring."""
    df, ts, source = load_measured(path, time_scale=time_scale, max_tokens=max_tokens, timing_log=timing_log)
    return calibrate_frame(df, catalog=catalog, time_scale=ts, source=source, seed=seed)


def calibrate_frame(df: pd.DataFrame, *, catalog: Catalog | str | os.PathLike[str] | None = None,
                    time_scale: float = 1.0, source: str = "<records>", seed: int = 0) -> Calibration:  # fmt: skip
    """:func:`calibrate` on records already :func:`prepare`-d."""
    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    fits: dict[str, ModelFit] = {}
    skipped: list[str] = []
    for model, g in df.groupby("base_model"):
        try:
            fits[cat.resolve(str(model)).model_id] = fit_model(g, cat)
        except StatsError as exc:  # one model with too few answers must not sink the others
            skipped.append(f"{model}: not fitted: {exc}")
    if not fits:
        raise StatsError("no model could be fitted: " + "; ".join(skipped))
    cal = Calibration(fits, source, time_scale, pd.DataFrame(), rates_by_load(df), flags=list(skipped))
    fitted = apply_overlay(cat, cal.overlay(), source="<calibration>")
    rows: list[dict[str, Any]] = []
    qq_rows: list[dict[str, Any]] = []
    for model, g in df.groupby("base_model"):
        fit = fits.get(cat.resolve(str(model)).model_id)
        if fit is None:
            continue
        has_queue = g["server_queue_s"].notna().any() if "server_queue_s" in g else False
        used = (g if has_queue else _low_load(g))
        used = used[used["ok"] & used["ttft_svc_s"].notna()]
        if used.empty:
            continue
        replayed = _replay(used, fitted, seed)
        new = compare(used, replayed, fit.model_id)
        qq_rows += qq_table(used, replayed, fit.model_id)
        rows += new
        for r in new:
            if r["ks"] > 0.1 and r["ks_p"] < 0.01:
                cal.flags.append(f"{fit.model_id} {r['tier']} {r['metric']}: KS distance {r['ks']:.2f} between "
                                 f"measured and replayed (> 0.1, p = {r['ks_p']:.2g}): the profile does not "
                                 "reproduce this distribution")
        cal.flags += [f"{fit.model_id}: {n}" for n in fit.notes if not n.startswith("not fitted")]
    cal.comparison = pd.DataFrame(rows)
    cal.qq = pd.DataFrame(qq_rows)
    return cal


# -- the fit report ------------------------------------------------------------------------------------


def report_markdown(cal: Calibration) -> str:
    """The fit report: fitted knobs, measured vs replayed quantiles with distances, rates by load, caveats."""
    lines = [f"# Calibration fit: {cal.source}", "",
             f"time_scale {cal.time_scale:g} (times below are real, divided by it). Replay: the fitted profile "
             "sampled with the emulator's own schedule (`load.plan`) for each measured request's input tokens, "
             "maxTokens and tier, without queueing.", "", "## Fitted knobs", ""]  # fmt: skip
    for m, f in cal.fits.items():
        lines.append(f"**{m}** ({f.n} records; tiers {', '.join(f'{t} {n}' for t, n in f.tiers.items())})")
        lines.append("")
        lines.append("| knob | value |")
        lines.append("|---|---|")
        for k, v in {**f.latency, **{f"tier_speed.{t}": s for t, s in f.tier_speed.items()},
                     **{f"faults.{t}": s for t, s in f.faults.items()}}.items():  # fmt: skip
            lines.append(f"| {k} | {_round(v)} |")
        lines.append("")
        for n in f.notes:
            lines.append(f"- {n}")
        lines.append("")
    lines += ["## Measured vs replayed", ""]
    if not cal.comparison.empty:
        qs = [f"p{round(q * 100)}" for q in QUANTILES]
        lines.append("| model | tier | metric | n | " + " | ".join(f"{q} meas / repl" for q in qs) +
                     " | KS | W / median |")  # fmt: skip
        lines.append("|---" * (6 + len(qs)) + "|")
        for r in cal.comparison.to_dict("records"):
            cells = " | ".join(f"{r[f'measured_{q}']:.4g} / {r[f'replayed_{q}']:.4g}" for q in qs)
            lines.append(f"| {r['model']} | {r['tier']} | {r['metric']} ({r['unit']}) | {r['n']} | {cells} | "
                         f"{r['ks']:.3f} | {r['wasserstein_rel']:.3f} |")
        lines.append("")
    lines += ["## Error and throttle rates by load", "", "| model | tier | load | n | errors | throttled |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in cal.rates.to_dict("records"):
        lines.append(f"| {r['model']} | {r['tier']} | {r['load']:g} | {r['n']} | {r['error_rate']:.2%} | "
                     f"{r['throttle_rate']:.2%} |")
    lines += ["", "## Where the model cannot reproduce the data", ""]
    lines += [f"- {f}" for f in cal.flags] or ["- nothing flagged (no KS distance above 0.1 with p < 0.01)"]
    return "\n".join(lines) + "\n"


def report_html(cal: Calibration) -> str:
    """The same report as a self-contained HTML page (tables only, no scripts)."""
    import html

    body = []
    in_table = False
    for line in report_markdown(cal).splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        body.append("</table>")
    charts = [qq_svg(cal, m) for m in cal.fits]
    if any(charts):
        body.append("<h2>Quantile-quantile charts</h2>" + "".join(f"<div>{c}</div>" for c in charts if c))
    style = ("body{font-family:sans-serif;max-width:72rem;margin:2rem auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>calibration fit</title><style>{style}"
            f"</style></head><body>{''.join(body)}</body></html>\n")


__all__ = [
    "FAULT_CODES",
    "Calibration",
    "ModelFit",
    "bimodality",
    "calibrate",
    "calibrate_frame",
    "compare",
    "fit_chunks",
    "fit_decode",
    "fit_faults",
    "fit_model",
    "fit_output",
    "fit_ttft",
    "load_measured",
    "prepare",
    "qq_svg",
    "qq_table",
    "rates_by_load",
    "read_timing_log",
    "report_html",
    "report_markdown",
]
