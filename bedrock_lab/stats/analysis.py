"""The one analysis of a sweep: :func:`analyze` returns the :class:`Analysis` that the CLI
(``bedrock-lab analyze``), the analysis notebook and the report all read.

Every table is per configuration and load, ``KEYS = (model, tier, prompt_size, users)`` with the labels of
:func:`bedrock_lab.stats.labels.label_records` (``tier`` is the tier asked for, "default" when none was), so a
number in a sentence of the report, in a chart and in a CSV table is the same number. For an open-loop sweep
the load level is the arrival rate: ``users`` holds requests/s and :attr:`Analysis.load_kind` is "rate".

Input is a sweep folder read by :func:`load_sweep_data` (through the one sweep reader,
:func:`bedrock_lab.store.read_sweep`: done cells only, each fenced to its run; failed cells listed apart) or
any records DataFrame. SLOs come from the sweep file's ``slo:`` section unless given (:func:`slo_from`).

Example
-------
>>> from bedrock_lab.stats import synthetic_records
>>> a = analyze(synthetic_records(540, seed=1), fit=False, compare_metrics=())
>>> len(a.summary), a.load_kind, sorted(a.summary["tier"].unique())
(27, 'users', ['default', 'flex', 'priority'])
>>> bool((a.summary["ttft_s_p50_lo"] <= a.summary["ttft_s_p50"]).all())
True
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError, SweepError
from bedrock_lab.records import load_records
from bedrock_lab.stats._data import error_kind_is, require_columns, time_per_output_token, tokens_per_second
from bedrock_lab.stats.censoring import (
    CENSORED_METRICS,
    censored_quantile_table,
    censored_sample,
    censored_summary,
)
from bedrock_lab.stats.compare import compare_grid, verdict_summary
from bedrock_lab.stats.decision import (
    Traffic,
    decision_table,
    load_catalog_or_reason,
    price_usd,
    sweep_cost_table,
    traffic_from,
)
from bedrock_lab.stats.fits import fit_distributions, qq_data
from bedrock_lab.stats.labels import label_records
from bedrock_lab.stats.quality import quality_flags, warmup_trim
from bedrock_lab.stats.quantiles import ecdf_points, quantile_table
from bedrock_lab.stats.rates import outcome_rates
from bedrock_lab.stats.saturation import saturation
from bedrock_lab.stats.sequential import search_tables, stop_table
from bedrock_lab.stats.slo import SLO, goodput
from bedrock_lab.store import FAILED_COLUMNS, read_sweep

#: grouping of every table: a configuration at one load
KEYS: tuple[str, ...] = ("model", "tier", "prompt_size", "users")
#: a configuration (a USL curve, a cost)
CONFIG: tuple[str, ...] = ("model", "tier", "prompt_size")
SUMMARY_METRICS: tuple[str, ...] = ("ttft_s", "e2e_s", "tpot_s", "itl_mean_s", "tokens_per_s")
#: record columns the analysis reads (group-bys copy every column of each group, strings are costly)
ANALYSIS_COLUMNS: tuple[str, ...] = (
    *KEYS, "model_id", "tier_requested", "cell_id", "api", "rate_rps", "status", "error_kind", "retries", "start",
    "intended_start", "schedule_lag_s", "ttft_s", "e2e_s", "tpot_s", "itl_mean_s", "input_tokens", "output_tokens",
    "server_ttft_s",
    # production features (stats.production): empty columns in older records
    "cache_read_tokens", "cache_write_tokens", "stop_reason", "answered_model", "fallback", "task_id", "turn",
    "background_load",  # shared capacity (issue 15): other customers' demand during the cell
)


@dataclass
class SweepData:
    """The records of a sweep's valid cells (labelled with model/tier/prompt_size/config), its failed cells and
    its metadata files, as :func:`bedrock_lab.store.read_sweep` returns them."""

    root: Path
    records: pd.DataFrame
    plan: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    sweep_file: Path | None = None
    sweep_config: dict[str, Any] | None = None
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(FAILED_COLUMNS)))
    reader_notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        for src in (self.manifest, self.sweep_config, self.plan):
            if src and isinstance(src.get("name") or src.get("sweep"), str):
                return str(src.get("name") or src.get("sweep"))
        return self.root.name or "records"


def load_sweep_data(root: str | os.PathLike[str], records_dir: str | os.PathLike[str] | None = None) -> SweepData:
    """Records and metadata of a sweep folder (or of any folder of record shards), through the one sweep reader:
    only done cells, each fenced to its run; failed cells are in :attr:`SweepData.failed`.

    ``records_dir`` reads the records from elsewhere (e.g. one cell) while metadata still come from ``root``.
    """
    root = Path(root)
    if not root.exists():
        raise StatsError(f"sweep folder {root} does not exist")
    try:
        swept = read_sweep(root)
    except SweepError as exc:
        raise StatsError(str(exc)) from exc
    records = load_records(records_dir) if records_dir else swept.records
    if records.empty:
        if len(swept.failed):
            reasons = "; ".join(f"{r.cell_id}: {r.reason}" for r in swept.failed.head(3).itertuples())
            raise StatsError(f"every cell of {root} failed, so there is nothing to report ({reasons})")
        raise StatsError(f"no request records below {Path(records_dir) if records_dir else root}; run the sweep first")
    return SweepData(
        root=root, records=label_records(records), plan=swept.plan, manifest=swept.manifest,
        sweep_file=swept.sweep_file, sweep_config=swept.sweep_config, failed=swept.failed,
        reader_notes=list(swept.notes),
    )  # fmt: skip


# ---------------------------------------------------------------- SLOs of the sweep file

#: sweep-file SLO keys (bedrock_lab.params.SLOConfig: percentiles per cell) -> per-request thresholds of
#: bedrock_lab.stats.SLO. "p95 of TTFT <= X" is read as "TTFT <= X for at least 95% of requests" (goodput).
SWEEP_SLO_KEYS = {"ttft_p95_s": "ttft_s", "e2e_p95_s": "e2e_s", "itl_p95_s": "itl_s", "tpot_p95_s": "tpot_s"}


def _slo_section(data: SweepData | None) -> Mapping[str, Any]:
    cfg = (data.sweep_config or {}) if data else {}
    section = cfg.get("slo") or cfg.get("slos") or {}
    return section if isinstance(section, Mapping) else {}


def slo_from(data: SweepData | None = None, overrides: Mapping[str, Any] | None = None) -> SLO:
    """SLOs: the sweep yaml's ``slo:`` section (when it has one), then explicit overrides (None = keep).

    Both spellings work in the sweep file: the stats names (``ttft_s``, ``e2e_s``, ``itl_s``,
    ``tokens_per_s``, ``goodput_target``) and the sweep-file names (``ttft_p95_s``, ``e2e_p95_s``), the
    latter meaning a 95% goodput target. ``error_rate_max`` is applied separately (:func:`error_rate_max`).
    """
    values: dict[str, Any] = {}
    for k, v in _slo_section(data).items():
        if v is None:
            continue
        if k in SWEEP_SLO_KEYS:
            values[SWEEP_SLO_KEYS[k]] = v
            values.setdefault("goodput_target", 0.95)
        elif k in SLO.__dataclass_fields__:
            values[k] = v
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    return SLO.from_mapping(values)


def error_rate_max(data: SweepData | None) -> float | None:
    """The sweep file's ``slo.error_rate_max`` (a cell with more failures does not meet the SLOs), if any."""
    v = _slo_section(data).get("error_rate_max")
    return float(v) if isinstance(v, int | float) else None


