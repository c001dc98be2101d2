"""Run one Locust cell headless in a subprocess and collect its records and CSV stats.

Locust monkey-patches the whole process with gevent on import, which must never happen inside a Jupyter
kernel or the async engine's process: this module only builds a command line and waits for it.
Distributed runs use Locust's own master/worker mode (no home-made coordinator): ``workers=N`` starts one
``--master`` and N ``--worker`` processes on this machine; the same flags work across machines or pods.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_lab.cellspec import LocustClient
from bedrock_lab.engines.health import RunHealth, assess
from bedrock_lab.engines.spec import BurstSpec
from bedrock_lab.engines.stopping import StopController, StopRule, bound_reason, describe_stop, watched_value
from bedrock_lab.engines.target import Target
from bedrock_lab.errors import ConfigError, EngineError
from bedrock_lab.records import load_records, shard_paths

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass
class LocustResult:
    """Where a Locust cell's outputs are; ``records()`` reads the per-request records back."""

    run_id: str
    spec: BurstSpec
    target: str
    out_dir: Path
    records_dir: Path
    csv: dict[str, Path] = field(default_factory=dict)  #: "stats", "failures", "exceptions", "stats_history"
    html: Path | None = None
    json: Path | None = None  #: Locust's final stats (``--json-file``): exact totals at shutdown
    llm_json: Path | None = None  #: the plugin's final LLM stats (TTFT, TPOT, tokens/s per request name)
    logs: list[Path] = field(default_factory=list)
    returncodes: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    health: RunHealth | None = None  #: the verdict on the run, from its records
    #: why the run ended (bedrock_lab.engines.stopping): settled_above / settled_below / precise for a sequential
    #: cell that this runner stopped (SIGTERM to Locust), else max_duration / max_requests / circuit_breaker
    stop_reason: str | None = None
    stopped_at_s: float | None = None  #: seconds from the first request to the stop decision
    sequential: dict[str, Any] | None = None  #: a sequential cell's last look: n, estimate, lo, hi, status

    @property
    def valid(self) -> bool:
        """False when the run could not succeed (:class:`~bedrock_lab.engines.health.RunHealth`)."""
        return self.health is None or self.health.valid

    def records(self, keep_chunk_times: bool = False) -> Any:
        return load_records(self.records_dir, keep_chunk_times=keep_chunk_times)

    def stats(self) -> Any:
        """Locust's own stats CSV as a DataFrame (a snapshot Locust refreshes every second: the last
        second of the run may be missing; :meth:`totals` has the final counts)."""
        import pandas as pd

        return pd.read_csv(self.csv["stats"])

    def totals(self) -> dict[str, int]:
        """Final request and failure counts per ``"<type> <name>"`` from Locust's JSON stats."""
        import json as _json

        if self.json is None:
            return {}
        entries = _json.loads(self.json.read_text())
        return {f"{e['method']} {e['name']}": int(e["num_requests"]) for e in entries}

    def llm_stats(self) -> list[dict[str, Any]]:
        """The LLM stats rows the Locust plugin showed at the end (:meth:`LlmStats.rows
        <bedrock_lab.engines.llm_stats.LlmStats.rows>`); the analysis reads the records instead."""
        import json as _json

        if self.llm_json is None:
            return []
        return list(_json.loads(self.llm_json.read_text())["stats"])

    def summary(self) -> str:
        df = self.records()
        ok = int((df["status"] == "ok").sum()) if len(df) else 0
        kinds = df["error_kind"].value_counts().to_dict() if len(df) else {}
        errs = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        lines = [f"locust run {self.run_id}: {self.spec.api} {self.spec.model_id} on {self.target}, "
                 f"{self.spec.users} users", f"  {len(df)} requests in {self.wall_s:.1f} s, ok {ok}, errors: {errs}",
                 f"  records: {self.records_dir}", f"  Locust CSV: {self.csv.get('stats')}"]  # fmt: skip
        if self.html is not None:
            lines.append(f"  Locust HTML report: {self.html}")
        if self.llm_json is not None:
            lines.append(f"  LLM stats (TTFT, TPOT, tokens/s): {self.llm_json}")
        if self.stop_reason is not None and self.spec.sequential != "off":
            lines.append("  " + describe_stop(self.spec.sequential, self.stop_reason, self.stopped_at_s,
                                              self.sequential))  # fmt: skip
        lines += [f"  WARNING: {w}" for w in self.warnings]
        if self.health is not None and not self.health.valid:
            lines.append(f"  INVALID RUN: {self.health.reason}")
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_options(spec: BurstSpec, target: Target, records_dir: Path, *, per_process_requests: int = 0,
                   client: LocustClient = "boto3") -> list[str]:  # fmt: skip
    """The ``--bl-*`` options of our locustfile for ``spec`` (no credentials: they come from the environment)."""
    opts = {
        "client": client,
        "model": spec.model_id, "api": spec.api, "tier": spec.tier or "", "workload": spec.workload,
        "prompt-size": spec.prompt_size, "max-tokens": spec.max_tokens,
        "temperature": "" if spec.temperature is None else spec.temperature,
        "provider-format": spec.provider_format or "", "out": str(records_dir), "run-id": spec.run_id,
        "cell-id": spec.cell_id, "seed": spec.seed, "max-attempts": spec.max_attempts,
        "connect-timeout": spec.connect_timeout_s, "read-timeout": spec.read_timeout_s,
        "requests": per_process_requests, "keep-chunk-times": int(spec.keep_chunk_times),
        "users-label": spec.users or 0, "pool": (spec.users or 0) + 8,
        "breaker-after": spec.breaker_after, "min-success-rate": spec.min_success_rate,
        "stop-sequences": spec.stop_sequences or "", "guardrail": spec.guardrail or "",
        "fallback-model": spec.fallback_model or "", "fallback-tier": spec.fallback_tier or "",
        "tier-mix": spec.tier_mix or "",
        "background-load": "" if spec.background_load is None else spec.background_load,
    }  # fmt: skip
    if target.is_openai:  # --host is the server's base URL
        opts["target-kind"] = "openai"
    elif not target.is_emulator:
        opts["aws-region"] = target.region
        if target.profile:
            opts["aws-profile"] = target.profile
    if target.auth != "sigv4":
        opts["auth"] = target.auth
    if target.api_key_env:  # the variable's name only: the key stays in the environment
        opts["api-key-env"] = target.api_key_env
    if target.ca_bundle:
        opts["ca-bundle"] = target.ca_bundle
    out: list[str] = []
    for k, v in opts.items():
        out += [f"--bl-{k}", str(v)]
    return out


