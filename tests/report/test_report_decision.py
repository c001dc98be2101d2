"""The report's decision section: a sentence per workload naming the choice, its load, its cost per 1k requests
and per month at the stated (or assumed) traffic; what runners-up are; the readable table; what the test cost.
One test builds the real HTML report and checks the section sits right after the executive summary."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bedrock_lab._money import fmt_usd
from bedrock_lab.report import decision, summary
from bedrock_lab.stats import analysis as an
from bedrock_lab.stats.decision import CHOICE

ROOT = Path(__file__).resolve().parents[2]


def _stated(synthetic_sweep: Path, tmp_path: Path, traffic: str) -> an.Analysis:
    root = tmp_path / "stated"
    shutil.copytree(synthetic_sweep, root)
    with (root / "sweep.yaml").open("a") as f:
        f.write(traffic)
    return an.analyze(an.load_sweep_data(root), fit=False, compare_metrics=())


def test_without_a_stated_traffic_the_assumption_is_shown(analysis: an.Analysis) -> None:
    assert not analysis.traffic.stated
    sentence = decision.traffic_sentence(analysis)
    assert "assume 100,000 requests/day x 30 days a month" in sentence and "traffic:" in sentence
    lines = decision.decision_sentences(analysis)
    assert len(lines) == 2  # one per workload (prompt size)
    small = next(s for s in lines if s.startswith("For small prompts"))
    choice = analysis.decision[(analysis.decision["prompt_size"] == "small")
                               & (analysis.decision["role"] == CHOICE)].iloc[0]
    assert f"{choice['model_name']} on the {choice['tier']} tier" in small
    assert f"at up to {int(choice['max_users_meeting_slo'])} user" in small
    assert f"at {fmt_usd(choice['cost_per_1k'])} per 1k requests" in small
    assert "/month at 100,000 requests/day (assumed)" in small
    table = decision.decision_table(analysis)
    month = "per month at 100,000 requests/day, assumed"
    assert month in table.columns and "alternatives" not in " ".join(table.columns)
    assert set(table["option"]) <= {"choice", "runner-up", "cheapest failing"}
    assert table[table["option"] == "choice"]["workload"].tolist() == ["large prompts", "small prompts"]
    assert "Runners-up also meet the SLOs but cost more" in decision.OPTIONS_EXPLAINED
    # the recommendation table the executive summary reads explains its count, and agrees with the decision
    rec = summary.recommendations(analysis)
    assert "alternatives" not in rec.columns and "runners-up (also meet the SLOs, cost more)" in rec.columns
    assert rec.set_index("workload").loc["small prompts", "recommendation"] == f"{choice['model_name']} / {choice['tier']}"


def test_a_stated_traffic_gives_the_monthly_arithmetic(synthetic_sweep: Path, tmp_path: Path) -> None:
    a = _stated(synthetic_sweep, tmp_path, "traffic:\n  requests_per_day: 250000\n  peak_users: 4\n")
    assert (a.traffic.requests_per_day, a.traffic.peak_users, a.traffic.source) == (250_000, 4, "sweep file")
    assert "the sweep file's traffic: section: 250,000 requests/day" in decision.traffic_sentence(a)
    assert "stated peak of 4 users" in decision.traffic_sentence(a)
    d = a.decision
    choice = d[(d["prompt_size"] == "small") & (d["role"] == CHOICE)].iloc[0]
    assert choice["max_users_meeting_slo"] >= 4  # the stated peak is held
    monthly = choice["cost_per_1k"] / 1000 * 250_000 * 30
    assert choice["cost_per_month"] == pytest.approx(monthly, rel=1e-12)
    small = next(s for s in decision.decision_sentences(a) if s.startswith("For small prompts"))
    assert f"about ${round(monthly):,}/month at 250,000 requests/day;" in small or \
        f"about ${round(monthly):,}/month at 250,000 requests/day." in small, small
    assert "(assumed)" not in small
    # a cheaper configuration that holds fewer users than the peak is named with that reason
    short = d[(d["prompt_size"] == "small") & (d["failed_checks"] == "peak_users")]
    assert len(short), "the synthetic sweep has a cheaper configuration holding only 1 user"
    row = short.iloc[0]
    assert decision.stop_reason(row, a) == (f"holds the SLOs only up to {int(row['max_users_meeting_slo'])} user"
                                            f"{'' if row['max_users_meeting_slo'] == 1 else 's'}, below the stated "
                                            "peak of 4 users")


def test_what_the_test_cost_is_stated(analysis: an.Analysis) -> None:
    text = decision.sweep_cost_sentence(analysis)
    total = float(analysis.sweep_cost["cost_usd"].sum())
    assert np.isfinite(total) and total > 0
    assert f"would have cost {fmt_usd(total)} on Amazon Bedrock" in text and "Nothing was billed" in text
    assert f"{int(analysis.sweep_cost['requests'].sum()):,} requests" in text
    per_cell = decision.sweep_cost_by_config(analysis)
    assert len(per_cell) == 36 and per_cell["cost"].str.startswith("$").all()


def test_the_notebook_puts_the_decision_right_after_the_executive_summary() -> None:
    src = (ROOT / "notebooks" / "analysis.py").read_text()
    heads = re.findall(r"^# ## (.+)$", src, flags=re.M)
    assert heads[:3] == ["Executive summary", "Decision: which model, which tier, how many users, what cost",
                         "Failed cells"]
    assert "alternatives" not in src


@pytest.mark.slow
def test_the_html_report_has_the_decision_section(synthetic_sweep: Path, tmp_path: Path) -> None:
    """The real export (papermill + nbconvert): banner, executive summary, then the decision with the stated
    traffic, the explanation of runners-up, the table and the test's cost."""
    import contextlib
    import io

    from bedrock_lab.cli import main

    root = tmp_path / "stated"
    shutil.copytree(synthetic_sweep, root)
    with (root / "sweep.yaml").open("a") as f:
        f.write("traffic:\n  requests_per_day: 40000\n")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(root)]) == 0
    html = (root / "report.html").read_text()
    at = {k: html.find(k) for k in ("Emulated run", "Executive summary", "Decision: which model",
                                    "Failed cells", "Appendix: what each cell cost")}
    assert all(v > 0 for v in at.values()), at
    assert at["Emulated run"] < at["Executive summary"] < at["Decision: which model"] < at["Failed cells"]
    section = html[at["Decision: which model"]:at["Failed cells"]]
    assert "per month at 40,000 requests/day" in section and "assumed" not in section
    assert "Runners-up also meet the SLOs" in section and "cheapest failing" in section
    assert "What this test cost." in section and "on Amazon Bedrock" in section
    assert (root / "tables" / "decision.csv").is_file() and (root / "tables" / "sweep_cost.csv").is_file()