# ---------------------------------------------------------------- cost


def cost_table(records: pd.DataFrame, catalog: Any | None = None) -> pd.DataFrame:
    """Cost per 1k requests per (model, tier, prompt_size) from mean tokens (cache reads/writes included) and
    catalog prices.

    ``cost_per_1k`` is NaN (with ``cost_note``) when the catalog is missing or does not know the model: a
    report without prices is still a report. ``catalog`` may be an exception to say why there is none.
    """
    if catalog is None:  # catalog missing or invalid: the report still renders, costs n/a with the reason
        catalog = load_catalog_or_reason()
    if not {"model", "tier", "prompt_size"} <= set(records.columns):
        records = label_records(records)
    if "model_id" not in records:
        records = records.assign(model_id=records["model"])
    ok = records[records["status"] == "ok"] if "status" in records else records
    rows = []
    for (model_id, model, tier, size), sub in ok.groupby(["model_id", "model", "tier", "prompt_size"], sort=True):
        mean_in, mean_out = _mean(sub, "input_tokens"), _mean(sub, "output_tokens")
        # prompt-cache reads and writes at the model's cache prices (input_tokens counts only the uncached part)
        cost, note = price_usd(catalog, model_id, tier, mean_in, mean_out,
                               cache_read_tokens=_mean(sub, "cache_read_tokens"),
                               cache_write_tokens=_mean(sub, "cache_write_tokens"))
        cost *= 1000
        rows.append({"model_id": model_id, "model": model, "tier": tier, "prompt_size": size,
                     "mean_input_tokens": mean_in, "mean_output_tokens": mean_out, "cost_per_1k": cost,
                     "cost_note": note})
    return pd.DataFrame(rows)


