"""`bedrock-lab locust`: run one headless Locust cell in subprocesses and collect its records."""

from __future__ import annotations

import argparse
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from bedrock_lab.cli.burst import (
    add_spec_arguments,
    add_target_arguments,
    check_out,
    spec_from_args,
    target_from_args,
)

DESCRIPTION = """\
Run one Locust cell headless, in subprocesses (Locust's gevent patching never touches this process), with
bedrock-lab's Locust user: the real boto3 client (or, with --client direct, a leaner one for the most load
per core) with retries off, a connection pool >= users and explicit timeouts. Locust's own CSV stats and HTML
report are written next to bedrock-lab's per-request records.

Closed loop only: --users N users send back to back for --duration seconds (Locust's -t); --requests stops each
Locust process after its share. --workers N runs Locust's distributed mode locally: one --master plus N
--worker processes; every worker writes its own record shards into OUT/records.

It prints the percentiles of TTFT, end-to-end latency, time per output token and output tokens/s of the
successful requests (from the records, with bedrock_lab.stats) and the paths of what it wrote: the records
folder, Locust's CSV and HTML report (with an "LLM statistics" section) and locust_llm.json.

To run the same user without this command (web UI, several machines, Kubernetes), point plain Locust at the
locustfile printed by `bedrock-lab locust --print-locustfile` and pass the --bl-* options (see docs/engines.md).
Locust prints --help before it imports a locustfile, so its help cannot list them: `bedrock-lab locust
--locust-help` shows them, and `python -m bedrock_lab.cli.locust ARGS` is `locust -f <that locustfile> ARGS`
with them registered first (web UI included: an "LLM" tab with TTFT, TPOT and tokens/s).

Target: as for `bedrock-lab burst` (an embedded emulator unless --endpoint or --region is given).

A run that cannot succeed stops early and exits 1 with the service's first error message: each Locust process
quits after --breaker-after consecutive connection, credential or validation errors, and the run is invalid
when fewer than --min-success-rate of the requests that were not throttled succeeded.

examples:
  bedrock-lab locust --users 20 --duration 30
  bedrock-lab locust --users 50 --duration 60 --workers 2 --api invoke-stream --prompt-size medium
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bedrock_lab.cellspec import LocustClient, field_help

    add_target_arguments(parser)
    add_spec_arguments(parser, open_loop=False)
    g = parser.add_argument_group("locust")
    g.add_argument("--workers", type=int, default=0, help="0: one process; N: master + N local workers")
    g.add_argument("--client", choices=typing.get_args(LocustClient), default="boto3",
                   help=field_help("locust_client").removeprefix("locust only: ") + " (default: boto3)")
    g.add_argument("--processes", action="store_true",
                   help="with --workers N: use Locust's --processes N (fork) instead of --master/--worker")
    g.add_argument("--spawn-rate", type=float, help="users started per second (default: all at once or --ramp)")
    g.add_argument("--print-locustfile", action="store_true", help="print the locustfile path and exit")
    g.add_argument("--locust-help", action="store_true",
                   help="print Locust's --help with the bedrock-lab --bl-* options and exit")


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.engines import LOCUSTFILE, run_locust
    from bedrock_lab.engines.preflight import preflight

    if args.print_locustfile:
        print(LOCUSTFILE)
        return 0
    if args.locust_help:  # in a subprocess: gevent's patching never touches this process
        return subprocess.run([sys.executable, "-m", "bedrock_lab.cli.locust", "--help"], check=False).returncode
    spec = spec_from_args(args)
    out = Path(args.out) if args.out else Path("outputs") / "locust" / str(spec.run_id)
    check_out(out)
    with target_from_args(args, emulator_mode="subprocess") as target:
        preflight(spec, target, yes=args.yes, budget_usd=args.budget_usd)
        result = run_locust(spec, target, out, workers=args.workers, spawn_rate=args.spawn_rate,
                            distributed="processes" if args.processes else "workers", client=args.client)
    print(result.summary())
    print(percentiles_text(result.records()))
    if not result.valid and result.health is not None:
        print(f"bedrock-lab locust: error: run is invalid: {result.health.reason}", file=sys.stderr)
        return 1
    return 0


#: what the summary prints: (title, metric column after with_metrics, scale, unit)
_PRINTED = [("TTFT", "ttft_s", 1000.0, "ms"), ("end-to-end", "e2e_s", 1000.0, "ms"),
            ("time per output token", "tpot_s", 1000.0, "ms"), ("output tokens/s", "tokens_per_s", 1.0, "tok/s")]  # fmt: skip


def percentiles_text(df: Any) -> str:
    """p50/p95/p99 of the successful requests, per request configuration, from the records (bedrock_lab.stats)."""
    from bedrock_lab.stats import quantile_table, with_metrics

    ok = df[df["status"] == "ok"] if len(df) else df
    if not len(ok):
        return "  no successful requests: no percentiles"
    ok = with_metrics(ok)
    lines = ["  percentiles of successful requests (p50 / p95 / p99):"]
    for (model, tier, size), g in ok.groupby(["model_id", ok["tier_requested"].fillna("no tier"), "prompt_size"]):
        lines.append(f"    {model} [{tier}] {size}: {len(g)} requests")
        for title, col, scale, unit in _PRINTED:
            if col not in g or not g[col].notna().any():
                continue
            t = quantile_table(g[col].to_numpy(dtype=float) * scale, (0.5, 0.95, 0.99))
            lines.append(f"      {title:<22} {t['p50']:>9.2f} / {t['p95']:>9.2f} / {t['p99']:>9.2f} {unit}")
    return "\n".join(lines)


def locust_main() -> None:
    """``locust -f <bedrock-lab's locustfile> ARGS`` with the ``--bl-*`` options registered before Locust parses
    the command line, so ``--help`` lists them (Locust's own ``--help`` runs before it imports any locustfile).
    Locust (and its gevent patching) is imported first, as ``locust`` itself does."""
    import locust.main

    import bedrock_lab.engines.locust_plugin  # noqa: F401  (registers the options)
    from bedrock_lab.engines.locust_runner import LOCUSTFILE

    if not any(a in ("-f", "--locustfile") or a.startswith("--locustfile=") for a in sys.argv[1:]):
        sys.argv[1:1] = ["-f", str(LOCUSTFILE)]
    sys.argv[0] = "locust"
    locust.main.main()


if __name__ == "__main__":
    locust_main()
