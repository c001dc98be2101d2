"""`bedrock-lab burst` / `bedrock-lab locust` command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_lab.cli import main
from bedrock_lab.records import load_records

MODEL = "amazon.nova-lite-v1:0"


def test_burst_cli_against_a_running_emulator(emu: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["burst", "--endpoint", emu.url, "--model", MODEL, "--users", "2", "--requests", "6",  # type: ignore[attr-defined]
               "--max-tokens", "8", "--out", str(tmp_path), "--no-progress", "--run-id", "cli"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "6 requests" in out and "TTFT" in out and "testing" not in out  # no credential ever printed
    assert len(load_records(tmp_path)) == 6


def test_burst_cli_starts_its_own_emulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["burst", "--rate", "20", "--arrival", "constant", "--requests", "4", "--max-tokens", "4",
               "--out", str(tmp_path), "--no-progress"])  # fmt: skip
    assert rc == 0 and "started an embedded emulator" in capsys.readouterr().out
    assert load_records(tmp_path)["intended_start"].notna().all()


@pytest.mark.parametrize("cmd", ["burst", "locust"])
def test_help_explains_options(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    text = capsys.readouterr().out
    for word in ("--users", "--duration", "--requests", "--endpoint", "--region", "--api", "--workload"):
        assert word in text
    assert ("--rate" in text) == (cmd == "burst") and ("--workers" in text) == (cmd == "locust")


def test_bad_arguments_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["burst", "--profile", "x", "--requests", "1"]) == 2
    assert "--profile needs --region" in capsys.readouterr().err


@pytest.mark.slow
def test_locust_cli(emu: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bounded by a request count: Locust stops itself once the count is reached."""
    rc = main(["locust", "--endpoint", emu.url, "--users", "2", "--requests", "6", "--max-tokens", "8",  # type: ignore[attr-defined]
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "locust run" in out and "6 requests" in out and "errors: none" in out
    assert len(load_records(tmp_path / "records")) == 6