def _mean(df: pd.DataFrame, column: str) -> float:
    return float(pd.to_numeric(df[column], errors="coerce").mean()) if column in df else float("nan")


# ---------------------------------------------------------------- the analysis


@dataclass
class Analysis:
    """Every table of the analysis; each is a small DataFrame (one row per configuration and load at most,
    except ``fits``/``qq``/``ecdf``, which are a few hundred rows)."""

    data: SweepData
    slo: SLO
    summary: pd.DataFrame  #: per KEYS: counts, rates, goodput, mean and p50-p99 with CIs per metric
    load: pd.DataFrame  #: per configuration and users: throughput, Little's law, goodput
    capacity: pd.DataFrame  #: per configuration: USL fit, knee, highest users meeting the SLOs
    comparisons: pd.DataFrame  #: levels of ``compare_by`` (default tier) compared within the other KEYS
    costs: pd.DataFrame  #: per configuration: mean tokens, cost per 1k requests
    verdicts: pd.DataFrame = field(default_factory=pd.DataFrame)  #: ``comparisons`` rolled up per pair of levels
    fits: pd.DataFrame = field(default_factory=pd.DataFrame)  #: distribution fits of the chosen cell
    qq: pd.DataFrame = field(default_factory=pd.DataFrame)  #: QQ points of the best fit
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)  #: warm-up, drift, lag, bimodality per cell
    censored: pd.DataFrame = field(default_factory=pd.DataFrame)  #: TTFT / e2e percentiles with timeouts censored
    warmup: pd.DataFrame = field(default_factory=pd.DataFrame)  #: warm-up trimmed per cell (``trim_warmup``)
    ecdf: pd.DataFrame = field(default_factory=pd.DataFrame)  #: ECDF points of ttft_s and e2e_s per cell
    load_kind: str = "users"  #: "users" (closed loop) or "rate" (open loop: ``users`` holds requests/s)
    fit_cell: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    compare_by: str = "tier"  #: the column whose levels ``comparisons`` compares
    #: per workload and configuration: choice, runners-up, cheapest failing, cost per month (stats.decision)
    decision: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per cell: the tokens the test used x catalog prices (stats.decision.sweep_cost_table)
    sweep_cost: pd.DataFrame = field(default_factory=pd.DataFrame)
    traffic: Traffic = field(default_factory=Traffic)  #: the traffic monthly costs are projected at
    #: production features (stats.production; empty when the records have none): prompt cache hits, TTFT and
    #: cost; agent tasks and turns; the fallback's share of answers and its goodput gain
    cache: pd.DataFrame = field(default_factory=pd.DataFrame)
    agent: pd.DataFrame = field(default_factory=pd.DataFrame)
    turns: pd.DataFrame = field(default_factory=pd.DataFrame)
    fallback: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: sequential cells and the SLO search (stats.sequential; empty when the sweep ran neither): per done cell
    #: its stop reason and always-valid interval; per search group the found load, bracket and levels tried;
    #: per search level its verdict
    sequential_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    search: pd.DataFrame = field(default_factory=pd.DataFrame)
    search_levels: pd.DataFrame = field(default_factory=pd.DataFrame)

    #: the tables :func:`write_tables` writes (when not empty)
    TABLES: ClassVar[tuple[str, ...]] = ("summary", "load", "capacity", "comparisons", "verdicts", "costs",
                                         "decision", "sweep_cost", "quality", "censored", "warmup", "fits", "qq",
                                         "ecdf", "cache", "agent", "turns", "fallback")
    #: written too when the sweep ran sequential cells or a search (the report's file names, tables/*.csv)
    SEQUENTIAL_TABLES: ClassVar[tuple[str, ...]] = ("sequential_cells", "search", "search_levels")

    @property
    def records(self) -> pd.DataFrame:
        return self.data.records

    @property
    def max_users(self) -> float | None:
        """The highest load level (users, or requests/s for an open-loop sweep)."""
        u = pd.to_numeric(self.summary["users"], errors="coerce")
        return _as_level(u.max()) if u.notna().any() else None


