"""`bedrock-lab analyze`: not built yet (see the issue tracker)."""

from __future__ import annotations

import argparse

DESCRIPTION = "Not available yet in this version of bedrock-lab."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("bedrock-lab analyze: not available yet")
    return 2
