"""Fixtures of the sweep tests (helpers live in _sweep_helpers.py)."""

from __future__ import annotations

import pytest
from _sweep_helpers import round_price_catalog

from bedrock_lab.catalog import Catalog


@pytest.fixture
def fake_catalog() -> Catalog:
    return round_price_catalog()
