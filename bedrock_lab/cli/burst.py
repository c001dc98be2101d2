"""`bedrock-lab burst`: fire one asyncio load burst and record every request."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Fire one load burst with the asyncio engine and write one record per request (parquet shards).

Closed loop (--users N): N workers send back to back, for --duration seconds and/or --requests requests,
optionally ramping up over --ramp seconds. Open loop (--rate R): requests start on a seeded schedule
(--arrival poisson|constant) whatever the responses do; latencies are measured from the intended start, and
starts later than 10 ms are counted as schedule misses.

Target: without --endpoint or --region an embedded emulator is started on 127.0.0.1 and stopped afterwards.
--endpoint URL uses an emulator (or any compatible endpoint) already running; --region [--profile] targets AWS
with the standard credential chain (env vars, profiles, SSO, instance roles) and costs real money.
Credentials are never printed or stored. Against AWS (any endpoint that is not this machine) a preflight runs
first: credentials, catalog checks, the estimated cost with a confirmation (--yes skips it; with no terminal the
run is refused; --budget-usd caps it) and one 1-token probe request; the run starts only if all pass.

A run that cannot succeed stops early and exits 1 with the service's first error message: after
--breaker-after consecutive connection, credential or validation errors, or when fewer than --min-success-rate
of the requests that were not throttled succeeded (throttling is a result, unless nothing got through).

Retries are off (--max-attempts 1): a throttled request is a record with error_kind "throttled". With more
attempts the engine retries like botocore's standard mode and records each request's retries.

The engine reports its own saturation (event-loop lag, CPU) in the summary instead of hiding it in latencies.

examples:
  bedrock-lab burst --model amazon.nova-lite-v1:0 --users 20 --requests 200
  bedrock-lab burst --rate 15 --arrival poisson --duration 30 --api invoke-stream --prompt-size large
  bedrock-lab burst --workload chat --users 5 --duration 20 --out outputs/chat
  bedrock-lab burst --region us-east-1 --model us.amazon.nova-lite-v1:0 --users 2 --requests 10
"""


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("target (default: an embedded emulator)")
    g.add_argument("--endpoint", metavar="URL", help="Bedrock Runtime endpoint, e.g. a running emulator")
    g.add_argument("--region", help="AWS region: target real Bedrock (costs money)")
    g.add_argument("--profile", help="AWS profile name (only with --region)")
    g.add_argument("--emulator-seed", type=int, default=0, help="seed of the embedded emulator (default 0)")
    g.add_argument("--yes", action="store_true",
                   help="AWS: spend the estimated cost without asking (without a terminal the run is refused)")
    g.add_argument("--budget-usd", type=float, metavar="USD", help="AWS: refuse a run whose estimate is above USD")


def _cell_option(group: Any, name: str) -> None:
    """One option for a :class:`~bedrock_lab.cellspec.CellSpec` field: flag, type, choices, default and help all
    come from the field, so the CLI, the sweep file and the notebook cannot disagree."""
    import types
    import typing

    from bedrock_lab.cellspec import CLI_FIELDS, CellSpec, field_help

    field = CellSpec.model_fields[name]
    ann: Any = field.annotation
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:  # X | None
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    kwargs: dict[str, Any] = {"default": field.default, "help": field_help(name) + " (default %(default)s)"}
    if typing.get_origin(ann) is typing.Literal:
        kwargs["choices"] = list(typing.get_args(ann))
    else:
        kwargs["type"] = ann
    group.add_argument(f"--{CLI_FIELDS[name]}", dest=name, **kwargs)


