"""The sweep runner: one papermill-executed notebook per grid cell, resumable, with cost shown first.

Layout of ``outputs/<sweep>/``::

    plan.json                 the cells with their parameters and estimates
    sweep.yaml                the effective configuration (file + environment overrides)
    manifest.json             per cell: status, timings, error; rewritten atomically after every change
    cell.source.ipynb         notebooks/cell.py converted by jupytext for this run
    cells/<cell_id>/cell.ipynb      the executed notebook
    cells/<cell_id>/records/        per-request parquet shards
    cells/<cell_id>/summary.json    written last by the notebook: the cell is *done* only once it exists
    results.csv               one row per finished cell (percentiles, error rates, throughput, cost)

Crash safety: every file the runner writes is written to a temp file and renamed. A cell is marked done in
the manifest only after its notebook returned and its summary exists, so a SIGKILL loses at most the running
cell; ``resume=True`` re-runs that cell (its folder is cleared first) and skips every done one.
Papermill marks a failing notebook, but a cell that hits ``execution_timeout`` raises nbclient's
``CellTimeoutError`` without marking anything: both are caught and recorded as a failed cell.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bedrock_lab._files import write_text_atomic
from bedrock_lab.errors import ConfigError, SweepError
from bedrock_lab.params import SweepConfig, load_sweep_config, repo_root
from bedrock_lab.plan import Cell, Plan, build_plan
from bedrock_lab.records import load_records

MANIFEST = "manifest.json"
PLAN = "plan.json"
RESULTS = "results.csv"
SUMMARY = "summary.json"
CELL_NOTEBOOK = "cell.ipynb"
SOURCE_NOTEBOOK = "cell.source.ipynb"
SWEEP_COPY = "sweep.yaml"
MANIFEST_VERSION = 1

#: manifest cell statuses
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


# --------------------------------------------------------------------------------------------- files


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON via a temp file + fsync + rename, so readers never see half a file."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, set | tuple):
        return list(o)
    return str(o)


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read {path}: {exc}") from exc


# --------------------------------------------------------------------------------------------- summaries

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
    model_id: str,
    out_dir: str | os.PathLike[str],
    tier: str = "",
    prompt_size: str = "small",
    engine: str = "burst",
    api: str = "converse-stream",
    workload: str = "single",
    arrival: str = "poisson",
    users: int = 0,
    rate_rps: float = 0.0,
    duration_s: float = 0.0,
    requests: int = 0,
    ramp_s: float = 0.0,
    max_tokens: int = 256,
    locust_workers: int = 0,
    seed: int = 0,
    sweep: str = "",
    target_kind: str = "emulator",
    endpoint_url: str = "",
    region: str = "us-east-1",
    profile: str = "",
) -> dict[str, Any]:
    """Run one cell with the engines library; writes ``records/`` then ``summary.json`` into ``out_dir``.

    This is what notebooks/cell.py calls; parameters mirror its ``parameters`` cell (0 / "" mean unset).
    ``target_kind="emulator"`` with no ``endpoint_url`` starts a private in-process emulator for the cell.
    """
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust

    out = Path(out_dir)
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    spec = BurstSpec(
        model_id=model_id, api=api, tier=tier or None, workload=workload, prompt_size=prompt_size,
        users=int(users) or None, rate_rps=float(rate_rps) or None, arrival=arrival,
        duration_s=float(duration_s) or None, requests=int(requests) or None, ramp_s=float(ramp_s),
        max_tokens=int(max_tokens), seed=int(seed), cell_id=cell_id,
    )  # fmt: skip
    started = _now()
    t0 = time.monotonic()
    with ExitStack() as stack:
        if target_kind == "emulator":
            url = endpoint_url
            if not url:
                from bedrock_lab.emulator import run_emulator

                url = stack.enter_context(run_emulator(seed=int(seed), mode="thread")).url
            target = Target.emulator(url)
        elif target_kind == "aws":
            target = Target.aws(region, profile=profile or None, endpoint_url=endpoint_url or None)
        else:
            raise ConfigError("unknown target kind", key="target_kind", value=target_kind, allowed="emulator, aws")
        if engine == "locust":
            # Locust writes records/ below its out_dir, next to its own CSV/HTML stats and logs
            result = run_locust(spec, target=target, out_dir=out, workers=int(locust_workers))
        elif engine == "burst":
            result = run_burst_sync(spec, target=target, out_dir=records_dir, progress=False)
        else:
            raise ConfigError("unknown engine", key="engine", value=engine, allowed="burst, locust")
    wall = time.monotonic() - t0
    df = load_records(records_dir)
    summary = {
        "cell_id": cell_id,
        "sweep": sweep,
        "started_at": started,
        "finished_at": _now(),
        "run_wall_s": wall,
        "parameters": {
            "model_id": model_id, "tier": tier, "prompt_size": prompt_size, "engine": engine, "api": api,
            "workload": workload, "arrival": arrival, "users": users, "rate_rps": rate_rps,
            "duration_s": duration_s, "requests": requests, "ramp_s": ramp_s, "max_tokens": max_tokens, "seed": seed,
        },
        "target": {"kind": target_kind, "region": region, "profile": profile or None,
                   "endpoint_url": endpoint_url or None},
        "engine_result": {
            "run_id": getattr(result, "run_id", None),
            "wall_s": _finite(getattr(result, "wall_s", None)),
            "saturated": bool(getattr(result, "saturated", False)),
            "warnings": list(getattr(result, "warnings", []) or []),
            "interrupted": bool(getattr(result, "interrupted", False)),
        },
        "stats": summarize_records(df, wall_s=_finite(getattr(result, "wall_s", None))),
    }  # fmt: skip
    write_json_atomic(out / SUMMARY, _clean_json(summary))
    return summary


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_json(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------- manifest


def _params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """``manifest.json``: the state of every cell; saved atomically after each change."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        if not path.exists():
            return None
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or "cells" not in data:
            raise SweepError(f"{path} is not a bedrock-lab sweep manifest (version {MANIFEST_VERSION})")
        return cls(path, data)

    @classmethod
    def new(cls, path: Path, plan: Plan) -> Manifest:
        return cls(path, {
            "version": MANIFEST_VERSION, "sweep": plan.name, "source": plan.config.source,
            "created_at": _now(), "updated_at": _now(), "target": plan.config.target.model_dump(),
            "order": [], "cells": {},
        })  # fmt: skip

    @property
    def cells(self) -> dict[str, dict[str, Any]]:
        return self.data["cells"]

    def status(self, cell_id: str) -> str | None:
        entry = self.cells.get(cell_id)
        return entry.get("status") if entry else None

    def update(self, cell_id: str, **fields: Any) -> None:
        self.cells.setdefault(cell_id, {}).update(fields)
        self.save()

    def save(self) -> None:
        self.data["updated_at"] = _now()
        write_json_atomic(self.path, _clean_json(self.data))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.cells.values():
            out[entry.get("status", PENDING)] = out.get(entry.get("status", PENDING), 0) + 1
        return out


