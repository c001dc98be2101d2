"""Readable configuration labels of records: ``model``, ``tier``, ``prompt_size`` and ``config``.

They live in :mod:`bedrock_lab.stats` because the analysis groups by them (one grouping for every table, chart
and sentence of the report); :mod:`bedrock_lab.charts` uses the same labels for legends and facets.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"model_id": ["us.amazon.nova-lite-v1:0"], "tier_requested": [None],
...                    "prompt_size": ["small"]})
>>> label_records(df)["config"].iloc[0]
'nova-lite-v1:0 / default / small'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

#: the label columns :func:`label_records` adds
LABEL_COLUMNS: tuple[str, ...] = ("model", "tier", "prompt_size", "config")
#: cross-region inference profile prefixes ("us.anthropic...") dropped from model names
_GEO_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "ca", "jp", "au"})


def short_model(model_id: str) -> str:
    """"us.anthropic.claude-3-5-haiku-20241022-v1:0" -> "claude-3-5-haiku-20241022-v1:0" (ARNs: last part)."""
    name = str(model_id).rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] in _GEO_PREFIXES:
        parts = parts[1:]
    if len(parts) >= 2:
        parts = parts[1:]
    return ".".join(parts)


def label_records(records: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``model``, ``tier``, ``prompt_size`` and ``config`` columns for grouping and legends.

    ``tier`` is the tier asked for (a cell must not split when the service serves another one); with none
    asked, the tier the service reports, else "default". Records that already have the labels (e.g. those of a
    loaded sweep) are returned as they are.
    """
    if set(LABEL_COLUMNS) <= set(records.columns):
        return records
    df = records.copy()
    if "model_id" in df:
        ids = df["model_id"].astype(str)
        df["model"] = ids.map({m: short_model(m) for m in ids.unique()})  # once per distinct id, not per row
    else:
        df["model"] = "model"
    tier = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in ("tier_requested", "tier_served"):
        if col in df:
            tier = tier.where(tier.notna(), df[col].astype(object).where(df[col].notna(), None))
    df["tier"] = tier.fillna("default").astype(str)
    if "prompt_size" not in df:
        df["prompt_size"] = "n/a"
    df["prompt_size"] = df["prompt_size"].astype(object).fillna("n/a").astype(str)
    _split_background(df)
    df["config"] = df["model"] + " / " + df["tier"] + " / " + df["prompt_size"]
    return df


def _split_background(df: pd.DataFrame) -> None:
    """A sweep that varied other customers' demand (``grid.background_load``, issue 15) is a workload per level:
    ``prompt_size`` becomes "small @ background 0.6" so that no table, verdict or decision pools requests made
    under different background loads; ``prompt_size_base`` keeps the size alone (for the chart across levels)."""
    if "background_load" not in df:
        return
    level = pd.to_numeric(df["background_load"], errors="coerce")
    if level.nunique() < 2:
        return
    df["prompt_size_base"] = df["prompt_size"]
    text = level.map(lambda v: "" if pd.isna(v) else f" @ background {v:g}")
    df["prompt_size"] = df["prompt_size"] + text


def display_names(catalog: Any, model_ids: Iterable[Any]) -> dict[str, str]:
    """Catalog display names ("Claude 3 Haiku") of model ids; ids the catalog does not know (or no catalog: an
    exception saying why there is none) keep no name. The one source of a model's readable name."""
    out: dict[str, str] = {}
    if catalog is None or isinstance(catalog, Exception):
        return out
    for mid in dict.fromkeys(str(m) for m in model_ids):
        try:
            name = catalog.resolve(mid).display_name
        except Exception:  # unknown to this catalog: the short id label stands
            name = None
        if name:
            out[mid] = str(name)
    return out


def model_label(model: Any, names: Mapping[str, str]) -> str:
    """The one label of a model in the report's words: its display name from ``names`` (short label or model
    id -> display name, e.g. :func:`display_names` or the decision table's ``model_name``), else the label."""
    return names.get(str(model), str(model))