def add_spec_arguments(parser: argparse.ArgumentParser, *, open_loop: bool = True) -> None:
    g = parser.add_argument_group("request")
    for name in ("model_id", "api", "tier", "tier_mix", "workload", "prompt_size", "max_tokens", "temperature",
                 "background_load"):
        _cell_option(g, name)
    g.add_argument("--provider-format", help="InvokeModel body format (default: from the catalog / model id)")
    g = parser.add_argument_group("load")
    if open_loop:
        mode = g.add_mutually_exclusive_group()
        mode.add_argument("--users", type=int, help="closed loop: concurrent workers (default 10)")
        mode.add_argument("--rate", type=float, help="open loop: arrivals per second")
        g.add_argument("--arrival", default="poisson", choices=["poisson", "constant"], help="open-loop arrivals")
    else:
        g.add_argument("--users", type=int, default=10, help="concurrent Locust users (default %(default)s)")
    g.add_argument("--duration", type=float, help="seconds (default: 50 requests if no --requests either)")
    g.add_argument("--requests", type=int, help="total requests")
    g.add_argument("--ramp", type=float, default=0.0, help="seconds to ramp up users (or the rate)")
    for name in ("seed", "max_attempts", "connect_timeout_s", "read_timeout_s", "breaker_after", "min_success_rate"):
        _cell_option(g, name)
    from bedrock_lab.cellspec import SEQUENTIAL_FIELDS

    g = parser.add_argument_group("sequential cell: stop once the answer is settled (--duration/--requests: the "
                                  "maximum; docs/sequential.md)")  # fmt: skip
    for name in SEQUENTIAL_FIELDS:
        _cell_option(g, name)
    from bedrock_lab.cellspec import PRODUCTION_FIELDS

    g = parser.add_argument_group("production features: stop sequences, guardrail, fallback (docs/engines.md)")
    for name in PRODUCTION_FIELDS:
        _cell_option(g, name)
    g = parser.add_argument_group("output")
    g.add_argument("--run-id", help="run id (default: random)")
    g.add_argument("--cell-id", default="")
    g.add_argument("--out", help="output folder (default outputs/<engine>/<run id>)")


def spec_from_args(args: argparse.Namespace) -> Any:
    from bedrock_lab.cellspec import CLI_FIELDS
    from bedrock_lab.engines import BurstSpec

    users = args.users
    rate = getattr(args, "rate", None)
    if users is None and rate is None:
        users = 10
    requests, duration = args.requests, args.duration
    if requests is None and duration is None:
        requests = 50
    cell = {name: getattr(args, name) for name in CLI_FIELDS}
    return BurstSpec(
        **cell, users=users, rate_rps=rate, arrival=getattr(args, "arrival", "poisson"), duration_s=duration,
        requests=requests, ramp_s=args.ramp, run_id=args.run_id, cell_id=args.cell_id,
        provider_format=args.provider_format,
    )  # fmt: skip


@contextlib.contextmanager
def target_from_args(args: argparse.Namespace, *, emulator_mode: str = "subprocess") -> Iterator[Any]:
    """The target the arguments name; starts (and stops) an embedded emulator when none is named."""
    from bedrock_lab._net import parse_endpoint
    from bedrock_lab.engines import Target
    from bedrock_lab.errors import ConfigError

    if args.profile and not args.region:
        raise ConfigError("--profile needs --region", key="--profile")
    if args.endpoint:
        parse_endpoint(args.endpoint, key="--endpoint")
    if args.region:
        yield Target.aws(args.region, args.profile, endpoint_url=args.endpoint)
    elif args.endpoint:
        yield Target.emulator(args.endpoint)
    else:
        from bedrock_lab.emulator import run_emulator

        with run_emulator(seed=args.emulator_seed, mode=emulator_mode) as emu:
            print(f"started an embedded emulator at {emu.url}")
            yield Target.emulator(emu.url)


def check_out(out: Path) -> None:
    """The output folder must be a folder (or not exist yet), checked before any load."""
    from bedrock_lab.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError("is a file, not a folder", key="--out", value=str(out), allowed="a folder (created if missing)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    add_spec_arguments(parser, open_loop=True)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.engines import run_burst_sync
    from bedrock_lab.engines.preflight import preflight

    spec = spec_from_args(args)
    out = Path(args.out) if args.out else Path("outputs") / "burst" / str(spec.run_id)
    check_out(out)
    with target_from_args(args) as target:
        preflight(spec, target, yes=args.yes, budget_usd=args.budget_usd)
        result = run_burst_sync(spec, target, out, progress=not args.no_progress)
    print(result.summary())
    if not result.valid and result.health is not None:
        print(f"bedrock-lab burst: error: run is invalid: {result.health.reason}", file=sys.stderr)
        return 1
    df = result.records()
    ok = df[df["status"] == "ok"]
    if len(ok):
        q = ok[["ttft_s", "e2e_s"]].quantile([0.5, 0.95, 0.99]) * 1000.0
        for p, row in q.iterrows():
            print(f"  p{int(round(p * 100))}: TTFT {row['ttft_s']:.1f} ms, end-to-end {row['e2e_s']:.1f} ms")
    return 0
