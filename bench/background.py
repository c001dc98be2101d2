"""Shared capacity: TTFT by service tier as other customers' demand grows (issue #15). Not a performance claim:
a seeded demonstration of the emulator's queue model, with its table and chart.

    .venv/bin/python bench/background.py                    # writes bench/background.md and bench/background.svg

Per background level: an emulator subprocess (one model, capacity 64, background priority 10% / default 60% /
flex 30%), the test sends 2 users per tier (6 of 64 slots: far below its own saturation) with the burst engine.
TTFT percentiles are of successful requests in model time (divided by time_scale); throttled = waited past
max_queue_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst
from bedrock_lab.records import load_records

MODEL = "amazon.nova-lite-v1:0"
TIERS = ("priority", "default", "flex")
HERE = Path(__file__).resolve().parent


def run_level(level: float, out: Path, *, capacity: int, users: int, requests: int, time_scale: float,
              max_queue_ms: float, seed: int) -> list[dict[str, object]]:  # fmt: skip
    bg = {"pattern": "constant", "level": level, "priority_share": 0.1, "flex_share": 0.3}
    with run_emulator(seed=seed, time_scale=time_scale, mode="subprocess", capacity=capacity,
                      max_queue_ms=max_queue_ms, background=bg) as emu:  # fmt: skip
        async def all_tiers() -> None:
            await asyncio.gather(*(run_burst(BurstSpec(MODEL, users=users, requests=requests, max_tokens=16,
                                                       tier=t, run_id=t, seed=seed),
                                             target=Target.emulator(emu.url), out_dir=out / t, progress=False)
                                   for t in TIERS))  # fmt: skip

        asyncio.run(all_tiers())
    df = load_records(out)
    rows = []
    for t in TIERS:
        d = df[df["tier_requested"] == t]
        ok = d.loc[d["status"] == "ok", "ttft_s"].dropna().to_numpy(float) * 1000 / time_scale
        rows.append({"level": level, "tier": t, "n": len(d), "throttled": float((d["error_kind"] == "throttled").mean()),
                     "ttft_p50_ms": float(np.median(ok)) if len(ok) else np.nan,
                     "ttft_p95_ms": float(np.quantile(ok, 0.95)) if len(ok) else np.nan})  # fmt: skip
    return rows


def chart(table: pd.DataFrame, path: Path) -> None:
    import altair as alt
    import vl_convert as vlc

    base = alt.Chart(table).encode(
        x=alt.X("level:Q", title="background load of other customers (share of capacity)"),
        color=alt.Color("tier:N", sort=list(TIERS), title="tier"))
    lines = base.mark_line(point=True).encode(y=alt.Y("ttft_p50_ms:Q", title="TTFT p50 (ms, successful requests)"))
    spec = lines.properties(width=520, height=300, title="TTFT by service tier as shared demand grows (emulator)")
    path.write_text(vlc.vegalite_to_svg(spec.to_json()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 0.8, 0.9, 1.0, 1.1, 1.2])
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--users", type=int, default=2)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--time-scale", type=float, default=0.2)
    ap.add_argument("--max-queue-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "background.md"))
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for lv in args.levels:
            rows += run_level(lv, Path(tmp) / str(lv), capacity=args.capacity, users=args.users,
                              requests=args.requests, time_scale=args.time_scale, max_queue_ms=args.max_queue_ms,
                              seed=args.seed)  # fmt: skip
    table = pd.DataFrame(rows)
    svg = Path(args.out).with_suffix(".svg")
    chart(table, svg)
    wide = table.pivot(index="level", columns="tier", values="ttft_p50_ms")[list(TIERS)]
    thr = table.pivot(index="level", columns="tier", values="throttled")[list(TIERS)]
    lines = ["# Shared capacity: TTFT by tier vs background load", "",
             f"Command: `.venv/bin/python bench/background.py` ({time.strftime('%Y-%m-%d')}, "
             f"load average {os.getloadavg()[0]:.1f}, {time.time() - t0:.0f} s). Model {MODEL}, capacity "
             f"{args.capacity}, {args.users} users per tier ({args.requests} requests each), time_scale "
             f"{args.time_scale:g}, max_queue_ms {args.max_queue_ms:g}; background tiers priority 10% / default 60% / "
             "flex 30%. TTFT p50 of successful requests in model ms; throttled = share that waited past "
             "max_queue_ms. Model and assumptions: docs/emulator.md, Shared capacity.", "",
             f"![TTFT p50 by tier vs background load]({svg.name})", "",
             "| background level | " + " | ".join(f"{t} p50 ms" for t in TIERS) + " | "
             + " | ".join(f"{t} throttled" for t in TIERS) + " |",
             "|---" * (1 + 2 * len(TIERS)) + "|"]  # fmt: skip
    for lv in wide.index:
        lines.append(f"| {lv:g} | " + " | ".join(f"{wide.loc[lv, t]:.0f}" for t in TIERS) + " | "
                     + " | ".join(f"{thr.loc[lv, t]:.0%}" for t in TIERS) + " |")  # fmt: skip
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
