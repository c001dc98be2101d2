"""The words of the report: summary sentences with intervals, recommendations with costs, graceful gaps."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from bedrock_lab.records import RecordWriter, RequestRecord
from bedrock_lab.report import figures, summary
from bedrock_lab.stats import analysis as an


def test_executive_summary_has_numbers_and_intervals(analysis) -> None:  # type: ignore[no-untyped-def]
    text = summary.executive_summary(analysis)
    joined = " ".join(text)
    assert "2,880 requests" in joined
    assert re.search(r"\[95% simultaneous CI \d+%-\d+%\] versus default", joined)  # a tier effect, its interval
    assert re.search(r"Flex was throttled on \d+\.\d% \[95% CI", joined)
    assert "per 1k requests" in joined


def test_recommendation_is_the_cheapest_meeting_the_slos(analysis) -> None:  # type: ignore[no-untyped-def]
    rec = summary.recommendations(analysis)
    assert list(rec["workload"]) == ["large prompts", "small prompts"]
    small = rec.set_index("workload").loc["small prompts"]
    assert small["recommendation"] != "none meets the SLOs"
    assert small["cost per 1k requests"].startswith("$")
    # flex is half price in the catalog and nova-lite is the cheaper model: it wins for small prompts
    assert small["recommendation"] == "Amazon Nova Lite / flex"  # the catalog's display name, as everywhere
    costs = analysis.costs.set_index(["model", "tier", "prompt_size"])["cost_per_1k"]
    meeting = analysis.capacity[analysis.capacity["prompt_size"] == "small"].dropna(subset=["max_users_meeting_slo"])
    cheapest = min(costs[(m, t, "small")] for m, t in zip(meeting["model"], meeting["tier"], strict=True))
    assert costs[("nova-lite-v1:0", "flex", "small")] == cheapest


def test_costs_degrade_without_a_catalog(analysis) -> None:  # type: ignore[no-untyped-def]
    table = an.cost_table(analysis.records, catalog=RuntimeError("catalog missing"))
    assert table["cost_per_1k"].isna().all()
    assert table["cost_note"].str.contains("no catalog").all()


def test_environment_methods_and_appendix(analysis) -> None:  # type: ignore[no-untyped-def]
    env = summary.environment(analysis)
    assert env["target"] == "emulator" and env["region"] == "us-east-1 (emulated)" and env["sweep file"] == "sweep.yaml"
    assert "altair" in env["versions"]
    methods = " ".join(summary.methods_and_caveats(analysis))
    assert "closed loop" in methods and "368 for p99" in methods and "emulator" in methods
    assert "not from Amazon Bedrock" in summary.target_banner(analysis)  # the banner at the top of the report
    appendix = summary.cell_appendix(analysis)
    assert len(appendix) == 36 and appendix["cell"].str.len().gt(0).all()


def test_slos_come_from_the_sweep_file_then_overrides(analysis) -> None:  # type: ignore[no-untyped-def]
    assert an.slo_from(analysis.data).ttft_s == 1.0
    slo = an.slo_from(analysis.data, {"ttft_s": 0.5, "e2e_s": None})
    assert (slo.ttft_s, slo.e2e_s) == (0.5, 10.0)


def test_sweep_file_slo_spellings_and_error_rate_limit(analysis) -> None:  # type: ignore[no-untyped-def]
    data = an.SweepData(root=analysis.data.root, records=analysis.records,
                        sweep_config={"slo": {"ttft_p95_s": 2.0, "e2e_p95_s": 5.0, "error_rate_max": 0.01}})
    slo = an.slo_from(data)
    assert (slo.ttft_s, slo.e2e_s, slo.goodput_target) == (2.0, 5.0, 0.95)
    assert an.error_rate_max(data) == 0.01
    strict = an.analyze(data, fit=False, compare_metrics=())
    # flex at 16 users is throttled on ~10% of requests: above 1%, so it cannot meet the SLOs there
    flex16 = strict.summary[(strict.summary["tier"] == "flex") & (strict.summary["users"] == 16)]
    assert not flex16["meets_target"].any()
    assert any("error rate of at most 1.0%" in n for n in strict.notes)


def test_a_plain_records_folder_without_metadata_works(tmp_path: Path) -> None:
    with RecordWriter(tmp_path / "recs") as w:
        for i in range(30):
            timeout = i in (7, 19)  # timed out at the client's 5 s limit
            w.add(RequestRecord(run_id="r", cell_id="", engine="burst", worker="w", seq=i, api="converse",
                                model_id="amazon.nova-lite-v1:0", tier_requested=None, tier_served=None,
                                prompt_id="p", prompt_size="small", users=2, rate_rps=None, intended_start=None,
                                start=1000.0 + i, schedule_lag_s=None, ttft_s=None,
                                e2e_s=5.0 if timeout else 0.5 + i / 100, input_tokens=100,
                                output_tokens=None if timeout else 50, status="error" if timeout else "ok",
                                error_kind="timeout" if timeout else None))
    data = an.load_sweep_data(tmp_path / "recs")
    assert data.plan is None and data.manifest is None and data.sweep_file is None
    result = an.analyze(data)
    assert summary.executive_summary(result)[0].startswith("This sweep sent 30 requests to the target")
    assert result.censored["n_censored"].tolist() == [2]  # timeouts kept as right-censored, not dropped
    assert "right-censored observations (Kaplan-Meier)" in " ".join(summary.methods_and_caveats(result))
    assert isinstance(summary.recommendations(result), pd.DataFrame)
    assert summary.target_banner(result) == ""  # no target known: no emulator banner claimed
    built = figures.report_charts(result)  # no TTFT (non-streaming), one load level: fewer charts, no error
    assert "ecdf_e2e_s" in built and "ecdf_ttft_s" not in built and "p95_ttft_vs_users" not in built


def test_an_open_loop_sweep_reports_arrival_rates(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    with RecordWriter(tmp_path / "open") as w:
        for rate in (0.5, 2.0, 8.0):
            for tier in (None, "priority"):
                for i in range(40):
                    lat = float(rng.lognormal(np.log(0.4 + rate / 20), 0.3))
                    w.add(RequestRecord(run_id=f"r{rate}", cell_id=f"c-{tier}-{rate}", engine="burst", worker="w",
                                        seq=i, api="converse-stream", model_id="amazon.nova-lite-v1:0",
                                        tier_requested=tier, tier_served=tier, prompt_id="p", prompt_size="small",
                                        users=None, rate_rps=rate, intended_start=1000.0 + i / rate,
                                        start=1000.0 + i / rate, schedule_lag_s=0.001, ttft_s=lat,
                                        e2e_s=lat + 1.0, itl_mean_s=0.01, input_tokens=100, output_tokens=100))
    result = an.analyze(an.load_sweep_data(tmp_path / "open"))
    assert result.load_kind == "rate" and result.max_users == 8
    text = " ".join(summary.executive_summary(result))
    assert "0.5, 2 and 8 requests/s arrival rate" in text and "concurrent users" not in text
    built = figures.report_charts(result)
    spec = str(built["p95_ttft_vs_users"].to_dict())
    assert "arrival rate (requests/s)" in spec and "concurrent users (count)" not in spec
    assert summary.cell_appendix(result)["load"].iloc[0].endswith("requests/s")



def test_a_percentile_timeouts_could_hide_is_quoted_as_a_bound_never_an_interval() -> None:
    """Issue 11: 3% of streams time out before their first token, above every finished TTFT: p50 stays an
    estimate with its interval, p99 is quoted as '>= ... (lower bound: 3.0% timed out)' everywhere."""
    import numpy as np

    rng = np.random.default_rng(498)
    n = 600
    ttft = rng.lognormal(np.log(0.3), 0.2, n)
    timeout = np.arange(n) % 33 == 0
    df = pd.DataFrame({"model_id": "amazon.nova-lite-v1:0", "tier_requested": None, "prompt_size": "small",
                       "users": 8, "api": "converse-stream", "start": np.arange(n) * 0.1,
                       "status": np.where(timeout, "error", "ok"), "error_kind": np.where(timeout, "timeout", None),
                       "ttft_s": np.where(timeout, np.nan, ttft), "e2e_s": np.where(timeout, 0.9, ttft + 0.4),
                       "output_tokens": np.where(timeout, np.nan, 50.0)})
    a = an.analyze(df, fit=False, compare_metrics=())
    row = a.summary.iloc[0]
    assert row["ttft_s_p50_bound"] == "" and row["ttft_s_p99_bound"] == "lower"
    frac = f"{row['ttft_s_censored_frac']:.1%}"
    assert summary.fmt_quantile(row, "ttft_s", "p99") == f">= {summary.fmt_s(row['ttft_s_p99'])} (lower bound: {frac} timed out)"
    assert summary.fmt_quantile(row, "ttft_s", "p50").count("[95% CI") == 1
    words = " ".join(summary.executive_summary(a))
    assert "Timeouts could hide the tail of time to first token" in words
    bound_sentence = next(t for t in summary.executive_summary(a) if t.startswith("Timeouts could hide the tail of time"))
    assert "95% CI" not in bound_sentence and f"{frac} timed out" in bound_sentence
    appendix = summary.cell_appendix(a)
    assert appendix["TTFT p50 [95% CI]"].iloc[0].count("[") == 1
