"""SLO search and sequential sweeps (issue #14): the search finds a configured capacity, the stop reasons reach
the manifest and the report, and the plan states a range.

The emulator's capacity is set by overrides (4 concurrent requests per model) so the knee is known: up to 4 users
TTFT is ~40 ms; above, every request queues behind a ~160 ms answer, and the median TTFT passes 60 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import base_sweep

from bedrock_lab.errors import ConfigError
from bedrock_lab.params import parse_sweep
from bedrock_lab.plan import build_plan, search_ladder
from bedrock_lab.report import sequential as seq_report
from bedrock_lab.stats import analysis as an
from bedrock_lab.stats import sequential as seq_stats
from bedrock_lab.store.manifest import MANIFEST, SEARCH, read_json
from bedrock_lab.sweep.runner import run_sweep
from bedrock_lab.sweep.search import FAILED, MET, MISSED, UNDECIDED, bisect_levels, level_verdict

CAPACITY = 4
OVERRIDES = {"capacity": CAPACITY, "latency": {
    "ttft_ms": 40.0, "prefill_ms_per_1k": 0.0, "ttft_sigma": 0.1, "tokens_per_s": 200.0, "jitter": 0.05,
    "chunk_tokens": 4, "contention": 0.0, "output_median_tokens": 24, "output_sigma": 0.1}}  # fmt: skip
ONE_GROUP = {"models": ["amazon.nova-lite-v1:0"], "tiers": ["default"], "prompt_sizes": ["small"]}


def _cfg(**overrides: Any) -> Any:
    return parse_sweep(base_sweep(**overrides), env={})


class _Analysis:
    """What the report's sequential section reads: ``.data`` (an analysis of the sweep is not needed for it)."""

    def __init__(self, root: Path) -> None:
        self.data = an.load_sweep_data(root)
        self.sequential_cells = seq_stats.stop_table(self.data)  # as the analysis keeps it


# ------------------------------------------------------------------------------------------- the algorithm


@pytest.mark.parametrize("capacity", [1, 3, 4, 7, 12, 33, 63])
def test_bisection_finds_every_capacity_with_few_levels(capacity: int) -> None:
    res = bisect_levels(1, 64, integer=True, resolution=1, max_levels=20,
                        verdict=lambda load: MET if load <= capacity else MISSED)  # fmt: skip
    assert res.found == capacity and res.bracket == (capacity, capacity + 1) and res.status == "bracketed"
    assert len(res.tried) <= 2 * 7  # doubling then bisection: logarithmic in the range


def test_bisection_edges_and_undecided_levels() -> None:
    low = bisect_levels(2, 16, integer=True, resolution=1, max_levels=10, verdict=lambda load: MISSED)
    assert low.found is None and low.status == "below_low" and low.tried == [(2.0, MISSED)]
    high = bisect_levels(2, 16, integer=True, resolution=1, max_levels=10, verdict=lambda load: MET)
    assert high.found == 16 and high.status == "at_least_high" and [t for t, _ in high.tried] == [2, 4, 8, 16]
    # an undecided level is not shown to meet the SLO: the found load stays below it
    res = bisect_levels(1, 64, integer=True, resolution=1, max_levels=20,
                        verdict=lambda load: MET if load <= 5 else UNDECIDED if load <= 8 else MISSED)  # fmt: skip
    assert res.found == 5 and res.bracket == (5, 6)
    capped = bisect_levels(1, 64, integer=True, resolution=1, max_levels=6, verdict=lambda load: MET if load <= 20
                           else MISSED)  # fmt: skip
    assert capped.status == "max_levels" and len(capped.tried) == 6 and capped.found == 16
    rate = bisect_levels(0.5, 40.0, integer=False, resolution=0.25, max_levels=30,
                         verdict=lambda load: MET if load <= 9.3 else MISSED)  # fmt: skip
    assert rate.found is not None and 9.05 <= rate.found <= 9.3 and rate.bracket[1] - rate.found <= 0.25  # type: ignore[operator]
    assert search_ladder(3, 20, integer=True) == [3, 6, 12, 20]


