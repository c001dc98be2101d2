"""Mistakes the runner can see before anything is printed, written or started: each is one ConfigError naming
the file, the key path, the value and what is allowed, and the output folder stays untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import base_sweep, write_sweep

from bedrock_lab.errors import ConfigError
from bedrock_lab.sweep import run_sweep


@pytest.mark.parametrize(("top", "key", "text", "value"), [
    ({"target": {"kind": "emulator", "emulator_overrides": {"bogus": 1}}}, "target.emulator_overrides.bogus",
     "unknown emulator option", 1),
    ({"target": {"kind": "emulator", "emulator_overrides": {"capacity": 0}}}, "target.emulator_overrides.capacity",
     "must be >= 1", 0),
    ({"target": {"kind": "emulator", "emulator_overrides": {"faults": {"error_500": 3}}}},
     "target.emulator_overrides.faults.error_500", "probabilities", 3),
    ({"notebook": "notebooks/nope.py"}, "notebook", "notebooks/nope.py not found", None),
])  # fmt: skip
def test_runner_level_mistakes_stop_before_anything_is_written(
    tmp_path: Path, top: dict[str, Any], key: str, text: str, value: Any
) -> None:
    path = write_sweep(tmp_path, base_sweep(**top))
    lines: list[str] = []
    with pytest.raises(ConfigError) as info:
        run_sweep(path, out=tmp_path / "out", env={}, progress=False, echo=lines.append)
    err = info.value
    assert err.key == key and text in str(err) and str(path) in str(err) and err.allowed
    if value is not None:
        assert err.value == value
    assert not lines, "nothing may be printed before the error (not even the plan)"
    assert not (tmp_path / "out" / "t").exists()


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, base_sweep())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="the output folder is a file"):
        run_sweep(path, out=tmp_path / "afile", env={}, progress=False, echo=lambda s: None)
