"""`bedrock-lab sweep`: run a params/sweeps/*.yaml grid through papermill, resumably."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

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

Sequential cells and the SLO search (docs/sequential.md): `cell: {sequential: verdict}` ends each cell as soon
as the always-valid interval of its SLO percentile (slo_metric, slo_percentile, slo_target_s; default the file's
slo.<metric>_p95_s) lies above or below the target, `sequential: precision` once it is `precision` narrow;
duration_s / requests are then the maximum, min_duration_s / min_requests the minimum, warmup_s is not counted,
check_every_s the seconds between looks. `search: {load: users | rate_rps, low, high, resolution, max_levels}`
replaces the grid's load axes: per model x tier x prompt size it brackets and bisects sequential levels for the
highest load meeting the SLO, into OUT/<sweep>/search.json. results.csv then adds each cell's stop_reason,
stopped_at_s and always-valid interval (seq_*); `bedrock-lab analyze` prints them and the found load.

Environment variables BASE_MODEL_ID, SERVICE_TIERS, REGION_PREFIXES, PROMPT_SIZES, USER_COUNTS, TEST_DURATION,
MAX_TOKENS, REPEATS, BUDGET_USD, PROMPTS_FILE and RESULTS_DIR override the file (see docs/sweeps.md).

Coming from the AWS sample (the Locust tier sweep, run_tests.py)? Its flags work here (docs/migration.md): they
override the file's keys and the environment; without a file they apply to params/sweeps/default.yaml (the
sample's grid: us x 3 tiers x 3 prompt sizes x 30/60/90 users, 60 s) into OUT/test_results/. Defaults differ:
max_tokens 256 (the sample: 4096), model amazon.nova-2-lite-v1:0 (the sample: amazon.nova-premier-v1:0), all
users at once (the sample: 10 per second), and the target is the emulator (the sample: AWS; pass --target aws).

examples:
  bedrock-lab sweep params/sweeps/demo.yaml --dry-run
  bedrock-lab sweep params/sweeps/default.yaml --only '*flex*'
  USER_COUNTS=5,10 TEST_DURATION=30s bedrock-lab sweep params/sweeps/default.yaml
  bedrock-lab sweep params/sweeps/default.yaml --resume
  bedrock-lab sweep params/sweeps/slo_search.yaml    # an SLO search on the emulator (< 1 min)
  bedrock-lab sweep --service-tiers priority,flex --user-counts 30,60 --test-duration 30s --dry-run
  bedrock-lab sweep --prompts-file prompts.json --max-tokens 4096 --results-dir test_results/nova_run
"""

