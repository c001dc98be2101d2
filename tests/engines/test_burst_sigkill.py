"""Records written before a SIGKILL stay readable: shards are atomic, a kill loses at most the buffer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bedrock_lab.records import load_records, shard_paths

MODEL = "amazon.nova-lite-v1:0"


def test_sigkill_keeps_written_shards(emu: object, tmp_path: Path) -> None:
    out = tmp_path / "records"
    script = textwrap.dedent(f"""
        from bedrock_lab.engines import BurstSpec, Target, run_burst_sync
        spec = BurstSpec({MODEL!r}, users=4, duration_s=120, max_tokens=8, flush_rows=5, run_id="killed")
        run_burst_sync(spec, Target.emulator({emu.url!r}), {str(out)!r}, progress=False)
    """)  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(Path(__file__).resolve().parents[2]))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(shard_paths(out)) >= 2:
                break
            time.sleep(0.05)  # polling the folder: the condition, not the sleep, synchronises
        assert proc.poll() is None, "the burst ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    df = load_records(out)
    assert len(df) >= 10 and set(df["run_id"]) == {"killed"} and df["e2e_s"].notna().all()
    assert not any(p.name.startswith(".") for p in out.iterdir() if p.suffix == ".parquet")
