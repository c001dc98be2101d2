"""Locust runs end when they should: at --requests every time (not at the -t bound), and within seconds when
the circuit breaker trips, with an invalid verdict naming the service's (or the transport's) first message."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bedrock_lab.cli import main
from bedrock_lab.engines import BurstSpec, Target, run_locust

MODEL = "amazon.nova-lite-v1:0"
CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens, every connect is refused

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [0, 2])
def test_requests_bound_stops_promptly_every_time(target: Target, tmp_path: Path, workers: int) -> None:
    """Regression: the old user-count check left ~1 run in 3 idling until -t after its last request."""
    runs = 8 if workers == 0 else 2
    for i in range(runs):
        spec = BurstSpec(MODEL, users=4, requests=12, duration_s=90, max_tokens=8, seed=i, run_id=f"req{i}")
        res = run_locust(spec, target, tmp_path / str(i), workers=workers, html=False)
        assert res.wall_s < 30, f"run {i} took {res.wall_s:.1f} s: it idled towards its 90 s bound"
        assert res.valid and set(res.returncodes) == {0}, (res.returncodes, res.warnings)
        # each of the `workers` processes sends its share (ceil(12 / workers))
        assert len(res.records()) == 12


@pytest.mark.parametrize("workers", [0, 2])
def test_breaker_ends_a_run_against_a_closed_port_in_seconds(tmp_path: Path, workers: int) -> None:
    users = 4
    spec = BurstSpec(MODEL, users=users, duration_s=60, max_tokens=8, run_id="closed")
    res = run_locust(spec, Target.emulator(CLOSED), tmp_path, workers=workers, html=False)
    assert res.wall_s < 30, f"{res.wall_s:.1f} s: the breaker did not stop the 60 s run"
    assert res.health is not None and not res.valid and res.health.breaker_tripped
    df = res.records()
    # each process stops after 20 consecutive failures (plus what was in flight)
    assert 20 <= len(df) <= (20 + users) * max(workers, 1)
    assert set(df["error_kind"]) == {"connection"} and df["error_message"].notna().all()
    assert "Could not connect to the endpoint URL" in str(res.health.reason)
    assert "INVALID RUN: stopped after 20 consecutive connection errors" in res.summary()


def test_locust_cli_against_a_closed_port_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    rc = main(["locust", "--endpoint", CLOSED, "--users", "4", "--duration", "60", "--out", str(tmp_path)])
    assert rc == 1 and time.monotonic() - t0 < 30
    out, err = capsys.readouterr()
    assert "INVALID RUN" in out and f"Locust HTML report: {tmp_path / 'locust.html'}" in out
    assert "bedrock-lab locust: error: run is invalid: stopped after 20 consecutive connection errors" in err
    assert 'EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:9/' in err


def test_locust_cli_with_an_unknown_model_prints_the_service_message(
    emu: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    rc = main(["locust", "--endpoint", emu.url, "--model", "not-a-model", "--users", "4", "--duration", "60",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 1 and time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "consecutive validation errors" in err
    assert "ValidationException: The provided model identifier is invalid." in err
