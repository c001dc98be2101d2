"""Fixtures of the sweep tests (helpers live in _sweep_helpers.py)."""

from __future__ import annotations

import pytest
from _sweep_helpers import FakeCatalog


@pytest.fixture
def fake_catalog() -> FakeCatalog:
    return FakeCatalog()
