"""Shared helpers for the sweep tests: tiny sweep files and a catalog with round prices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bedrock_lab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Price:
    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True)
class _Spec:
    model_id: str
    tiers: tuple[str, ...]
    prices: dict[str, _Price] = field(default_factory=dict)

    def price(self, tier: str | None = None) -> _Price:
        return self.prices[tier or "default"]


class FakeCatalog:
    """Two models with round prices so a cost can be computed by hand."""

    def __init__(self) -> None:
        self.models = {
            "test.model-a-v1:0": _Spec(
                "test.model-a-v1:0",
                ("default", "flex", "priority"),
                {"default": _Price(0.001, 0.002), "flex": _Price(0.0005, 0.001), "priority": _Price(0.002, 0.004)},
            ),
            "test.model-b-v1": _Spec("test.model-b-v1", ("default",), {"default": _Price(0.01, 0.03)}),
        }

    def resolve(self, model_id: str) -> _Spec:
        base = model_id.split(".", 1)[1] if model_id.startswith(("us.", "eu.", "global.")) else model_id
        if base not in self.models:
            raise ConfigError("unknown model id", key="model_id", value=model_id, allowed=", ".join(self.models))
        return self.models[base]

    def ids(self) -> list[str]:
        return sorted(self.models)


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
