"""Issue #14, where a user looks: stop reasons and the SLO search's outcome in ``results.csv``, in
``bedrock-lab analyze`` and in the executive summary; an open-loop (``rate_rps``) search end to end; the example
sweep ``params/sweeps/slo_search.yaml``; and the documented sequential / search keys against the code.

The open-loop search runs on an emulator with a known capacity: 4 concurrent requests per model, each holding a
slot ~160 ms (40 ms to the first token, 24 tokens at 200 tokens/s), so it serves at most ~25 requests/s. Arrivals
are constant (a Poisson stream queues well below capacity), so up to ~21 requests/s a request starts at once
(TTFT ~40 ms) and at 28 requests/s the queue grows by ~3 requests every second (TTFT passes 60 ms within a
second). The search's levels (7, 14, 28, then 21) stay away from the knee, so each one settles in seconds.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _sweep_helpers import ROOT, base_sweep

from bedrock_lab.cli import main
from bedrock_lab.params import CellConfig, SearchConfig, SweepConfig, load_sweep_config, parse_sweep
from bedrock_lab.report.summary import executive_summary, search_sentences, stop_sentences
from bedrock_lab.stats import analysis as an
from bedrock_lab.stats import synthetic_records
from bedrock_lab.store.manifest import MANIFEST, SEARCH, read_json
from bedrock_lab.sweep.results import STOP_COLUMNS, stop_columns
from bedrock_lab.sweep.runner import run_sweep
from bedrock_lab.sweep.search import MET, MISSED

EXAMPLE = ROOT / "params" / "sweeps" / "slo_search.yaml"
SEQUENTIAL_DOC = ROOT / "docs" / "sequential.md"
SWEEPS_DOC = ROOT / "docs" / "sweeps.md"
CAPACITY = 4
#: slots x 1 / the ~160 ms a request holds one: the most requests/s the emulator's model serves
MAX_RPS = CAPACITY / 0.16
OVERRIDES = {"capacity": CAPACITY, "latency": {
    "ttft_ms": 40.0, "prefill_ms_per_1k": 0.0, "ttft_sigma": 0.1, "tokens_per_s": 200.0, "jitter": 0.05,
    "chunk_tokens": 4, "contention": 0.0, "output_median_tokens": 24, "output_sigma": 0.1}}  # fmt: skip
ONE_GROUP = {"models": ["amazon.nova-lite-v1:0"], "tiers": ["default"], "prompt_sizes": ["small"]}


# ------------------------------------------------------------------------------------------- the example sweep


def test_the_example_search_sweep_passes_a_dry_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = load_sweep_config(EXAMPLE, env={})
    assert config.target.kind == "emulator" and config.search is not None and config.search.load == "users"
    assert config.target.emulator_overrides["capacity"] == CAPACITY  # the answer is known: see the file's comment
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cells       : 4" in out and "SLO search over users 2..16" in out and "dry run" in out
    assert "est. range" in out  # sequential levels: a range of requests and cost
    assert not any(tmp_path.iterdir())
    assert "params/sweeps/slo_search.yaml" in SEQUENTIAL_DOC.read_text()


# ------------------------------------------------------------------------------------------- docs match code


def _options(command: str) -> set[str]:
    from bedrock_lab import cli

    parser = argparse.ArgumentParser()
    getattr(cli, command).add_arguments(parser)
    return set(parser._option_string_actions)


def test_the_documented_sequential_and_search_keys_exist() -> None:
    """Every key and flag of docs/sequential.md's options table, and every key its search example names, is a
    field of the sweep file's models and an option of `bedrock-lab burst` (and of the Locust --bl-* options)."""
    doc = SEQUENTIAL_DOC.read_text()
    table = doc.split("## Options", 1)[1].split("\n\n", 2)[1]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) >= 9, table
    fields, flags = set(), set()
    for _, keys, cli_col, _default in rows:
        fields |= set(re.findall(r"`([a-z_]+)`", keys))
        flags |= set(re.findall(r"(--[a-z-]+)", cli_col))
    assert {"sequential", "slo_target_s", "check_every_s", "warmup_s", "min_requests"} <= fields
    assert fields <= set(CellConfig.model_fields), fields - set(CellConfig.model_fields)
    assert flags <= _options("burst"), flags - _options("burst")
    assert flags <= _options("locust"), flags - _options("locust")
    # the search section: the example's keys and the ones its comment names
    search = doc.split("## The SLO search", 1)[1]
    named = set(re.findall(r"search: \{([^}]*)\}", search)[0].replace(":", " ").split()[::2])
    named |= set(re.findall(r"`(resolution|max_levels)`", search))
    assert named == {"load", "low", "high", "resolution", "max_levels"} and named <= set(SearchConfig.model_fields)
    assert "search" in SweepConfig.model_fields
    # docs/sweeps.md's section uses the same keys
    sweeps = SWEEPS_DOC.read_text().split("### Sequential cells and the SLO search", 1)[1].split("\n## ", 1)[0]
    for key in re.findall(r"`(?:cell|search): \{([a-z_]+):", sweeps):
        assert key in CellConfig.model_fields or key in SearchConfig.model_fields, key


