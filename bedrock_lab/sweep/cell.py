"""One sweep cell: run it with the engines, judge it, and write ``records/`` then ``summary.json``.

:func:`run_cell` is what ``notebooks/cell.py`` calls. A cell whose run could not succeed (the engines' circuit
breaker tripped, or too few requests succeeded: :mod:`bedrock_lab.engines.health`) still writes its summary,
with ``"valid": false`` and the reason, and then raises :class:`~bedrock_lab.engines.health.RunInvalidError`, so
papermill fails the notebook and the runner marks the cell ``failed`` with that message.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from bedrock_lab.cellspec import from_notebook_parameters
from bedrock_lab.errors import ConfigError
from bedrock_lab.records import load_records
from bedrock_lab.store.manifest import SUMMARY, now, write_json_atomic


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


_PCTS = (50, 90, 95, 99)


def summarize_records(df: pd.DataFrame, *, wall_s: float | None = None) -> dict[str, Any]:
    """The numbers a person looks at first, from one cell's records (latencies over successful requests).

    Throughput (``rps``, ``output_tokens_per_s``) is over the records' span, first start to last end;
    ``wall_s`` is used only when the records carry no timing.
    """
    n = int(len(df))
    ok = df[df["status"] == "ok"] if n else df
    n_ok = int(len(ok))
    out: dict[str, Any] = {"requests": n, "ok": n_ok, "errors": n - n_ok, "error_rate": (n - n_ok) / n if n else None}
    kinds = df.loc[df["status"] != "ok", "error_kind"].fillna("unknown").value_counts() if n else pd.Series(dtype=int)
    out["errors_by_kind"] = {str(k): int(v) for k, v in kinds.items()}
    out["throttled"] = int(out["errors_by_kind"].get("throttled", 0))
    for col, name in (("ttft_s", "ttft"), ("e2e_s", "e2e"), ("itl_mean_s", "itl_mean")):
        s = pd.to_numeric(ok[col], errors="coerce").dropna() if n_ok and col in ok else pd.Series(dtype=float)
        out[f"{name}_mean_s"] = _finite(s.mean()) if len(s) else None
        for p in _PCTS:
            out[f"{name}_p{p}_s"] = _finite(s.quantile(p / 100)) if len(s) else None
    out["input_tokens"] = int(pd.to_numeric(df.get("input_tokens"), errors="coerce").fillna(0).sum()) if n else 0
    out["output_tokens"] = int(pd.to_numeric(df.get("output_tokens"), errors="coerce").fillna(0).sum()) if n else 0
    for col in ("cache_read_tokens", "cache_write_tokens"):  # billed too (absent in old shards: none)
        out[col] = int(pd.to_numeric(df[col], errors="coerce").fillna(0).sum()) if n and col in df else 0
    if n:
        start = pd.to_numeric(df["start"], errors="coerce")
        ends = start + pd.to_numeric(df["e2e_s"], errors="coerce").fillna(0)
        span = _finite(ends.max() - start.min())
    else:
        span = None
    span = span or wall_s  # the records' own span: engine start-up (Locust) does not dilute throughput
    out["wall_s"] = span
    out["rps"] = n_ok / span if span else None
    out["output_tokens_per_s"] = out["output_tokens"] / span if span else None
    if n_ok and "output_tokens" in ok and "e2e_s" in ok:
        per_req = pd.to_numeric(ok["output_tokens"], errors="coerce") / (
            pd.to_numeric(ok["e2e_s"], errors="coerce") - pd.to_numeric(ok["ttft_s"], errors="coerce").fillna(0))
        per_req = per_req.replace([float("inf"), -float("inf")], float("nan")).dropna()
        out["decode_tokens_per_s_p50"] = _finite(per_req.median()) if len(per_req) else None
    else:
        out["decode_tokens_per_s_p50"] = None
    served = df["tier_served"].dropna().value_counts() if n and "tier_served" in df else pd.Series(dtype=int)
    out["tiers_served"] = {str(k): int(v) for k, v in served.items()}
    return out


def run_cell(
    *,
    cell_id: str,
    out_dir: str | os.PathLike[str],
    sweep: str = "",
    run_id: str = "",
    target_kind: str = "emulator",
    endpoint_url: str = "",
    region: str = "us-east-1",
    profile: str = "",
    yes: bool = False,
    auth: str = "sigv4",
    auth_env: str = "",
    ca_bundle: str = "",
    **settings: Any,
) -> dict[str, Any]:
    """Run one cell with the engines library; writes ``records/`` then ``summary.json`` into ``out_dir``.

    This is what notebooks/cell.py calls. ``settings`` are the cell's :class:`~bedrock_lab.cellspec.CellSpec`
    fields in the notebook's spelling (0 / "" mean unset: :func:`~bedrock_lab.cellspec.from_notebook_parameters`).
    ``target_kind="emulator"`` with no ``endpoint_url`` starts a private in-process emulator for the cell;
    ``"openai"`` is any OpenAI-compatible server at ``endpoint_url`` (chat-completions). ``auth="api-key"`` sends the
    key held by the environment variable ``auth_env`` (its name only is a parameter); ``ca_bundle``: a CA to trust.
    ``run_id`` (given by the sweep runner, which fences the cell's records to it) labels every record.
    Against AWS the preflight (:mod:`bedrock_lab.engines.preflight`) runs first: a notebook has no terminal, so
    the cost is shown and the cell refused unless ``yes`` (the sweep runner sets it once you confirmed the sweep).
    Raises :class:`~bedrock_lab.engines.health.RunInvalidError` after writing the summary when the run is invalid.
    """
    from bedrock_lab.engines import BurstResult, BurstSpec, LocustResult, Target, run_burst_sync, run_locust
    from bedrock_lab.engines.health import assess

    cell = from_notebook_parameters(settings)
    out = Path(out_dir)
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    spec = BurstSpec.from_cell(cell, cell_id=cell_id, run_id=run_id or None)
    engine, seed = cell.engine, cell.seed
    started = now()
    t0 = time.monotonic()
    with ExitStack() as stack:
        if target_kind == "emulator":
            url = endpoint_url
            if not url:
                from bedrock_lab.emulator import run_emulator

                url = stack.enter_context(run_emulator(seed=int(seed), mode="thread")).url
            target = Target.emulator(url, auth=auth, api_key_env=auth_env or None, ca_bundle=ca_bundle or None)
        elif target_kind == "openai":
            target = Target.openai(endpoint_url, auth_env or "OPENAI_API_KEY", ca_bundle=ca_bundle or None)
        elif target_kind == "aws":
            target = Target.aws(region, profile=profile or None, endpoint_url=endpoint_url or None, auth=auth,
                                api_key_env=auth_env or None, ca_bundle=ca_bundle or None)  # fmt: skip
            from bedrock_lab.engines.preflight import preflight

            preflight(spec, target, yes=yes)
        else:
            raise ConfigError("unknown target kind", key="target_kind", value=target_kind,
                              allowed="emulator, aws, openai")  # fmt: skip
        result: BurstResult | LocustResult
        if engine == "locust":
            # Locust writes records/ below its out_dir, next to its own CSV/HTML stats and logs
            result = run_locust(spec, target=target, out_dir=out, workers=cell.locust_workers,
                                client=cell.locust_client)
        elif engine == "burst":
            result = run_burst_sync(spec, target=target, out_dir=records_dir, progress=False)
        else:
            raise ConfigError("unknown engine", key="engine", value=engine, allowed="burst, locust")
    wall = time.monotonic() - t0
    df = load_records(records_dir)
    df = df[df["run_id"] == spec.run_id].reset_index(drop=True)  # this run only, whatever else is in the folder
    health = result.health or assess(df, spec.health_policy)
    burst = result if isinstance(result, BurstResult) else None  # saturation and interrupts: the burst engine's
    summary = {
        "cell_id": cell_id,
        "sweep": sweep,
        "started_at": started,
        "finished_at": now(),
        "run_wall_s": wall,
        "parameters": cell.model_dump(),
        "target": {"kind": target_kind, "region": region, "profile": profile or None,
                   "endpoint_url": endpoint_url or None},
        "engine_result": {
            "run_id": result.run_id,
            "wall_s": _finite(result.wall_s),
            "saturated": bool(burst is not None and burst.saturated),
            "warnings": list(result.warnings),
            "interrupted": bool(burst is not None and burst.interrupted),
            "stop_reason": result.stop_reason,
            "stopped_at_s": _finite(result.stopped_at_s),
        },
        # why the cell ended (bedrock_lab.engines.stopping) and, for a sequential cell, its always-valid interval
        "stop_reason": result.stop_reason,
        "stopped_at_s": _finite(result.stopped_at_s),
        "sequential": result.sequential,
        "valid": health.valid,
        "health": health.to_dict(),
        "stats": summarize_records(df, wall_s=_finite(result.wall_s)),
    }  # fmt: skip
    write_json_atomic(out / SUMMARY, summary)
    health.raise_if_invalid(f"cell {cell_id}")
    return summary
