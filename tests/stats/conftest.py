"""Fixtures of the statistics tests."""

from __future__ import annotations

import pandas as pd
import pytest

from bedrock_lab.stats import synthetic_records


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    """A seeded 27-cell sweep of synthetic records with some throttles and timeouts."""
    return synthetic_records(27 * 120, seed=3, throttle_share=0.02, timeout_share=0.01)
