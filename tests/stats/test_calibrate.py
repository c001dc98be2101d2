"""Calibration (issue #15): records from the emulator with a known profile, fitted, give that profile back, and a
replay with the fitted overlay reproduces the run's TTFT and TPOT percentiles. Real boto3-compatible traffic (the
burst engine) against a real emulator subprocess; everything seeded."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bedrock_lab.calibrate import (
    bimodality,
    calibrate,
    calibrate_frame,
    fit_faults,
    fit_output,
    prepare,
    read_timing_log,
    report_html,
    report_markdown,
)
from bedrock_lab.catalog import FaultProfile, LatencyProfile, apply_overlay, load_catalog
from bedrock_lab.emulator import run_emulator
from bedrock_lab.emulator.load import draw, plan
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync
from bedrock_lab.errors import ConfigError

MODEL = "amazon.nova-lite-v1:0"
#: the known profile; TTFT is long next to the emulator's own per-request CPU (~0.5 ms, not scaled) so the
#: scaled schedule dominates it; contention 0 and a large capacity: no load effect on the decode speed
KNOWN = {"ttft_ms": 1000.0, "prefill_ms_per_1k": 2000.0, "ttft_sigma": 0.2, "tokens_per_s": 60.0, "jitter": 0.2,
         "chunk_tokens": 4, "capacity": 512, "contention": 0.0, "output_median_tokens": 30, "output_sigma": 0.5}
FITTED = ("ttft_ms", "prefill_ms_per_1k", "ttft_sigma", "tokens_per_s", "jitter", "chunk_tokens",
          "output_median_tokens", "output_sigma")
TIME_SCALE = 0.15
USERS = 96
PER_SIZE = 1500
MAX_TOKENS = 64


def _run(url: str, out: Path) -> None:
    for size in ("small", "large"):  # ~9 and ~290 input tokens: the prefill slope is identified
        spec = BurstSpec(MODEL, users=USERS, requests=PER_SIZE, max_tokens=MAX_TOKENS, prompt_size=size,
                         run_id=f"run-{size}", cell_id=size)
        run_burst_sync(spec, Target.emulator(url), out / size, progress=False)


@pytest.fixture(scope="module")
def known_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "params" / "catalog.yaml").read_text())
    data["models"][MODEL]["latency"] = dict(KNOWN)
    path = tmp_path_factory.mktemp("cat") / "known.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def measured(known_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Records of the known profile; the emulator's timing log (``timing.jsonl``) beside them."""
    out = tmp_path_factory.mktemp("measured")
    with run_emulator(seed=11, catalog=str(known_catalog), time_scale=TIME_SCALE, mode="subprocess",
                      timing_log=str(out / "timing.jsonl")) as emu:  # fmt: skip
        _run(emu.url, out / "records")
    return out


def _quantiles(folder: Path) -> dict[str, np.ndarray]:
    """p50/p95/p99 of TTFT and TPOT as the emulator scheduled them (ground-truth headers and the timing log:
    TTFT after admission, TPOT = decode / (output tokens - 1)). Client-measured values, and the emulator's own
    time before admission, add real-time delays that a busy shared 2-core machine stretches (``time_scale`` does
    not shrink them), so they depend on what else runs, not on the profile."""
    from bedrock_lab.records import load_records

    df = load_records(folder / "records").merge(read_timing_log(folder / "timing.jsonl"), on="server_request_id")
    ok = df[df["status"] == "ok"]
    ttft = ok["server_ttft_s"] - ok["server_pre_s"]
    tpot = ok["server_decode_s"] / (ok["output_tokens"] - 1).where(ok["output_tokens"] > 1)
    return {m: np.quantile(v.dropna().to_numpy(float), [0.5, 0.95, 0.99]) for m, v in (("ttft", ttft), ("tpot", tpot))}


