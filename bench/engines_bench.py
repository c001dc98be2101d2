"""Engine overhead benchmark (the peer table): measured TTFT / inter-chunk gaps versus the emulator's ground truth.

For each engine and concurrency level, a closed-loop ConverseStream run goes to an emulator in its own process
whose response headers (and timing log) say what it intended: ``x-bedrock-lab-ttft-ms`` (arrival to first
content frame) and ``x-bedrock-lab-decode-ms`` (first to last content frame). Per request, joined by request id:

    ttft overhead = measured ttft - intended ttft
    itl overhead  = measured mean inter-chunk gap - intended decode / (n_chunks - 1)

Only a steady window counts: each run lasts warm-up + window + tail; requests that start in the first
``--warmup`` seconds (after the run's first request), each user's first request, and requests starting after the
window are left out. Client CPU per request is the engine processes' CPU over the window (sampled every 0.25 s
and interpolated) divided by the requests started in it. Every engine runs in processes of its own, apart
from the emulator's.

Engines: ``burst`` (our asyncio engine), ``locust`` (our Locust user with boto3, one process; ``locust-2w``: master +
2 workers; ``locust-direct`` / ``locust-2w-direct``: the same with ``--bl-client direct``), ``baseline`` (a Locust ``User`` calling plain boto3 ``converse_stream`` with default client settings,
one client per user, as public examples do), and the peers ``aiobotocore`` (a plain asyncio loop over one
aiobotocore client) and ``llmeter`` (awslabs' LLMeter ``Runner`` with its ``BedrockConverseStream`` endpoint). The
peers run on ``--peer-python`` (default ``.venv-bench/bin/python``, from the ``bench`` extra); a peer that is not
installed there gets a "not installed" row.

    .venv/bin/python bench/engines_bench.py                      # the table: 10/100/250/500 users, every engine
    .venv/bin/python bench/engines_bench.py --engines burst aiobotocore --levels 250 --pin   # emulator on core 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.records import load_records

MODEL = "amazon.nova-lite-v1:0"
#: a realistic streaming shape: ~250 ms TTFT, 4-token chunks at ~80 tokens/s (~50 ms gaps), no queueing
LATENCY = dict(ttft_ms=250.0, prefill_ms_per_1k=0.0, ttft_sigma=0.2, tokens_per_s=80.0, jitter=0.2, chunk_tokens=4,
               contention=0.0, output_median_tokens=64, output_sigma=0.3)  # fmt: skip
ENGINES = ["burst", "aiobotocore", "llmeter", "locust", "locust-2w", "locust-direct", "locust-2w-direct", "baseline",
           "burst-ref"]  # fmt: skip
DEFAULT_ENGINES = ENGINES[:-1]
PEERS = {"aiobotocore", "llmeter"}
TAIL_S = 1.5  #: the run goes on this long after the window, so the window's end is sampled while it runs
PROMPT = "What is the capital of France?"

BASELINE = '''
"""Baseline: what public Bedrock + Locust examples do (plain boto3 client, default settings, one per user)."""
import time

import boto3
from locust import User, constant, task

from bedrock_lab.engines import locustfile as _bl  # only for the shared --bl-* options and the record writer
from bedrock_lab.engines.formats import ResponseParser
from bedrock_lab.engines.measure import Measurement


class BaselineUser(User):
    wait_time = constant(0)

    def on_start(self):
        self.client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=self.environment.host)
        self.seq = 0

    @task
    def ask(self):
        env = self.environment
        model, max_tokens = _bl._opt(env, "model"), _bl._opt(env, "max-tokens")
        m = Measurement.begin()
        parser = ResponseParser("converse-stream", "converse")
        exc = None
        try:
            resp = self.client.converse_stream(
                modelId=model, messages=[{"role": "user", "content": [{"text": "What is the capital of France?"}]}],
                inferenceConfig={"maxTokens": max_tokens})
            m.headers = resp["ResponseMetadata"]["HTTPHeaders"]
            m.retries = resp["ResponseMetadata"].get("RetryAttempts", 0)
            for event in resp["stream"]:
                for k, v in event.items():
                    if parser.feed_converse_event(k, v):
                        m.chunk()
        except Exception as e:
            exc = e
            m.fail("client", type(e).__name__)
        m.finish()
        rec = m.to_record(parser, streaming=True, keep_chunk_times=False, run_id=_bl._opt(env, "run-id"),
                          cell_id="", engine="baseline", worker=f"u{id(self)}", seq=self.seq, api="converse-stream",
                          model_id=model, tier_requested=None, prompt_id="small-capital", prompt_size="small",
                          users=_bl._opt(env, "users-label"), rate_rps=None)
        self.seq += 1
        _bl._writer(env).add(rec)
        env.events.request.fire(request_type="converse-stream", name=model, response_time=(rec.e2e_s or 0) * 1000,
                                response_length=len(parser.text), exception=exc, context={})
'''

#: the peers, run by --peer-python (which need not have bedrock_lab): one JSON line per request on stdout's file
PEER = r'''
import asyncio, json, sys, time
kind, url, model, users, duration, out, PROMPT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7]
from importlib import metadata
rows = []
MSG = [{"role": "user", "content": [{"text": PROMPT}]}]


async def aiobotocore_loop():
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    cfg = AioConfig(max_pool_connections=users + 8, retries={"max_attempts": 1, "mode": "standard"})
    async with get_session().create_client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                                           config=cfg) as client:
        deadline = time.monotonic() + duration

        async def user(i):
            seq = 0
            while time.monotonic() < deadline:
                start, t0 = time.time(), time.monotonic()
                chunks, rid, ok = [], None, True
                try:
                    resp = await client.converse_stream(modelId=model, messages=MSG, inferenceConfig={"maxTokens": 64})
                    rid = resp["ResponseMetadata"].get("RequestId")
                    async for ev in resp["stream"]:
                        if "contentBlockDelta" in ev and ev["contentBlockDelta"]["delta"].get("text"):
                            chunks.append(time.monotonic())
                except Exception:
                    ok = False
                end = time.monotonic()
                gaps = [b - a for a, b in zip(chunks, chunks[1:])]
                rows.append({"request_id": rid, "start": start, "worker": i, "seq": seq, "ok": ok and bool(chunks),
                             "ttft_s": chunks[0] - t0 if chunks else None, "e2e_s": end - t0,
                             "n_chunks": len(chunks), "itl_mean_s": sum(gaps) / len(gaps) if gaps else None})
                seq += 1

        await asyncio.gather(*(user(i) for i in range(users)))


def llmeter_run():
    import boto3
    from botocore.config import Config
    from llmeter.endpoints.bedrock import BedrockConverseStream
    from llmeter.runner import Runner

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                          config=Config(max_pool_connections=users + 8, retries={"max_attempts": 1}))
    ep = BedrockConverseStream(model_id=model, region="us-east-1", bedrock_boto3_client=client, max_attempts=1)
    payload = BedrockConverseStream.create_payload(PROMPT, max_tokens=64)
    res = asyncio.run(Runner(endpoint=ep).run(clients=users, run_duration=duration, payload=payload,
                                              disable_per_client_progress_bar=True, disable_clients_progress_bar=True))
    for r in res.responses:
        start = r.request_time.timestamp() if r.request_time is not None else None
        rows.append({"request_id": r.id, "start": start, "worker": None, "seq": None,
                     "ok": r.error is None and r.time_to_first_token is not None, "ttft_s": r.time_to_first_token,
                     "e2e_s": r.time_to_last_token, "n_chunks": None, "itl_mean_s": None})


print(json.dumps({"versions": {p: metadata.version(p) for p in (kind, "botocore")}}), flush=True)
asyncio.run(aiobotocore_loop()) if kind == "aiobotocore" else llmeter_run()
with open(out, "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
'''


class CpuSampler:
    """CPU seconds of this process's descendants (the engine under test: not the emulator, not us), every 0.25 s."""

    def __init__(self, exclude: set[int], pin: set[int] | None) -> None:
        self.exclude, self.pin = exclude, pin
        self.samples: list[tuple[float, float]] = []
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in me.children(recursive=True):
                if p.pid in self.exclude:
                    continue
                try:
                    if self.pin is not None and p.pid not in self._seen:
                        p.cpu_affinity(sorted(self.pin))
                    t = p.cpu_times()
                    self._seen[p.pid] = t.user + t.system  # an exited process keeps its last reading
                except psutil.Error:
                    continue
            self.samples.append((time.time(), sum(self._seen.values())))
            self._stop.wait(0.25)

    def between(self, a: float, b: float) -> float:
        ts, cpu = np.array([s[0] for s in self.samples]), np.array([s[1] for s in self.samples])
        return float(np.interp(b, ts, cpu) - np.interp(a, ts, cpu)) if len(ts) >= 2 else float("nan")


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _child_burst(url: str, users: int, duration: float, folder: str) -> int:
    """``--child-burst``: the burst engine in its own process, like the other engines."""
    spec = BurstSpec(MODEL, users=users, duration_s=duration, max_tokens=64, run_id=f"burst-{users}", drain_s=30.0,
                     keep_chunk_times=False)  # fmt: skip
    res = run_burst_sync(spec, Target.emulator(url), folder, progress=False)
    print(json.dumps({"warnings": res.warnings}), flush=True)
    return 0


