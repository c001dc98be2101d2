"""The field's OpenAI-compatible load tools against the emulator's Chat Completions API, beside our engines.

Every engine runs closed loop at the same concurrency levels against one emulator in its own process, model
``openai.gpt-oss-20b-1:0``, on ``POST /openai/v1/chat/completions`` (streamed), except LLMeter's Bedrock-native
``BedrockConverseStream`` row (ConverseStream on the same model). The emulator's TTFT is made constant
(``ttft_sigma`` 0, no prefill term, no queueing), so the ground truth of every request is known even for tools
that report no request id:

    TTFT overhead = measured TTFT - intended TTFT
    intended TTFT = our engines: the request's own ``x-bedrock-lab-ttft-ms`` header (arrival -> first content
                    frame, the server's pre-admission time included); peers: the constant TTFT plus the median
                    pre-admission time the emulator's timing log saw in the same run (a fraction of a millisecond)

Only a steady window counts (warm-up, then ``--window`` seconds), as in ``engines_bench.py`` whose CPU sampler and
window rule this reuses. Client CPU per request = CPU seconds of the tool's processes over the window / requests
started in it. Peers run from their own venvs (``--peer-venv DIR/v-<tool>``: GuideLLM, AIPerf and LLMeter pin
clashing packages); a tool that is missing or fails gets a row that says why.

Peer venvs (their pins clash with ours and with each other: one each, outside the repository)::

    for p in guidellm aiperf llmeter; do python -m venv /tmp/peers/v-$p && /tmp/peers/v-$p/bin/pip install $p; done
    /tmp/peers/v-llmeter/bin/pip install openai httpx     # LLMeter's OpenAI endpoint imports both

    .venv/bin/python bench/openai_peers_bench.py --peer-venvs /tmp/peers      # 10 and 50 users, every engine
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
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engines_bench import CpuSampler, _descendants, _fmt, steady  # the same sampler and window rule

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.records import load_records

MODEL = "openai.gpt-oss-20b-1:0"
TTFT_MS = 250.0
#: constant TTFT (so every tool's ground truth is known), 4-token chunks at ~80 tokens/s, 64 output tokens
LATENCY = dict(ttft_ms=TTFT_MS, prefill_ms_per_1k=0.0, ttft_sigma=0.0, tokens_per_s=80.0, jitter=0.2, chunk_tokens=4,
               contention=0.0, output_median_tokens=0, output_sigma=0.0)  # fmt: skip
MAX_TOKENS = 64
PROMPT = "What is the capital of France?"
ENGINES = ["burst", "locust", "guidellm", "aiperf", "llmeter-openai", "llmeter-converse"]
PEER_VENV = {"guidellm": "guidellm", "aiperf": "aiperf", "llmeter-openai": "llmeter", "llmeter-converse": "llmeter"}
TAIL_S = 1.5
KEY = "bench-not-a-secret"


def _child_burst(url: str, users: int, duration: float, folder: str) -> int:
    spec = BurstSpec(MODEL, api="chat-completions", users=users, duration_s=duration, max_tokens=MAX_TOKENS,
                     run_id=f"burst-{users}", drain_s=30.0, keep_chunk_times=False)  # fmt: skip
    run_burst_sync(spec, Target.emulator(url), folder, progress=False)
    return 0


LLMETER = r'''
import asyncio, json, sys
from importlib import metadata
kind, url, users, duration, out, model, prompt, max_tokens = sys.argv[1:9]
users, duration, max_tokens = int(users), float(duration), int(max_tokens)
from llmeter.runner import Runner
if kind == "llmeter-converse":
    import boto3
    from botocore.config import Config
    from llmeter.endpoints.bedrock import BedrockConverseStream
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                          config=Config(max_pool_connections=users + 8, retries={"max_attempts": 1}))
    ep = BedrockConverseStream(model_id=model, region="us-east-1", bedrock_boto3_client=client, max_attempts=1)
    payload = BedrockConverseStream.create_payload(prompt, max_tokens=max_tokens)
else:
    from llmeter.endpoints.openai import OpenAICompletionStreamEndpoint
    ep = OpenAICompletionStreamEndpoint(model_id=model, base_url=url + "/openai/v1", api_key="KEY", max_retries=0)
    payload = OpenAICompletionStreamEndpoint.create_payload(prompt, max_tokens=max_tokens)
res = asyncio.run(Runner(endpoint=ep).run(clients=users, run_duration=duration, payload=payload,
                                          disable_per_client_progress_bar=True, disable_clients_progress_bar=True))
with open(out, "w") as f:
    f.write(json.dumps({"versions": {"llmeter": metadata.version("llmeter")}}) + "\n")
    for r in res.responses:
        f.write(json.dumps({"start": r.request_time.timestamp() if r.request_time else None,
                            "ok": r.error is None and r.time_to_first_token is not None,
                            "ttft_s": r.time_to_first_token, "error": str(r.error)[:200] if r.error else None}) + "\n")
'''.replace("KEY", KEY)


def _run_ours(engine: str, users: int, duration: float, url: str, folder: Path) -> pd.DataFrame:
    if engine == "burst":
        subprocess.run([sys.executable, __file__, "--child-burst", url, str(users), str(duration), str(folder)],
                       check=True, capture_output=True, timeout=duration + 120)  # fmt: skip
        df = load_records(folder)
    else:
        spec = BurstSpec(MODEL, api="chat-completions", users=users, duration_s=duration, max_tokens=MAX_TOKENS,
                         run_id=f"locust-{users}", keep_chunk_times=False)  # fmt: skip
        df = run_locust(spec, Target.emulator(url), folder, html=False).records()
    df = df.assign(ok=df["status"] == "ok")
    return df[["start", "worker", "seq", "ok", "ttft_s", "server_ttft_s"]]


def _run_llmeter(engine: str, users: int, duration: float, url: str, folder: Path,
                 python: str) -> tuple[pd.DataFrame, dict[str, str]]:  # fmt: skip
    script, out = folder / "llmeter_peer.py", folder / "rows.jsonl"
    script.write_text(LLMETER)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench-dummy", "AWS_SECRET_ACCESS_KEY": "bench-dummy"}
    proc = subprocess.run([python, str(script), engine, url, str(users), str(duration), str(out), MODEL, PROMPT,
                           str(MAX_TOKENS)], capture_output=True, text=True, timeout=duration + 180, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(" ".join(proc.stderr.split())[-300:])
    lines = out.read_text().splitlines()
    versions = json.loads(lines[0])["versions"]
    df = pd.DataFrame([json.loads(x) for x in lines[1:]])
    return df.assign(worker=None, seq=None), versions


#: a word-level tokenizer made at run time (GuideLLM and AIPerf need a HuggingFace tokenizer to build their synthetic
#: prompts and count tokens; this machine has no network to fetch one, and the emulator's tokens are words anyway)
MAKE_TOKENIZER = r"""
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
words = ("the lab runs load on a cold and warm path so we can see how each tier acts when pool is full or near idle "
         "time to first byte grows with size of input new word adds one more step keep rate even yet some noise per "
         "gap which what real fleets show at peak off it toy but fair").split()
vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(words))}}
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.decoder = decoders.WordPiece(prefix="##")
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(sys.argv[1])
"""
_REV = "0" * 40


def _tokenizer(out: Path, python: Path) -> tuple[Path, Path]:
    """(the tokenizer folder, an HF_HOME whose hub cache holds it as ``local/tok``: AIPerf resolves names there)."""
    tok, home = out / "tokenizer", out / "hf"
    if not (tok / "tokenizer.json").exists():
        subprocess.run([str(python), "-c", MAKE_TOKENIZER, str(tok)], check=True, capture_output=True, timeout=120)
    snap = home / "hub" / "models--local--tok" / "snapshots" / _REV
    snap.mkdir(parents=True, exist_ok=True)
    for f in tok.iterdir():
        shutil.copy(f, snap / f.name)
    (home / "hub" / "models--local--tok" / "refs").mkdir(exist_ok=True)
    (home / "hub" / "models--local--tok" / "refs" / "main").write_text(_REV)
    return tok, home


def _version(venv: Path, package: str) -> str:
    code = f"from importlib import metadata; print(metadata.version({package!r}))"
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True).stdout.strip()


def _guidellm(users: int, duration: float, url: str, folder: Path, venv: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """GuideLLM's ``run`` with a scenario: openai_http backend (health check off: Bedrock has no /health), concurrent
    profile, synthetic prompts, a duration; per-request TTFT from its JSON report."""
    tok, _ = _tokenizer(folder.parent, venv / "bin" / "python")
    out = folder / "guidellm.json"
    scenario = {"spec": {
        "backend": {"kind": "openai_http", "target": url + "/openai", "model": MODEL, "api_key": KEY,
                    "request_format": "/v1/chat/completions", "validate_backend": False},
        "profile": {"kind": "concurrent", "streams": users},
        "tokenizer": {"kind": "huggingface_auto", "model": str(tok)},
        "data": [{"kind": "synthetic_text", "prompt_tokens": 8, "output_tokens": MAX_TOKENS}],
        "constraints": [{"kind": "max_duration", "seconds": duration}]}}  # fmt: skip
    (folder / "scenario.json").write_text(json.dumps(scenario))
    cmd = [str(venv / "bin" / "guidellm"), "run", "-c", str(folder / "scenario.json"), "--output",
           f"kind=json,path={out}", "--disable-console-interactive"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 300, cwd=folder,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(" ".join((proc.stderr or proc.stdout).split())[-300:])
    rows = []
    for bench in json.loads(out.read_text()).get("benchmarks", []):
        for status, items in (bench.get("requests") or {}).items():
            for r in items or []:
                ttft = r.get("time_to_first_token_ms")
                rows.append({"start": r.get("request_start_time"), "ok": status == "successful" and ttft is not None,
                             "ttft_s": ttft / 1000.0 if ttft is not None else None})  # fmt: skip
    return pd.DataFrame(rows).assign(worker=None, seq=None), {"guidellm": _version(venv, "guidellm")}


def _aiperf(users: int, duration: float, url: str, folder: Path, venv: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """AIPerf's ``profile`` (chat endpoint, streaming) at a fixed concurrency; per-request TTFT from its export. Its
    ``builtin`` tokenizer downloads tiktoken's encoding (no network here): the run-time tokenizer instead."""
    _, home = _tokenizer(folder.parent, venv / "bin" / "python")
    out = folder / "aiperf"
    cmd = [str(venv / "bin" / "aiperf"), "profile", "--model", MODEL, "--url", url + "/openai", "--endpoint-type",
           "chat", "--streaming", "--concurrency", str(users), "--benchmark-duration", str(duration),
           "--osl", str(MAX_TOKENS), "--isl", "8", "--tokenizer", "local/tok", "--api-key", KEY,
           "--artifact-dir", str(out), "--ui-type", "none"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home)})  # fmt: skip
    export = out / "profile_export.jsonl"
    if proc.returncode != 0 or not export.exists():
        raise RuntimeError(" ".join((proc.stderr or proc.stdout).split())[-300:])
    rows = []
    for line in export.read_text().splitlines():
        rec = json.loads(line)
        meta, metrics = rec.get("metadata", {}), rec.get("metrics", {})
        ttft = (metrics.get("time_to_first_token") or {}).get("value")
        start_ns = meta.get("request_start_ns")
        rows.append({"start": start_ns / 1e9 if start_ns else None, "ok": ttft is not None and not rec.get("error"),
                     "ttft_s": ttft / 1000.0 if ttft is not None else None})  # fmt: skip
    return pd.DataFrame(rows).assign(worker=None, seq=None), {"aiperf": _version(venv, "aiperf")}


