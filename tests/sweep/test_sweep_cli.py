"""`bedrock-lab sweep` and `bedrock-lab demo` argument handling (nothing is executed here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sweep_helpers import ROOT, base_sweep, write_sweep

from bedrock_lab.cli import main


def test_dry_run_prints_the_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["sweep", str(ROOT / "params" / "sweeps" / "default.yaml"), "--dry-run", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "cells       : 27" in out and "est. cost" in out and "priority" in out and "dry run" in out
    assert not any(tmp_path.iterdir())


def test_bad_file_is_a_clean_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = base_sweep()
    data["grid"]["tiers"] = ["turbo"]
    assert main(["sweep", str(write_sweep(tmp_path, data)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "grid.tiers[0]" in err and "turbo" in err and "allowed" in err


def test_contradictory_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "params/sweeps/demo.yaml", "--resume", "--restart"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_demo_refuses_an_aws_sweep(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_sweep(tmp_path, base_sweep(target={"kind": "aws"}))
    assert main(["demo", "--sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "emulator only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