def test_level_verdicts_from_summaries() -> None:
    assert level_verdict(None) == FAILED
    assert level_verdict({"valid": True, "stop_reason": "settled_below"}) == MET
    assert level_verdict({"valid": True, "stop_reason": "max_duration", "sequential": {"status": "above"}}) == MISSED
    assert level_verdict({"valid": True, "stop_reason": "max_duration", "sequential": {"status": "undecided"}}) == UNDECIDED


# ------------------------------------------------------------------------------------------- configuration


def test_a_search_or_a_verdict_cell_needs_a_target_and_sane_bounds() -> None:
    with pytest.raises(ConfigError, match="need a target") as err:
        _cfg(grid=ONE_GROUP, search={"low": 1, "high": 8})
    assert err.value.key == "cell.slo_target_s"
    with pytest.raises(ConfigError, match="need a target"):
        _cfg(cell={"duration_s": 2.0, "sequential": "verdict"})
    with pytest.raises(ConfigError, match="above search.low"):
        _cfg(grid=ONE_GROUP, slo={"ttft_p95_s": 1.0}, search={"low": 8, "high": 8})
    with pytest.raises(ConfigError, match="whole numbers"):
        _cfg(grid=ONE_GROUP, slo={"ttft_p95_s": 1.0}, search={"low": 1.5, "high": 8})
    with pytest.raises(ConfigError, match="sequential"):
        _cfg(cell={"duration_s": 2.0, "sequential": "later"})


def test_the_plan_states_a_range_and_takes_the_target_from_the_slo() -> None:
    cfg = _cfg(slo={"ttft_p95_s": 0.8}, cell={"duration_s": 30.0, "sequential": "verdict", "max_tokens": 32})
    plan = build_plan(cfg)
    assert all(c.spec.slo_target_s == 0.8 for c in plan.cells)
    assert plan.sequential and 0 < plan.total_requests_min < plan.total_requests
    assert 0 < plan.total_cost_min_usd < plan.total_cost_usd
    text = plan.describe()
    assert "sequential cells stop once settled" in text and "est. range" in text
    fixed = build_plan(_cfg())
    assert not fixed.sequential and fixed.total_requests_min == fixed.total_requests
    search = build_plan(_cfg(grid=ONE_GROUP, slo={"ttft_p95_s": 1.0}, search={"low": 2, "high": 16}))
    assert [c.users for c in search.cells] == [2, 4, 8, 16] and all(c.sequential == "verdict" for c in search.cells)


# ------------------------------------------------------------------------------------------- sweeps


