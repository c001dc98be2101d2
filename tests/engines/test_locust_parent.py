"""Locust subprocesses never outlive a SIGKILLed caller, and write no record after it died.

A sweep's ``--resume`` clears a killed cell's folder and re-runs it at once: a Locust process left behind would
keep sending load and drop late shards into the new run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from bedrock_lab.records import shard_paths

MODEL = "amazon.nova-lite-v1:0"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _wait_for(cond: Any, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll ``cond`` until true; fail if the launcher ended first or the deadline passed."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the run to write records"
        time.sleep(0.05)  # polling a condition, not synchronising by sleep


@pytest.mark.parametrize(("workers", "mode"), [(0, "workers"), (2, "workers"), (2, "processes")])
def test_locust_dies_with_its_parent(emu: Any, tmp_path: Path, workers: int, mode: str) -> None:
    out = tmp_path / "cell"
    records = out / "records"
    script = textwrap.dedent(f"""
        from bedrock_lab.engines import BurstSpec, Target, run_locust
        spec = BurstSpec({MODEL!r}, users=4, duration_s=120, max_tokens=8, run_id="orphan")
        run_locust(spec, Target.emulator({emu.url!r}), {str(out)!r}, workers={workers}, distributed={mode!r},
                   html=False)
    """)
    launcher = subprocess.Popen([sys.executable, "-c", script], cwd=str(REPO))
    try:
        n_locust = 1 + workers
        _wait_for(lambda: records.exists() and len(shard_paths(records)) >= max(1, workers), 90, launcher)
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= n_locust, children
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        died = time.monotonic()
        before = set(shard_paths(records))
        gone, alive = psutil.wait_procs(children, timeout=10)
        for p in alive:
            p.kill()
        assert not alive, f"Locust processes outlived their SIGKILLed parent: {alive}"
        assert time.monotonic() - died < 10
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    # every Locust process has exited, so the folder is final: nothing was published after the parent died
    assert set(shard_paths(records)) == before
