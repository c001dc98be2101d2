"""Engine overhead benchmark: measured TTFT / inter-token gaps versus the emulator's ground truth.

For each engine and concurrency level, a closed-loop streaming run (ConverseStream) goes to an emulator running
in its own process, whose response headers say what it intended: ``x-bedrock-lab-ttft-ms`` (arrival to first
content frame) and ``x-bedrock-lab-decode-ms`` (first to last content frame). Overheads per request:

    ttft overhead = measured ttft_s - server_ttft_s
    itl overhead  = measured mean inter-chunk gap - server_decode_s / (n_chunks - 1)

Engines: ``burst`` (our asyncio engine), ``locust`` (our Locust user, one process; ``locust-2w``: master + 2
workers), ``baseline`` (a Locust
``User`` calling plain boto3 ``converse_stream`` with default client settings, one client per user, as the
public examples do). Note the emulator's own scheduling lag (it shares the machine) counts as overhead too.

    .venv/bin/python bench/engines_bench.py --levels 10 50 100 250 --duration 8 --out outputs/bench-engines
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.records import load_records

MODEL = "amazon.nova-lite-v1:0"
#: a realistic streaming shape: ~250 ms TTFT, 4-token chunks at ~80 tokens/s (~50 ms gaps), no queueing
LATENCY = dict(ttft_ms=250.0, prefill_ms_per_1k=0.0, ttft_sigma=0.2, tokens_per_s=80.0, jitter=0.2, chunk_tokens=4,
               contention=0.0, output_median_tokens=64, output_sigma=0.3)  # fmt: skip

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


def overheads(df: pd.DataFrame) -> dict[str, float]:
    ok = df[(df["status"] == "ok") & df["server_ttft_s"].notna()]
    ttft = (ok["ttft_s"] - ok["server_ttft_s"]) * 1000.0
    multi = ok[ok["n_chunks"] >= 2]
    itl = (multi["itl_mean_s"] - multi["server_decode_s"] / (multi["n_chunks"] - 1)) * 1000.0
    return {
        "requests": len(df), "errors": int((df["status"] != "ok").sum()),
        "ttft_over_p50_ms": ttft.quantile(0.5), "ttft_over_p99_ms": ttft.quantile(0.99),
        "itl_over_p50_ms": itl.quantile(0.5), "itl_over_p99_ms": itl.quantile(0.99),
    }  # fmt: skip


def run_level(engine: str, users: int, duration: float, target: Target, out: Path) -> dict[str, float]:
    spec = BurstSpec(MODEL, users=users, duration_s=duration, max_tokens=64, run_id=f"{engine}-{users}",
                     drain_s=30.0, keep_chunk_times=False)  # fmt: skip
    folder = out / f"{engine}-{users}"
    t0 = time.monotonic()
    cpu0 = time.process_time()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    warnings: list[str] = []
    if engine == "burst":
        res = run_burst_sync(spec, target, folder, progress=False)
        warnings = res.warnings
        df = res.records()
    else:
        locustfile = None
        if engine == "baseline":
            locustfile = Path(tempfile.mkdtemp()) / "baseline_locustfile.py"
            locustfile.write_text(BASELINE)
        workers = 2 if engine == "locust-2w" else 0
        lres = run_locust(spec, target, folder, workers=workers, html=False, locustfile=locustfile)
        warnings = lres.warnings
        df = load_records(lres.records_dir)
    if engine == "burst":  # the engine runs in this process (the emulator is a subprocess)
        cpu = time.process_time() - cpu0
    else:  # every Locust process has exited and was waited for
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    row = {"engine": engine, "users": users, **overheads(df), "wall_s": time.monotonic() - t0}
    row["cpu_ms_per_req"] = 1000.0 * cpu / max(len(df), 1)
    row["rps"] = row["requests"] / duration
    row["warnings"] = "; ".join(warnings)[:120]
    return row


def markdown(rows: pd.DataFrame) -> str:
    cols = ["engine", "users", "requests", "errors", "rps", "ttft_over_p50_ms", "ttft_over_p99_ms",
            "itl_over_p50_ms", "itl_over_p99_ms", "cpu_ms_per_req"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in rows[cols].iterrows():
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    lowest = rows["users"].min()
    floor = float(rows[rows["users"] == lowest]["ttft_over_p50_ms"].min())
    best = [f"Floor (lowest p50 TTFT overhead at {lowest} users, any engine: emulator request handling + loopback): "
            f"{floor:.2f} ms", ""]  # fmt: skip
    for eng, g in rows.groupby("engine"):
        under = g[g["ttft_over_p99_ms"] < 2.0]["users"]
        under_f = g[g["ttft_over_p99_ms"] - floor < 2.0]["users"]
        best.append(f"- {eng}: highest concurrency with p99 TTFT overhead < 2 ms: "
                    f"{int(under.max()) if len(under) else 'none'}; < floor + 2 ms: "
                    f"{int(under_f.max()) if len(under_f) else 'none'}")  # fmt: skip
    return "\n".join(lines + [""] + best)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50, 100, 250])
    ap.add_argument("--engines", nargs="+", default=["burst", "locust", "baseline"],
                    choices=["burst", "locust", "locust-2w", "baseline"])
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--out", default="outputs/bench-engines")
    args = ap.parse_args(argv)
    # the baseline client reads the standard chain, as public examples do: give it dummy credentials
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(var, "bench-dummy")
    os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with run_emulator(seed=0, mode="subprocess", latency=LATENCY, capacity=4096) as emu:
        target = Target.emulator(emu.url)
        for users in args.levels:
            for engine in args.engines:
                row = run_level(engine, users, args.duration, target, out)
                rows.append(row)
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)  # fmt: skip
                pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    table = markdown(pd.DataFrame(rows))
    (out / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
