"""Fixtures of the sweep tests (helpers live in _sweep_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _sweep_helpers import FAST, round_price_catalog

from bedrock_lab.catalog import Catalog


@pytest.fixture
def fake_catalog() -> Catalog:
    return round_price_catalog()


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    """An emulator with the FAST profile, one per test module that asks for it."""
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=FAST, capacity=256) as e:
        yield e
