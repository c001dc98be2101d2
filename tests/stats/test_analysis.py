"""analyze: the one analysis the CLI, the notebook and the report read; its tables, inputs and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bedrock_lab.errors import StatsError
from bedrock_lab.stats import (
    KEYS,
    SLO,
    Analysis,
    analyze,
    load_sweep_data,
    synthetic_records,
    write_tables,
)


@pytest.fixture(scope="module")
def analysis(sweep: pd.DataFrame) -> Analysis:
    return analyze(sweep, {"ttft_s": 1.0, "e2e_s": 10.0})


def test_there_is_one_pipeline() -> None:
    import bedrock_lab
    import bedrock_lab.stats
    import bedrock_lab.stats.analysis
    import bedrock_lab.stats.summary

    assert bedrock_lab.analyze is bedrock_lab.stats.analyze is bedrock_lab.stats.analysis.analyze
    assert bedrock_lab.stats.Analysis is bedrock_lab.stats.analysis.Analysis
    assert not hasattr(bedrock_lab.stats.summary, "analyze") and not hasattr(bedrock_lab.stats.summary, "Analysis")

#: stats.production's tables: empty unless the records carry cache usage, agent tasks or a fallback policy
#: (tests/stats/test_production.py checks them)
PRODUCTION_TABLES = ("cache", "agent", "turns", "fallback")


def test_analyze_produces_every_table(analysis: Analysis, tmp_path: Path) -> None:
    a = analysis
    assert isinstance(a, Analysis) and a.slo == SLO(ttft_s=1.0, e2e_s=10.0) and a.load_kind == "users"
    for name in Analysis.TABLES:
        if name != "warmup" and name not in PRODUCTION_TABLES:  # only with trim_warmup / with the features
            assert len(getattr(a, name)) > 0, name
    assert len(a.summary) == 27 and a.summary[list(KEYS)].drop_duplicates().shape[0] == 27
    comp = a.comparisons
    assert set(comp["factor"]) == {"tier"} and set(comp["metric"]) == {"ttft_s", "e2e_s"}
    assert comp["verdict"].str.len().gt(0).all() and (comp["p_adjusted"] >= comp["p_value"]).all()
    v = a.verdicts.set_index(["factor", "a", "b", "metric"])
    assert len(v) == 6  # 3 tier pairs x 2 metrics
    assert v.loc[("tier", "default", "priority", "ttft_s"), "headline"].startswith("priority faster")
    assert set(a.capacity.columns) >= {"sigma", "kappa", "lam", "n_max", "knee_users", "max_users_meeting_slo"}
    assert len(a.capacity) == 9 and len(a.load) == 27
    # one fit, of the largest cell at the highest load; bootstrap GOF of the winner only
    assert a.fit_cell["users"] == 32 and a.fit_cell["metric"] == "ttft_s" and a.fits["rank"].min() == 1
    assert a.fits.loc[a.fits["rank"] == 1, "gof_p"].notna().all() and a.fits.loc[a.fits["rank"] > 1, "gof_p"].isna().all()
    assert (a.censored["n_censored"] > 0).all()  # 1% timeouts: kept as right-censored, not dropped
    assert a.costs["cost_note"].str.contains("unknown model").all()  # synthetic model: no price, still a row
    written = write_tables(a, tmp_path / "tables")
    assert {p.name for p in written} == {f"{n}.csv" for n in Analysis.TABLES
                                          if n != "warmup" and n not in PRODUCTION_TABLES} | {"analysis.json"}
    meta = json.loads((tmp_path / "tables" / "analysis.json").read_text())
    assert meta["by"] == list(KEYS) and meta["slo"]["ttft_s"] == 1.0 and "warmup" not in meta["tables"]


def test_ecdf_table_is_bounded_and_monotone(analysis: Analysis, sweep: pd.DataFrame) -> None:
    e = analysis.ecdf
    by = [*KEYS, "metric"]
    assert set(e["metric"]) == {"ttft_s", "e2e_s"} and e.groupby(by).size().max() <= 202
    assert (e.groupby(by)["value"].diff().dropna() >= 0).all()
    top = e[(e["prob"] == 1.0) & (e["metric"] == "ttft_s")]["value"].sort_values().to_numpy()
    ok = sweep[sweep["status"] == "ok"]
    expected = ok.groupby(["tier_requested", "prompt_size", "users"])["ttft_s"].max().sort_values().to_numpy()
    np.testing.assert_allclose(top, expected)


def test_analyze_single_run_without_cells() -> None:
    df = synthetic_records(600, tiers=("default",), users=(4,), prompt_sizes=("small",), seed=5)
    df["cell_id"] = ""
    a = analyze(df, trim_warmup=True, fit=False)
    assert len(a.summary) == 1 and a.comparisons.empty and a.verdicts.empty and len(a.warmup) == 1
    dropped = int(a.warmup["n_warmup"].iloc[0])
    # the tables, the charts and the sentences all see the same trimmed requests
    assert len(a.records) == int(a.summary["n_requests"].iloc[0]) == 600 - dropped
    assert any("warm-up trimmed" in n for n in a.notes)


def test_records_round_trip_through_parquet(tmp_path: Path) -> None:
    """Records as load_records returns them (arrow strings, nullable ints as floats) analyse the same way."""
    from bedrock_lab.records import write_shard

    df = synthetic_records(27 * 40, seed=8)
    df["itl_mean_s"] = df["itl_mean_s"].astype(float)
    write_shard(df.to_dict("records"), tmp_path / "records-0.parquet")
    a = analyze(load_sweep_data(tmp_path), fit=False)
    b = analyze(df, fit=False)
    for col in ("ttft_s_p50", "e2e_s_p95_lo", "goodput", "throughput_rps"):
        pd.testing.assert_series_equal(a.summary[col], b.summary[col])
    assert len(a.comparisons) == len(b.comparisons) > 0
    assert a.data.root == tmp_path and b.data.root == Path(".")


def test_slo_argument_forms(sweep: pd.DataFrame) -> None:
    small = sweep[sweep["users"] == 1]
    explicit = analyze(small, SLO(ttft_s=0.5, e2e_s=None), fit=False, compare_metrics=())
    assert (explicit.slo.ttft_s, explicit.slo.e2e_s) == (0.5, None)
    overrides = analyze(small, {"ttft_s": 0.5, "e2e_s": None}, fit=False, compare_metrics=())  # None keeps
    assert (overrides.slo.ttft_s, overrides.slo.e2e_s) == (0.5, SLO().e2e_s)
    assert analyze(small, fit=False, compare_metrics=()).slo == SLO()  # no sweep file: the defaults


def test_bad_input_raises_stats_error(tmp_path: Path) -> None:
    with pytest.raises(StatsError, match="status"):
        analyze(pd.DataFrame({"x": [1]}))
    with pytest.raises(StatsError, match="no request records"):
        analyze(synthetic_records(27, seed=0).iloc[0:0])
    with pytest.raises(StatsError, match="SweepData"):
        analyze([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(StatsError, match="slo must be"):
        analyze(synthetic_records(27, seed=0), slo=1.0)  # type: ignore[arg-type]
    with pytest.raises(StatsError, match="does not exist"):
        load_sweep_data(tmp_path / "nope")
    (tmp_path / "empty" / "cells").mkdir(parents=True)
    with pytest.raises(StatsError, match="run the sweep first"):
        load_sweep_data(tmp_path / "empty")