def run_locust(
    spec: BurstSpec,
    target: Target,
    out_dir: str | os.PathLike[str] | None = None,
    workers: int = 0,
    *,
    spawn_rate: float | None = None,
    html: bool = True,
    extra_args: list[str] | None = None,
    locustfile: str | os.PathLike[str] | None = None,
    grace_s: float = 30.0,
    distributed: str = "workers",
    client: LocustClient = "boto3",
) -> LocustResult:
    """Run ``spec`` (closed loop: ``users``) with Locust headless in subprocesses and wait for it.

    ``workers=0`` runs one Locust process; ``workers=N`` a master and N local ``--worker`` processes
    (``distributed="workers"``, the same flags as across machines) or Locust's ``--processes N`` fork mode
    (``distributed="processes"``). ``client``: the users' client, ``"boto3"`` or ``"direct"``
    (:mod:`bedrock_lab.engines.direct`: the same requests for about half the CPU). The run lasts
    ``spec.duration_s`` (Locust's ``-t``); ``spec.requests`` additionally stops each process after its share.
    Outputs (``out_dir`` defaults to ``outputs/locust/<run_id>``): ``out_dir/records/`` (our shards), ``out_dir/locust_*.csv``, ``out_dir/locust.html``, logs.

    Each Locust process quits early when its circuit breaker trips (``spec.breaker_after``); ``result.health``
    judges the run from its records (``result.valid``). The subprocesses exit by themselves, writing nothing
    more, if this process dies (even by SIGKILL).
    """
    if spec.users is None:
        raise ConfigError("Locust runs closed loop: set users (use run_burst for an open-loop rate)",
                          source="BurstSpec", key="users", value=None)  # fmt: skip
    if workers < 0:
        raise ConfigError("must be >= 0", key="workers", value=workers)
    if client not in typing.get_args(LocustClient):
        raise ConfigError(f"unknown Locust client: got {client!r}", key="client", value=client,
                          allowed=", ".join(typing.get_args(LocustClient)))  # fmt: skip
    if distributed not in ("workers", "processes"):
        raise ConfigError("unknown distributed mode", key="distributed", value=distributed,
                          allowed="workers, processes")  # fmt: skip
    duration = spec.duration_s
    if duration is None:  # bounded by requests only: give Locust a generous time bound
        duration = max(30.0, 4.0 * spec.requests / max(spec.users, 1))  # type: ignore[operator]
    out = Path(out_dir) if out_dir is not None else Path("outputs") / "locust" / str(spec.run_id)
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    per_proc = math.ceil(spec.requests / max(workers, 1)) if spec.requests else 0
    rate = spawn_rate or (spec.users / spec.ramp_s if spec.ramp_s > 0 else float(spec.users))
    host = target.base_url  # for AWS: https://bedrock-runtime.<region>.amazonaws.com (a valid endpoint too)
    common = ["-f", str(locustfile or LOCUSTFILE), "--host", host, "--loglevel", "WARNING",
              *locust_options(spec, target, records_dir, per_process_requests=per_proc, client=client),
              *(extra_args or [])]  # fmt: skip
    head = ["--headless", "-u", str(spec.users), "-r", f"{rate:g}", "-t", f"{max(1, math.ceil(duration))}s",
            "--csv", str(out / "locust"), "--only-summary", "--stop-timeout", f"{spec.read_timeout_s:g}"]  # fmt: skip
    head += ["--json-file", str(out / "locust")]  # final totals (the CSV is a snapshot taken every second)
    head += ["--bl-llm-json", str(out / "locust_llm.json")]  # the plugin's LLM stats at quit (master / single)
    if html:
        head += ["--html", str(out / "locust.html")]
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["BEDROCK_LAB_PARENT_PID"] = str(os.getpid())  # the locustfile's watchdog: never outlive this process
    rule = StopRule.from_spec(spec)
    stop_file = out / ".bl-stop"
    stop_file.unlink(missing_ok=True)
    if rule is not None:  # a sequential cell: the locustfile quits when this file appears (_watch_records)
        env["BEDROCK_LAB_STOP_FILE"] = str(stop_file)
    cmds: list[list[str]] = []
    py = [sys.executable, "-m", "locust"]
    if workers == 0:
        cmds.append(py + common + head)
    elif distributed == "processes":
        cmds.append(py + common + head + ["--processes", str(workers)])
    else:
        port = free_port()
        cmds.append(py + common + head + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                                          str(port), "--expect-workers", str(workers),
                                          "--expect-workers-max-wait", "60"])  # fmt: skip
        cmds += [py + common + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
                 for _ in range(workers)]  # fmt: skip
    result = LocustResult(str(spec.run_id), spec, target.describe(), out, records_dir)
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    try:
        for i, cmd in enumerate(cmds):
            log = out / ("locust.log" if i == 0 else f"locust-worker{i}.log")
            result.logs.append(log)
            with open(log, "wb") as fh:
                procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=repo))
        limit = duration + spec.read_timeout_s + grace_s + (60 if workers else 0)
        if rule is not None:
            _watch_records(procs[0], rule, spec, records_dir, result, deadline=t0 + limit, stop_file=stop_file)
        for p in procs:
            try:
                p.wait(timeout=max(1.0, limit - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                result.warnings.append(f"locust process {p.pid} did not finish in {limit:.0f} s and was killed")
                p.kill()
                p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    result.wall_s = time.monotonic() - t0
    result.returncodes = [p.returncode for p in procs]
    for kind in ("stats", "failures", "exceptions", "stats_history"):
        path = out / f"locust_{kind}.csv"
        if path.exists():
            result.csv[kind] = path
    result.html = (out / "locust.html") if (out / "locust.html").exists() else None
    result.json = (out / "locust.json") if (out / "locust.json").exists() else None
    result.llm_json = (out / "locust_llm.json") if (out / "locust_llm.json").exists() else None
    if "stats" not in result.csv:
        tail = result.logs[0].read_text(errors="replace")[-2000:] if result.logs else ""
        raise EngineError(f"Locust produced no stats (exit codes {result.returncodes}); log tail:\n{tail}")
    bad = [rc for rc in result.returncodes if rc not in (0, 1)]  # 1: Locust saw failed requests
    if bad:
        result.warnings.append(f"Locust exit codes {result.returncodes}; see {result.logs}")
    df = load_records(records_dir)
    df = df[df["run_id"] == spec.run_id]  # this run, not stale shards
    result.health = assess(df, spec.health_policy)
    if result.stop_reason is None:
        result.stop_reason = bound_reason(interrupted=False, breaker_tripped=result.health.breaker_tripped,
                                          issued=len(df), requests=spec.requests)  # fmt: skip
    if rule is not None:
        final = _controller(rule, _watched(rule, df))
        final.finish()
        result.sequential = {**final.summary(), "looks": (result.sequential or {}).get("looks", 0)}
    return result


class _RecordFeed:
    """A sequential Locust cell's stop controller, fed shard by shard as the Locust processes publish them: a
    shard is written once (atomic rename), so each is read once, and the controller (one for the run, as in the
    burst engine) gets only the requests that are new at each look. Its warm-up is counted from the earliest
    start of the first shards read."""

    def __init__(self, rule: StopRule, run_id: str | None, records_dir: Path) -> None:
        self.rule, self.run_id, self.records_dir = rule, run_id, records_dir
        self.seen: set[Path] = set()
        self.ctl: StopController | None = None

    def read_new(self) -> StopController | None:
        """Feed the shards published since the last call; the controller (None until a record of this run)."""
        for path in [p for p in shard_paths(self.records_dir) if p not in self.seen]:
            df = load_records(path)
            self.seen.add(path)
            items = _watched(self.rule, df[df["run_id"] == self.run_id] if len(df) else df)
            if self.ctl is not None:
                self.ctl.add_many(items)
            elif items:
                self.ctl = _controller(self.rule, items)
        return self.ctl


def _watched(rule: StopRule, df: Any) -> list[tuple[float, float | None]]:
    """(start, watched value) of each finished request of ``df``."""
    cols = [df[c].tolist() if c in df else [None] * len(df) for c in ("start", "status", "error_kind", "ttft_s",
                                                                      "e2e_s", "tpot_s")]  # fmt: skip
    return [(float(start), watched_value(rule.metric, status, kind, _num(ttft), _num(e2e), _num(tpot)))
            for start, status, kind, ttft, e2e, tpot in zip(*cols, strict=True)]  # fmt: skip


def _controller(rule: StopRule, items: list[tuple[float, float | None]]) -> StopController:
    """A stop controller fed ``items`` (warm-up counted from the earliest start: shards of several processes
    arrive in any order)."""
    ctl = StopController(rule, min(start for start, _ in items) if items else time.time())
    ctl.add_many(items)
    return ctl


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def _watch_records(main: subprocess.Popen[bytes], rule: StopRule, spec: BurstSpec, records_dir: Path,
                   result: LocustResult, *, deadline: float, stop_file: Path) -> None:  # fmt: skip
    """A sequential Locust cell: every ``check_every_s`` read the record shards the Locust processes flushed (here,
    in the parent: nothing on Locust's request path), and once the answer is settled create ``stop_file``: each
    Locust process quits the way ``--bl-requests`` does (stats, HTML report and records written as usual). If the
    main process has not ended a read timeout later, it gets SIGTERM. The look lags the requests by up to a shard
    flush (2 s): it can only stop later, never on less evidence."""
    looks = 0
    feed = _RecordFeed(rule, spec.run_id, records_dir)
    while main.poll() is None and time.monotonic() < deadline:
        try:
            main.wait(timeout=rule.check_every_s)
            return
        except subprocess.TimeoutExpired:
            pass
        ctl = feed.read_new()
        if ctl is None:
            continue
        looks += 1
        reason = ctl.look(time.time())
        if reason is not None:
            result.stop_reason, result.stopped_at_s = reason, ctl.stopped_at_s
            result.sequential = {"looks": looks}
            stop_file.write_text(reason)
            try:
                main.wait(timeout=spec.read_timeout_s + 15.0)
            except subprocess.TimeoutExpired:
                result.warnings.append("Locust did not quit after the sequential stop; it was sent SIGTERM")
                main.terminate()
            return