def test_the_help_texts_name_the_sequential_and_search_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["burst", "--help"])
    burst = capsys.readouterr().out
    for flag in ("--sequential", "--slo-target", "--slo-percentile", "--precision", "--check-every", "--warmup",
                 "--min-duration", "--min-requests", "--alpha"):
        assert flag in burst, flag
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    sweep = " ".join(capsys.readouterr().out.split())
    assert "sequential: verdict" in sweep and "search:" in sweep and "search.json" in sweep


# ------------------------------------------------------------------------------------------- results.csv


def test_results_columns_of_a_fixed_and_a_sequential_cell() -> None:
    """A fixed cell says why it ended and nothing else; a sequential cell adds its last always-valid interval,
    an unbounded side (too few requests to show a p95 below a target) as inf, the way the stop table reads it."""
    fixed = stop_columns({"stop_reason": "max_duration", "stopped_at_s": None, "load_s": 2.0}, {})
    assert list(fixed) == list(STOP_COLUMNS) and fixed["sequential"] == "off" and fixed["load_s"] == 2.0
    assert fixed["stop_reason"] == "max_duration" and all(fixed[k] is None for k in STOP_COLUMNS[4:])
    seq = {"mode": "verdict", "metric": "ttft_s", "percentile": 0.95, "target_s": 0.06, "n": 60, "status": "undecided",
           "estimate": 0.045, "lo": 0.041, "hi": None, "interval": "always-valid (Howard & Ramdas 2022)"}  # fmt: skip
    summary = {"stop_reason": "max_requests", "stopped_at_s": None, "sequential": seq,
               "engine_result": {"wall_s": 5.0}}  # fmt: skip
    row = stop_columns({}, summary)  # a manifest entry older than issue #14: summary.json answers
    assert row["stop_reason"] == "max_requests" and row["load_s"] == 5.0 and row["sequential"] == "verdict"
    assert row["seq_hi_s"] == float("inf") and row["seq_lo_s"] == 0.041 and row["seq_status"] == "undecided"
    assert row["seq_n"] == 60 and row["seq_target_s"] == 0.06 and row["seq_interval"].startswith("always-valid")


# ------------------------------------------------------------------------------------------- the sentences


@pytest.fixture(scope="module")
def small_analysis() -> an.Analysis:
    return an.analyze(synthetic_records(108, users=(1, 8), prompt_sizes=("small",), tiers=("default",)),
                      fit=False, compare_metrics=())  # fmt: skip


def _group(**kw: Any) -> dict[str, Any]:
    row = {"model_id": "us.amazon.nova-lite-v1:0", "tier": "default", "prompt_size": "small", "load": "users",
           "found": 12.0, "bracket_lo": 12.0, "bracket_hi": 16.0, "status": "bracketed", "levels": 5,
           "requests": 400, "slo_metric": "ttft_s", "slo_percentile": 0.95, "slo_target_s": 0.8}  # fmt: skip
    return {**row, **kw}


def test_the_search_sentence_per_group_and_status(small_analysis: an.Analysis) -> None:
    a = small_analysis
    assert search_sentences(a) == [] and stop_sentences(a) == []  # no search, no sequential cells: nothing said
    a.search = pd.DataFrame([
        _group(),
        _group(tier="flex", found=16.0, bracket_hi=None, status="at_least_high", levels=4),
        _group(tier="priority", found=None, bracket_lo=None, bracket_hi=2.0, status="below_low", levels=1),
        _group(prompt_size="large", load="rate_rps", found=3.5, bracket_lo=3.5, bracket_hi=4.0, status="max_levels",
               levels=10, slo_metric="e2e_s", slo_percentile=0.9, slo_target_s=2.5),
    ])  # fmt: skip
    try:
        lines = search_sentences(a)
        assert lines[0].endswith("the highest load meeting the SLO (p95 TTFT <= 800 ms): 12 users (bracket 12-16), "
                                 "5 levels tried.")  # fmt: skip
        assert "Nova Lite on the default tier with small prompts" in lines[0]  # the catalog's display name
        assert "at least 16 users (the highest level searched met it), 4 levels tried." in lines[1]
        assert "no load searched met the SLO (p95 TTFT <= 800 ms) (the lowest level, 2 users, missed); 1 level " \
               "tried." in lines[2]  # fmt: skip
        assert ("(p90 end-to-end latency <= 2.50 s): 3.5 requests/s (bracket 3.5-4), 10 levels tried; the search "
                "stopped at its max_levels.") in lines[3]  # fmt: skip
        assert [s for s in executive_summary(a) if "highest load meeting the SLO (" in s] == lines[:2] + [lines[3]]
    finally:
        a.search = pd.DataFrame()


