"""`bedrock-lab lab`: JupyterLab at the repository root, as root too, with or without a browser."""

from __future__ import annotations

import argparse
import os
import sys

SUMMARY = "start JupyterLab at the repository root (what `make lab` runs)"
DESCRIPTION = """\
Start JupyterLab at the repository root on loopback: notebooks/*.py open as notebooks (jupytext) on the
bedrock-lab kernel. JupyterLab prints the URL to open, with its access token, once it listens; Ctrl-C twice
stops it.

Jupyter refuses to run as root ("Running as root is not recommended"), the usual user in containers: this
command adds --allow-root when, and only when, it runs as root. --no-browser starts the server without
opening a browser (remote machines, containers: open the printed URL yourself).

The kernel's working folder is the notebook's folder (notebooks/); relative paths in notebook parameters are
taken from the repository root, so every notebook reads and writes the same folders as from the command line.

examples:
  bedrock-lab lab
  bedrock-lab lab --no-browser --port 8890
  make lab NO_BROWSER=1 LAB_PORT=8890
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser; open the printed URL")
    parser.add_argument("--port", type=int, default=8888,
                        help="port to listen on (default 8888; JupyterLab tries the next ones if it is taken)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: loopback 127.0.0.1)")
    parser.add_argument("jupyter_args", nargs=argparse.REMAINDER,
                        help="further `jupyter lab` options, after --, e.g. -- --ServerApp.port_retries=0")


def lab_command(*, no_browser: bool = False, port: int = 8888, ip: str = "127.0.0.1",
                extra: list[str] | None = None) -> list[str]:
    """The `jupyter lab` command line: this venv's JupyterLab at the project root, --allow-root only as root."""
    from bedrock_lab.paths import project_root

    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={project_root()}", f"--ServerApp.ip={ip}",
           f"--ServerApp.port={port}"]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    if no_browser:
        cmd.append("--no-browser")
    return cmd + [a for a in (extra or []) if a != "--"]


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.errors import ConfigError
    from bedrock_lab.paths import project_root

    if not 0 <= args.port <= 65535:
        raise ConfigError("not a port number", key="--port", value=args.port, allowed="0-65535")
    cmd = lab_command(no_browser=args.no_browser, port=args.port, ip=args.ip, extra=args.jupyter_args)
    print(f"bedrock-lab lab: starting JupyterLab at {project_root()}; it prints the URL to open below"
          " (Ctrl-C twice to stop)", flush=True)  # fmt: skip
    sys.stderr.flush()
    os.execv(cmd[0], cmd)  # JupyterLab takes this process over: its own signals, output and exit code
    return 0  # pragma: no cover - execv does not return
