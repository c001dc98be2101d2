"""The budget decision: per workload, which configuration to run, how much load it holds, what it costs a month.

Built only from tables the analysis already has (so a verdict here is the verdict everywhere else):

- ``summary`` (per configuration and load: goodput, ``meets_target``, error rate, percentiles),
- ``capacity`` (per configuration: ``max_users_meeting_slo``, the highest tested load meeting the SLOs, with the
  sweep file's ``slo.error_rate_max`` applied),
- ``costs`` (per configuration: cost per 1,000 requests from mean measured tokens x catalog prices).

For each workload (prompt size) every configuration (model x tier) gets one row. A configuration *qualifies* when
some tested load meets the SLOs (and, if the sweep file states ``traffic.peak_users``, that load is at least the
peak). Qualifying configurations are ranked by cost per 1k requests (unknown prices last; ties: the one holding
more load first): rank 1 is the **choice**, the others are **runners-up** (also meeting the SLOs, dearer). Of the
others, the cheapest is the **cheapest failing** one, with the load it was judged at and the checks it failed.
Monthly cost is ``cost_per_1k / 1000 x requests_per_day x days_per_month`` (:func:`bedrock_lab._money.monthly_usd`)
at the traffic of the sweep file's ``traffic:`` section, else the stated default (:class:`Traffic`).

What the test itself cost (:func:`sweep_cost_table`) is the records' own token counts priced by the catalog's
:meth:`cost_usd` (the one price formula; on the emulator: what the same tokens would have cost on AWS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from bedrock_lab._money import DEFAULT_DAYS_PER_MONTH, DEFAULT_REQUESTS_PER_DAY, monthly_usd
from bedrock_lab.errors import StatsError
from bedrock_lab.stats.labels import display_names

#: roles of a row of the decision table
CHOICE, RUNNER_UP, CHEAPEST_FAILING, FAILS = "choice", "runner-up", "cheapest failing", "fails"
#: codes of ``failed_checks`` (the report turns them into words)
CHECKS = ("goodput", "ttft", "e2e", "tpot", "errors", "error_rate", "peak_users")

DECISION_COLUMNS: tuple[str, ...] = (
    "prompt_size", "rank", "role", "model", "model_id", "model_name", "tier", "qualifies", "max_users_meeting_slo",
    "highest_tested", "missed_below", "goodput", "goodput_lo", "goodput_hi", "ttft_s_p95", "ttft_s_p95_lo", "ttft_s_p95_hi",
    "ttft_s_p95_bound", "ttft_s_censored_frac",
    "e2e_s_p95", "cost_per_1k", "cost_per_month", "requests_per_day", "days_per_month", "judged_at_users",
    "failed_checks", "judged_goodput", "judged_error_rate", "judged_ttft_s_p95", "judged_e2e_s_p95",
    "judged_tpot_s_p95",
)  # fmt: skip


# ---------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Traffic:
    """The traffic monthly costs are projected at. ``stated`` is False for the default assumption, which the
    report then says it assumed (and where to state the real one)."""

    requests_per_day: float = float(DEFAULT_REQUESTS_PER_DAY)
    days_per_month: float = DEFAULT_DAYS_PER_MONTH
    peak_users: int | None = None
    stated: bool = False  #: requests_per_day was stated (sweep file, plan.json or an override)
    source: str = "default"  #: where requests_per_day came from: "sweep file", "plan.json", "override", "default"

    @property
    def requests_per_month(self) -> float:
        return self.requests_per_day * self.days_per_month

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_TRAFFIC_KEYS = ("requests_per_day", "days_per_month", "peak_users")


def _traffic_values(section: Any, where: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise StatsError(f"{where}: traffic must be a mapping (requests_per_day, days_per_month, peak_users), "
                         f"got {section!r}")
    out: dict[str, Any] = {}
    for k, v in section.items():
        if k not in _TRAFFIC_KEYS:
            raise StatsError(f"{where}: unknown key traffic.{k} (allowed: {', '.join(_TRAFFIC_KEYS)})")
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise StatsError(f"{where}: traffic.{k} must be a number > 0, got {v!r}")
        if k == "days_per_month" and v > 31:
            raise StatsError(f"{where}: traffic.days_per_month must be <= 31, got {v!r}")
        if k == "peak_users" and float(v) != int(v):
            raise StatsError(f"{where}: traffic.peak_users must be a whole number of users, got {v!r}")
        out[k] = int(v) if k == "peak_users" else float(v)
    return out


def traffic_from(sweep_config: Mapping[str, Any] | None = None, plan: Mapping[str, Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Traffic:
    """The traffic of a sweep, key by key: explicit overrides (None keeps a value), else the sweep file's
    ``traffic:`` section (read when the report is built, so the assumption can change without a new load
    test), else the one recorded in ``plan.json``, else the default. ``stated`` and ``source`` are about
    ``requests_per_day``: unstated (None or absent everywhere), the report says it assumed the default.
    Bad values raise :class:`StatsError` naming the key."""
    plan_cfg = (plan or {}).get("config")
    layers = [
        ("override", _traffic_values({k: v for k, v in (overrides or {}).items() if v is not None}, "override")),
        ("sweep file", _traffic_values((sweep_config or {}).get("traffic"), "sweep file")),
        ("plan.json", _traffic_values(plan_cfg.get("traffic") if isinstance(plan_cfg, Mapping) else None,
                                      "plan.json")),
    ]  # fmt: skip
    values: dict[str, Any] = {}
    source = "default"
    for name, layer in reversed(layers):  # lowest priority first; later layers win
        values.update(layer)
        if "requests_per_day" in layer:
            source = name
    return Traffic(**values, stated=source != "default", source=source)


# ---------------------------------------------------------------- prices (the catalog's formula)


def load_catalog_or_reason() -> Any:
    """The model catalog, or the exception saying why there is none (a report without prices is still one)."""
    try:
        from bedrock_lab.catalog import load_catalog

        return load_catalog()
    except Exception as exc:  # catalog missing or invalid: costs become n/a with this reason
        return exc


def price_usd(catalog: Any, model_id: str, tier: str, input_tokens: float, output_tokens: float, *,
              cache_read_tokens: float = 0.0, cache_write_tokens: float = 0.0) -> tuple[float, str]:
    """``(USD, note)`` of these tokens on ``model_id`` at ``tier`` ("default" = no tier asked) by the catalog's
    :meth:`cost_usd` (``input_tokens`` uncached; prompt-cache reads and writes at the model's cache prices);
    NaN with the reason when the catalog, the model, the price or the counts are missing."""
    if isinstance(catalog, Exception):
        return float("nan"), f"no catalog: {catalog}"
    if not (math.isfinite(input_tokens) and math.isfinite(output_tokens)):
        return float("nan"), "token counts missing"
    read = cache_read_tokens if math.isfinite(cache_read_tokens) else 0.0
    write = cache_write_tokens if math.isfinite(cache_write_tokens) else 0.0
    try:
        spec = catalog.resolve(model_id)
        return float(spec.cost_usd(input_tokens, output_tokens, None if tier == "default" else tier,
                                   cache_read_tokens=read, cache_write_tokens=write)), ""
    except Exception as exc:  # an unknown model or tier price: say so in the table
        return float("nan"), str(exc)


def model_names(catalog: Any, model_ids: Any) -> dict[str, str]:
    """Catalog display names ("Claude 3 Haiku") of model ids (:func:`bedrock_lab.stats.labels.display_names`)."""
    return display_names(catalog, model_ids)


def _sum(df: pd.DataFrame, column: str) -> float:
    if column not in df:
        return float("nan")
    v = pd.to_numeric(df[column], errors="coerce")
    return float(v.sum()) if v.notna().any() else float("nan")


def sweep_cost_table(records: pd.DataFrame, catalog: Any | None = None) -> pd.DataFrame:
    """What the load test itself cost, per cell: the tokens its records report (successful and failed requests
    alike: a request that streamed tokens before failing was billed for them) x catalog prices. On the emulator
    it is what the same tokens would have cost on AWS. Prompt-cache reads and writes (``cache_read_tokens`` /
    ``cache_write_tokens``, absent in old shards: none) are priced at the model's cache prices by the same
    :func:`price_usd`. Columns: ``cell_id``, model/tier/prompt_size/users, ``requests``, ``input_tokens``,
    ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``, ``cost_usd``, ``cost_note``."""
    catalog = load_catalog_or_reason() if catalog is None else catalog
    if "model_id" not in records:
        records = records.assign(model_id=records["model"])
    if "cell_id" not in records:
        records = records.assign(cell_id="")
    keys = [k for k in ("cell_id", "model_id", "model", "tier", "prompt_size", "users") if k in records]
    rows = []
    for key, sub in records.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        tin, tout = _sum(sub, "input_tokens"), _sum(sub, "output_tokens")
        read, write = _sum(sub, "cache_read_tokens"), _sum(sub, "cache_write_tokens")
        cost, note = price_usd(catalog, str(row["model_id"]), str(row.get("tier", "default")),
                               0.0 if math.isnan(tin) and not math.isnan(tout) else tin,
                               0.0 if math.isnan(tout) and not math.isnan(tin) else tout,
                               cache_read_tokens=0.0 if math.isnan(read) else read,
                               cache_write_tokens=0.0 if math.isnan(write) else write)
        rows.append({**row, "requests": len(sub), "input_tokens": tin, "output_tokens": tout,
                     "cache_read_tokens": 0.0 if math.isnan(read) else read,
                     "cache_write_tokens": 0.0 if math.isnan(write) else write, "cost_usd": cost,
                     "cost_note": note})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the decision


def _failed_checks(row: Mapping[str, Any], slo: Any, max_err: float | None) -> list[str]:
    """Why a cell does not meet the SLOs, as codes of :data:`CHECKS` (the p95 beside each per-request threshold
    says which one drove goodput below its target)."""
    found = []
    target = float(slo.goodput_target)
    if float(row.get("goodput", np.nan)) < target:
        found.append("goodput")
        for code, metric, threshold in (("ttft", "ttft_s", slo.ttft_s), ("e2e", "e2e_s", slo.e2e_s),
                                        ("tpot", "tpot_s", slo.tpot_s)):
            v = float(row.get(f"{metric}_p95", np.nan))
            if threshold is not None and np.isfinite(v) and v > float(threshold):
                found.append(code)
        if float(row.get("error_rate", 0.0)) > 1 - target:
            found.append("errors")
    if max_err is not None and float(row.get("error_rate", 0.0)) > max_err:
        found.append("error_rate")
    return found


def decision_table(summary: pd.DataFrame, capacity: pd.DataFrame, costs: pd.DataFrame, slo: Any,
                   traffic: Traffic | None = None, *, error_rate_max: float | None = None,
                   catalog: Any | None = None) -> pd.DataFrame:
    """One row per workload (prompt size) and configuration (model, tier), best first: see the module text.

    ``rank`` orders rows within a workload (choice 1, runners-up 2.., then failing ones by cost);
    ``max_users_meeting_slo`` is the highest tested load meeting the SLOs (NaN: none); ``judged_at_users`` and
    ``failed_checks`` say where and why a configuration stops: for a failing one its lowest tested load, for a
    qualifying one the next tested load above the one it holds (NaN/"" when it held the highest it was tested at).
    ``missed_below`` lists the lower tested loads (comma-separated) that missed the SLOs although
    ``max_users_meeting_slo`` met them: a verdict that is not monotone in load, which the report flags.
    """
    traffic = traffic or Traffic()
    if summary.empty:
        return pd.DataFrame(columns=list(DECISION_COLUMNS))
    catalog = load_catalog_or_reason() if catalog is None else catalog
    names = model_names(catalog, summary["model_id"]) if "model_id" in summary else {}
    cap = capacity.set_index(["model", "tier", "prompt_size"]) if not capacity.empty else None
    price = costs.set_index(["model", "tier", "prompt_size"])["cost_per_1k"] if not costs.empty else pd.Series()
    rows = []
    for (size, model, tier), cells in summary.groupby(["prompt_size", "model", "tier"], sort=True):
        cells = cells.sort_values("users")
        if cap is not None and (model, tier, size) in cap.index:
            holds = float(cap.loc[(model, tier, size), "max_users_meeting_slo"])
        else:  # no saturation table (too few levels): the summary's verdicts
            meeting = cells[cells["meets_target"].astype(bool)]
            holds = float(meeting["users"].max()) if len(meeting) else float("nan")
        qualifies = bool(np.isfinite(holds) and (traffic.peak_users is None or holds >= traffic.peak_users))
        at = cells[cells["users"] == holds].iloc[0] if np.isfinite(holds) else None
        if np.isfinite(holds):
            above = cells[cells["users"] > holds]
            judged = above.iloc[0] if len(above) else None
        else:
            judged = cells.iloc[0]
        checks = _failed_checks(judged, slo, error_rate_max) if judged is not None else []
        # lower tested loads that missed the SLOs although a higher one met them: "holds up to" would mislead
        below = cells[cells["users"] < holds] if np.isfinite(holds) else cells.iloc[0:0]
        missed_below = [float(c["users"]) for _, c in below.iterrows() if _failed_checks(c, slo, error_rate_max)]
        if np.isfinite(holds) and not qualifies:
            checks = ["peak_users"]
            judged = None
        cost = float(price.get((model, tier, size), np.nan))
        model_id = str(cells["model_id"].iloc[0]) if "model_id" in cells else str(model)
        src = at if at is not None else {}
        rows.append({
            "prompt_size": size, "model": model, "model_id": model_id, "model_name": names.get(model_id, str(model)),
            "tier": tier, "qualifies": qualifies, "max_users_meeting_slo": holds,
            "highest_tested": float(cells["users"].max()),
            "missed_below": ",".join(f"{u:g}" for u in missed_below),
            **{c: src.get(c, np.nan) for c in ("goodput", "goodput_lo", "goodput_hi", "ttft_s_p95", "ttft_s_p95_lo",
                                               "ttft_s_p95_hi", "e2e_s_p95", "ttft_s_censored_frac")},
            "ttft_s_p95_bound": str(src.get("ttft_s_p95_bound", "") or "") if at is not None else "",
            "cost_per_1k": cost,
            "cost_per_month": monthly_usd(cost, traffic.requests_per_day, traffic.days_per_month),
            "requests_per_day": traffic.requests_per_day, "days_per_month": traffic.days_per_month,
            "judged_at_users": float(judged["users"]) if judged is not None else np.nan,
            "failed_checks": ";".join(checks),
            **{f"judged_{c}": float(judged.get(c, np.nan)) if judged is not None else np.nan
               for c in ("goodput", "error_rate", "ttft_s_p95", "e2e_s_p95", "tpot_s_p95")},
        })  # fmt: skip
    table = pd.DataFrame(rows)
    out = []
    for _, group in table.groupby("prompt_size", sort=True):
        unknown = ~np.isfinite(group["cost_per_1k"].astype(float))
        group = group.assign(_unknown=unknown, _cost=group["cost_per_1k"].fillna(0.0),
                             _holds=-group["max_users_meeting_slo"].fillna(0.0), _fails=~group["qualifies"])
        group = group.sort_values(["_fails", "_unknown", "_cost", "_holds", "model", "tier"], kind="stable")
        roles, failing_seen = [], False
        for i, q in enumerate(group["qualifies"]):
            if q:
                roles.append(CHOICE if i == 0 else RUNNER_UP)
            else:
                roles.append(FAILS if failing_seen else CHEAPEST_FAILING)
                failing_seen = True
        group = group.assign(rank=range(1, len(group) + 1), role=roles)
        out.append(group.drop(columns=["_unknown", "_cost", "_holds", "_fails"]))
    return pd.concat(out, ignore_index=True)[list(DECISION_COLUMNS)]


def choices(decision: pd.DataFrame) -> pd.DataFrame:
    """The choice of each workload (workloads where nothing qualifies are absent)."""
    return decision[decision["role"] == CHOICE].reset_index(drop=True) if not decision.empty else decision


__all__ = [
    "CHEAPEST_FAILING", "CHECKS", "CHOICE", "DECISION_COLUMNS", "FAILS", "RUNNER_UP", "Traffic", "choices",
    "decision_table", "load_catalog_or_reason", "model_names", "price_usd", "sweep_cost_table", "traffic_from",
]  # fmt: skip