def _as_level(v: float) -> float:
    """Integral load levels as ints (16, not 16.0), others as floats."""
    v = float(v)
    return int(v) if v.is_integer() else v


def load_kind(records: pd.DataFrame) -> str:
    """"users" for closed-loop records, "rate" when every record is open loop (``users`` empty, ``rate_rps``)."""
    users = pd.to_numeric(records["users"], errors="coerce") if "users" in records else pd.Series(dtype=float)
    rate = pd.to_numeric(records["rate_rps"], errors="coerce") if "rate_rps" in records else pd.Series(dtype=float)
    return "rate" if not users.notna().any() and rate.notna().any() else "users"


def normalize_load(records: pd.DataFrame) -> pd.DataFrame:
    """The ``users`` column as the load level of each request: concurrent users (closed loop) or, for an
    open-loop sweep, the arrival rate in requests/s; missing levels become 0 so groups never drop rows."""
    kind = load_kind(records)
    src = records["rate_rps"] if kind == "rate" else records.get("users", pd.Series(0, index=records.index))
    level = pd.to_numeric(src, errors="coerce").fillna(0)
    if (level % 1 == 0).all():
        level = level.astype(int)
    return records.assign(users=level)


def summary_table(records: pd.DataFrame, slo: SLO, metrics: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Per (model, tier, prompt_size, users): outcome rates, goodput and mean, p50/p90/p95/p99 with CIs per
    metric (columns ``<metric>_<stat>``, e.g. ``ttft_s_p95_lo``) and a ``config`` label.

    Time to first token and end-to-end latency count timeouts as right-censored (:mod:`.censoring`): their
    columns add ``<metric>_n_censored``, ``<metric>_censored_frac`` and per percentile ``_bound`` ("" for an
    estimate with its interval, "lower" where timeouts could hide it: the value is then a lower bound, ``_lo``
    its one-sided confidence limit, ``_hi`` NaN) and ``_model`` (model-based, censored log-normal, bounds only).
    """
    keys = [k for k in KEYS if k in records]
    df = normalize_load(records)
    rates = outcome_rates(df, by=keys)
    good = goodput(df, slo, by=keys)[[*keys, "n_good", "goodput", "goodput_lo", "goodput_hi", "goodput_rps",
                                      "meets_target", "meets_target_confident"]]
    out = rates.merge(good, on=keys, how="left")
    ok_rows = df["status"] == "ok"
    used = df[ok_rows | error_kind_is(df, "timeout")]  # timeouts are data: right-censored latencies
    if "tokens_per_s" in metrics:
        used = used.assign(tokens_per_s=tokens_per_second(used))
    if "tpot_s" in metrics:
        used = used.assign(tpot_s=time_per_output_token(used))
    qrows = []
    for key, sub in used.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        ok = sub[sub["status"] == "ok"]
        for m in metrics:
            if m not in sub:
                continue
            if m in CENSORED_METRICS:
                table = censored_quantile_table(*censored_sample(sub, m))
            else:  # per-token / per-chunk / speed metrics: conditional on completion
                table = quantile_table(pd.to_numeric(ok[m], errors="coerce").to_numpy(float))
            for k, v in table.items():
                row[f"{m}_{k}"] = v
        qrows.append(row)
    if qrows:
        out = out.merge(pd.DataFrame(qrows), on=keys, how="left")
    out["config"] = out["model"] + " / " + out["tier"] + " / " + out["prompt_size"]
    return out


def _as_sweep(data: SweepData | pd.DataFrame) -> SweepData:
    if isinstance(data, SweepData):
        return data
    if isinstance(data, pd.DataFrame):
        require_columns(data, ["status"])
        if data.empty:
            raise StatsError("no request records to analyse")
        return SweepData(root=Path("."), records=label_records(data))
    raise StatsError(f"analyze() takes SweepData (load_sweep_data) or a records DataFrame, got {type(data).__name__}")


def _as_slo(data: SweepData, slo: SLO | Mapping[str, Any] | None) -> SLO:
    if slo is None or isinstance(slo, Mapping):
        return slo_from(data, slo)
    if isinstance(slo, SLO):
        return slo
    raise StatsError(f"slo must be an SLO, a mapping or None, got {type(slo).__name__}")


def analyze(data: SweepData | pd.DataFrame, slo: SLO | Mapping[str, Any] | None = None, *,
            fit_metric: str = "ttft_s", fit: bool = True, compare_metrics: Sequence[str] = ("ttft_s", "e2e_s"),
            trim_warmup: bool = False, compare_by: str = "tier", seed: int = 0,
            traffic: Traffic | Mapping[str, Any] | None = None) -> Analysis:
    """Run every statistic of the report on a loaded sweep (:func:`load_sweep_data`) or a records DataFrame.

    ``slo``: an :class:`SLO` as it is; a mapping overrides the sweep file's ``slo:`` section (None keeps a
    value); None takes the sweep file's, else the defaults. A step the data cannot support is skipped with a
    note in :attr:`Analysis.notes` rather than failing the whole report. ``trim_warmup`` drops each cell's
    MSER-5 warm-up before anything is computed (reported in :attr:`Analysis.warmup`; off by default, the
    report shows every request). For an open-loop sweep ``data.records["users"]`` becomes the arrival rate.
    ``compare_by`` names the record column whose levels are compared (:func:`comparison_strata`): "tier" (the
    default), "run_id", "repeat", "model", "prompt_size"...; an unknown column raises :class:`StatsError`.
    ``traffic``: a :class:`~bedrock_lab.stats.decision.Traffic` as it is, or overrides of the sweep file's
    ``traffic:`` section (``requests_per_day``, ``days_per_month``, ``peak_users``; None keeps a value).
    """
    data = _as_sweep(data)
    slo = _as_slo(data, slo)
    kind = load_kind(data.records)
    data.records = normalize_load(data.records)
    strata = comparison_strata(data.records, compare_by)
    wanted = dict.fromkeys([*ANALYSIS_COLUMNS, compare_by])
    rec = data.records[[c for c in wanted if c in data.records.columns]].copy()  # slim: fast groupbys
    notes: list[str] = list(data.reader_notes)
    warm = pd.DataFrame()
    if trim_warmup:
        rec, warm = warmup_trim(rec, list(KEYS))
        data.records = data.records.loc[rec.index]  # charts and sentences see the same requests as the tables
        notes.append(f"warm-up trimmed (MSER-5): {int(warm['n_warmup'].sum())} requests dropped")
    summary = summary_table(rec, slo)
    try:
        load, capacity = saturation(rec, slo, group=list(CONFIG))
    except StatsError as exc:
        load, capacity = pd.DataFrame(), pd.DataFrame()
        notes.append(f"saturation analysis skipped: {exc}")
    max_err = error_rate_max(data)
    if max_err is not None and not capacity.empty:
        _apply_error_rate_max(summary, capacity, max_err)
        notes.append(f"A configuration also needs an error rate of at most {max_err:.1%} to meet the SLOs "
                     "(sweep file slo.error_rate_max).")
    comparisons = pd.DataFrame()
    if rec[compare_by].nunique(dropna=False) > 1 and compare_metrics:
        try:
            comparisons = compare_grid(rec, compare_by, compare_metrics, within=strata, seed=seed)
        except StatsError as exc:
            notes.append(f"comparisons by {compare_by} skipped: {exc}")
    elif compare_by != "tier" and compare_metrics:
        notes.append(f"no comparisons by {compare_by}: every record has the same value")
    catalog = load_catalog_or_reason()
    costs = cost_table(rec, catalog)
    traffic = traffic if isinstance(traffic, Traffic) else traffic_from(data.sweep_config, data.plan, traffic)
    try:
        quality = quality_flags(rec, by=list(KEYS), metric="e2e_s")
    except StatsError as exc:
        quality = pd.DataFrame()
        notes.append(f"data-quality checks skipped: {exc}")
    censored = pd.DataFrame()
    if int(summary["n_timeout"].sum()) > 0:  # timeouts are right-censored latencies, never silently dropped
        try:
            parts = [censored_summary(rec, m, by=list(KEYS)) for m in CENSORED_METRICS if m in rec]
            censored = pd.concat(parts, ignore_index=True)
            censored = censored[censored["n_censored"] > 0].reset_index(drop=True)
        except StatsError as exc:
            notes.append(f"censored (Kaplan-Meier) percentiles skipped: {exc}")
    analysis = Analysis(data=data, slo=slo, summary=summary, load=load, capacity=capacity,
                        comparisons=comparisons, verdicts=verdict_summary(comparisons), costs=costs,
                        quality=quality, censored=censored, warmup=warm, ecdf=_ecdf_table(rec), notes=notes,
                        load_kind=kind, compare_by=compare_by, traffic=traffic,
                        decision=decision_table(summary, capacity, costs, slo, traffic, error_rate_max=max_err,
                                                catalog=catalog),
                        sweep_cost=sweep_cost_table(rec, catalog))
    _production(analysis, rec, catalog)
    _sequential(analysis)
    if fit:
        _fit_chosen_cell(analysis, fit_metric, seed)
    return analysis


#: label columns that are functions of a record column: comparing by the column makes them constant per level
_DERIVED_KEYS: dict[str, tuple[str, ...]] = {"model_id": ("model",), "tier_requested": ("tier",),
                                             "config": ("model", "tier", "prompt_size"), "rate_rps": ("users",)}


def comparison_strata(records: pd.DataFrame, compare_by: str) -> list[str]:
    """The KEYS that hold a comparison by ``compare_by`` equal: KEYS minus the column (and the labels derived
    from it, e.g. ``model`` for ``model_id``), so only otherwise equal configurations are compared."""
    if compare_by not in records.columns:
        raise StatsError(f"cannot compare by {compare_by!r}: the records have no such column; columns: "
                         + ", ".join(sorted(map(str, records.columns))))
    drop = {compare_by, *_DERIVED_KEYS.get(compare_by, ())}
    return [k for k in KEYS if k not in drop]


def _ecdf_table(rec: pd.DataFrame) -> pd.DataFrame:
    """ECDF points (~200 per cell) of time to first token and end-to-end latency, for distribution charts."""
    parts = [ecdf_points(rec, m, list(KEYS)) for m in ("ttft_s", "e2e_s") if m in rec]
    parts = [p for p in parts if len(p)]  # e.g. no TTFT at all: non-streaming requests
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _apply_error_rate_max(summary: pd.DataFrame, capacity: pd.DataFrame, max_err: float) -> None:
    """Cells above the error-rate limit do not meet the SLOs: update ``meets_target`` and the capacity."""
    too_many = summary["error_rate"] > max_err
    summary.loc[too_many, "meets_target"] = False
    summary.loc[too_many, "meets_target_confident"] = False
    for i, row in capacity.iterrows():
        sub = summary[(summary["model"] == row["model"]) & (summary["tier"] == row["tier"])
                      & (summary["prompt_size"] == row["prompt_size"]) & summary["meets_target"].astype(bool)]
        capacity.at[i, "max_users_meeting_slo"] = float(sub["users"].max()) if len(sub) else float("nan")


def _production(analysis: Analysis, rec: pd.DataFrame, catalog: Any) -> None:
    """The production-feature tables (:mod:`bedrock_lab.stats.production`), each only when the records have it."""
    from bedrock_lab.stats import production  # imports KEYS from here

    try:
        analysis.cache = production.cache_table(rec, None if isinstance(catalog, Exception) else catalog)
        analysis.agent = production.agent_table(rec)
        analysis.turns = production.turn_table(rec)
        analysis.fallback = production.fallback_table(rec, analysis.slo)
    except (StatsError, KeyError, ValueError) as exc:
        analysis.notes.append(f"production-feature tables skipped: {exc}")


def _sequential(analysis: Analysis) -> None:
    """Stop reasons of the sweep's cells and the SLO search's outcome (:mod:`bedrock_lab.stats.sequential`), kept
    only when the sweep ran a sequential cell or a search, so a fixed sweep's tables stay as they were."""
    if not analysis.data.manifest:  # records without a sweep folder (a DataFrame, a records folder)
        return
    stops = stop_table(analysis.data)
    analysis.search, analysis.search_levels = search_tables(analysis.data)
    if len(analysis.search) or (len(stops) and (stops["sequential"] != "off").any()):
        analysis.sequential_cells = stops


