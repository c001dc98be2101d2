"""Sequential cells benchmark (issue #14): fewer requests for the same verdicts, and an error rate that survives
repeated looks.

Part 1, emulator: the same grid of cells (loads x SLO targets), once with fixed-duration cells and once with
sequential verdict cells (``sequential: verdict``, the same duration as their maximum), on the embedded emulator
with its capacity set to 8 (so queueing above 8 users moves the p95 TTFT). Targets are set per load from a
separate seeded pilot run's p95, at ratios from clearly below to clearly above, including borderline ones.
A cell's verdict is what a sweep reports: met when its p95 TTFT is at or below the target; a sequential cell
that settled reports its settled answer, one that ran to its maximum reports its estimate against the target.
A fixed cell's run does not depend on its target, so one fixed run per load serves that load's cells (its
requests are counted once per cell, as a fixed sweep of the grid would send them).

Part 2, simulation (no emulator, seeded): streams of log-normal latencies whose true p95 equals the target (any
verdict is wrong), looked at every ``look_every`` values up to ``n_max``. The always-valid confidence sequence
(bedrock_lab._confseq) declares a verdict in at most alpha = 5% of streams; the naive rule "stop when the
ordinary 95% order-statistic interval clears the target" declares one far more often. Also: how many values the
sequential rule needs when the target is 10% and 30% away, and how often it is then wrong.

    .venv/bin/python bench/sequential_bench.py                # both parts, ~3-4 minutes on 2 cores
    .venv/bin/python bench/sequential_bench.py --sim-only     # part 2 only, ~30 s
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bedrock_lab._confseq import quantile_cs_path
from bedrock_lab.stats.quantiles import order_statistic_ranks, quantile_ci

MODEL = "amazon.nova-lite-v1:0"
LATENCY = dict(ttft_ms=40.0, prefill_ms_per_1k=0.0, ttft_sigma=0.15, tokens_per_s=200.0, jitter=0.05,
               chunk_tokens=4, contention=0.0, output_median_tokens=24, output_sigma=0.1)  # fmt: skip
CAPACITY = 8
P = 0.95


def _p95(res: Any) -> float:
    return _p95_ci(res)[0]


def _p95_ci(res: Any) -> tuple[float, float, float]:
    """The p95 TTFT of a run with its ordinary fixed-n 95% order-statistic interval."""
    df = res.records()
    ok = df[df["status"] == "ok"]
    est = quantile_ci(ok["ttft_s"].to_numpy(float), P)
    return float(est.estimate), float(est.lo), float(est.hi)


def _interval_verdict(lo: float | None, hi: float | None, target: float) -> str:
    """Read off an interval: met (wholly below), missed (wholly above), else undecided."""
    if hi is not None and hi < target:
        return "met"
    if lo is not None and lo > target:
        return "missed"
    return "undecided"


def emulator_part(loads: list[int], ratios: list[float], duration_s: float, pilot_s: float) -> dict[str, Any]:
    from bedrock_lab.emulator import run_emulator
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="seqbench-"))
    t_start = time.monotonic()
    try:
        with run_emulator(seed=0, mode="subprocess", latency=LATENCY, capacity=CAPACITY) as emu:
            target = Target.emulator(emu.url)
            for users in loads:
                base = dict(users=users, max_tokens=32)
                pilot = run_burst_sync(BurstSpec(MODEL, duration_s=pilot_s, seed=1000 + users, **base), target,
                                       tmp / f"pilot{users}", progress=False)  # fmt: skip
                q = _p95(pilot)
                fixed = run_burst_sync(BurstSpec(MODEL, duration_s=duration_s, seed=users, **base), target,
                                       tmp / f"fixed{users}", progress=False)  # fmt: skip
                q_fixed, ci_lo, ci_hi = _p95_ci(fixed)
                for r in ratios:
                    slo = q * r
                    seq = run_burst_sync(BurstSpec(MODEL, duration_s=duration_s, seed=users, sequential="verdict",
                                                   slo_target_s=slo, check_every_s=1.0, **base), target,
                                         tmp / f"seq{users}_{r}", progress=False)  # fmt: skip
                    s = seq.sequential or {}
                    if seq.stop_reason == "settled_below":
                        v_seq = "met"
                    elif seq.stop_reason == "settled_above":
                        v_seq = "missed"
                    else:
                        v_seq = "met" if (s.get("estimate") or math.inf) <= slo else "missed"
                    rows.append({
                        "users": users, "ratio": r, "target_ms": slo * 1000, "fixed_p95_ms": q_fixed * 1000,
                        "fixed_requests": fixed.n_requests, "fixed_verdict": "met" if q_fixed <= slo else "missed",
                        "seq_requests": seq.n_requests, "seq_stop": seq.stop_reason, "seq_verdict": v_seq,
                        "seq_s": seq.wall_s,
                        "fixed_iv": _interval_verdict(ci_lo, ci_hi, slo),
                        "seq_iv": {"settled_below": "met", "settled_above": "missed"}.get(str(seq.stop_reason),
                                                                                           "undecided"),
                    })  # fmt: skip
                    print(f"  users {users:>2} target {slo * 1000:6.1f} ms (x{r:g}): fixed {fixed.n_requests:>4} req "
                          f"p95 {q_fixed * 1000:6.1f} ms {rows[-1]['fixed_verdict']:<6} | sequential "
                          f"{seq.n_requests:>4} req {seq.stop_reason:<13} {v_seq}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = sum(r["fixed_verdict"] == r["seq_verdict"] for r in rows)
    same_iv = sum(r["fixed_iv"] == r["seq_iv"] for r in rows)
    n_fixed = sum(r["fixed_requests"] for r in rows)
    n_seq = sum(r["seq_requests"] for r in rows)
    return {"rows": rows, "same": same, "same_iv": same_iv, "cells": len(rows), "fixed_requests": n_fixed, "seq_requests": n_seq,
            "saved": 1 - n_seq / n_fixed, "wall_s": time.monotonic() - t_start}  # fmt: skip


def _naive_path(x: np.ndarray, looks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ordinary fixed-n 95% order-statistic interval of the p95 after each look (valid at one n only)."""
    lo = np.full(looks.size, -np.inf)
    hi = np.full(looks.size, np.inf)
    for i, t in enumerate(looks.tolist()):
        r, s = order_statistic_ranks(t, P)
        ks = [k for k in (r - 1, s - 1) if 0 <= k < t]
        part = np.partition(x[:t], ks) if ks else x[:t]
        if r >= 1:
            lo[i] = part[r - 1]
        if s <= t:
            hi[i] = part[s - 1]
    return lo, hi


