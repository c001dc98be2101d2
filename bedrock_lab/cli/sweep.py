"""`bedrock-lab sweep`: run a params/sweeps/*.yaml grid through papermill, resumably."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Run a sweep: every cell of the grid in params/sweeps/NAME.yaml (model x tier x region prefix x prompt size x
users/rate x repeats) is executed as the notebook notebooks/cell.py through papermill, into
OUT/<sweep>/cells/<cell_id>/ (cell.ipynb, records/, summary.json).

The plan (cells, expected requests and tokens, estimated cost per tier, wall time) is printed first. Against
AWS the command asks for confirmation unless --yes; budget_usd in the file stops the sweep before the spend
would pass it. On the emulator target an emulator is started for the sweep and stopped afterwards.

OUT/<sweep>/manifest.json records each cell's status, timings and error; a failing cell is recorded and the
sweep goes on (unless --fail-fast). After an interruption (Ctrl-C, a crash, even SIGKILL) run the same command
with --resume: finished cells are kept, the rest run. Results: OUT/<sweep>/results.csv (one row per cell) and
bedrock_lab.sweep.load_sweep(OUT/<sweep>) (every request as one DataFrame).

Environment variables BASE_MODEL_ID, SERVICE_TIERS, REGION_PREFIXES, PROMPT_SIZES, USER_COUNTS, TEST_DURATION,
MAX_TOKENS, REPEATS and BUDGET_USD override the file (see docs/sweeps.md).

examples:
  bedrock-lab sweep params/sweeps/demo.yaml --dry-run
  bedrock-lab sweep params/sweeps/default.yaml --only '*flex*'
  USER_COUNTS=5,10 TEST_DURATION=30s bedrock-lab sweep params/sweeps/default.yaml
  bedrock-lab sweep params/sweeps/default.yaml --resume
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", nargs="?", help="sweep file, e.g. params/sweeps/demo.yaml")
    parser.add_argument("--out", default="outputs", help="output root; the sweep writes OUT/<name>/ (default: outputs)")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation before an AWS run")
    parser.add_argument("--resume", action="store_true", help="continue a previous run: skip finished cells")
    parser.add_argument("--restart", action="store_true", help="discard a previous run of this sweep and start over")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and estimates; run nothing")
    parser.add_argument("--only", nargs="+", metavar="CELL", help="run only these cells (ids, globs or substrings)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (CI logs)")
    parser.add_argument("--help-notebook", action="store_true",
                        help="list the cell notebook's parameters (what papermill --help-notebook shows)")


def _help_notebook() -> int:
    import tempfile
    from pathlib import Path

    import jupytext
    import nbformat
    import papermill as pm

    from bedrock_lab.params import repo_root

    nb = jupytext.read(repo_root() / "notebooks" / "cell.py")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cell.ipynb"
        nbformat.write(nb, path)
        params = pm.inspect_notebook(str(path))
    print("notebooks/cell.py parameters:")
    for name, p in params.items():
        print(f"  {name}: {p['inferred_type_name']} = {p['default']}    {p['help']}")
    return 0


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.errors import ConfigError
    from bedrock_lab.sweep import run_sweep

    if args.help_notebook:
        return _help_notebook()
    if not args.sweep:
        raise ConfigError("which sweep? give a file", key="sweep", allowed="params/sweeps/*.yaml")
    if args.resume and args.restart:
        raise ConfigError("--resume and --restart contradict each other", key="--restart")
    result = run_sweep(
        args.sweep, out=args.out, yes=args.yes, resume=args.resume, restart=args.restart, dry_run=args.dry_run,
        only=args.only, fail_fast=args.fail_fast, progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    if args.dry_run:
        return 0
    if result.results_csv:
        print(f"results: {result.results_csv}")
    return 0 if result.ok else 1