# --------------------------------------------------------------------------------------------- runner


@dataclass
class SweepResult:
    """What a run did. ``ok`` is True when every selected cell is done."""

    out_dir: Path
    plan: Plan
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  #: already done (resume)
    failed: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  #: budget cap / fail-fast / dry run
    stopped_reason: str | None = None
    results_csv: Path | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run

    def summary(self) -> str:
        parts = [f"{len(self.ran)} ran", f"{len(self.skipped)} already done", f"{len(self.failed)} failed"]
        if self.not_run:
            parts.append(f"{len(self.not_run)} not run ({self.stopped_reason})")
        return f"sweep {self.plan.name}: " + ", ".join(parts) + f" in {self.wall_s:.0f}s -> {self.out_dir}"


def _default_confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise SweepError("this sweep targets AWS and spends money; no terminal to ask for confirmation: pass --yes")
    return input(question).strip().lower() in ("y", "yes")


def _kernel_name(wanted: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if wanted in specs:
        return wanted
    if "python3" in specs:
        print(f"warning: Jupyter kernel {wanted!r} is not installed (run `make setup`); using python3",
              file=sys.stderr)  # fmt: skip
        return "python3"
    raise SweepError(f"Jupyter kernel {wanted!r} is not installed; run `make setup` "
                     f"(python -m ipykernel install --sys-prefix --name {wanted})")  # fmt: skip


def _prepare_notebook(config: SweepConfig, out_dir: Path, kernel: str) -> Path:
    """notebooks/cell.py (py:percent) -> ``out_dir/cell.source.ipynb`` with the kernel set."""
    import jupytext
    import nbformat

    src = Path(config.notebook)
    if not src.is_absolute():
        src = repo_root() / src
    if not src.is_file():
        raise ConfigError("cell notebook not found", source=config.source, key="notebook", value=str(src),
                          allowed="a jupytext .py or .ipynb notebook")  # fmt: skip
    nb = jupytext.read(src) if src.suffix != ".ipynb" else nbformat.read(src, as_version=4)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    target = out_dir / SOURCE_NOTEBOOK
    write_text_atomic(target, nbformat.writes(nb))
    return target


def _write_effective_config(config: SweepConfig, path: Path) -> None:
    """The configuration this run used (file + environment overrides) as YAML, next to its results."""
    import yaml

    header = (f"# Effective configuration of this sweep run: {config.source} with any environment overrides\n"
              f"# applied (written by bedrock-lab at {_now()}). Re-run with: bedrock-lab sweep {path}\n")  # fmt: skip
    body = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    write_text_atomic(path, header + body)


def _cell_notebook_params(cell: Cell, plan: Plan, cell_dir: Path, endpoint_url: str) -> dict[str, Any]:
    t = plan.config.target
    params = cell.notebook_parameters()
    params.update({
        "sweep": plan.name, "out_dir": str(cell_dir), "target_kind": t.kind, "endpoint_url": endpoint_url or "",
        "region": t.region, "profile": t.profile or "", "chart": False,
    })  # fmt: skip
    return params


def _error_info(exc: BaseException) -> dict[str, Any]:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"kind": "exception", "ename": exc.ename, "evalue": str(exc.evalue)[:2000], "cell_index": exc.cell_index}
    if isinstance(exc, CellTimeoutError):
        return {"kind": "timeout", "ename": "CellTimeoutError", "evalue": str(exc)[:2000], "cell_index": None}
    if isinstance(exc, DeadKernelError):
        return {"kind": "dead_kernel", "ename": "DeadKernelError", "evalue": str(exc)[:2000], "cell_index": None}
    return {"kind": "runner", "ename": type(exc).__name__, "evalue": str(exc)[:2000], "cell_index": None}


