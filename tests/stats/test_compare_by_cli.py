"""`bedrock-lab analyze --compare-by COLUMN`: an A/A of two runs of one configuration is one command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bedrock_lab.cli import main
from bedrock_lab.errors import StatsError
from bedrock_lab.records import write_shard
from bedrock_lab.stats import analyze, synthetic_records
from bedrock_lab.stats.analysis import comparison_strata


def _run(folder: Path, run_id: str, seed: int, slower: float = 1.0) -> None:
    """One run of one configuration (default tier, 4 users, small prompts) as a record shard in its own folder."""
    df = synthetic_records(400, tiers=("default",), users=(4,), prompt_sizes=("small",), seed=seed)
    df["run_id"] = run_id
    for col in ("ttft_s", "e2e_s"):
        df[col] = df[col] * slower
    write_shard(df.to_dict("records"), folder / run_id / "records-0.parquet")


def _consistent(row: pd.Series) -> None:
    if row["winner"] == "none":
        assert row["ratio_lo"] <= 1 <= row["ratio_hi"]
    else:  # latencies: the winner's side of 1 holds the whole interval
        assert (row["ratio_hi"] < 1) if row["winner"] == "A" else (row["ratio_lo"] > 1)


def test_compare_by_run_id_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs aa-1 and aa-2 of one configuration (same distribution, other seeds) and aa-3 40% slower: aa-1 vs
    aa-2 is no difference, both beat aa-3, on TTFT and end-to-end; the run pairs are printed."""
    runs = tmp_path / "runs"
    _run(runs, "aa-1", seed=1)
    _run(runs, "aa-2", seed=2)
    _run(runs, "aa-3", seed=3, slower=1.4)
    out = tmp_path / "tables"
    assert main(["analyze", str(runs), "--out", str(out), "--no-fit", "--compare-by", "run_id"]) == 0
    printed = capsys.readouterr().out
    assert "Comparisons by run_id" in printed
    assert "aa-1 vs aa-3 = 0.6" in printed and printed.count(": aa-1 faster") == 2  # TTFT and end-to-end
    assert printed.count("aa-1 vs aa-2 = ") == 2 and printed.count("no difference detected") == 2
    comp = pd.read_csv(out / "comparisons.csv")
    assert set(comp["factor"]) == {"run_id"} and set(comp["metric"]) == {"ttft_s", "e2e_s"}
    assert len(comp) == 6 and (comp[["model", "tier", "prompt_size", "users"]].nunique() == 1).all()
    assert (comp["correction"] == "bonferroni").all() and comp["level"].round(6).eq(round(1 - 0.05 / 6, 6)).all()
    comp.apply(_consistent, axis=1)
    pairs = comp.set_index(["a", "b", "metric"])["winner"]
    for metric in ("ttft_s", "e2e_s"):
        assert pairs[("aa-1", "aa-2", metric)] == "none"
        assert pairs[("aa-1", "aa-3", metric)] == "A" and pairs[("aa-2", "aa-3", metric)] == "A"
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert set(verdicts["factor"]) == {"run_id"} and len(verdicts) == 6
    assert '"compare_by": "run_id"' in (out / "analysis.json").read_text()


def test_unknown_column_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path / "runs", "aa-1", seed=1)
    assert main(["analyze", str(tmp_path / "runs"), "--no-fit", "--compare-by", "colour"]) == 2
    err = capsys.readouterr().err
    assert "cannot compare by 'colour'" in err and "run_id" in err and "tier_requested" in err
    assert "Traceback" not in err
    assert main(["analyze", str(tmp_path / "runs"), "--no-fit", "--compare-by", "worker"]) == 0  # one value
    assert "no comparisons by worker: every record has the same value" in capsys.readouterr().out


def test_help_documents_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = capsys.readouterr().out
    assert "--compare-by COLUMN" in text and "run_id" in text


def test_strata_are_the_other_keys() -> None:
    """Comparing by X holds the other KEYS equal (and the labels derived from X drop out with it)."""
    df = synthetic_records(27 * 20, models=("model-a", "model-b"), users=(1, 8), seed=4)
    df = analyze(df, fit=False, compare_metrics=()).records
    assert comparison_strata(df, "run_id") == ["model", "tier", "prompt_size", "users"]
    assert comparison_strata(df, "tier") == ["model", "prompt_size", "users"]
    assert comparison_strata(df, "model_id") == ["tier", "prompt_size", "users"]
    assert comparison_strata(df, "users") == ["model", "tier", "prompt_size"]
    a = analyze(df, fit=False, compare_metrics=("ttft_s",), compare_by="model")
    assert set(a.comparisons["factor"]) == {"model"} and {"tier", "prompt_size", "users"} <= set(a.comparisons)
    assert len(a.comparisons) == 3 * 3 * 2  # tiers x prompt sizes x users, one model pair each
    with pytest.raises(StatsError, match="no such column"):
        analyze(df, fit=False, compare_by="colour")


def test_aa_of_two_real_burst_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two bursts of one configuration through the real boto3 client against the emulator over HTTP, then the
    one command: one comparison per metric, named by the two run ids, its verdict read off its interval."""
    from bedrock_lab.emulator import run_emulator
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

    latency = dict(ttft_ms=15.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=4000.0, jitter=0.1,
                   chunk_tokens=4, contention=0.0, output_median_tokens=24, output_sigma=0.2)  # fmt: skip
    runs = tmp_path / "aa"
    with run_emulator(seed=0, mode="thread", latency=latency, capacity=512) as emu:
        for run_id, seed in (("burst-a", 1), ("burst-b", 2)):
            spec = BurstSpec(model_id="amazon.nova-lite-v1:0", users=4, requests=80, max_tokens=32, seed=seed,
                             run_id=run_id)
            run_burst_sync(spec, Target.emulator(emu.url), runs / run_id, progress=False)
    out = tmp_path / "tables"
    assert main(["analyze", str(runs), "--out", str(out), "--no-fit", "--compare-by", "run_id"]) == 0
    assert "Comparisons by run_id" in capsys.readouterr().out
    comp = pd.read_csv(out / "comparisons.csv")
    assert len(comp) == 2 and set(comp["metric"]) == {"ttft_s", "e2e_s"}
    assert set(comp["a"]) == {"burst-a"} and set(comp["b"]) == {"burst-b"} and (comp["n_a"] >= 70).all()
    comp.apply(_consistent, axis=1)