#: the sample's run_tests.py flags and ours that build the sweep: (flags, dest, metavar, help); each value is
#: parsed and validated by bedrock_lab.params (SAMPLE_FLAGS, FLAG_OVERRIDES), errors name the flag
_SAMPLE_ARGS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("--model-id", "--base-model-id"), "model_id", "ID",
     "base model id, or a prefixed one (sample default amazon.nova-premier-v1:0; here the file's, "
     "default.yaml: amazon.nova-2-lite-v1:0)"),
    (("--region-prefixes",), "region_prefixes", "LIST", "comma-separated region prefixes: us, global, ... or none"),
    (("--service-tiers",), "service_tiers", "LIST", "comma-separated service tiers: default, priority, flex"),
    (("--prompt-sizes",), "prompt_sizes", "LIST", "comma-separated prompt sizes of the workload: small, medium, large"),
    (("--user-counts",), "user_counts", "LIST", "comma-separated concurrent user counts (one cell each)"),
    (("--test-duration",), "test_duration", "TIME", "load per cell: 30s, 1m, 5m or seconds (sample default 1m)"),
    (("--spawn-rate",), "spawn_rate", "N", "users started per second: cell.ramp_s = largest user count / N "
                                           "(sample default 10; here all users start at once)"),
    (("--max-tokens",), "max_tokens", "N", "maxTokens of each request (sample default 4096; here 256)"),
    (("--results-dir",), "results_dir", "DIR", "the sweep folder (its last part names the sweep); "
                                               "RESULTS_DIR too; instead of --out"),
)
#: our flags that complete the sample's (it reads PROMPTS_FILE and always calls AWS)
_OWN_ARGS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("--prompts-file",), "prompts_file", "FILE", "a prompt file: the sample's prompts.json or a params/prompts "
                                                  "YAML (PROMPTS_FILE too)"),
    (("--target",), "target", "KIND", "emulator (default) or aws"),
    (("--region",), "region", "REGION", "AWS region with --target aws (default: AWS_REGION, AWS_DEFAULT_REGION, "
                                        "else the file's)"),
    (("--name",), "name", "NAME", "the sweep's name: it writes OUT/NAME/"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", nargs="?", help="sweep file, e.g. params/sweeps/demo.yaml")
    parser.add_argument("--out", default=None, help="output root; the sweep writes OUT/<name>/ (default: outputs)")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation before an AWS run")
    parser.add_argument("--resume", action="store_true", help="continue a previous run: skip finished cells")
    parser.add_argument("--restart", action="store_true", help="discard a previous run of this sweep and start over")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and estimates; run nothing")
    parser.add_argument("--only", nargs="+", metavar="CELL", help="run only these cells (ids, globs or substrings)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (CI logs)")
    parser.add_argument("--help-notebook", action="store_true",
                        help="list the cell notebook's parameters (what papermill --help-notebook shows)")
    g = parser.add_argument_group(
        "the AWS sample's run_tests.py flags (docs/migration.md)",
        "Same names and meanings as the public Bedrock tier-sweep sample; they override the sweep file\n"
        "and the environment (without a file: params/sweeps/default.yaml). --yes is the sample's too.")
    for flags, dest, metavar, text in _SAMPLE_ARGS:
        g.add_argument(*flags, dest=dest, metavar=metavar, default=None, help=text)
    g.add_argument("--include-failures", action="store_true",
                   help="accepted: bedrock-lab always records failures; sweep percentiles exclude them (a warning "
                        "says how to include them)")
    own = parser.add_argument_group("bedrock-lab's flags that complete them")
    for flags, dest, metavar, text in _OWN_ARGS:
        own.add_argument(*flags, dest=dest, metavar=metavar, default=None, help=text)


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """The sweep-building flags given on the command line: {flag: value as typed}."""
    out: dict[str, str] = {}
    for flags, dest, _m, _h in (*_SAMPLE_ARGS, *_OWN_ARGS):
        value = getattr(args, dest, None)
        if value is not None:
            out[flags[0]] = value
    return out


def build_config(args: argparse.Namespace, env: Mapping[str, str], warn: Callable[[str], None]) -> tuple[Any, str]:
    """The sweep (file + environment + flags, validated by bedrock_lab.params) and the output root it writes into.

    Precedence: the flags, then the environment, then the file. Without a file the sample's flags apply to
    params/sweeps/default.yaml, named test_results unless --results-dir / RESULTS_DIR / --name say otherwise."""
    from pathlib import Path

    from bedrock_lab.errors import ConfigError
    from bedrock_lab.params import (
        INCLUDE_FAILURES_NOTE,
        apply_flags,
        load_sweep_config,
        repo_root,
        sample_env_notes,
    )

    flags = _flags(args)
    for note in sample_env_notes(env):
        warn(note)
    if args.include_failures:
        warn(f"--include-failures: {INCLUDE_FAILURES_NOTE}")
    path = args.sweep
    if not path:
        if not flags and not args.include_failures:
            raise ConfigError("which sweep? give a file, or the AWS sample's flags (see --help)", key="sweep",
                              allowed="params/sweeps/*.yaml, or --service-tiers/--user-counts/... (docs/migration.md)")
        path = str(repo_root() / "params" / "sweeps" / "default.yaml")
        if "--results-dir" not in flags and "--name" not in flags and not env.get("RESULTS_DIR", "").strip():
            flags["--name"] = "test_results"
    if args.out is not None and "--results-dir" in flags:
        raise ConfigError("--out and --results-dir both say where the sweep goes; give one", source="command line",
                          key="--results-dir", value=flags["--results-dir"],
                          allowed="--results-dir DIR (writes DIR/) or --out ROOT (writes ROOT/<name>/)")  # fmt: skip
    from_vars: dict[str, str] = {}  # flags taken from the sample's environment: flag -> variable
    if flags.get("--target", "").strip() == "aws" and "--region" not in flags:
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):  # where boto3, and so the sample, finds its region
            if env.get(var, "").strip():
                flags["--region"], from_vars["--region"] = env[var].strip(), var
                break
    from_env = "--results-dir" not in flags and bool(env.get("RESULTS_DIR", "").strip())
    if from_env:  # the sample's RESULTS_DIR: the command line's --results-dir, named as the variable in errors
        flags["--results-dir"], from_vars["--results-dir"] = env["RESULTS_DIR"].strip(), "RESULTS_DIR"
    try:
        config = load_sweep_config(path, env=env, flags=flags)
    except ConfigError as exc:
        if from_env and exc.key == "--results-dir":
            raise ConfigError(exc.message, source="environment variable", key="RESULTS_DIR", value=exc.value,
                              allowed=exc.allowed) from None  # fmt: skip
        raise
    if flags:  # what the command line set, as the plan will use it
        values = config.model_dump()
        for dotted, flag in apply_flags({"grid": {"users": list(config.grid.users)}}, flags).items():
            value: Any = values
            for part in dotted.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            given = f"{from_vars[flag]}={flags[flag]}" if flag in from_vars else f"{flag} {flags[flag]}"
            print(f"command line: {dotted} = {value!r} ({given})")
    results_dir = flags.get("--results-dir")
    if args.out is not None:
        out = args.out
        if results_dir:
            warn(f"RESULTS_DIR={results_dir}: --out {args.out} replaces its parent; the sweep goes to "
                 f"{Path(args.out) / config.name}")  # fmt: skip
    elif results_dir:
        out = str(Path(results_dir).expanduser().resolve().parent)
    else:
        out = "outputs"
    workload = config.cell.workload
    if (flags or args.include_failures) and Path("prompts.json").is_file() and not workload.endswith(".json"):
        warn(f"./prompts.json is not used: the cells send the {workload!r} workload; pass --prompts-file "
             "prompts.json (or PROMPTS_FILE) to send the sample's prompts")  # fmt: skip
    return config, out


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


def _warn(text: str) -> None:
    print(f"bedrock-lab sweep: warning: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import os

    from bedrock_lab.errors import ConfigError
    from bedrock_lab.sweep import run_sweep

    if args.help_notebook:
        return _help_notebook()
    if args.resume and args.restart:
        raise ConfigError("--resume and --restart contradict each other", key="--restart")
    config, out = build_config(args, os.environ, _warn)
    result = run_sweep(
        config, out=out, yes=args.yes, resume=args.resume, restart=args.restart, dry_run=args.dry_run,
        only=args.only, fail_fast=args.fail_fast, progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    if args.dry_run:
        return 0
    if result.results_csv:
        print(f"results: {result.results_csv}")
    return 0 if result.ok else 1