def _actual_cost(cell: Cell, summary: Mapping[str, Any]) -> float:
    stats = summary.get("stats", {})
    return (float(stats.get("input_tokens") or 0) * cell.price_input_per_1k
            + float(stats.get("output_tokens") or 0) * cell.price_output_per_1k) / 1000.0  # fmt: skip


def run_sweep(
    sweep: str | os.PathLike[str] | SweepConfig,
    *,
    out: str | os.PathLike[str] = "outputs",
    yes: bool = False,
    resume: bool = False,
    restart: bool = False,
    dry_run: bool = False,
    only: Iterable[str] | None = None,
    fail_fast: bool = False,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
    catalog: Any = None,
    confirm: Callable[[str], bool] | None = None,
    echo: Callable[[str], None] = print,
    execution_timeout: float | None = None,
) -> SweepResult:
    """Plan, show, and run a sweep (path to a YAML file or a :class:`SweepConfig`) into ``out/<name>/``.

    Against AWS it asks ``confirm`` (default: a terminal prompt) unless ``yes``. ``resume`` skips done cells,
    ``restart`` discards a previous run of the same sweep, ``only`` selects cells (ids, globs, substrings).
    Returns a :class:`SweepResult`; a failing cell is recorded and the sweep goes on unless ``fail_fast``.
    """
    t_start = time.monotonic()
    config = sweep if isinstance(sweep, SweepConfig) else load_sweep_config(sweep, env=env, catalog=catalog)
    full_plan = build_plan(config, catalog=catalog)
    with _terminate_as_exit():
        return _run(config, full_plan, t_start, out=out, yes=yes, resume=resume, restart=restart, dry_run=dry_run,
                    only=only, fail_fast=fail_fast, progress=progress, confirm=confirm, echo=echo,
                    execution_timeout=execution_timeout)  # fmt: skip


