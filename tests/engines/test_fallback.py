"""The fallback policy (engines/fallback.py) in both engines, against a real emulator over HTTP.

Under a tight token quota (the emulator's ``tpm_quota`` override) a fallback to a lighter model, which has a quota
of its own, turns throttles into answers: goodput is higher with the fallback than without it, and each record
says which model answered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.engines.fallback import FallbackPolicy, FallbackSettings, request_options, restart
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.errors import ConfigError

#: fast latency (a request takes milliseconds): the quota, not the clock, shapes these runs
FAST = dict(ttft_ms=15.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=4000.0, jitter=0.1, chunk_tokens=4,
            contention=0.0, output_median_tokens=24, output_sigma=0.2)  # fmt: skip
PRIMARY, LIGHT = "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"
#: ~60 short requests fill the bucket; the refill (tokens per minute) adds about one a second
TIGHT_TPM = 1000


@contextmanager
def tight_emulator(**extra: Any) -> Iterator[Any]:
    """A fresh emulator per run: quota buckets start full, so the two arms start equal."""
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=FAST, capacity=512, tpm_quota=TIGHT_TPM, **extra) as emu:
        yield emu


def _burst(tmp_path: Path, name: str, **fallback: Any) -> pd.DataFrame:
    spec = BurstSpec(PRIMARY, users=4, requests=150, max_tokens=32, seed=3, **fallback)
    with tight_emulator() as emu:
        return run_burst_sync(spec, Target.emulator(emu.url), tmp_path / name, progress=False).records()


def test_policy_decides_once_and_only_for_throttles_and_server_errors() -> None:
    assert FallbackPolicy.from_settings(None, None) is None
    p = FallbackPolicy.from_settings(None, "flex")
    assert p is not None and p.route(PRIMARY, "priority") == (PRIMARY, "flex")
    assert p.applies("server", got_content=False)
    assert not p.applies("throttled", got_content=True), "a stream that delivered text cannot be taken back"
    assert not any(p.applies(k, got_content=False) for k in ("validation", "timeout", "client", None))
    with pytest.raises(ConfigError, match="own model and tier"):
        FallbackPolicy.of(FallbackSettings(PRIMARY, "flex", PRIMARY, "flex"))


def test_restart_keeps_the_clock_of_the_first_attempt() -> None:
    m = Measurement.begin()
    t0 = m.t0
    m.fail("throttled", "ThrottlingException", 429, "Too many tokens")
    m.finish()
    restart(m)
    assert (m.error_kind, m.http_status, m.end_mono, m.t0) == (None, None, None, t0)


def test_cell_options_become_request_options() -> None:
    from bedrock_lab.engines.workloads import WorkItem

    item = WorkItem("p", "small", [("user", "hi")])
    assert request_options(item, None, None) is None
    opts = request_options(item, "END|###", "gr-abc:3")
    assert opts is not None and opts.stop_sequences == ("END", "###") and opts.guardrail == ("gr-abc", "3")


def test_burst_fallback_under_a_tight_quota_raises_goodput(tmp_path: Path) -> None:
    without = _burst(tmp_path, "without")
    with_fb = _burst(tmp_path, "with", fallback_model=LIGHT)
    ok_without, ok_with = (without["status"] == "ok").mean(), (with_fb["status"] == "ok").mean()
    assert (without["error_kind"] == "throttled").sum() > 30, "the quota must bite for the comparison to mean much"
    assert ok_with >= 1.6 * ok_without, (ok_without, ok_with)  # measured 0.19 -> 0.39: two quotas instead of one
    assert without["fallback"].isna().all() and (without["answered_model"].dropna() == PRIMARY).all()
    fell = with_fb[with_fb["fallback"] == True]  # noqa: E712
    assert len(fell) > 20 and (fell.loc[fell["status"] == "ok", "answered_model"] == LIGHT).all()
    first = with_fb[with_fb["fallback"] == False]  # noqa: E712
    assert (first.loc[first["status"] == "ok", "answered_model"] == PRIMARY).all()
    assert (with_fb["model_id"] == PRIMARY).all(), "model_id stays the model asked first"


def test_burst_fallback_tier_is_recorded_as_served(tmp_path: Path) -> None:
    """A server error on the first attempt goes to the fallback tier; the tier served says so."""
    from bedrock_lab.emulator import run_emulator

    spec = BurstSpec("anthropic.claude-3-haiku-20240307-v1:0", tier="priority", users=2, requests=40,
                     max_tokens=16, seed=5, fallback_tier="flex")  # fmt: skip
    with run_emulator(seed=1, mode="thread", latency=FAST, capacity=512, faults={"error_500": 0.4}) as emu:
        df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records()
    fell = df[df["fallback"] == True]  # noqa: E712
    assert len(fell) >= 5
    served = fell.loc[fell["status"] == "ok", "tier_served"]
    assert len(served) and (served == "flex").all()
    assert (df.loc[df["fallback"] == False, "error_kind"].isna()).all()  # noqa: E712


def test_locust_uses_the_same_fallback_policy(tmp_path: Path) -> None:
    spec = BurstSpec(PRIMARY, users=2, requests=120, max_tokens=32, seed=3, fallback_model=LIGHT)
    with tight_emulator() as emu:
        res = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False)
    df = res.records()
    fell = df[df["fallback"] == True]  # noqa: E712
    assert len(df) == 120 and len(fell) > 20
    assert (fell.loc[fell["status"] == "ok", "answered_model"] == LIGHT).all()
    answered = df.loc[df["status"] == "ok", "answered_model"].value_counts()
    assert answered.get(LIGHT, 0) > 10 and answered.sum() >= 1.5 * answered.get(PRIMARY, 0), answered.to_dict()


@pytest.mark.slow
def test_a_seeded_sweep_with_a_fallback_has_higher_goodput_than_without(tmp_path: Path) -> None:
    """The issue's acceptance test: two one-cell sweeps (papermill, the cell notebook, the sweep's own emulator
    under a tight quota), the same seed, with and without ``cell.fallback_model``; the analysis of each."""
    import yaml

    from bedrock_lab.stats.analysis import analyze, load_sweep_data
    from bedrock_lab.sweep import run_sweep

    def sweep(name: str, **cell: Any) -> Any:
        data = {
            "name": name,
            "target": {"kind": "emulator", "emulator_seed": 1,
                       "emulator_overrides": {"tpm_quota": TIGHT_TPM, "latency": FAST, "capacity": 512}},
            "grid": {"models": [PRIMARY], "tiers": ["default"], "prompt_sizes": ["small"], "users": [4]},
            "cell": {"requests": 150, "max_tokens": 32, **cell},
            "slo": {"ttft_p95_s": 1.0, "e2e_p95_s": 5.0},
            "order": {"seed": 3},
        }  # fmt: skip
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        result = run_sweep(path, out=tmp_path / "out", yes=True, progress=False, echo=lambda _: None)
        assert not result.failed, result
        return analyze(load_sweep_data(tmp_path / "out" / name), fit=False, compare_metrics=())

    without, with_fb = sweep("nofallback"), sweep("fallback", fallback_model=LIGHT)
    g_without, g_with = float(without.summary["goodput"].iloc[0]), float(with_fb.summary["goodput"].iloc[0])
    assert g_with >= 1.5 * g_without, (g_without, g_with)
    assert without.fallback.empty
    row = with_fb.fallback.iloc[0]
    assert row["goodput"] == pytest.approx(g_with) and row["goodput_without"] < g_with
    assert row["fallback_model"] == LIGHT
    # the stakeholder report (papermill + nbconvert of notebooks/analysis.py) shows the section with the numbers
    from bedrock_lab.report.export import build_report

    page = build_report(tmp_path / "out" / "fallback").html.read_text()
    assert "Production features" in page and "went to the fallback" in page and "goodput without fallback" in page