def _first_verdict(lo: np.ndarray, hi: np.ndarray, looks: np.ndarray, target: float) -> tuple[str | None, int]:
    """The first look at which the interval clears the target: ("above"|"below", n), else (None, n_max)."""
    above, below = lo > target, hi < target
    hit = np.flatnonzero(above | below)
    if not hit.size:
        return None, int(looks[-1])
    i = int(hit[0])
    return ("above" if above[i] else "below"), int(looks[i])


def simulation_part(streams: int, n_max: int, look_every: int, seed: int) -> dict[str, Any]:
    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    sigma = 0.5
    true_q = math.exp(sigma * 1.6448536269514722)  # log-normal(0, 0.5) p95
    looks = np.arange(look_every, n_max + 1, look_every)
    out: dict[str, Any] = {"streams": streams, "n_max": n_max, "look_every": look_every, "looks": looks.size}
    null_seq = null_naive = 0
    for _ in range(streams):
        x = rng.lognormal(0.0, sigma, n_max)
        v, _n = _first_verdict(*quantile_cs_path(x, P, looks), looks, true_q)
        null_seq += v is not None
        v, _n = _first_verdict(*_naive_path(x, looks), looks, true_q)
        null_naive += v is not None
    out["null_seq_rate"] = null_seq / streams
    out["null_naive_rate"] = null_naive / streams
    for shift in (0.9, 1.3):  # target 10% below / 30% above the true p95: the right answer is above / below
        wrong = decided = 0
        ns = []
        target = true_q * shift
        for _ in range(streams // 2):
            x = rng.lognormal(0.0, sigma, n_max)
            v, n = _first_verdict(*quantile_cs_path(x, P, looks), looks, target)
            ns.append(n)
            if v is not None:
                decided += 1
                wrong += v != ("above" if shift < 1 else "below")
        out[f"shift{shift}"] = {"decided": decided / (streams // 2), "wrong": wrong / (streams // 2),
                                "median_n": float(np.median(ns))}  # fmt: skip
    out["wall_s"] = time.monotonic() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, nargs="+", default=[4, 8, 12, 16])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.93, 1.07, 2.0])
    ap.add_argument("--duration", type=float, default=20.0, help="fixed duration = sequential maximum, s")
    ap.add_argument("--pilot", type=float, default=6.0, help="pilot run per load, s")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--n-max", type=int, default=2000)
    ap.add_argument("--look-every", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sim-only", action="store_true")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    if not args.sim_only:
        print(f"part 1: emulator, {len(args.loads)} loads x {len(args.ratios)} targets, {args.duration:g} s cells")
        e = emulator_part(args.loads, args.ratios, args.duration, args.pilot)
        print("\n| cells | same verdict | fixed requests | sequential requests | fewer requests | wall |")
        print("|---|---|---|---|---|---|")
        print(f"| {e['cells']} | {e['same']}/{e['cells']} ({e['same'] / e['cells']:.0%}) | {e['fixed_requests']:,} | "
              f"{e['seq_requests']:,} | {e['saved']:.0%} | {e['wall_s']:.0f} s |")  # fmt: skip
        print(f"\nread off the intervals instead (fixed: its fixed-n 95% interval; sequential: its always-valid one; "
              f"met / missed / undecided): same on {e['same_iv']}/{e['cells']} cells")  # fmt: skip
        print("\n| users | target (x pilot p95) | fixed p95 | fixed verdict (interval) | fixed req | sequential stop | "
              "sequential verdict (interval) | sequential req |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for r in e["rows"]:
            print(f"| {r['users']} | {r['target_ms']:.1f} ms (x{r['ratio']:g}) | {r['fixed_p95_ms']:.1f} ms | "
                  f"{r['fixed_verdict']} ({r['fixed_iv']}) | {r['fixed_requests']} | {r['seq_stop']} | "
                  f"{r['seq_verdict']} ({r['seq_iv']}) | {r['seq_requests']} |")  # fmt: skip
    print(f"\npart 2: simulation, {args.streams} streams of up to {args.n_max} values, a look every "
          f"{args.look_every}")  # fmt: skip
    s = simulation_part(args.streams, args.n_max, args.look_every, args.seed)
    print("\n| rule | wrong verdicts when the target is the true p95 (nominal 5%) |")
    print("|---|---|")
    print(f"| always-valid confidence sequence | {s['null_seq_rate']:.1%} |")
    print(f"| naive: ordinary 95% interval clears the target | {s['null_naive_rate']:.1%} |")
    print("\n| target vs true p95 | decided by n_max | wrong | median values to stop |")
    print("|---|---|---|---|")
    for shift in (0.9, 1.3):
        d = s[f"shift{shift}"]
        print(f"| x{shift:g} | {d['decided']:.1%} | {d['wrong']:.1%} | {d['median_n']:.0f} |")
    print(f"\nsimulation wall {s['wall_s']:.0f} s; load average at end: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip


if __name__ == "__main__":
    main()
