"""`bedrock-lab analyze`: the statistical analysis of a sweep or records folder, as tables."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bedrock_lab.cli._slo import add_slo_arguments

if TYPE_CHECKING:
    from bedrock_lab.stats.analysis import Analysis

SUMMARY = "run the statistical analysis of a sweep or records folder"
DESCRIPTION = """\
Run the analysis of a sweep (outputs/<sweep>) or of any folder of request records and write its tables as
CSV: summary.csv (per configuration and load: counts, success/throttle/error rates with Wilson intervals,
goodput, p50/p90/p95/p99 of time to first token, inter-token and end-to-end latency and output speed with
distribution-free 95% intervals; timeouts count as right-censored latencies, and a percentile they could hide
is a lower bound, flagged in <metric>_pXX_bound and printed), load.csv and capacity.csv (throughput, Little's law, Universal Scalability
Law fit, knee, highest load meeting the SLOs), comparisons.csv (tier vs tier, or the levels of --compare-by,
within otherwise equal configurations: ratio of medians with its Bonferroni-simultaneous interval, from which
alone the verdict is read) and verdicts.csv (one line per pair of levels), costs.csv, quality.csv (warm-up,
drift, coordinated omission, bimodality), censored.csv (Kaplan-Meier percentiles when requests timed out),
fits.csv and qq.csv (distribution fits of the largest cell), ecdf.csv, and analysis.json; for sequential cells
and an SLO search also sequential_cells.csv (why each cell stopped, its always-valid interval), search.csv (per
model x tier x prompt: the highest load meeting the SLOs, its bracket, the levels tried) and search_levels.csv.
Prints the executive summary (with a line per search group) and each sequential cell's stop reason. `bedrock-lab report` runs the same analysis (bedrock_lab.stats.analyze) inside the HTML report.