def test_the_demo_prints_the_decision_from_the_tables(analysis: an.Analysis, tmp_path: Path) -> None:
    an.write_tables(analysis, tmp_path)
    lines = decision.lines_from_tables(tmp_path)
    assert lines[0].startswith("decision (") and "100,000 requests/day (assumed; set traffic:" in lines[0]
    body = "\n".join(lines)
    n_configs = len(analysis.decision)
    assert sum(line.startswith("    ") for line in lines) == n_configs  # one line per configuration
    choice = analysis.decision[analysis.decision["role"] == CHOICE].iloc[0]
    assert f"{choice['model_name']} / {choice['tier']}: holds the SLOs up to" in body
    assert decision.lines_from_tables(tmp_path / "missing") == []


def test_a_usl_peak_far_beyond_the_tested_loads_is_not_quoted(analysis: an.Analysis) -> None:
    """Three load levels of a near-linear curve give N_max = 10^15 users: the summary says to test higher."""
    import dataclasses

    cap = analysis.capacity.copy()
    cap["n_max"] = [1.5e15] + [float(analysis.max_users or 1) * 2] * (len(cap) - 1)
    text = " ".join(summary.capacity_sentences(dataclasses.replace(analysis, capacity=cap)))
    assert "no throughput peak within 10x the highest tested load (16 users) for 1 configuration:" in text
    assert "1500000000000000" not in text and "peak throughput at 32 users (N_max of the other configurations" in text


def test_the_report_command_takes_the_traffic(analysis: an.Analysis, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from bedrock_lab.cli import report as cli_report

    parser = argparse.ArgumentParser(prog="bedrock-lab report")
    cli_report.add_arguments(parser)
    params = cli_report.notebook_parameters(parser.parse_args(["x", "--requests-per-day", "2.5e5", "--peak-users", "24"]))
    assert (params["requests_per_day"], params["peak_users"]) == (250_000.0, 24)
    params = cli_report.notebook_parameters(parser.parse_args(["x"]))
    assert (params["requests_per_day"], params["peak_users"]) == (0.0, 0)  # 0: the sweep file's traffic:
    for bad, words in ((["--requests-per-day", "-1"], "must be a finite number > 0"),
                       (["--requests-per-day", "lots"], "'lots' is not a number"),
                       (["--peak-users", "2.5"], "is not a whole number")):
        with pytest.raises(SystemExit):
            parser.parse_args(["x", *bad])
        assert words in capsys.readouterr().err
    assert "--requests-per-day N" in decision.traffic_sentence(analysis)  # the assumption says how to state it
