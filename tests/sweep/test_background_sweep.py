"""Shared capacity as a sweep dimension (issue #15): ``grid.background_load`` restarts the sweep's own emulator at
each level of other customers' demand, every record carries its level, and a mixed-tier cell (``cell.tier_mix``)
lets priority and flex compete in one run. Far below the test's own saturation (6 users on 64 slots), flex's
time to first token rises with the background while priority's stays flat; the report draws it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from bedrock_lab.errors import ConfigError
from bedrock_lab.params import parse_sweep
from bedrock_lab.plan import build_plan
from bedrock_lab.report import figures
from bedrock_lab.stats import analysis as an
from bedrock_lab.sweep import load_sweep, run_sweep
from bedrock_lab.sweep.results import results_table

MODEL = "amazon.nova-lite-v1:0"
LEVELS = [0.0, 1.1]


def _sweep(**grid: object) -> dict[str, object]:
    return {
        "name": "shared",
        "target": {"kind": "emulator", "emulator_seed": 5,
                   "emulator_overrides": {"time_scale": 0.2, "capacity": 64, "max_queue_ms": 1000,
                                          "background": {"priority_share": 0.1, "flex_share": 0.3}}},
        "grid": {"models": [MODEL], "prompt_sizes": ["small"], "users": [6], "background_load": LEVELS, **grid},
        "cell": {"duration_s": 30.0, "requests": 120, "max_tokens": 16, "timeout_s": 120,
                 "tier_mix": {"priority": 1, "flex": 1}},
        "order": {"seed": 3},
    }  # fmt: skip


def test_plan_has_one_mixed_cell_per_background_level_grouped_by_level() -> None:
    plan = build_plan(parse_sweep(_sweep(users=[2, 6]), source="shared.yaml"))
    assert [c.background_load for c in plan.cells] == [0.0, 0.0, 1.1, 1.1]  # one emulator start per level
    assert {c.cell_id for c in plan.cells} >= {"amazon.nova-lite-v1-0_mix_small_u6_bg1.1"}
    cell = plan.cells[0]
    assert cell.tier is None and cell.tier_mix == "priority:1,flex:1"
    params = cell.notebook_parameters()
    assert params["tier_mix"] == "priority:1,flex:1" and params["background_load"] == 0.0
    # the mix is priced: half the requests at priority's price, half at flex's
    by_tier = plan.cost_by_tier()
    assert set(by_tier) == {"priority", "flex"} and by_tier["priority"] > by_tier["flex"] > 0
    assert sum(by_tier.values()) == pytest.approx(plan.total_cost_usd)


def test_background_load_needs_the_sweeps_own_emulator_and_tier_mix_no_tier_axis() -> None:
    aws = {**_sweep(), "target": {"kind": "aws"}}
    with pytest.raises(ConfigError, match="grid.background_load"):
        parse_sweep(aws, source="shared.yaml")
    with pytest.raises(ConfigError, match="grid.tiers"):
        parse_sweep(_sweep(tiers=["default", "flex"]), source="shared.yaml")
    with pytest.raises(ConfigError, match="background_load"):
        parse_sweep(_sweep(background_load=[-0.5]), source="shared.yaml")


@pytest.mark.slow
def test_flex_ttft_rises_with_background_while_priority_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(_sweep()))
    lines: list[str] = []
    res = run_sweep(path, out=tmp_path / "out", progress=False, env={}, echo=lines.append)
    assert not res.failed, lines
    assert any("background load 1.1" in line for line in lines)  # the emulator was restarted at the new level
    sweep_dir = tmp_path / "out" / "shared"

    df = load_sweep(sweep_dir)
    assert sorted(df["background_load"].unique()) == LEVELS
    results = results_table(sweep_dir)  # results.csv names each cell's level and its tier mix
    assert sorted(results["background_load"]) == sorted(LEVELS * (len(results) // len(LEVELS)))
    assert set(results["tier_mix"]) == {"flex:1,priority:1"}  # normalised by cellspec
    for _, cell in df.groupby("cell_id"):  # both tiers in every cell, roughly half each (seeded draw)
        share = (cell["tier_requested"] == "priority").mean()
        assert set(cell["tier_requested"]) == {"priority", "flex"} and 0.3 < share < 0.7, share
        served = cell[cell["status"] == "ok"]
        assert (served["tier_served"] == served["tier_requested"]).all()
    ok = df[df["status"] == "ok"]
    p50 = ok.groupby(["background_load", "tier_requested"])["ttft_s"].median()
    idle, busy = LEVELS
    assert p50[busy, "flex"] > 2 * p50[idle, "flex"], p50  # flex waits behind everyone's default and priority
    # priority goes first: flat (the emulator's TTFT header, so the client's delays on a busy machine stay out)
    server = ok.groupby(["background_load", "tier_requested"])["server_ttft_s"].median()
    assert server[busy, "priority"] < 1.5 * server[idle, "priority"], server
    assert p50[busy, "priority"] < p50[busy, "flex"] / 2, p50
    flex_busy = df[(df["background_load"] == busy) & (df["tier_requested"] == "flex")]
    prio_busy = df[(df["background_load"] == busy) & (df["tier_requested"] == "priority")]
    throttled = [(d["error_kind"] == "throttled").mean() for d in (prio_busy, flex_busy)]
    assert throttled[0] <= throttled[1], throttled

    result = an.analyze(an.load_sweep_data(sweep_dir))
    # no table pools requests made under different background loads: each level is its own workload
    sizes = set(result.summary["prompt_size"])
    assert sizes == {f"small @ background {lvl:g}" for lvl in LEVELS}, sizes
    flex_busy_row = result.summary[(result.summary["tier"] == "flex")
                                   & (result.summary["prompt_size"] == f"small @ background {busy:g}")]
    assert len(flex_busy_row) == 1 and int(flex_busy_row["n_requests"].iloc[0]) == len(flex_busy)
    table = figures.background_table(result)
    assert set(table["tier"]) == {"priority", "flex"} and set(table["percentile"]) == {"p50", "p95"}
    got = table.set_index(["background_load", "tier", "percentile"])["estimate"]
    assert got[busy, "flex", "p50"] == pytest.approx(p50[busy, "flex"])
    charts = figures.report_charts(result)
    spec = charts["ttft_vs_background"].to_dict()
    assert "background" in str(spec["title"])
    assert isinstance(pd.DataFrame(table), pd.DataFrame) and len(table) == 2 * 2 * len(LEVELS)
