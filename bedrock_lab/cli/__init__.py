"""`bedrock-lab` command line: one subcommand per module in this package.

Each subcommand module defines ``SUMMARY`` (one line), ``DESCRIPTION`` (the --help text),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``bedrock-lab --help`` stays fast and a broken optional dependency only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bedrock_lab._version import __version__
from bedrock_lab.errors import BedrockLabError

#: subcommand name -> (module, one-line summary shown by ``bedrock-lab --help``)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("bedrock_lab.cli.emulator", "run the embedded Bedrock Runtime emulator on loopback"),
    "burst": ("bedrock_lab.cli.burst", "fire an asyncio load burst (closed or open loop) and record every request"),
    "locust": ("bedrock_lab.cli.locust", "run one headless Locust cell (optionally distributed) and collect records"),
    "sweep": ("bedrock_lab.cli.sweep", "run a params/sweeps/*.yaml grid through papermill, resumably"),
    "calibrate": ("bedrock_lab.cli.calibrate", "fit the emulator's latency profiles to measured records (overlay)"),
    "analyze": ("bedrock_lab.cli.analyze", "run the statistical analysis of a sweep or records folder"),
    "report": ("bedrock_lab.cli.report", "write the offline stakeholder HTML report of a sweep"),
    "demo": ("bedrock_lab.cli.demo", "the main job: demo sweep on the emulator -> analysis -> HTML report"),
    "lab": ("bedrock_lab.cli.lab", "start JupyterLab at the repository root (as root too; --no-browser)"),
    "notebooks": ("bedrock_lab.cli.notebooks", "list the notebooks and their parameters; .ipynb twins for papermill"),
}

EPILOG = """\
examples:
  bedrock-lab emulator --port 8765            # a local Bedrock Runtime at http://127.0.0.1:8765
  bedrock-lab burst --model amazon.nova-lite-v1:0 --users 20 --requests 200
  bedrock-lab sweep params/sweeps/demo.yaml --dry-run
  bedrock-lab demo                            # what `make demo` runs

Run `bedrock-lab COMMAND --help` for the options of each command.
The emulator is the default target everywhere; pass an AWS target (region/profile) to spend real money.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bedrock-lab",
        description="Load-test Amazon Bedrock Runtime (or its embedded emulator) and report with statistics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bedrock-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=summary,
            description=getattr(module, "DESCRIPTION", summary),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BedrockLabError as exc:
        print(f"bedrock-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bedrock-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
