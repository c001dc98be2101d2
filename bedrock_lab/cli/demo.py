"""`bedrock-lab demo`: the main job - the demo sweep on the embedded emulator, then the HTML report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DESCRIPTION = """\
The main job, what `make demo` runs: the demo sweep (params/sweeps/demo.yaml: a small and a large model x
service tiers x three concurrency levels, a few seconds per cell) on the embedded emulator - no AWS account, no network, no cost -
then the analysis and the offline HTML report, and prints the decision (which model, tier, load, cost) and
where everything is.

Each run starts the demo sweep afresh (OUT/<sweep>/ is replaced); use `bedrock-lab sweep` with --resume to
continue an interrupted sweep instead. Takes about two to three minutes on a laptop.

examples:
  bedrock-lab demo
  bedrock-lab demo --sweep params/sweeps/demo.yaml --out outputs
  bedrock-lab demo --skip-report          # only the sweep
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep", default=None, help="sweep file (default: params/sweeps/demo.yaml)")
    parser.add_argument("--out", default="outputs", help="output root (default: outputs)")
    parser.add_argument("--skip-report", action="store_true", help="run the sweep only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _report(out_dir: Path) -> Path | None:
    """`bedrock-lab report OUT/<sweep>`; the report's path, or None when it failed (the sweep's results stand)."""
    from bedrock_lab.cli import main

    try:
        code = main(["report", str(out_dir)])
    except Exception as exc:  # the sweep's results stand on their own; say what went wrong and go on
        print(f"the report failed: {type(exc).__name__}: {exc}")
        return None
    if code != 0:
        print(f"bedrock-lab report exited with {code}")
        return None
    found = sorted(out_dir.glob("*.html"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _print_decision(tables: Path) -> None:
    """The report's decision, read back from its tables (nothing recomputed); a one-line note if unreadable."""
    try:
        from bedrock_lab.report.decision import lines_from_tables

        lines = lines_from_tables(tables)
    except Exception as exc:  # the demo's results stand without this summary
        lines = [f"(decision not shown: {type(exc).__name__}: {exc})"]
    if lines:
        print()
        print("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    import sys

    from bedrock_lab.errors import ConfigError
    from bedrock_lab.params import load_sweep_config, repo_root
    from bedrock_lab.sweep import run_sweep

    t0 = time.monotonic()
    sweep = Path(args.sweep) if args.sweep else repo_root() / "params" / "sweeps" / "demo.yaml"
    config = load_sweep_config(sweep)
    if config.target.kind != "emulator":
        raise ConfigError("the demo runs on the embedded emulator only", source=str(sweep), key="target.kind",
                          value=config.target.kind, allowed="emulator (use `bedrock-lab sweep` for AWS)")  # fmt: skip
    result = run_sweep(config, out=args.out, restart=True, yes=True,
                       progress=not args.no_progress and sys.stderr.isatty())  # fmt: skip
    report = None if args.skip_report else _report(result.out_dir)
    elapsed = time.monotonic() - t0
    print()
    print(f"demo finished in {elapsed / 60:.1f} min: {len(result.ran)} cells ran, {len(result.failed)} failed")
    print(f"  sweep folder : {result.out_dir}")
    print(f"  results      : {result.results_csv}")
    print(f"  notebooks    : {result.out_dir / 'cells'}/<cell>/cell.ipynb")
    if report:
        print(f"  report       : {report}   <- open this in a browser (works offline)")
        _print_decision(result.out_dir / "tables")
    else:
        print("  report       : not produced (see above); the results are complete")
    return 0 if result.ok else 1
