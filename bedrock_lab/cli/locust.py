"""`bedrock-lab locust`: run one headless Locust cell in subprocesses and collect its records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bedrock_lab.cli.burst import (
    add_spec_arguments,
    add_target_arguments,
    check_out,
    spec_from_args,
    target_from_args,
)

DESCRIPTION = """\
Run one Locust cell headless, in subprocesses (Locust's gevent patching never touches this process), with
bedrock-lab's Locust user: the real boto3 client with retries off, a connection pool >= users and explicit
timeouts. Locust's own CSV stats and HTML report are written next to bedrock-lab's per-request records.

Closed loop only: --users N users send back to back for --duration seconds (Locust's -t); --requests stops each
Locust process after its share. --workers N runs Locust's distributed mode locally: one --master plus N
--worker processes; every worker writes its own record shards into OUT/records.

To run the same user without this command (web UI, several machines, Kubernetes), point plain Locust at the
locustfile printed by `bedrock-lab locust --print-locustfile` and pass the --bl-* options (see docs/engines.md).

Target: as for `bedrock-lab burst` (an embedded emulator unless --endpoint or --region is given).

A run that cannot succeed stops early and exits 1 with the service's first error message: each Locust process
quits after --breaker-after consecutive connection, credential or validation errors, and the run is invalid
when fewer than --min-success-rate of the requests that were not throttled succeeded.

examples:
  bedrock-lab locust --users 20 --duration 30
  bedrock-lab locust --users 50 --duration 60 --workers 2 --api invoke-stream --prompt-size medium
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    add_spec_arguments(parser, open_loop=False)
    g = parser.add_argument_group("locust")
    g.add_argument("--workers", type=int, default=0, help="0: one process; N: master + N local workers")
    g.add_argument("--processes", action="store_true",
                   help="with --workers N: use Locust's --processes N (fork) instead of --master/--worker")
    g.add_argument("--spawn-rate", type=float, help="users started per second (default: all at once or --ramp)")
    g.add_argument("--print-locustfile", action="store_true", help="print the locustfile path and exit")


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.engines import LOCUSTFILE, run_locust
    from bedrock_lab.engines.preflight import preflight

    if args.print_locustfile:
        print(LOCUSTFILE)
        return 0
    spec = spec_from_args(args)
    out = Path(args.out) if args.out else Path("outputs") / "locust" / str(spec.run_id)
    check_out(out)
    with target_from_args(args, emulator_mode="subprocess") as target:
        preflight(spec, target, yes=args.yes, budget_usd=args.budget_usd)
        result = run_locust(spec, target, out, workers=args.workers, spawn_rate=args.spawn_rate,
                            distributed="processes" if args.processes else "workers")
    print(result.summary())
    if not result.valid and result.health is not None:
        print(f"bedrock-lab locust: error: run is invalid: {result.health.reason}", file=sys.stderr)
        return 1
    return 0