def run_engine(engine: str, users: int, duration: float, url: str, out: Path, peer_python: str,
               log: Path, ref: str | None = None) -> tuple[pd.DataFrame, list[str], dict[str, str]]:  # fmt: skip
    """(per-request frame: start, worker, seq, ok, ttft_s, itl_mean_s, n_chunks, server_ttft_s,
    server_decode_s), warnings, peer versions."""
    folder = out / f"{engine}-{users}"
    shutil.rmtree(folder, ignore_errors=True)  # a previous run's shards must not join this one
    cols = ["start", "worker", "seq", "ok", "ttft_s", "itl_mean_s", "n_chunks", "server_ttft_s", "server_decode_s"]
    if engine in PEERS:
        script = out / "peer.py"
        script.write_text(PEER)
        rows_file = out / f"{engine}-{users}.jsonl"
        proc = subprocess.run([peer_python, str(script), engine, url, MODEL, str(users), str(duration), str(rows_file),
                               PROMPT],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "peer failed")
        versions = next((json.loads(line)["versions"] for line in proc.stdout.splitlines() if '"versions"' in line), {})
        df = pd.read_json(rows_file, lines=True)
        truth = pd.read_json(log, lines=True)[["request_id", "ttft_ms", "decode_ms"]]
        df = df.merge(truth, on="request_id", how="left")
        df["server_ttft_s"], df["server_decode_s"] = df["ttft_ms"] / 1000.0, df["decode_ms"] / 1000.0
        return df[cols], [], versions
    warnings: list[str] = []
    if engine in ("burst", "burst-ref"):
        env = dict(os.environ, PYTHONPATH=ref) if engine == "burst-ref" and ref else None
        proc = subprocess.run([sys.executable, __file__, "--child-burst", url, str(users), str(duration), str(folder)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError((proc.stderr.strip().splitlines() or ["burst child failed"])[-1])
        warnings = json.loads(proc.stdout.strip().splitlines()[-1])["warnings"]
        recs = load_records(folder)
    else:
        spec = BurstSpec(MODEL, users=users, duration_s=duration, max_tokens=64, run_id=f"{engine}-{users}",
                         drain_s=30.0, keep_chunk_times=False)  # fmt: skip
        locustfile = None
        if engine == "baseline":
            locustfile = Path(tempfile.mkdtemp()) / "baseline_locustfile.py"
            locustfile.write_text(BASELINE)
        lres = run_locust(spec, Target.emulator(url), folder, workers=2 if "-2w" in engine else 0, html=False,
                          locustfile=locustfile, client="direct" if engine.endswith("-direct") else "boto3")  # fmt: skip
        warnings = lres.warnings
        recs = load_records(lres.records_dir)
    recs["ok"] = recs["status"] == "ok"
    return recs[cols], warnings, {}


def steady(df: pd.DataFrame, warmup: float, window: float) -> tuple[pd.DataFrame, float, float]:
    """The requests of the steady window and the window's bounds (epoch s)."""
    t_run = float(df["start"].min())
    a, b = t_run + warmup, t_run + warmup + window
    keep = df["start"].between(a, b, inclusive="left") & ~(df["seq"] == 0)
    return df[keep], a, b


def overheads(win: pd.DataFrame) -> dict[str, float]:
    ok = win[win["ok"] & win["server_ttft_s"].notna() & win["ttft_s"].notna()]
    ttft = (ok["ttft_s"] - ok["server_ttft_s"]) * 1000.0
    multi = ok[ok["n_chunks"].fillna(0) >= 2]
    itl = (multi["itl_mean_s"] - multi["server_decode_s"] / (multi["n_chunks"] - 1)) * 1000.0
    return {
        "requests": len(win), "errors": int((~win["ok"]).sum()),
        "ttft_over_p50_ms": ttft.quantile(0.5), "ttft_over_p99_ms": ttft.quantile(0.99),
        "itl_over_p50_ms": itl.quantile(0.5) if len(itl) else float("nan"),
        "itl_over_p99_ms": itl.quantile(0.99) if len(itl) else float("nan"),
    }  # fmt: skip


def peer_available(engine: str, peer_python: str) -> bool:
    if not Path(peer_python).exists():
        return False
    return subprocess.run([peer_python, "-c", f"import {engine}"], capture_output=True).returncode == 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:,.2f}"
    return str(v)


def markdown(rows: pd.DataFrame) -> str:
    runs = "run" in rows and rows["run"].nunique() > 1
    cols = (["run"] if runs else []) + ["engine", "users", "rps", "ttft_over_p50_ms", "ttft_over_p99_ms",
                                        "itl_over_p50_ms", "itl_over_p99_ms", "cpu_ms_per_req", "requests", "errors",
                                        "load_avg_1m"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in rows.iterrows():
        if r.get("note"):
            lead = [str(r[c]) for c in cols[: cols.index("users") + 1]]
            lines.append("| " + " | ".join([*lead, str(r["note"])]) + " |" + " |" * (len(cols) - len(lead) - 1))
        else:
            lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    lines.append("")
    measured = rows[rows["note"].isna() | (rows["note"] == "")] if "note" in rows else rows
    for key, g in measured.groupby(["run", "engine"] if runs else ["engine"], sort=False):
        out = []
        for limit in (10.0, 50.0):
            under = g[g["ttft_over_p99_ms"] <= limit]["users"]
            out.append(f"p99 <= {limit:g} ms: {int(under.max()) if len(under) else 'none'} users")
        name = f"run {key[0]}, {key[1]}" if runs else key[0]
        lines.append(f"- {name}: highest load with TTFT overhead " + "; ".join(out))
    return "\n".join(lines)


def targets(rows: pd.DataFrame) -> str:
    """Issue 18's targets, checked per run (emulator and engines sharing the machine): burst's TTFT overhead p99 at
    most the aiobotocore loop's at every level, <= 10 ms at 250 users and <= 50 ms at 500; CPU per request at 250
    and 500 users <= 0.7x the aiobotocore loop's and <= 1/3 of llmeter's; the same tail goals for locust-2w (and
    for locust-2w-direct, the Locust user with the direct client)."""
    ok = rows[rows["note"].isna() | (rows["note"] == "")] if "note" in rows else rows
    if "run" not in ok:
        ok = ok.assign(run=1)
    checks: dict[str, list[bool]] = {}

    def check(name: str, value: bool | None) -> None:
        if value is not None:
            checks.setdefault(name, []).append(bool(value))

    def value(by: dict[tuple[str, int], Any], engine: str, users: int, col: str) -> float | None:
        r = by.get((engine, users))
        v = None if r is None else r.get(col)
        return None if v is None or pd.isna(v) else float(v)

    for _, g in ok.groupby("run"):
        by = {(r["engine"], int(r["users"])): r for _, r in g.iterrows()}

        def val(engine: str, users: int, col: str, by: dict[tuple[str, int], Any] = by) -> float | None:
            return value(by, engine, users, col)

        for eng in ("burst", "locust-2w", "locust-2w-direct"):
            for users in sorted({u for (e, u) in by if e == eng}):
                p99, peer = val(eng, users, "ttft_over_p99_ms"), val("aiobotocore", users, "ttft_over_p99_ms")
                if p99 is not None and peer is not None:
                    check(f"{eng} p99 <= aiobotocore's (every level)", p99 <= peer)
            for users, limit in ((250, 10.0), (500, 50.0)):
                p99 = val(eng, users, "ttft_over_p99_ms")
                check(f"{eng} p99 <= {limit:g} ms at {users} users", None if p99 is None else p99 <= limit)
        for users in (250, 500):
            cpu = val("burst", users, "cpu_ms_per_req")
            for peer, limit in (("aiobotocore", 0.7), ("llmeter", 1 / 3)):
                other = val(peer, users, "cpu_ms_per_req")
                if cpu is not None and other:
                    check(f"burst CPU <= {limit:.2g}x {peer}'s at {users} users", cpu / other <= limit)
    if not checks:
        return ""
    lines = ["| target (issue 18) | met in (runs; level-runs for \"every level\") |", "|---|---|"]
    lines += [f"| {name} | {sum(v)} of {len(v)} |" for name, v in checks.items()]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in ("bedrock-lab", "botocore", "aiohttp", "locust", "pyarrow"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-burst":
        return _child_burst(argv[1], int(argv[2]), float(argv[3]), argv[4])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 100, 250, 500])
    ap.add_argument("--engines", nargs="+", default=DEFAULT_ENGINES, choices=ENGINES)
    ap.add_argument("--ref", default=None, help="burst-ref: a folder holding another bedrock_lab package (e.g. "
                    "`git archive REV bedrock_lab | tar -x -C DIR`), to compare the burst engine before and after")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds left out after each run's first request")
    ap.add_argument("--window", type=float, default=6.0, help="seconds of steady measurement per level")
    ap.add_argument("--peer-python", default=".venv-bench/bin/python", help="interpreter with the bench extra")
    ap.add_argument("--pin", action="store_true", help="emulator on core 0, engines on core 1 (needs >= 2 cores)")
    ap.add_argument("--out", default="outputs/bench-engines")
    ap.add_argument("--repeat", type=int, default=1, help="run the whole table this many times, one after the "
                    "other (each row says its run); the targets section counts the runs that met each target")
    args = ap.parse_args(argv)
    # the baseline and peer clients read the standard chain, as public examples do: give them dummy credentials
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(var, "bench-dummy")
    os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    duration = args.warmup + args.window + TAIL_S
    available = {e: peer_available(e, args.peer_python) for e in PEERS & set(args.engines)}
    meta: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "versions": versions(),
                            "cpus": os.cpu_count(), "warmup_s": args.warmup, "window_s": args.window, "pin": args.pin}
    rows: list[dict[str, Any]] = []
    log = out / "timing.jsonl"
    log.unlink(missing_ok=True)
    with run_emulator(seed=0, mode="subprocess", latency=LATENCY, capacity=4096, timing_log=str(log)) as emu:
        emulator_pids = _descendants()
        if args.pin:
            for pid in emulator_pids:
                psutil.Process(pid).cpu_affinity([0])
        for run in range(1, args.repeat + 1):
            for users in args.levels:
                for engine in args.engines:
                    row: dict[str, Any] = {"run": run, "engine": engine, "users": users, "note": ""}
                    if engine == "burst-ref" and not args.ref:
                        row["note"] = "no --ref given"
                        rows.append(row)
                        continue
                    if engine in PEERS and not available[engine]:
                        row["note"] = f"not installed (for {args.peer_python})"
                        rows.append(row)
                        continue
                    load = os.getloadavg()[0]
                    try:
                        with CpuSampler(emulator_pids, {1} if args.pin else None) as cpu:
                            df, warnings, peer_versions = run_engine(engine, users, duration, emu.url, out,
                                                                     args.peer_python, log, args.ref)  # fmt: skip
                    except Exception as exc:  # one broken engine must not lose the table
                        row["note"] = "failed: " + " ".join(str(exc).split())[:100]
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        continue
                    meta["versions"].update({f"{engine}:{k}": v for k, v in peer_versions.items()})
                    win, a, b = steady(df, args.warmup, args.window)
                    row.update(overheads(win))
                    row["rps"] = row["requests"] / args.window
                    row["cpu_ms_per_req"] = 1000.0 * cpu.between(a, b) / max(row["requests"], 1)
                    row["load_avg_1m"] = round((load + os.getloadavg()[0]) / 2, 2)
                    row["warnings"] = "; ".join(warnings)[:160]
                    rows.append(row)
                    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}),
                          flush=True)  # fmt: skip
                    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    table = markdown(frame) + "\n\n" + targets(frame)
    (out / "results.md").write_text(json.dumps(meta) + "\n\n" + table + "\n")
    print(json.dumps(meta))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