examples:
  bedrock-lab analyze outputs/demo                  # tables in outputs/demo/tables/
  bedrock-lab analyze outputs/demo --figures        # also the slide figures in outputs/demo/figures/
  bedrock-lab analyze runs/burst-1 --out /tmp/t --slo-ttft 0.5
  bedrock-lab analyze runs/aa --compare-by run_id   # A/A: two runs of one configuration
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", type=Path, help="sweep folder (outputs/<sweep>) or a folder of record shards")
    parser.add_argument("--out", type=Path, help="folder for the tables (default: <sweep_dir>/tables)")
    add_slo_arguments(parser)
    parser.add_argument("--fit-metric", default="ttft_s", choices=["ttft_s", "e2e_s", "itl_mean_s"],
                        help="metric whose distribution is fitted (default %(default)s)")
    parser.add_argument("--no-fit", action="store_true", help="skip the distribution fits (faster)")
    parser.add_argument("--figures", action="store_true", help="also write the slide figures (PNG and SVG)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstraps and subsampling")
    parser.add_argument("--compare-by", default="tier", metavar="COLUMN",
                        help="record column whose levels are compared within otherwise equal configurations "
                             "(model, tier, prompt size, users minus COLUMN): tier, run_id, repeat, model, "
                             "prompt_size or any record column (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.report.summary import executive_summary
    from bedrock_lab.stats import analysis as an

    data = an.load_sweep_data(args.sweep_dir)
    slo = an.slo_from(data, {"ttft_s": args.slo_ttft, "e2e_s": args.slo_e2e, "itl_s": args.slo_itl,
                             "tokens_per_s": args.slo_tokens_per_s, "goodput_target": args.goodput_target})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = an.analyze(data, slo, fit_metric=args.fit_metric, fit=not args.no_fit, seed=args.seed,
                            compare_by=args.compare_by)
    out = args.out or Path(args.sweep_dir) / "tables"
    written = an.write_tables(result, out)
    if args.figures:
        from bedrock_lab.report.figures import write_slide_figures

        written += write_slide_figures(result)
    for sentence in executive_summary(result):
        print(f"- {sentence}")
    _print_bounds(result)
    _print_overhead(result)
    _print_stops(result)
    if args.compare_by != "tier":
        _print_comparisons(result, args.compare_by)
    print(f"\n{len(written)} files written to {out}" + (" and figures/" if args.figures else ""))
    return 0


#: most lines of a list printed per section (the CSV tables hold every row)
_MAX_LINES = 12


def _print_bounds(result: Analysis) -> None:
    """Every cell and metric where timeouts could hide a percentile: the lowest such percentile, as a bound."""
    from bedrock_lab.report.summary import fmt_quantile

    lines = []
    for _, r in result.summary.iterrows():
        for metric in ("ttft_s", "e2e_s"):
            lab = next((q for q in ("p50", "p90", "p95", "p99") if str(r.get(f"{metric}_{q}_bound", "")) == "lower"),
                       None)
            if lab is not None:
                where = " / ".join(str(r[k]) for k in ("model", "tier", "prompt_size", "users"))
                lines.append(f"- {metric} {lab} ({where}): {fmt_quantile(r, metric, lab)}, and every higher percentile")
    if not lines:
        return
    print(f"\nPercentiles timeouts could hide, reported as lower bounds, not estimates (summary.csv "
          f"<metric>_pXX_bound = lower): {len(lines)}")
    for line in lines[:_MAX_LINES]:
        print(line)
    if len(lines) > _MAX_LINES:
        print(f"- ... and {len(lines) - _MAX_LINES} more in summary.csv")


def _print_stops(result: Analysis) -> None:
    """Each sequential cell: why it stopped, when, and the always-valid interval it was judged by."""
    from bedrock_lab.report.sequential import stop_reasons

    cells = result.sequential_cells
    if cells.empty or not (cells["sequential"] != "off").any():
        return
    shown = stop_reasons(result)
    shown = shown[(cells["sequential"] != "off").to_numpy()]
    print(f"\nSequential cells, judged by their always-valid interval (sequential_cells.csv): {len(shown)}")
    for _, r in shown.head(_MAX_LINES).iterrows():
        print(f"- {r['cell']} ({r['load']}): {r['stop reason']} after {r['requests']} requests in {r['duration']}; "
              f"{r['percentile (always-valid interval)']} vs target {r['target']}: {r['verdict']}")
    if len(shown) > _MAX_LINES:
        print(f"- ... and {len(shown) - _MAX_LINES} more in sequential_cells.csv")


def _print_overhead(result: Analysis) -> None:
    """Cells whose client overhead (measured minus ground-truth TTFT) distorts absolute percentiles."""
    q = result.quality
    if q.empty or "overhead_distorts" not in q or not q["overhead_distorts"].astype(bool).any():
        return
    bad = q[q["overhead_distorts"].astype(bool)]
    print(f"\nAbsolute percentiles distorted by client overhead (> 2% of median TTFT; comparisons unaffected; "
          f"quality.csv overhead_distorts): {len(bad)} of {len(q)} cells")
    for _, r in bad.head(_MAX_LINES).iterrows():
        where = " / ".join(str(r[k]) for k in ("model", "tier", "prompt_size", "users") if k in r)
        print(f"- {where}: {float(r['client_overhead_s']) * 1000:.1f} ms = {float(r['overhead_share']):.1%} of "
              "median TTFT")
    if len(bad) > _MAX_LINES:
        print(f"- ... and {len(bad) - _MAX_LINES} more in quality.csv")


def _print_comparisons(result: Analysis, by: str) -> None:
    """Each comparison with its interval and verdict (a handful, e.g. an A/A), else one headline per pair."""
    comp = result.comparisons
    if comp.empty:
        why = " ".join(n for n in result.notes if by in n)
        print(f"\n{why or f'no comparisons by {by}'}")
        return
    print(f"\nComparisons by {by}: median A / median B with its simultaneous 95% interval; the verdict is read "
          "off the interval")
    if len(comp) > 12:
        for headline, metric in zip(result.verdicts["headline"], result.verdicts["metric"], strict=True):
            print(f"- {metric}: {headline}")
        return
    strata = [k for k in ("model", "tier", "prompt_size", "users") if k in comp and k != by]
    for _, r in comp.iterrows():
        where = " / ".join(str(r[k]) for k in strata)
        print(f"- {r['metric']} ({where}): {r['a']} vs {r['b']} = {r['ratio']:.3f} "
              f"[{r['ratio_lo']:.3f}-{r['ratio_hi']:.3f}]: {r['verdict']}")
