"""An emulator started for someone else must not outlive them, even when they are SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

LAUNCHER = """
import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-m", "bedrock_lab", "emulator", "--port", "0",
                      "--exit-with-parent", str(__import__("os").getpid())],
                     stdout=subprocess.PIPE, text=True)
line = p.stdout.readline()
print(p.pid, line.strip(), flush=True)
time.sleep(120)  # stand-in for a sweep that gets SIGKILLed
"""


def test_emulator_exits_when_its_parent_is_sigkilled() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    try:
        first = (launcher.stdout.readline() if launcher.stdout else "").split()
        assert len(first) >= 3 and first[1] == "listening", first
        emulator = psutil.Process(int(first[0]))
        assert emulator.is_running()
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
        gone, alive = psutil.wait_procs([emulator], timeout=30)
        for p in alive:
            p.kill()
        assert gone and not alive, "the emulator outlived its SIGKILLed parent"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