def plan_sweep(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None, catalog: Any = None) -> Plan:
    """Load a sweep file and expand it into its :class:`~bedrock_lab.plan.Plan` (nothing runs)."""
    return build_plan(load_sweep_config(path, env=env, catalog=catalog), catalog=catalog)


@contextmanager
def _sweep_lock(out_root: Path, name: str) -> Iterator[None]:
    """One runner per sweep folder: a second one (another terminal, a notebook) is refused, not interleaved.
    The OS drops the lock when the process dies, even by SIGKILL, so a crash never leaves it stuck."""
    import fcntl

    out_root.mkdir(parents=True, exist_ok=True)
    with open(out_root / f".{name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"another bedrock-lab sweep is running into {out_root / name}; wait for it or "
                             "stop it first") from None  # fmt: skip
        yield


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM -> SystemExit, so `kill PID` still stops the emulator and leaves the manifest consistent."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(
    config: SweepConfig, full_plan: Plan, t_start: float, *, out: str | os.PathLike[str], yes: bool, resume: bool,
    restart: bool, dry_run: bool, only: Iterable[str] | None, fail_fast: bool, progress: bool,
    confirm: Callable[[str], bool] | None, echo: Callable[[str], None], execution_timeout: float | None,
) -> SweepResult:  # fmt: skip
    plan = full_plan.select(list(only) if only else None)
    out_dir = Path(out).resolve() / config.name  # absolute: each cell runs with its own folder as cwd
    echo(plan.describe())
    result = SweepResult(out_dir, plan)
    if dry_run:
        result.not_run = [c.cell_id for c in plan.cells]
        result.stopped_reason = "dry run"
        echo("dry run: nothing executed")
        return result

    with _sweep_lock(Path(out), config.name):
        manifest_path = out_dir / MANIFEST
        existing = Manifest.load(manifest_path)
        if existing and restart:
            shutil.rmtree(out_dir)
            existing = None
        if existing and not resume and any(e.get("status") in (DONE, FAILED, RUNNING) for e in existing.cells.values()):
            raise SweepError(f"{out_dir} already holds a run of sweep {config.name!r} ({existing.counts()}); "
                             "pass --resume to continue it or --restart to discard it")  # fmt: skip

        if config.target.kind == "aws" and not yes:
            ask = confirm or _default_confirm
            question = (f"Run {len(plan.cells)} cells against AWS {config.target.region} for an estimated "
                        f"${plan.total_cost_usd:,.2f}? [y/N] ")  # fmt: skip
            if not ask(question):
                raise SweepError("not confirmed: nothing was run")

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "cells").mkdir(exist_ok=True)
        write_json_atomic(out_dir / PLAN, _clean_json(full_plan.to_dict()))
        _write_effective_config(config, out_dir / SWEEP_COPY)
        manifest = existing or Manifest.new(manifest_path, full_plan)
        manifest.data["order"] = [c.cell_id for c in full_plan.cells]
        todo: list[Cell] = []
        for c in plan.cells:
            params_hash = _params_hash(c.notebook_parameters())
            entry = manifest.cells.get(c.cell_id)
            done = (entry and entry.get("status") == DONE and entry.get("params_hash") == params_hash
                    and (out_dir / "cells" / c.cell_id / SUMMARY).is_file())  # fmt: skip
            if done:
                result.skipped.append(c.cell_id)
                continue
            todo.append(c)
            prev_attempts = (entry or {}).get("attempts", 0)
            manifest.cells[c.cell_id] = {
                "status": PENDING, "params_hash": params_hash, "attempts": prev_attempts,
                "tier": c.tier, "prompt_size": c.prompt_size, "users": c.users, "rate_rps": c.rate_rps,
                "model_id": c.model_id, "est_cost_usd": c.est_cost_usd,
            }  # fmt: skip
        manifest.save()
        if result.skipped:
            echo(f"resume: {len(result.skipped)} cell(s) already done, {len(todo)} to run")

        spent = sum(float(manifest.cells[c].get("cost_usd") or 0.0) for c in result.skipped)
        kernel = _kernel_name(config.kernel) if todo else config.kernel
        timeout = execution_timeout if execution_timeout is not None else config.cell.timeout_s

        with ExitStack() as stack:
            endpoint = config.target.endpoint_url or ""
            if todo and config.target.kind == "emulator" and not endpoint:
                from bedrock_lab.emulator import run_emulator

                emu = stack.enter_context(run_emulator(seed=config.target.emulator_seed, mode="subprocess",
                                                       **config.target.emulator_overrides))  # fmt: skip
                endpoint = emu.url
                echo(f"emulator started at {endpoint}")
            source_nb = _prepare_notebook(config, out_dir, kernel) if todo else None
            bar = _progress(len(todo), config.name, progress, echo)
            try:
                for i, c in enumerate(todo):
                    if config.budget_usd is not None and spent + c.est_cost_usd > config.budget_usd:
                        result.stopped_reason = (f"budget cap ${config.budget_usd:,.2f}: ${spent:,.4f} spent, next cell "
                                                 f"estimated ${c.est_cost_usd:,.4f}")  # fmt: skip
                        for rest in todo[i:]:
                            manifest.cells[rest.cell_id]["status"] = SKIPPED
                            manifest.cells[rest.cell_id]["error"] = {"kind": "budget", "evalue": result.stopped_reason}
                            result.not_run.append(rest.cell_id)
                        manifest.save()
                        echo(f"stopping: {result.stopped_reason}")
                        break
                    if i and config.cooldown_s:
                        time.sleep(config.cooldown_s)
                    ok = _run_one(c, plan, out_dir, source_nb, kernel, timeout, endpoint, manifest, bar)
                    if ok:
                        result.ran.append(c.cell_id)
                        spent += float(manifest.cells[c.cell_id].get("cost_usd") or 0.0)
                    else:
                        result.failed.append(c.cell_id)
                        err = manifest.cells[c.cell_id].get("error") or {}
                        echo(f"cell {c.cell_id} failed ({err.get('kind')}: {err.get('ename')}: "
                             f"{str(err.get('evalue', ''))[:300]})")  # fmt: skip
                        if fail_fast:
                            result.stopped_reason = f"--fail-fast after {c.cell_id}"
                            result.not_run = [r.cell_id for r in todo[i + 1 :]]
                            break
            finally:
                bar.close()
        result.results_csv = write_results_csv(out_dir)
        result.wall_s = time.monotonic() - t_start
        echo(result.summary())
        return result