@pytest.mark.slow
def test_a_sequential_grid_records_why_each_cell_stopped(tmp_path: Path) -> None:
    """p95 TTFT vs 60 ms (the sweep's slo) with at most 60 requests: 8 users (twice the capacity) is a clear miss
    that settles at the first looks; 2 users meets it, but 60 requests are too few to show a p95 below a target
    (the always-valid upper bound needs 128), so that cell runs to its maximum."""
    cfg = parse_sweep(base_sweep(
        name="seqgrid", target={"kind": "emulator", "emulator_overrides": OVERRIDES},
        grid={**ONE_GROUP, "users": [2, 8]}, slo={"ttft_p95_s": 0.06},
        cell={"duration_s": 20.0, "requests": 60, "max_tokens": 32, "sequential": "verdict", "check_every_s": 0.5},
    ), env={})  # fmt: skip
    res = run_sweep(cfg, out=tmp_path, progress=False, echo=lambda s: None)
    assert res.ok, res.failed
    cells = read_json(tmp_path / "seqgrid" / MANIFEST)["cells"]
    u2, u8 = cells["amazon.nova-lite-v1-0_default_small_u2"], cells["amazon.nova-lite-v1-0_default_small_u8"]
    assert u8["stop_reason"] == "settled_above" and u8["requests"] < 60 and u8["stopped_at_s"] is not None
    assert u2["stop_reason"] == "max_requests" and u2["requests"] == 60 and u2["stopped_at_s"] is None
    assert u2["sequential"]["status"] == "undecided" and u2["sequential"]["hi"] is None  # +inf, as JSON null
    report = _Analysis(tmp_path / "seqgrid")
    table = seq_stats.stop_table(report.data).set_index("cell_id")
    assert table.loc["amazon.nova-lite-v1-0_default_small_u8", "verdict"] == "missed"
    assert (table["interval"] == seq_stats.ALWAYS_VALID).all()
    shown = seq_report.stop_reasons(report)
    assert set(shown["stop reason"]) == {"settled: misses the SLO", "ran to its maximum requests"}
    assert seq_stats.cost_saved(report.data)["stopped_early"] == 1
    assert seq_report.has_sequential(report) and "1 stopped as soon as" in seq_report.cost_sentences(report)[0]
    # the stakeholder report (the analysis notebook, exported): the section and both stop reasons
    from bedrock_lab.report.export import build_report

    html = build_report(tmp_path / "seqgrid").html.read_text()
    assert "Why each cell stopped" in html and "always-valid" in html
    assert "settled: misses the SLO" in html and "ran to its maximum requests" in html
    assert (tmp_path / "seqgrid" / "tables" / "sequential_cells.csv").is_file()


@pytest.mark.slow
def test_the_search_finds_the_configured_capacity_and_resumes(tmp_path: Path) -> None:
    data = base_sweep(
        name="knee", target={"kind": "emulator", "emulator_overrides": OVERRIDES}, grid=ONE_GROUP,
        cell={"duration_s": 20.0, "max_tokens": 32, "slo_percentile": 0.5, "slo_target_s": 0.06,
              "check_every_s": 0.5},
        search={"load": "users", "low": 2, "high": 16},
    )  # fmt: skip
    res = run_sweep(parse_sweep(data, env={}), out=tmp_path, progress=False, echo=lambda s: None)
    assert res.ok, res.failed
    outcome = read_json(tmp_path / "knee" / SEARCH)
    (group,) = outcome["groups"]
    assert group["found"] == CAPACITY and group["bracket"] == [CAPACITY, CAPACITY + 1], group
    tried = [(lv["load"], lv["verdict"]) for lv in group["levels"]]
    assert tried[:3] == [(2, MET), (4, MET), (8, MISSED)] and tried[-1] == (5, MISSED)
    cells = read_json(tmp_path / "knee" / MANIFEST)["cells"]
    assert len(cells) == len(tried) and all(e["stop_reason"] in seq_stats.SETTLED_REASONS for e in cells.values())
    total = sum(e["requests"] for e in cells.values())
    assert total < 20 * 16 * 4, "sequential levels should stop long before their 20 s maximum"
    # the report: the found load, its bracket and the levels tried
    shown = seq_report.search_summary(_Analysis(tmp_path / "knee"))
    assert shown.iloc[0]["highest users meeting the SLO"] == "4" and shown.iloc[0]["bracket"] == "4 to below 5"
    # resume: every level is done with the same parameters, so none runs again and the outcome is the same
    again = run_sweep(parse_sweep(data, env={}), out=tmp_path, resume=True, progress=False, echo=lambda s: None)
    assert again.ran == [] and sorted(again.skipped) == sorted(cells)
    assert read_json(tmp_path / "knee" / SEARCH)["groups"][0]["found"] == CAPACITY


def test_the_module_example_runs() -> None:
    import doctest

    import bedrock_lab.sweep.search as search

    assert doctest.testmod(search, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_run_search_without_a_search_section_is_a_config_error() -> None:
    from bedrock_lab.sweep.search import run_search

    with pytest.raises(ConfigError, match="search"):
        run_search(parse_sweep(base_sweep(), env={}), lambda cell: None, echo=lambda s: None)
