"""SLO options shared by `bedrock-lab analyze` and `bedrock-lab report` (one definition, one help text)."""

from __future__ import annotations

import argparse


def add_slo_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("SLOs (default: the sweep file's slo section, else TTFT <= 1 s, e2e <= 10 s)")
    g.add_argument("--slo-ttft", type=float, metavar="S", help="max time to first token, seconds")
    g.add_argument("--slo-e2e", type=float, metavar="S", help="max end-to-end latency, seconds")
    g.add_argument("--slo-itl", type=float, metavar="S", help="max mean inter-token latency, seconds")
    g.add_argument("--slo-tokens-per-s", type=float, metavar="TPS", help="min output tokens per second")
    g.add_argument("--goodput-target", type=float, metavar="SHARE", help="share of requests that must meet the SLOs")
