"""`make lab` starts JupyterLab (as root too, the usual user in containers), prints its URL, and stops."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bedrock_lab.cli.lab import lab_command

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"(http://127\.0\.0\.1:(\d+)/lab\?token=[0-9a-f]+)")
DEADLINE_S = 180  # JupyterLab's start-up on a busy 2-core machine, with a wide margin


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_allows_root_only_as_root_and_stays_on_loopback() -> None:
    cmd = lab_command(no_browser=True, port=8890)
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert "--no-browser" in cmd and "--no-browser" not in lab_command()
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8890" in cmd
    assert f"--ServerApp.root_dir={ROOT}" in cmd


def _read_lines(stream: object, sink: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.put(line)
    sink.put(None)


def _answers(url: str, lines: queue.Queue[str | None], end: float) -> bool:
    """GET ``url`` until it answers 200 or ``end``: JupyterLab prints its URL just before its loop binds the port.

    Between attempts it waits for the server's next output line (at most 0.2 s), not for a fixed time.
    """
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return bool(resp.status == 200)
        except ConnectionRefusedError:
            pass
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
        try:
            if lines.get(timeout=0.2) is None:
                return False  # the server exited
        except queue.Empty:
            pass
    return False


@pytest.mark.slow
def test_make_lab_starts_prints_its_url_and_stops(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "bedrock-lab").exists():
        pytest.skip("no .venv: `make lab` needs `make setup` first")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "BROWSER": "false"}
    # -o: treat the install stamp as up to date, so a newer pyproject.toml does not reinstall the venv here
    cmd = ["make", "--no-print-directory", "-o", ".venv/.bedrock-lab-installed", "lab", "NO_BROWSER=1",
           f"LAB_PORT={_free_port()}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    url = None
    try:
        end = time.monotonic() + DEADLINE_S
        while url is None:
            line = lines.get(timeout=max(0.1, end - time.monotonic()))
            if line is None:
                break
            seen.append(line)
            m = URL.search(line)
            url = m.group(1) if m else None
        text = "".join(seen)
        assert url, f"no URL printed; output:\n{text[-3000:]}"
        assert "Running as root is not recommended" not in text
        assert "bedrock-lab lab: starting JupyterLab at" in text
        status = url.replace("/lab?", "/api/status?")
        assert _answers(status, lines, end), f"{url} never answered; output:\n{''.join(seen)[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode is not None
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        urllib.request.urlopen(status, timeout=5)


def test_a_bad_port_is_a_clean_error() -> None:
    import sys

    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "lab", "--port", "70000"], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 2
    assert "--port" in proc.stderr and "Traceback" not in proc.stderr
