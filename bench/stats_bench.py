"""Statistics benchmark: the whole analysis of a 1,000,000-row sweep (27 cells), stage by stage.

Records are synthetic and seeded (:func:`bedrock_lab.stats.synthetic_records`: 3 tiers x 3 user counts x 3
prompt sizes, ~37,000 requests per cell, 1% throttled, 0.2% timeouts). Every step is O(n log n) in the rows
or bounded by a stated cap: rank tests use at most 5,000 values per group; the bootstrap (1,000 replicates)
draws order statistics from their exact distribution, O(n log n) on all values; fits use at most 1,000
values per cell; drift checks thin to 20,000; bootstrap GOF is off by default.

    .venv/bin/python bench/stats_bench.py                 # 1,000,000 rows, prints a table
    .venv/bin/python bench/stats_bench.py --rows 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import pandas as pd

from bedrock_lab.stats import (
    SLO,
    analyze,
    censored_summary,
    compare_grid,
    quality_flags,
    saturation,
    summarize,
    synthetic_records,
)


def _time(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and CPU seconds over ``repeat`` runs (CPU time is less sensitive to a busy machine)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="report the best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores={os.cpu_count()} load average before={load:.1f}")
    t0 = time.perf_counter()
    df = synthetic_records(args.rows, seed=args.seed)
    gen = time.perf_counter() - t0
    slo = SLO(ttft_s=1.0, e2e_s=10.0)
    print(f"rows={len(df):,} cells={df['cell_id'].nunique()} (generated in {gen:.1f} s)")

    stages = {
        "summarize (rates, goodput, p50-p99 + CIs)": lambda: summarize(df, slo),
        "compare_grid tier x {ttft,e2e}": lambda: compare_grid(df, "tier_requested", ("ttft_s", "e2e_s")),
        "saturation (Little, USL, knee)": lambda: saturation(df, slo),
        "quality_flags": lambda: quality_flags(df),
        "censored_summary (Kaplan-Meier)": lambda: censored_summary(df),
        "analyze (everything)": lambda: analyze(df, slo),
    }
    rows = []
    for name, fn in stages.items():
        wall, cpu = _time(fn, args.repeat)
        rows.append({"stage": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
        print(f"{name:45s} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
    a = analyze(df, slo)
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"tables: summary={len(a.summary)} comparisons={len(a.comparisons)} fits={len(a.fits)} "
          f"capacity={len(a.capacity)} quality={len(a.quality)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