class _LineBar:
    """Progress for logs (no terminal): one line per finished cell with an ETA."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo, self.n, self.t0, self.current = total, echo, 0, time.monotonic(), ""

    def update(self, n: int = 1) -> None:
        self.n += n
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.n * (self.total - self.n) if self.n else 0.0
        self.echo(f"[{self.n}/{self.total}] {self.current} finished; elapsed {elapsed:.0f}s, eta ~{eta:.0f}s")

    def set_postfix_str(self, s: str) -> None:
        self.current = s

    def close(self) -> None:
        pass


def _progress(total: int, name: str, enabled: bool, echo: Callable[[str], None]) -> Any:
    if not enabled or not total:
        return _LineBar(total, echo)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="cell", file=sys.stderr, dynamic_ncols=True)


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 to ``path`` while a kernel starts, so its start-up warnings land in the cell's
    folder instead of between the progress bar lines (the kernel inherits the descriptor)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to redirect
        yield
        return
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _run_one(
    cell: Cell, plan: Plan, out_dir: Path, source_nb: Path | None, kernel: str, timeout: float | None,
    endpoint: str, manifest: Manifest, bar: Any,
) -> bool:  # fmt: skip
    import papermill as pm

    cell_dir = out_dir / "cells" / cell.cell_id
    if cell_dir.exists():  # a previous attempt (killed or failed): start clean so records are not mixed
        shutil.rmtree(cell_dir)
    cell_dir.mkdir(parents=True)
    bar.set_postfix_str(cell.cell_id)
    entry = manifest.cells[cell.cell_id]
    manifest.update(cell.cell_id, status=RUNNING, started_at=_now(), finished_at=None, error=None,
                    attempts=int(entry.get("attempts", 0)) + 1)  # fmt: skip
    t0 = time.monotonic()
    error: dict[str, Any] | None = None
    try:
        with _stderr_to(cell_dir / "kernel.log"):
            pm.execute_notebook(
                str(source_nb), str(cell_dir / CELL_NOTEBOOK),
                parameters=_cell_notebook_params(cell, plan, cell_dir, endpoint), kernel_name=kernel,
                progress_bar=False, log_output=False, cwd=str(cell_dir), execution_timeout=timeout,
            )  # fmt: skip
    except (KeyboardInterrupt, SystemExit):
        manifest.update(cell.cell_id, status=PENDING, error={"kind": "interrupted"}, finished_at=_now())
        raise
    except Exception as exc:  # papermill, nbclient and kernel failures all land here
        error = _error_info(exc)
    duration = time.monotonic() - t0
    summary_path = cell_dir / SUMMARY
    if error is None and not summary_path.is_file():
        error = {"kind": "no_summary", "ename": "SweepError", "evalue": f"the notebook did not write {SUMMARY}",
                 "cell_index": None}  # fmt: skip
    bar.update(1)
    if error is not None:
        manifest.update(cell.cell_id, status=FAILED, finished_at=_now(), duration_s=duration, error=error)
        return False
    summary = _read_json(summary_path)
    stats = summary.get("stats", {})
    manifest.update(
        cell.cell_id, status=DONE, finished_at=_now(), duration_s=duration, error=None,
        requests=stats.get("requests"), ok=stats.get("ok"), cost_usd=_actual_cost(cell, summary),
    )  # fmt: skip
    return True


# --------------------------------------------------------------------------------------------- results


def _sweep_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not (p / MANIFEST).is_file():
        raise SweepError(f"{p} is not a sweep output folder (no {MANIFEST})")
    return p


def _manifest(sweep_dir: Path) -> Manifest:
    manifest = Manifest.load(sweep_dir / MANIFEST)
    if manifest is None:
        raise SweepError(f"{sweep_dir} has no {MANIFEST}")
    return manifest


def _plan_cells(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    plan_path = sweep_dir / PLAN
    if not plan_path.is_file():
        return {}
    return {c["cell_id"]: c for c in _read_json(plan_path).get("cells", [])}


_CELL_COLUMNS = ("region_prefix", "base_model", "repeat", "grid_index")


def load_sweep(path: str | os.PathLike[str], *, include_failed: bool = False, keep_chunk_times: bool = False) -> pd.DataFrame:
    """All finished cells' records of a sweep folder as one DataFrame, with the cell's grid coordinates.

    Columns: the record schema plus ``region_prefix``, ``base_model``, ``repeat``, ``grid_index`` and
    ``cell_status``. Failed cells' partial records are left out unless ``include_failed``.
    """
    sweep_dir = _sweep_dir(path)
    manifest = _manifest(sweep_dir)
    plan_cells = _plan_cells(sweep_dir)
    frames = []
    wanted = {DONE, FAILED} if include_failed else {DONE}
    for cell_id, entry in manifest.cells.items():
        status = entry.get("status")
        records = sweep_dir / "cells" / cell_id / "records"
        if status not in wanted or not records.is_dir():
            continue
        df = load_records(records, keep_chunk_times=keep_chunk_times)
        info = plan_cells.get(cell_id, {})
        for col in _CELL_COLUMNS:
            df[col] = info.get(col)
        df["cell_status"] = status
        frames.append(df)
    if not frames:
        empty = load_records(sweep_dir / "cells") if (sweep_dir / "cells").is_dir() else pd.DataFrame()
        empty = empty.iloc[0:0].copy()
        for col in (*_CELL_COLUMNS, "cell_status"):
            empty[col] = pd.Series(dtype=object)
        return empty
    return pd.concat(frames, ignore_index=True)


def results_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per cell (done or failed): grid coordinates, status and the summary statistics."""
    sweep_dir = _sweep_dir(path)
    manifest = _manifest(sweep_dir)
    plan_cells = _plan_cells(sweep_dir)
    order = list(manifest.data.get("order") or [])
    order += [c for c in manifest.cells if c not in order]  # cells of an earlier plan of the same sweep
    rows = []
    for cell_id in order:
        entry = manifest.cells.get(cell_id)
        if not entry or entry.get("status") not in (DONE, FAILED):
            continue
        info = plan_cells.get(cell_id, {})
        row: dict[str, Any] = {
            "sweep": manifest.data.get("sweep"), "cell_id": cell_id, "status": entry.get("status"),
            "model_id": info.get("model_id"), "region_prefix": info.get("region_prefix"), "tier": info.get("tier"),
            "prompt_size": info.get("prompt_size"), "users": info.get("users"), "rate_rps": info.get("rate_rps"),
            "repeat": info.get("repeat"), "duration_s": info.get("duration_s"),
            "max_tokens": info.get("max_tokens"),
        }  # fmt: skip
        summary_path = sweep_dir / "cells" / cell_id / SUMMARY
        if summary_path.is_file():
            stats = _read_json(summary_path).get("stats", {})
            for k, v in stats.items():
                if not isinstance(v, dict):
                    row[k] = v
            row["errors_by_kind"] = json.dumps(stats.get("errors_by_kind", {}), sort_keys=True)
        row["est_cost_usd"] = info.get("est_cost_usd")
        row["cost_usd"] = entry.get("cost_usd")
        row["cell_wall_s"] = entry.get("duration_s")
        row["started_at"] = entry.get("started_at")
        err = entry.get("error") or {}
        row["error"] = f"{err.get('kind')}: {err.get('ename')}: {err.get('evalue')}" if err else ""
        rows.append(row)
    return pd.DataFrame(rows)


def write_results_csv(path: str | os.PathLike[str]) -> Path:
    """Write ``results.csv`` (see :func:`results_table`) atomically; returns its path."""
    sweep_dir = _sweep_dir(path)
    target = sweep_dir / RESULTS
    write_text_atomic(target, results_table(sweep_dir).to_csv(index=False))
    return target


def sweep_status(path: str | os.PathLike[str]) -> dict[str, int]:
    """Counts of cells per status in a sweep folder's manifest."""
    manifest = Manifest.load(_sweep_dir(path) / MANIFEST)
    return manifest.counts() if manifest else {}


__all__ = [
    "DONE",
    "FAILED",
    "PENDING",
    "RUNNING",
    "SKIPPED",
    "Manifest",
    "SweepResult",
    "load_sweep",
    "plan_sweep",
    "results_table",
    "run_cell",
    "run_sweep",
    "summarize_records",
    "sweep_status",
    "write_json_atomic",
    "write_results_csv",
]
