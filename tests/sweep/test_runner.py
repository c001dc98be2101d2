"""The runner's bookkeeping with a stand-in cell notebook (no engines, ~2 s per cell): failures and timeouts
are recorded and the sweep goes on, fail-fast, budget cap, confirmation, dry run, refusal to overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _sweep_helpers import base_sweep

from bedrock_lab.errors import SweepError
from bedrock_lab.params import parse_sweep
from bedrock_lab.sweep import load_sweep, results_table, run_sweep

STANDIN = '''\
# %% tags=["parameters"]
cell_id = "manual"  # cell id
out_dir = "."  # output folder

# %%
import json
import pathlib
import time

if "_flex_" in cell_id:
    raise ValueError("boom in " + cell_id)
if "_priority_" in cell_id:
    time.sleep(60)
folder = pathlib.Path(out_dir)
(folder / "records").mkdir(exist_ok=True)
stats = {"requests": 3, "ok": 3, "input_tokens": 1000, "output_tokens": 500}
(folder / "summary.json").write_text(json.dumps({"cell_id": cell_id, "stats": stats}))
'''


def _config(tmp_path: Path, tiers: list[str], **top: Any) -> Any:
    nb = tmp_path / "standin.py"
    nb.write_text(STANDIN)
    data = base_sweep(
        notebook=str(nb),
        # an endpoint is given, so the runner starts no emulator; the stand-in never calls it
        target={"kind": "emulator", "endpoint_url": "http://127.0.0.1:9"},
        order={"randomize": False},
        **top,
    )
    data["grid"]["tiers"] = tiers
    data["cell"]["timeout_s"] = 3
    return parse_sweep(data, source=str(tmp_path / "sweep.yaml"), env={})


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "t" / "manifest.json").read_text())


@pytest.mark.slow
def test_exception_and_timeout_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["flex", "priority", "default"])
    res = run_sweep(cfg, out=tmp_path / "out", progress=False, echo=lambda s: None)
    cells = _manifest(tmp_path / "out")["cells"]
    by_tier = {v["tier"]: v for v in cells.values()}
    assert by_tier["flex"]["status"] == "failed"
    assert by_tier["flex"]["error"]["kind"] == "exception"
    assert by_tier["flex"]["error"]["ename"] == "ValueError"
    assert "boom" in by_tier["flex"]["error"]["evalue"]
    # papermill does not mark a timed-out notebook as failed; the runner must
    assert by_tier["priority"]["status"] == "failed"
    assert by_tier["priority"]["error"]["kind"] == "timeout"
    assert by_tier["default"]["status"] == "done"
    assert len(res.failed) == 2 and len(res.ran) == 1 and not res.ok
    table = results_table(tmp_path / "out" / "t")
    assert set(table["status"]) == {"done"}  # a failed cell never gets a row of statistics
    assert (tmp_path / "out" / "t" / "results.csv").is_file()
    failed = pd.read_csv(tmp_path / "out" / "t" / "failed.csv")
    assert sorted(failed["tier"]) == ["flex", "priority"]
    assert "boom in" in failed.set_index("tier").loc["flex", "reason"]
    assert (tmp_path / "out" / "t" / "cells" / res.failed[0] / "cell.ipynb").is_file()
    assert load_sweep(tmp_path / "out" / "t").empty  # the stand-in writes no records

    # --resume re-runs only what is not done; the failures fail again, the done cell is untouched
    done_id = res.ran[0]
    summary = tmp_path / "out" / "t" / "cells" / done_id / "summary.json"
    before = summary.stat().st_mtime_ns
    again = run_sweep(cfg, out=tmp_path / "out", progress=False, resume=True, fail_fast=True, echo=lambda s: None)
    assert again.skipped == [done_id]
    assert len(again.failed) == 1 and len(again.not_run) == 1  # fail-fast stopped after the first failure
    assert summary.stat().st_mtime_ns == before
    assert _manifest(tmp_path / "out")["cells"][again.failed[0]]["attempts"] == 2


def test_an_existing_run_is_not_overwritten_without_resume_or_restart(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["default"])
    out = tmp_path / "out" / "t"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"version": 1, "cells": {"x": {"status": "done"}}}))
    with pytest.raises(SweepError, match="--resume"):
        run_sweep(cfg, out=tmp_path / "out", progress=False, echo=lambda s: None)


def test_a_second_runner_on_the_same_sweep_is_refused(tmp_path: Path) -> None:
    from bedrock_lab.sweep.runner import _sweep_lock

    cfg = _config(tmp_path, ["default"])
    with _sweep_lock(tmp_path / "out", "t"), pytest.raises(SweepError, match="another bedrock-lab sweep"):
        run_sweep(cfg, out=tmp_path / "out", progress=False, echo=lambda s: None)


def test_budget_cap_stops_before_the_estimate_passes_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["default", "flex"], budget_usd=1e-9)
    res = run_sweep(cfg, out=tmp_path / "out", progress=False, echo=lambda s: None)
    assert res.ran == [] and len(res.not_run) == 2
    assert "budget" in (res.stopped_reason or "")
    statuses = {v["status"] for v in _manifest(tmp_path / "out")["cells"].values()}
    assert statuses == {"skipped"}


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["default", "flex"])
    lines: list[str] = []
    res = run_sweep(cfg, out=tmp_path / "out", dry_run=True, echo=lines.append)
    text = "\n".join(lines)
    assert "est. cost" in text and "wall time" in text and "dry run" in text
    assert len(res.not_run) == 2
    assert not (tmp_path / "out").exists()


def test_aws_target_asks_before_spending(tmp_path: Path) -> None:
    data = base_sweep(target={"kind": "aws", "region": "us-east-1"})
    cfg = parse_sweep(data, source="aws.yaml", env={})
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(SweepError, match="not confirmed"):
        run_sweep(cfg, out=tmp_path / "out", confirm=no, progress=False, echo=lambda s: None,
                  count_tokens=False)  # CountTokens would call real AWS: tests/sweep/test_plan_tokens.py covers it
    assert asked and "AWS" in asked[0] and "$" in asked[0]
    assert not (tmp_path / "out" / "t" / "manifest.json").exists()


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_leaves_the_cell_to_resume(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    import yaml
    from _sweep_helpers import ROOT

    nb = tmp_path / "standin.py"
    nb.write_text(STANDIN)
    data = base_sweep(notebook=str(nb))  # no endpoint: the runner starts (and must stop) an emulator
    data["grid"]["tiers"] = ["priority"]  # the stand-in sleeps 60 s for priority cells
    data["cell"]["timeout_s"] = 120
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "bedrock_lab", "sweep", str(path), "--out", str(tmp_path / "out"),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    manifest = tmp_path / "out" / "t" / "manifest.json"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if any(v.get("status") == "running" for v in json.loads(manifest.read_text())["cells"].values()):
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert proc.poll() is None, "the sweep ended early"
            time.sleep(0.2)  # polling another process's file
        children: list[psutil.Process] = []
        while time.monotonic() < deadline:  # wait until the kernel runs, so there is something to clean up
            children = psutil.Process(proc.pid).children(recursive=True)
            if any("ipykernel_launcher" in _cmdline(c) for c in children):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"left behind after SIGTERM: {[p.name() for p in alive]}"
    cells = json.loads(manifest.read_text())["cells"]
    assert [v["status"] for v in cells.values()] == ["pending"]
    assert next(iter(cells.values()))["error"]["kind"] == "interrupted"


def _cmdline(p: Any) -> str:
    import psutil

    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def test_cell_kernels_write_no_ipython_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected parameters would land in ~/.ipython's history database: the runner's kernels keep none."""
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))  # the kernel inherits it
    res = run_sweep(_config(tmp_path, ["default"]), out=tmp_path / "out", progress=False, echo=lambda s: None)
    assert res.ok
    import sqlite3

    for db in ipython_dir.rglob("history.sqlite"):
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
            rows = con.execute("select count(*) from history").fetchone()[0] if "history" in tables else 0
        assert rows == 0, f"{db} holds {rows} history entries"
