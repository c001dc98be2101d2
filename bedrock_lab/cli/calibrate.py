"""`bedrock-lab calibrate`: fit the emulator's latency profile to a measured run and write a catalog overlay."""

from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = "fit the emulator's latency profiles to measured records (a digital twin) and write a catalog overlay"
DESCRIPTION = """\
Fit, per model (and tier for decode speed), the emulator's latency profile to measured records: TTFT as a
function of input tokens (base, prefill per 1k tokens, spread), decode speed and jitter, chunk size, output
length distribution and fault rates, in the emulator's own parametrisation. Works on a sweep folder (valid
cells only) or any records folder, from AWS or from the emulator itself (its queue wait is removed; its
time_scale is read from the sweep file or given with --time-scale).

Writes a catalog overlay (only the fitted knobs per model) that the emulator accepts:
  bedrock-lab emulator --overlay overlay.yaml          (or target.emulator_overrides.overlay in a sweep file)
and, with --report, a fit report: measured vs replayed quantiles per metric, the KS statistic and the
Wasserstein distance, rates by load, and where the profile cannot reproduce the data. Docs: docs/emulator.md.

examples:
  bedrock-lab calibrate outputs/aws-baseline --out outputs/aws-baseline/overlay.yaml --report fit.md
  bedrock-lab calibrate outputs/demo --time-scale 0.1 --out twin.yaml --report fit.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a sweep folder or a folder of record shards")
    parser.add_argument("--out", required=True, help="the overlay YAML to write")
    parser.add_argument("--report", default=None, help="also write the fit report (.md or .html)")
    parser.add_argument("--catalog", default=None, help="the base catalog (default: params/catalog.yaml)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="the emulator's time_scale of the measured run (default: from the sweep file, else 1)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="maxTokens of every request (default: the sweep plan's, else a mass point at the top)")
    parser.add_argument("--timing-log", default=None, metavar="FILE",
                        help="the emulator's timing log of the measured run: removes all of its pre-schedule time "
                             "(not only the queue), so the fit sees exactly the sampled schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the replay samples (default 0)")


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.calibrate import calibrate, report_html, report_markdown
    from bedrock_lab.errors import ConfigError

    if args.report and Path(args.report).suffix.lower() not in (".md", ".html", ".htm"):
        raise ConfigError("the report is Markdown or HTML", key="--report", value=args.report, allowed=".md, .html")
    for opt in (args.out, args.report):
        if opt and not Path(opt).resolve().parent.is_dir():
            raise ConfigError("the folder does not exist", key="--out/--report", value=opt,
                              allowed="a file in an existing folder")
    cal = calibrate(args.path, catalog=args.catalog, time_scale=args.time_scale, max_tokens=args.max_tokens,
                    seed=args.seed, timing_log=args.timing_log)  # fmt: skip
    out = cal.write_overlay(args.out)
    for model, fit in cal.fits.items():
        knobs = ", ".join(f"{k} {v:.4g}" for k, v in fit.latency.items())
        print(f"{model}: {fit.n} records: {knobs}")
    print(f"overlay: {out}")
    if args.report:
        text = report_html(cal) if Path(args.report).suffix.lower() in (".html", ".htm") else report_markdown(cal)
        Path(args.report).write_text(text)
        print(f"fit report: {args.report}")
    for flag in cal.flags:
        print(f"note: {flag}")
    return 0