def _truth_from_log(log: Path, a: float, b: float) -> float:
    """The intended TTFT (s) of the requests that arrived in [a, b): the constant plus their median pre time."""
    pre = []
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("pre_ms") is not None and rec.get("arrival_unix") and a <= rec["arrival_unix"] < b:
            pre.append(rec["pre_ms"])
    return (TTFT_MS + (float(np.median(pre)) if pre else 0.0)) / 1000.0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-burst":
        return _child_burst(argv[1], int(argv[2]), float(argv[3]), argv[4])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--window", type=float, default=6.0)
    ap.add_argument("--peer-venvs", default=".venv-peers", help="folder holding v-guidellm, v-aiperf, v-llmeter")
    ap.add_argument("--out", default="outputs/bench-openai-peers")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    venvs = Path(args.peer_venvs).resolve()
    duration = args.warmup + args.window + TAIL_S
    meta: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                            "versions": {"python": platform.python_version(), "bedrock-lab": metadata.version("bedrock-lab"),
                                         "aiohttp": metadata.version("aiohttp"), "locust": metadata.version("locust")},
                            "cpus": os.cpu_count(), "warmup_s": args.warmup, "window_s": args.window}  # fmt: skip
    rows: list[dict[str, Any]] = []
    log = out / "timing.jsonl"
    log.unlink(missing_ok=True)
    with run_emulator(seed=0, mode="subprocess", latency=LATENCY, capacity=4096, timing_log=str(log)) as emu:
        emulator_pids = _descendants()
        for users in args.levels:
            for engine in args.engines:
                row: dict[str, Any] = {"engine": engine, "users": users, "note": "",
                                       "api": "converse-stream" if engine == "llmeter-converse" else "chat-completions"}
                folder = out / f"{engine}-{users}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                venv = venvs / f"v-{PEER_VENV.get(engine, '')}"
                if engine in PEER_VENV and not (venv / "bin" / "python").exists():
                    row["note"] = f"not installed ({venv})"
                    rows.append(row)
                    continue
                load = os.getloadavg()[0]
                try:
                    with CpuSampler(emulator_pids, None) as cpu:
                        if engine in ("burst", "locust"):
                            df, versions = _run_ours(engine, users, duration, emu.url, folder), {}
                        elif engine.startswith("llmeter"):
                            df, versions = _run_llmeter(engine, users, duration, emu.url, folder, str(venv / "bin" / "python"))
                        elif engine == "guidellm":
                            df, versions = _guidellm(users, duration, emu.url, folder, venv)
                        else:
                            df, versions = _aiperf(users, duration, emu.url, folder, venv)
                    df = df.dropna(subset=["start"])
                    if df.empty:
                        raise RuntimeError("no requests reported")
                except Exception as exc:  # one broken tool must not lose the table
                    row["note"] = "failed: " + " ".join(str(exc).split())[:240]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                meta["versions"].update(versions)
                win, a, b = steady(df.assign(seq=df["seq"].fillna(-1)), args.warmup, args.window)
                if "server_ttft_s" not in win or win["server_ttft_s"].isna().all():
                    win = win.assign(server_ttft_s=_truth_from_log(log, a, b))
                ok = win[win["ok"].astype(bool) & win["ttft_s"].notna()]
                over = (ok["ttft_s"].astype(float) - ok["server_ttft_s"].astype(float)) * 1000.0
                row.update(requests=len(win), errors=int((~win["ok"].astype(bool)).sum()), rps=len(win) / args.window,
                           ttft_over_p50_ms=over.quantile(0.5), ttft_over_p99_ms=over.quantile(0.99),
                           cpu_ms_per_req=1000.0 * cpu.between(a, b) / max(len(win), 1),
                           load_avg_1m=round((load + os.getloadavg()[0]) / 2, 2))  # fmt: skip
                rows.append(row)
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
                pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    cols = ["engine", "api", "users", "rps", "ttft_over_p50_ms", "ttft_over_p99_ms", "cpu_ms_per_req", "requests",
            "errors", "load_avg_1m"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        if r.get("note"):
            lines.append(f"| {r['engine']} | {r['api']} | {r['users']} | {r['note']} |" + " |" * (len(cols) - 4))
        else:
            lines.append("| " + " | ".join(_fmt(int(r[c]) if c in ("requests", "errors") else r[c]) for c in cols) + " |")
    table = "\n".join(lines)
    (out / "results.md").write_text(json.dumps(meta) + "\n\n" + table + "\n")
    print(json.dumps(meta))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
