"""Shared helpers for the sweep tests: tiny sweep files and a catalog with round prices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bedrock_lab.catalog import Catalog, parse_catalog

ROOT = Path(__file__).resolve().parents[2]
#: short TTFT and fast decoding: a request takes milliseconds, the token counts are what is measured here
FAST = dict(ttft_ms=5.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=4000.0, jitter=0.1, chunk_tokens=4,
            contention=0.0, output_median_tokens=4, output_sigma=0.1)  # fmt: skip


#: two models with round prices, so a cost can be computed by hand (parsed by the real catalog code)
ROUND_PRICES: dict[str, Any] = {
    "version": 1,
    "models": {
        "test.model-a-v1:0": {
            "provider_format": "nova",
            "tiers": ["default", "flex", "priority"],
            "prices": {"default": {"input": 0.001, "output": 0.002}, "flex": {"input": 0.0005, "output": 0.001},
                       "priority": {"input": 0.002, "output": 0.004}},
        },
        "test.model-b-v1": {"provider_format": "titan", "tiers": ["default"],
                            "prices": {"default": {"input": 0.01, "output": 0.03}}},
    },
}  # fmt: skip


def round_price_catalog() -> Catalog:
    return parse_catalog(ROUND_PRICES, source="round-prices catalog")


def base_sweep(**overrides: Any) -> dict[str, Any]:
    """A valid sweep mapping on the real catalog; ``overrides`` replace top-level sections."""
    data: dict[str, Any] = {
        "name": "t",
        "target": {"kind": "emulator"},
        "grid": {
            "models": ["amazon.nova-lite-v1:0"],
            "region_prefixes": ["us"],
            "tiers": ["default", "flex"],
            "prompt_sizes": ["small"],
            "users": [2],
        },
        "cell": {"duration_s": 1.0, "max_tokens": 32},
    }
    data.update(overrides)
    return data


def write_sweep(folder: Path, data: dict[str, Any] | str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path
