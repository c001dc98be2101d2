"""Prompt files: the one reader of workload files, ours (``params/prompts/*.yaml``) and the public AWS sample's.

The engines (``engines/workloads.py``) and the sweep validation (``params.py``) both read prompt files through
:func:`read_prompt_file`, so every format is understood in one place. The AWS tier-sweep sample's
``prompts.json`` (``{"small": {"text": ..., "description": ...}, "medium": ..., "large": ...}``: one prompt per
size) becomes a ``single`` workload with one prompt per size, so ``cell.workload: path/to/prompts.json`` (or
``PROMPTS_FILE``) runs the sample's prompts unchanged.

>>> from_sample_json({"small": {"text": "Hi?", "description": "tiny"}}, source="prompts.json")["prompts"]["small"]
[{'id': 'small', 'text': 'Hi?', 'description': 'tiny'}]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bedrock_lab.errors import ConfigError

#: file names that name a prompt file (anything else names a workload in params/prompts/)
PROMPT_SUFFIXES = (".yaml", ".yml", ".json")


def is_prompt_path(name: str | os.PathLike[str]) -> bool:
    """True when ``name`` is a path to a prompt file rather than a workload name."""
    return str(name).lower().endswith(PROMPT_SUFFIXES)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook refusing a key given twice (json.loads would silently keep the last one)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}: JSON would keep only the last one")
        out[key] = value
    return out


def from_sample_json(data: Any, *, source: str) -> dict[str, Any]:
    """The sample's ``prompts.json`` mapping (size -> ``{"text", "description"}``, or size -> text) as a
    ``single`` workload; a missing or empty text is a :class:`ConfigError` naming the size."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("a prompts.json maps each prompt size to {\"text\": ..., \"description\": ...}",
                          source=source, value=type(data).__name__ if not isinstance(data, Mapping) else "{}",
                          allowed='{"small": {"text": "..."}, "medium": {...}, "large": {...}}')  # fmt: skip
    prompts: dict[str, list[dict[str, Any]]] = {}
    for size, entry in data.items():
        text = entry.get("text") if isinstance(entry, Mapping) else entry
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("each prompt size needs a non-empty text", source=source,
                              key=f"{size}.text" if isinstance(entry, Mapping) else str(size), value=text,
                              allowed='{"text": "the prompt", "description": "optional"}')  # fmt: skip
        item: dict[str, Any] = {"id": str(size), "text": text.strip()}
        if isinstance(entry, Mapping) and entry.get("description"):
            item["description"] = str(entry["description"])
        prompts[str(size)] = [item]
    return {"kind": "single", "system": None, "format": "aws-sample prompts.json", "prompts": prompts}


def read_prompt_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A prompt file as a workload mapping (with ``kind``). YAML is ours; JSON is either a workload with a ``kind``
    or the AWS sample's ``prompts.json``. Any problem is a :class:`ConfigError` naming the file."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("prompt file not found", source=source, value=source,
                          allowed="a params/prompts/*.yaml file or a prompts.json") from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt file: {exc}", source=source) from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON: {exc}", source=source, allowed="a JSON object") from None
        return data if isinstance(data, dict) and "kind" in data else from_sample_json(data, source=source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping", source=source, value=type(data).__name__, allowed="kind, prompts, ...")
    return data


__all__ = ["PROMPT_SUFFIXES", "from_sample_json", "is_prompt_path", "read_prompt_file"]