def test_the_stop_sentence_counts_settled_and_bounded_cells(small_analysis: an.Analysis) -> None:
    a = small_analysis
    a.sequential_cells = pd.DataFrame({
        "sequential": ["verdict", "verdict", "verdict", "precision", "off"],
        "stop_reason": ["settled_below", "settled_above", "max_duration", "precise", "max_duration"],
        "verdict": ["met", "missed", "undecided", "precise", None],
    })  # fmt: skip
    try:
        (line,) = stop_sentences(a)
        assert line == ("Of 4 sequential cells, 3 stopped as soon as the always-valid interval settled their answer "
                        "(1 met the SLO, 1 missed it and 1 precise enough) and 1 ran to their maximum.")  # fmt: skip
        assert line in executive_summary(a)
    finally:
        a.sequential_cells = pd.DataFrame()


# ------------------------------------------------------------------------------------------- open loop, end to end


@pytest.mark.slow
def test_an_open_loop_search_brackets_the_configured_capacity_everywhere_a_user_looks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = parse_sweep(base_sweep(
        name="rate", target={"kind": "emulator", "emulator_overrides": OVERRIDES}, grid=ONE_GROUP,
        slo={"ttft_p95_s": 0.06},
        cell={"duration_s": 20.0, "max_tokens": 32, "arrival": "constant", "slo_percentile": 0.5, "slo_target_s": 0.06,
              "check_every_s": 0.5},
        search={"load": "rate_rps", "low": 7, "high": 56, "resolution": 7},
    ), env={})  # fmt: skip
    res = run_sweep(cfg, out=tmp_path, progress=False, echo=lambda s: None)
    assert res.ok, res.failed
    folder = tmp_path / "rate"
    (group,) = read_json(folder / SEARCH)["groups"]
    tried = [(lv["load"], lv["verdict"]) for lv in group["levels"]]
    assert tried == [(7, MET), (14, MET), (28, MISSED), (21, MET)], tried
    assert group["found"] == 21 and group["bracket"] == [21, 28] and group["status"] == "bracketed"
    assert group["found"] < MAX_RPS < group["bracket"][1]  # the bracket holds the emulator's capacity
    cells = read_json(folder / MANIFEST)["cells"]
    assert all(e["rate_rps"] is not None and e["users"] is None for e in cells.values())

    # results.csv: why and when each level stopped, and its always-valid interval
    results = pd.read_csv(folder / "results.csv").set_index("rate_rps")
    assert set(STOP_COLUMNS) <= set(results.columns)
    assert set(results["stop_reason"]) == {"settled_below", "settled_above"}
    assert (results["sequential"] == "verdict").all() and results["stopped_at_s"].notna().all()
    assert (results["seq_lo_s"] <= results["seq_estimate_s"]).all()
    assert (results["seq_estimate_s"] <= results["seq_hi_s"]).all()
    assert results.loc[28.0, "seq_status"] == "above" and results.loc[28.0, "seq_lo_s"] > 0.06
    assert results.loc[21.0, "seq_status"] == "below" and results.loc[21.0, "seq_hi_s"] < 0.06
    assert (results["seq_target_s"] == 0.06).all() and (results["seq_percentile"] == 0.5).all()

    # the analysis exposes it, the executive summary and `bedrock-lab analyze` say it
    result = an.analyze(an.load_sweep_data(folder), fit=False, compare_metrics=())
    assert result.load_kind == "rate" and len(result.search) == 1 and len(result.search_levels) == 4
    assert len(result.sequential_cells) == 4 and set(result.sequential_cells["verdict"]) == {MET, MISSED}
    expected = "the highest load meeting the SLO (p50 TTFT <= 60 ms): 21 requests/s (bracket 21-28), 4 levels tried."
    assert any(s.endswith(expected) for s in executive_summary(result))
    assert main(["analyze", str(folder), "--no-fit"]) == 0
    out = capsys.readouterr().out
    assert expected in out
    assert "Sequential cells, judged by their always-valid interval" in out and "settled: misses the SLO" in out
    written = {p.name for p in (folder / "tables").iterdir()}
    assert {"sequential_cells.csv", "search.csv", "search_levels.csv"} <= written
    assert pd.read_csv(folder / "tables" / "search.csv").loc[0, "found"] == 21
