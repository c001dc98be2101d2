"""`bedrock-lab report`: the offline stakeholder HTML report of a sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from bedrock_lab.cli._slo import add_slo_arguments

SUMMARY = "write the offline stakeholder HTML report of a sweep"
DESCRIPTION = """\
Write outputs/<sweep>/report.html: one self-contained HTML file for people who decide budgets, with an
executive summary (numbers with 95% intervals), a decision per workload (the cheapest configuration meeting
the SLOs, the load it holds, its cost per 1k requests and per month at the sweep file's `traffic:` or
--requests-per-day, the runners-up, what the test itself cost), interactive charts with a static fallback, methods and
caveats, the environment and a per-cell appendix. No code, and zero network requests when opened: it works
behind firewalls and offline.

It executes notebooks/analysis.py with papermill on the "bedrock-lab" Jupyter kernel (the executed notebook
is kept in outputs/<sweep>/report/analysis.ipynb) and exports it with nbconvert without inputs. Tables go to
outputs/<sweep>/tables/ and slide figures (PNG and SVG) to outputs/<sweep>/figures/. SLOs come from the
sweep file's `slo:` section unless given here. Prints the path of the report.

examples:
  bedrock-lab report outputs/demo
  bedrock-lab report outputs/demo --slo-ttft 0.8 --slo-e2e 6 --output /tmp/demo.html
  bedrock-lab report outputs/demo --requests-per-day 250000 --peak-users 24
"""


def _positive_float(text: str) -> float:
    """A number > 0 (argparse type): bad input is a one-line usage error, not a traceback."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", type=Path, help="sweep folder, e.g. outputs/demo")
    parser.add_argument("--output", "-o", type=Path, help="HTML file to write (default: <sweep_dir>/report.html)")
    add_slo_arguments(parser)
    parser.add_argument("--requests-per-day", type=_positive_float, default=0.0,
                        help="traffic the monthly cost is projected at (default: the sweep file's traffic:, else "
                             "an assumed 100,000)")
    parser.add_argument("--peak-users", type=_positive_int, default=0,
                        help="concurrent users the recommended configuration must hold (default: the sweep "
                             "file's traffic.peak_users, if any)")
    parser.add_argument("--no-figures", action="store_true", help="skip the slide figures (PNG/SVG)")
    parser.add_argument("--kernel", default="bedrock-lab", help="Jupyter kernel to run the notebook on (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per notebook cell (default %(default)s)")


def notebook_parameters(args: argparse.Namespace) -> dict[str, object]:
    """Notebook parameters from the SLO flags (0 means: not given, use the sweep file's)."""
    return {
        "slo_ttft_s": args.slo_ttft or 0.0,
        "slo_e2e_s": args.slo_e2e or 0.0,
        "slo_itl_s": args.slo_itl or 0.0,
        "slo_tokens_per_s": args.slo_tokens_per_s or 0.0,
        "goodput_target": args.goodput_target or 0.0,
        "write_figures": not getattr(args, "no_figures", False),
        "requests_per_day": float(getattr(args, "requests_per_day", 0.0) or 0.0),
        "peak_users": int(getattr(args, "peak_users", 0) or 0),
    }


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.report.export import build_report

    result = build_report(args.sweep_dir, output=args.output, parameters=notebook_parameters(args),
                          kernel_name=args.kernel, timeout_s=args.timeout)
    print(result.html)
    return 0
