"""One emulator for the whole area (thread mode, latencies scaled down 50x); tests that need special settings
start their own. Clients have retries off so every error reaches the test as the service sent it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from emu_helpers import FAST, make_client, raw_post

from bedrock_lab.emulator import Emulator, run_emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with run_emulator(seed=0, time_scale=FAST) as emu:
        yield emu


@pytest.fixture(scope="session")
def client(emulator: Emulator) -> Any:
    return make_client(emulator.url)


@pytest.fixture(scope="session")
def post(emulator: Emulator) -> Callable[..., tuple[int, dict[str, str], Any]]:
    return lambda path, body, headers=None, method="POST": raw_post(emulator.url, path, body, headers, method)