def test_round_trip_gives_back_the_known_profile(measured: Path, known_catalog: Path) -> None:
    cal = calibrate(measured / "records", catalog=known_catalog, time_scale=TIME_SCALE,
                    timing_log=measured / "timing.jsonl")  # fmt: skip
    fit = cal.fits[MODEL]
    assert fit.n == 2 * PER_SIZE
    for knob in FITTED:
        got, want = fit.latency[knob], KNOWN[knob]
        assert abs(got - want) <= 0.05 * want, f"{knob}: fitted {got:.4g}, known {want:.4g}"
    assert fit.chunk_match == 1.0
    assert fit.faults == {}
    assert not [f for f in cal.flags if "KS distance" in f]


def test_replay_with_the_overlay_reproduces_ttft_and_tpot(measured: Path, known_catalog: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    cal = calibrate(measured / "records", catalog=known_catalog, time_scale=TIME_SCALE,
                    timing_log=measured / "timing.jsonl")  # fmt: skip
    overlay = cal.write_overlay(tmp_path / "overlay.yaml")
    # the base catalog is the shipped one: the overlay alone carries the fitted profile (capacity/contention
    # are not fitted, so the replay sets them as the measured run had them)
    replay = tmp_path / "replay"
    replay.mkdir()
    with run_emulator(seed=12, overlay=str(overlay), time_scale=TIME_SCALE, mode="subprocess",
                      capacity=KNOWN["capacity"], latency={"contention": 0.0},
                      timing_log=str(tmp_path / "replay" / "timing.jsonl")) as emu:  # fmt: skip
        _run(emu.url, replay / "records")
    orig, rep = _quantiles(measured), _quantiles(replay)
    for metric in ("ttft", "tpot"):
        for q, a, b in zip(("p50", "p95", "p99"), orig[metric], rep[metric], strict=True):
            assert abs(b - a) <= 0.05 * a, f"{metric} {q}: measured {a * 1000:.2f} ms, replayed {b * 1000:.2f} ms"


def test_report_and_overlay_files(measured: Path, known_catalog: Path, tmp_path: Path) -> None:
    out, rep = tmp_path / "ov.yaml", tmp_path / "fit.html"
    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "calibrate", str(measured / "records"), "--catalog",
                           str(known_catalog), "--time-scale", str(TIME_SCALE), "--timing-log",
                           str(measured / "timing.jsonl"), "--out", str(out), "--report", str(rep)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(out.read_text())
    assert set(data["models"][MODEL]) == {"latency"}  # no faults seen, one tier: only the fitted knobs
    assert set(data["models"][MODEL]["latency"]) == set(FITTED)
    spec = apply_overlay(load_catalog(), out).resolve("us." + MODEL)  # validated by the catalog's own rules
    assert spec.latency.chunk_tokens == 4 and isinstance(spec.latency.chunk_tokens, int)
    assert spec.latency.capacity == load_catalog().resolve(MODEL).latency.capacity  # not fitted: unchanged
    html = rep.read_text()
    for text in ("Measured vs replayed", "ttft_ms", "tpot_ms", "KS", "rates by load", "<svg", "TTFT quantiles"):
        assert text in html
    bad = subprocess.run([sys.executable, "-m", "bedrock_lab", "calibrate", str(measured), "--out", str(out),
                          "--report", str(tmp_path / "fit.pdf")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--report" in bad.stderr and "Traceback" not in bad.stderr


# -- the fits on samples of the emulator's own schedule (no HTTP: fast, exact inputs) -------------------------


def _sampled(n: int, lat: LatencyProfile, tiers: tuple[str, ...], *, seed: int = 0, cap: int = 256,
             bimodal: bool = False) -> pd.DataFrame:  # fmt: skip
    """Records as an engine would write them against the emulator, drawn with ``load.plan``."""
    spec = replace(load_catalog().resolve(MODEL), latency=lat)
    rows = []
    for i in range(n):
        tier = tiers[i % len(tiers)]
        inp = (20, 2000)[i % 2]
        sch = plan(draw(seed, i, FaultProfile()), spec, lat, input_tokens=inp, max_tokens=cap, tier=tier,
                   busy_fraction=0.0, time_scale=1.0, optimized=False, stall_ms=0.0)  # fmt: skip
        ttft = sch.ttft_s * (3.0 if bimodal and i % 3 == 0 else 1.0)
        rows.append({"model_id": "us." + MODEL, "tier_requested": tier, "tier_served": tier, "users": 4,
                     "rate_rps": None, "status": "ok", "error_kind": None, "error_code": None, "cell_id": "c",
                     "ttft_s": ttft, "e2e_s": ttft + sch.decode_s, "server_queue_s": 0.0, "server_ttft_s": ttft,
                     "server_decode_s": sch.decode_s, "n_chunks": len(sch.chunk_tokens), "input_tokens": inp,
                     "output_tokens": sch.output_tokens})  # fmt: skip
    return pd.DataFrame(rows)


def test_tier_speeds_are_fitted_per_tier() -> None:
    lat = LatencyProfile(ttft_ms=500.0, prefill_ms_per_1k=500.0, tokens_per_s=80.0, jitter=0.3, chunk_tokens=8)
    cal = calibrate_frame(prepare(_sampled(3000, lat, ("default", "priority", "flex")), max_tokens=256))
    fit = cal.fits[MODEL]
    speed = load_catalog().resolve(MODEL).tier_speed
    assert fit.latency["tokens_per_s"] == pytest.approx(80.0, rel=0.03)
    assert fit.tier_speed["priority"] == pytest.approx(speed["priority"], rel=0.03)
    assert fit.tier_speed["flex"] == pytest.approx(speed["flex"], rel=0.03)
    assert fit.latency["chunk_tokens"] == 8
    assert fit.latency["prefill_ms_per_1k"] == pytest.approx(500.0, rel=0.05)


def test_bimodal_ttft_is_flagged_as_not_reproducible() -> None:
    lat = LatencyProfile(ttft_ms=500.0, ttft_sigma=0.1)
    cal = calibrate_frame(prepare(_sampled(1200, lat, ("default",), bimodal=True), max_tokens=256))
    assert any("bimodal" in f for f in cal.flags)
    assert any("ttft_ms: KS distance" in f for f in cal.flags)
    assert "Where the model cannot reproduce the data" in report_markdown(cal)
    assert bimodality(np.random.default_rng(0).normal(size=2000)) < 0.555


def test_censored_output_length() -> None:
    rng = np.random.default_rng(5)
    natural = np.maximum(1, np.round(200 * np.exp(0.6 * rng.standard_normal(4000))))
    cap = 256.0
    med, sigma, cens = fit_output(np.minimum(natural, cap), np.full(4000, cap))
    assert cens == pytest.approx(float(np.mean(natural >= cap)))
    assert med == pytest.approx(200, rel=0.03) and sigma == pytest.approx(0.6, rel=0.04)
    naive = float(np.median(np.minimum(natural, cap)))  # would be biased low if the cut were ignored
    assert math.isfinite(naive)
    assert fit_output(np.full(50, cap), np.full(50, cap))[0] == 0.0  # always maxTokens -> output_median 0


def test_fault_rates_undo_first_hit_order() -> None:
    codes = ["InternalServerException"] * 100 + ["ServiceUnavailableException"] * 90 + [None] * 810
    df = pd.DataFrame({"error_code": codes, "error_kind": ["server" if c else None for c in codes]})
    rates = fit_faults(df)
    assert rates["error_500"] == pytest.approx(0.1)
    assert rates["error_503"] == pytest.approx(90 / 900)  # drawn only where error_500 did not hit


def test_bad_overlay_is_a_config_error(tmp_path: Path) -> None:
    cat = load_catalog()
    cases = [({"models": {MODEL: {"latency": {"ttft_ms": -1}}}}, f"models.{MODEL}.latency.ttft_ms"),
             ({"models": {MODEL: {"prices": {}}}}, f"models.{MODEL}.prices"),
             ({"models": {"acme.nothing-v1": {}}}, "models.acme.nothing-v1"),
             ({"modles": {}}, "modles")]  # fmt: skip
    for data, key in cases:
        with pytest.raises(ConfigError) as err:
            apply_overlay(cat, data)
        assert key in str(err.value)
    path = tmp_path / "o.yaml"
    path.write_text("models: [1, 2]\n")
    with pytest.raises(ConfigError, match="o.yaml"):
        run_emulator(overlay=str(path)).__enter__()
    from bedrock_lab.emulator import (
        check_overrides,  # what a sweep file's target.emulator_overrides goes through
    )

    good = tmp_path / "good.yaml"
    good.write_text(f"version: 1\nmodels:\n  {MODEL}:\n    latency: {{ttft_ms: 300}}\n")
    assert check_overrides({"overlay": str(good)}).load().resolve(MODEL).latency.ttft_ms == 300.0
    with pytest.raises(ConfigError, match="overlay file not found"):
        check_overrides({"overlay": str(tmp_path / "missing.yaml")})
    html = report_html(calibrate_frame(prepare(_sampled(200, LatencyProfile(), ("default",)), max_tokens=256)))
    assert html.startswith("<!doctype html>") and "<script" not in html


def test_aws_records_fit_on_the_lowest_load() -> None:
    """No ground truth (AWS): the queueing at high load must not leak into the profile."""
    lat = LatencyProfile(ttft_ms=600.0, prefill_ms_per_1k=200.0, tokens_per_s=50.0, jitter=0.2, chunk_tokens=4)
    low = _sampled(2000, lat, ("default",), seed=1)
    high = _sampled(2000, lat, ("default",), seed=2)
    high["users"] = 64
    high["ttft_s"] = high["ttft_s"] + 2.0  # two seconds of queue at 64 users
    both = pd.concat([low, high], ignore_index=True)
    both["e2e_s"] = both["ttft_s"] + both["server_decode_s"]
    for col in ("server_queue_s", "server_ttft_s", "server_decode_s"):
        both[col] = None
    cal = calibrate_frame(prepare(both, max_tokens=256))
    fit = cal.fits[MODEL]
    assert fit.latency["ttft_ms"] == pytest.approx(600.0, rel=0.05)
    assert fit.latency["tokens_per_s"] == pytest.approx(50.0, rel=0.03)
    assert any("lowest load" in n for n in fit.notes)
    rates = cal.rates.set_index("load")
    assert set(rates.index) == {4.0, 64.0}


def test_a_model_without_answers_is_skipped_not_fatal() -> None:
    ok = _sampled(300, LatencyProfile(), ("default",))
    bad = ok.head(40).assign(model_id="amazon.nova-micro-v1:0", status="error", error_kind="throttled",
                             error_code="ThrottlingException", ttft_s=None, output_tokens=None)  # fmt: skip
    cal = calibrate_frame(prepare(pd.concat([ok, bad], ignore_index=True), max_tokens=256))
    assert set(cal.fits) == {MODEL}
    assert any(f.startswith("amazon.nova-micro-v1:0: not fitted") for f in cal.flags)
    micro = cal.rates[cal.rates["model"] == "amazon.nova-micro-v1:0"].iloc[0]
    assert micro["throttle_rate"] == 1.0


def test_too_few_low_load_records_keep_the_decode_knobs_and_say_so() -> None:
    lat = LatencyProfile(ttft_ms=500.0, prefill_ms_per_1k=500.0, tokens_per_s=80.0, jitter=0.3, chunk_tokens=8)
    cal = calibrate_frame(prepare(_sampled(60, lat, ("default", "priority", "flex")), max_tokens=256))
    fit = cal.fits[MODEL]
    assert "tokens_per_s" not in fit.latency and not fit.tier_speed  # 20 per tier: below the minimum of 30
    assert any("tokens_per_s, tier_speed and jitter kept from the catalog" in n for n in fit.notes)
