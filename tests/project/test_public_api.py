"""The small public API at the package root resolves, lazily, to the real objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bedrock_lab


@pytest.mark.parametrize("name", sorted(bedrock_lab._LAZY))
def test_lazy_name_resolves_to_its_module_object(name: str) -> None:
    import importlib

    obj = getattr(bedrock_lab, name)
    assert obj is getattr(importlib.import_module(bedrock_lab._LAZY[name]), name)
    assert callable(obj)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        bedrock_lab.no_such_thing  # noqa: B018


def test_plain_import_does_not_load_the_heavy_parts() -> None:
    code = "import sys, bedrock_lab; print(any(m in sys.modules for m in ('pandas', 'scipy', 'aiohttp', 'altair')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
