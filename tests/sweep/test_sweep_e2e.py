"""Real sweeps on the embedded emulator: papermill + the cell notebook + the engines, end to end, and a
SIGKILL in the middle of a sweep followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from _sweep_helpers import ROOT

from bedrock_lab.records import load_records
from bedrock_lab.sweep import load_sweep, run_sweep

pytestmark = pytest.mark.slow


def _tiny(tmp_path: Path, name: str, tiers: list[str]) -> Path:
    data = {
        "name": name,
        "target": {"kind": "emulator", "emulator_seed": 1},
        "grid": {"models": ["amazon.nova-2-lite-v1:0"], "region_prefixes": ["us"], "tiers": tiers,
                 "prompt_sizes": ["small"], "users": [2]},
        "cell": {"duration_s": 1.0, "max_tokens": 32, "timeout_s": 120},
        "order": {"seed": 3},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _check_complete_sweep(sweep_dir: Path, cell_ids: set[str], tiers: set[str]) -> None:
    """What a finished sweep must hold: manifest, per-cell notebook/records/summary, one DataFrame, one CSV."""
    manifest = json.loads((sweep_dir / "manifest.json").read_text())
    assert {c["status"] for c in manifest["cells"].values()} == {"done"}
    assert set(manifest["cells"]) == cell_ids
    for cell_id in cell_ids:
        cell_dir = sweep_dir / "cells" / cell_id
        summary = json.loads((cell_dir / "summary.json").read_text())
        assert summary["stats"]["ok"] > 0
        assert summary["stats"]["tiers_served"]  # the emulator echoes the tier
        nb = json.loads((cell_dir / "cell.ipynb").read_text())
        params = nb["metadata"]["papermill"]["parameters"]
        assert params["cell_id"] == cell_id and params["target_kind"] == "emulator"
        assert not any("secret" in k.lower() or "access_key" in k.lower() for k in params)

    df = load_sweep(sweep_dir)
    assert set(df["cell_id"]) == cell_ids
    assert set(df["tier_requested"]) == tiers
    assert {"region_prefix", "repeat", "cell_status"} <= set(df.columns)
    assert (df["region_prefix"] == "us.").all()

    table = (sweep_dir / "results.csv").read_text().splitlines()
    assert len(table) == len(cell_ids) + 1
    for column in ("tier", "prompt_size", "users", "requests", "error_rate", "ttft_p50_s", "e2e_p99_s", "cost_usd"):
        assert column in table[0].split(",")


def _start_sweep(path: Path, out: Path, log: Any) -> subprocess.Popen[bytes]:
    """``bedrock-lab sweep`` in its own session (so a test can kill it and its group), logging to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bedrock_lab", "sweep", str(path), "--out", str(out), "--no-progress"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in ("USER_COUNTS", "SERVICE_TIERS", "TEST_DURATION")},
    )  # fmt: skip


def _wait_for_done_cell(manifest: Path, proc: subprocess.Popen[bytes], timeout: float = 150) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the sweep exited ({proc.returncode}) before it could be killed")
        try:
            cells = json.loads(manifest.read_text())["cells"]
        except (OSError, ValueError, KeyError):
            cells = {}
        done = [k for k, v in cells.items() if v.get("status") == "done"]
        if done:
            return done
        time.sleep(0.2)  # polling a file written by another process, not synchronising threads
    pytest.fail("no cell finished in time")


def test_sweep_end_to_end_through_sigkill_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small sweep on the emulator, SIGKILLed (whole process group) once a cell is done, then resumed:
    nothing is left running, done cells are neither redone nor damaged, and the finished sweep is complete.
    The resume names its output folder relatively, as `make demo` does (cells run with their own cwd)."""
    path = _tiny(tmp_path, "killed", ["default", "flex"])
    out = tmp_path / "out"
    log = open(tmp_path / "sweep.log", "wb")  # noqa: SIM115 - closed below; a pipe could fill and block
    proc = _start_sweep(path, out, log)
    manifest = out / "killed" / "manifest.json"
    try:
        done = _wait_for_done_cell(manifest, proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    # the kernel runs in its own session and exits when its parent dies; nothing may stay behind
    _gone, alive = psutil.wait_procs(children, timeout=30)
    for p in alive:  # clean up what this test started before failing
        p.kill()
    assert not alive, f"processes left behind after SIGKILL: {[p.pid for p in alive]}"

    # what was done is intact and readable
    state = json.loads(manifest.read_text())
    for cell_id in done:
        assert state["cells"][cell_id]["status"] == "done"
        assert len(load_records(out / "killed" / "cells" / cell_id / "records")) > 0
    summaries = {c: (out / "killed" / "cells" / c / "summary.json").stat().st_mtime_ns for c in done}

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    monkeypatch.chdir(tmp_path)
    res = run_sweep(path, out="out", resume=True, progress=False, env={}, echo=lambda s: None)
    assert res.ok, res.summary()
    # the emulator and kernels of the resumed run are gone too
    assert {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()} <= before
    assert set(res.skipped) >= set(done)
    assert not set(res.ran) & set(done)
    assert len(res.skipped) + len(res.ran) == 2
    final = json.loads(manifest.read_text())["cells"]
    for cell_id, mtime in summaries.items():
        assert final[cell_id]["attempts"] == 1
        assert (out / "killed" / "cells" / cell_id / "summary.json").stat().st_mtime_ns == mtime
    _check_complete_sweep(out / "killed", set(res.skipped) | set(res.ran), {"default", "flex"})


def test_sigkill_mid_locust_cell_then_immediate_resume_keeps_only_the_new_run(tmp_path: Path) -> None:
    """The runner is SIGKILLed while a Locust cell sends load and --resume starts at once: the Locust children of
    the killed run die with it and write nothing more, so the re-run cell's folder holds only its new run."""
    data = {
        "name": "lk", "target": {"kind": "emulator", "emulator_seed": 2},
        "grid": {"models": ["amazon.nova-2-lite-v1:0"], "region_prefixes": ["us"], "tiers": ["default"],
                 "prompt_sizes": ["small"], "users": [2]},
        "cell": {"engine": "locust", "duration_s": 5.0, "max_tokens": 32, "timeout_s": 120},
    }  # fmt: skip
    path = tmp_path / "lk.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    log = open(tmp_path / "sweep.log", "wb")  # noqa: SIM115 - closed below; a pipe could fill and block
    proc = _start_sweep(path, out, log)
    records = out / "lk" / "cells"
    try:
        deadline = time.monotonic() + 120
        while not list(records.glob("*/records/*.parquet")):  # a file another process writes, not a thread
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no Locust shard appeared (sweep exit {proc.poll()})")
            time.sleep(0.2)
        proc.kill()  # the runner only: its kernel and Locust children must notice on their own
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    res = run_sweep(path, out=out, resume=True, progress=False, env={}, echo=lambda s: None)
    assert res.ok, res.summary()
    manifest = json.loads((out / "lk" / "manifest.json").read_text())
    (cell_id, entry), = manifest["cells"].items()
    assert entry["attempts"] == 2
    on_disk = load_records(out / "lk" / "cells" / cell_id / "records")
    assert len(on_disk) > 0 and set(on_disk["run_id"]) == {entry["run_id"]}
    assert set(load_sweep(out / "lk")["run_id"]) == {entry["run_id"]}
