"""`bedrock-lab analyze` and `bedrock-lab report` from the command line (the report itself: test_report_html.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bedrock_lab.cli import main


def test_analyze_writes_tables_and_prints_the_summary(synthetic_sweep: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(synthetic_sweep), "--out", str(tmp_path), "--no-fit", "--slo-ttft", "2"]) == 0
    out = capsys.readouterr().out
    assert "This sweep sent 2,880 requests" in out and "TTFT <= 2 s" in out
    for name in ("summary", "load", "capacity", "comparisons", "costs"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 36 and {"ttft_s_p95", "ttft_s_p95_lo", "ttft_s_p95_hi", "goodput"} <= set(summary)
    assert (tmp_path / "analysis.json").is_file()


def test_missing_sweep_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_empty_sweep_says_run_it_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cells").mkdir()
    assert main(["analyze", str(tmp_path)]) == 2
    assert "run the sweep first" in capsys.readouterr().err
