"""Engines tests run against a real emulator over HTTP, with a fast latency profile so runs take seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

#: fast but realistic-shaped latency: short TTFT, many chunks, little jitter
FAST = dict(ttft_ms=15.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=4000.0, jitter=0.1, chunk_tokens=4,
            contention=0.0, output_median_tokens=24, output_sigma=0.2)  # fmt: skip


@contextmanager
def _emulator(**faults: float) -> Iterator[Any]:
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=FAST, faults=faults, capacity=512) as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Callable[..., AbstractContextManager[Any]]:
    """``with make_emulator(error_500=0.3) as emu:`` an emulator with fault rates."""
    return _emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    with _emulator() as e:
        yield e


@pytest.fixture(scope="module")
def target(emu: Any) -> Any:
    from bedrock_lab.engines import Target

    return Target.emulator(emu.url)