def _fit_chosen_cell(analysis: Analysis, metric: str, seed: int) -> None:
    """Fit distributions to the largest cell at the highest load that is not flagged bimodal (a mixture of
    throttled/retried and normal requests has no single distribution)."""
    rec = analysis.records
    if metric not in rec:
        analysis.notes.append(f"distribution fit skipped: the records have no {metric}")
        return
    ok = rec[(rec["status"] == "ok") & pd.to_numeric(rec[metric], errors="coerce").notna()]
    if ok.empty:
        return
    sizes = ok.groupby(list(KEYS), sort=True).size().reset_index(name="n")
    q = analysis.quality
    if not q.empty and "bimodal" in q:
        sizes = sizes.merge(q[[*KEYS, "bimodal"]], on=list(KEYS), how="left")
        if (sizes["bimodal"] != True).any():  # noqa: E712  (NaN: not checked, keep)
            sizes = sizes[sizes["bimodal"] != True]  # noqa: E712
    sizes = sizes.sort_values(["users", "n"], ascending=False, kind="stable")
    cell = sizes.iloc[0].to_dict()
    mask = np.ones(len(ok), dtype=bool)
    for k in KEYS:
        mask &= (ok[k] == cell[k]).to_numpy()
    x = pd.to_numeric(ok.loc[mask, metric], errors="coerce").to_numpy(float)
    try:
        fits = fit_distributions(x, gof_test="best", n_mc=49, seed=seed)
        best = fits.iloc[0]
        analysis.qq = qq_data(x, best["dist"], best["params"])
        analysis.fits = fits
        analysis.fit_cell = {**{k: cell[k] for k in KEYS}, "metric": metric, "n": int(x.size),
                             "dist": str(best["dist"]), "name": str(best.get("name", best["dist"]))}
    except StatsError as exc:
        analysis.notes.append(f"distribution fit skipped: {exc}")


def write_tables(analysis: Analysis, folder: str | os.PathLike[str]) -> list[Path]:
    """Write the non-empty tables of :attr:`Analysis.TABLES` as CSV (for spreadsheets) and the SLOs, grouping,
    fit choice and notes as ``analysis.json``; returns the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (*Analysis.TABLES, *Analysis.SEQUENTIAL_TABLES):
        table: pd.DataFrame = getattr(analysis, name)
        if table is None or table.empty:
            continue
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        written.append(path)
    meta = {"slo": analysis.slo.as_dict(), "by": list(KEYS), "compare_by": analysis.compare_by,
            "load_kind": analysis.load_kind, "traffic": analysis.traffic.as_dict(),
            "fit_cell": analysis.fit_cell, "notes": analysis.notes, "records": len(analysis.records),
            "tables": [p.stem for p in written], "python": platform.python_version()}
    path = out / "analysis.json"
    path.write_text(json.dumps(meta, indent=1, default=str))
    written.append(path)
    return written
