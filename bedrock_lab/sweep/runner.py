"""The sweep runner: one papermill-executed notebook per grid cell, resumable, with cost shown first.

The folder layout is described in :mod:`bedrock_lab.store.manifest`.

Crash safety: every file the runner writes is written to a temp file and renamed. A cell is marked done in
the manifest only after its notebook returned and its summary exists, so a SIGKILL loses at most the running
cell; ``resume=True`` re-runs that cell (its folder is cleared first) and skips every done one. Each attempt
gets a fresh run id, written to the manifest before the cell starts: the reader keeps only that run's records,
so late writes of a killed attempt cannot pollute the new one.

Failures fail: a cell whose run could not succeed is ``failed`` with the service's first error message
(:mod:`bedrock_lab.engines.health`); the sweep's own emulator is checked before every cell (and restarted if it
died); :data:`STOP_AFTER_SAME_FAILURES` cells in a row failing with the same error stop the sweep (the target is
unreachable or the request is wrong for every cell); :attr:`SweepResult.ok` is False when any cell failed.
Papermill marks a failing notebook, but a cell that hits ``execution_timeout`` raises nbclient's
``CellTimeoutError`` without marking anything: both are caught and recorded as a failed cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bedrock_lab._files import write_text_atomic
from bedrock_lab._money import fmt_usd
from bedrock_lab._notebooks import write_ipynb
from bedrock_lab.errors import ConfigError, EmulatorError, SweepError
from bedrock_lab.params import SweepConfig, load_sweep_config, repo_root
from bedrock_lab.plan import Cell, Plan, build_plan
from bedrock_lab.store.manifest import (
    CELL_NOTEBOOK,
    DONE,
    FAILED,
    MANIFEST,
    PENDING,
    PLAN,
    RUNNING,
    SEARCH,
    SKIPPED,
    SOURCE_NOTEBOOK,
    SUMMARY,
    SWEEP_COPY,
    Manifest,
    now,
    read_json,
    write_json_atomic,
)
from bedrock_lab.sweep.results import write_results_csv

#: kernels of cell notebooks keep no IPython history: nothing (injected parameters included) is written to ~/.ipython
KERNEL_ARGUMENTS = ("--HistoryManager.enabled=False",)
#: this many cells in a row failing with the same error stop the sweep
STOP_AFTER_SAME_FAILURES = 3

def _params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def _notebook_path(config: SweepConfig) -> Path:
    src = Path(config.notebook)
    if not src.is_absolute():
        src = repo_root() / src
    if not src.is_file():
        raise ConfigError(f"cell notebook {src} not found", source=config.source, key="notebook", value=str(src),
                          allowed="a jupytext .py or .ipynb notebook (default notebooks/cell.py)")  # fmt: skip
    return src


def _check_before_start(config: SweepConfig) -> None:
    """What can be checked before anything is printed, written or started: the cell notebook and the emulator
    overrides (with the emulator's own settings model)."""
    _notebook_path(config)
    if config.target.kind == "emulator" and config.target.emulator_overrides:
        from bedrock_lab.emulator import check_overrides

        try:
            check_overrides(config.target.emulator_overrides)
        except ConfigError as exc:
            key = "target.emulator_overrides" + (f".{exc.key}" if exc.key else "")
            raise ConfigError(exc.message, source=config.source, key=key, value=exc.value,
                              allowed=exc.allowed or "see `bedrock-lab emulator --help`") from None  # fmt: skip


def _prepare_notebook(config: SweepConfig, out_dir: Path, kernel: str) -> Path:
    """notebooks/cell.py (py:percent) -> ``out_dir/cell.source.ipynb`` with the kernel set."""
    return write_ipynb(_notebook_path(config), out_dir / SOURCE_NOTEBOOK, kernel=kernel)


def _write_effective_config(config: SweepConfig, path: Path) -> None:
    """The configuration this run used (file + environment overrides) as YAML, next to its results."""
    import yaml

    header = (f"# Effective configuration of this sweep run: {config.source} with any environment overrides\n"
              f"# applied (written by bedrock-lab at {now()}). Re-run with: bedrock-lab sweep {path}\n")  # fmt: skip
    body = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    write_text_atomic(path, header + body)


def _cell_notebook_params(cell: Cell, plan: Plan, cell_dir: Path, endpoint_url: str) -> dict[str, Any]:
    t = plan.config.target
    params = cell.notebook_parameters()
    params.update({
        "sweep": plan.name, "out_dir": str(cell_dir), "target_kind": t.kind, "endpoint_url": endpoint_url or "",
        "region": t.region, "profile": t.profile or "", "chart": False, "yes": t.kind == "aws",
    })  # fmt: skip
    if t.auth != "sigv4" or t.api_key_env or t.ca_bundle:  # the variable's name only, never a key
        params.update({"auth": t.auth, "auth_env": t.api_key_env or "", "ca_bundle": t.ca_bundle or ""})
    server = t.servers.get(cell.base_model) or t.servers.get(cell.model_id)
    if server is not None:  # this model is served by an OpenAI-compatible server (target.servers)
        params.update({"target_kind": "openai", "endpoint_url": server.base_url, "auth": "api-key", "yes": False,
                       "auth_env": server.api_key_env or "OPENAI_API_KEY", "ca_bundle": server.ca_bundle or ""})
    return params


def _error_info(exc: BaseException) -> dict[str, Any]:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError) and exc.ename == "RunInvalidError":
        # the run could not succeed (bedrock_lab.engines.health): its message is the service's, verbatim
        reason = str(exc.evalue).split(" is invalid: ", 1)[-1]
        return {"kind": "invalid_run", "ename": exc.ename, "evalue": str(exc.evalue)[:2000], "reason": reason[:2000],
                "cell_index": exc.cell_index}  # fmt: skip
    if isinstance(exc, PapermillExecutionError):
        return {"kind": "exception", "ename": exc.ename, "evalue": str(exc.evalue)[:2000], "cell_index": exc.cell_index}
    if isinstance(exc, CellTimeoutError):
        return {"kind": "timeout", "ename": "CellTimeoutError", "evalue": str(exc)[:2000], "cell_index": None}
    if isinstance(exc, DeadKernelError):
        return {"kind": "dead_kernel", "ename": "DeadKernelError", "evalue": str(exc)[:2000], "cell_index": None}
    return {"kind": "runner", "ename": type(exc).__name__, "evalue": str(exc)[:2000], "cell_index": None}


def _actual_cost(cell: Cell, summary: Mapping[str, Any]) -> float:
    """What a cell's records say it cost: billed input, output and prompt-cache tokens at the cell's prices."""
    stats = summary.get("stats", {})
    return cell.cost_of_tokens(*(float(stats.get(k) or 0) for k in ("input_tokens", "output_tokens",
                                                                     "cache_read_tokens", "cache_write_tokens")))


def _failed_cost(cell: Cell, cell_dir: Path, run_id: str, partial: Mapping[str, Any]) -> float | None:
    """What a failed attempt spent: its summary's tokens, or (a kernel that died before writing one) the tokens of
    the records it left, so the budget cap counts them; None when nothing was sent."""
    if partial.get("stats"):
        return _actual_cost(cell, partial)
    from bedrock_lab.records import load_records
    from bedrock_lab.sweep.cell import summarize_records

    try:
        df = load_records(cell_dir / "records")
    except OSError:  # RecordsError: a shard a killed writer left unreadable; nothing to count
        return None
    df = df[df["run_id"] == run_id] if len(df) else df
    return _actual_cost(cell, {"stats": summarize_records(df)}) if len(df) else None


def _stop_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Why and when a cell's run ended (issue #14), for its manifest entry: the stop reason, the seconds of load
    when it was decided, the engine's load time and a sequential cell's always-valid interval."""
    engine = summary.get("engine_result") or {}
    return {"stop_reason": summary.get("stop_reason"), "stopped_at_s": summary.get("stopped_at_s"),
            "load_s": engine.get("wall_s"), "sequential": summary.get("sequential")}  # fmt: skip


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
    count_tokens: bool = True,
) -> SweepResult:
    """Plan, show, and run a sweep (path to a YAML file or a :class:`SweepConfig`) into ``out/<name>/``.

    Against AWS it asks ``confirm`` (default: a terminal prompt) unless ``yes``. ``resume`` skips done cells,
    ``restart`` discards a previous run of the same sweep, ``only`` selects cells (ids, globs, substrings).
    Returns a :class:`SweepResult`; a failing cell is recorded and the sweep goes on unless ``fail_fast``.
    Against AWS the plan's input tokens are counted by CountTokens (free) unless ``count_tokens`` is False.
    """
    t_start = time.monotonic()
    config = sweep if isinstance(sweep, SweepConfig) else load_sweep_config(sweep, env=env, catalog=catalog)
    full_plan = build_plan(config, catalog=catalog)
    if config.target.kind == "aws" and count_tokens:
        from bedrock_lab.engines import Target

        t = config.target
        full_plan = count_plan_tokens(full_plan, Target.aws(t.region, t.profile, t.endpoint_url))
    with _terminate_as_exit():
        return _run(config, full_plan, t_start, out=out, yes=yes, resume=resume, restart=restart, dry_run=dry_run,
                    only=only, fail_fast=fail_fast, progress=progress, confirm=confirm, echo=echo,
                    execution_timeout=execution_timeout)  # fmt: skip


def count_plan_tokens(plan: Plan, target: Any) -> Plan:
    """``plan`` with input tokens counted by ``target``'s CountTokens (one call per distinct request of each model
    and prompt size); where a model has no token counting the local estimate stays, with a note saying why."""
    from bedrock_lab.engines.preflight import count_inputs

    cell, est = plan.config.cell, plan.config.estimates
    got = count_inputs(target, plan.input_token_keys(), workload=cell.workload, api=cell.api,
                       max_tokens=cell.max_tokens, answer_tokens=est.output_tokens)  # fmt: skip
    notes = dict.fromkeys(f"input tokens of {m}: {v.describe()}" for (m, _), v in got.items() if not v.counted)
    return plan.with_input_tokens({k: v.tokens for k, v in got.items() if v.counted}, notes)


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
def _watched_by_children() -> Iterator[None]:
    """Name this runner in ``BEDROCK_LAB_ANCESTOR_PIDS`` for the kernels it starts, so their Locust children exit
    as soon as the runner dies, not only once the kernel notices (a resumed cell's folder must stay clean)."""
    previous = os.environ.get("BEDROCK_LAB_ANCESTOR_PIDS")
    os.environ["BEDROCK_LAB_ANCESTOR_PIDS"] = ",".join(p for p in (previous, str(os.getpid())) if p)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("BEDROCK_LAB_ANCESTOR_PIDS", None)
        else:
            os.environ["BEDROCK_LAB_ANCESTOR_PIDS"] = previous


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
    if out_dir.exists() and not out_dir.is_dir() or Path(out).exists() and not Path(out).is_dir():
        raise ConfigError("the output folder is a file", key="--out", value=str(out), allowed="a folder (created if missing)")
    _check_before_start(config)
    echo(plan.describe())
    result = SweepResult(out_dir, plan)
    if dry_run:
        result.not_run = [c.cell_id for c in plan.cells]
        result.stopped_reason = "dry run"
        echo("dry run: nothing executed")
        return result

    with _sweep_lock(Path(out), config.name), _watched_by_children():
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
                        f"{fmt_usd(plan.total_cost_usd)}? [y/N] ")  # fmt: skip
            if not ask(question):
                raise SweepError("not confirmed: nothing was run")

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "cells").mkdir(exist_ok=True)
        write_json_atomic(out_dir / PLAN, full_plan.to_dict())
        _write_effective_config(config, out_dir / SWEEP_COPY)
        manifest = existing or Manifest.new(manifest_path, sweep=full_plan.name, source=full_plan.config.source,
                                                target=full_plan.config.target.model_dump())
        manifest.data["order"] = [c.cell_id for c in full_plan.cells]
        todo: list[Cell] = []
        searching = config.search is not None  # an SLO search runs its levels itself (sweep/search.py)
        for c in [] if searching else plan.cells:
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
        kernel = _kernel_name(config.kernel) if todo or searching else config.kernel
        timeout = execution_timeout if execution_timeout is not None else config.cell.timeout_s

        with ExitStack() as stack:
            endpoint = config.target.endpoint_url or ""
            emulator = None
            if (todo or searching) and config.target.kind == "emulator" and not endpoint:
                emulator = stack.enter_context(_OwnEmulator(config, echo,
                                                            level=todo[0].background_load if todo else None))
            source_nb = _prepare_notebook(config, out_dir, kernel) if todo or searching else None
            if searching:
                _run_search(config, full_plan, out_dir, manifest, result, source_nb, kernel, timeout,
                            lambda: emulator.ensure_alive() if emulator is not None else endpoint, echo)  # fmt: skip
            bar = _progress(len(todo), config.name, progress, echo)
            same_failures: list[str] = []
            try:
                for i, c in enumerate(todo):
                    if config.budget_usd is not None and spent + c.est_cost_usd > config.budget_usd:
                        result.stopped_reason = (f"budget cap {fmt_usd(config.budget_usd)}: {fmt_usd(spent)} spent, "
                                                 f"next cell estimated {fmt_usd(c.est_cost_usd)}")  # fmt: skip
                        for rest in todo[i:]:
                            manifest.cells[rest.cell_id]["status"] = SKIPPED
                            manifest.cells[rest.cell_id]["error"] = {"kind": "budget", "evalue": result.stopped_reason}
                            result.not_run.append(rest.cell_id)
                        manifest.save()
                        echo(f"stopping: {result.stopped_reason}")
                        break
                    if i and config.cooldown_s:
                        time.sleep(config.cooldown_s)
                    if emulator is not None:
                        endpoint = emulator.at_level(c.background_load)
                    ok = _run_one(c, plan, out_dir, source_nb, kernel, timeout, endpoint, manifest, bar)
                    if ok:
                        result.ran.append(c.cell_id)
                        spent += float(manifest.cells[c.cell_id].get("cost_usd") or 0.0)
                        same_failures = []
                        continue
                    result.failed.append(c.cell_id)
                    err = manifest.cells[c.cell_id].get("error") or {}
                    echo(f"cell {c.cell_id} failed ({err.get('kind')}: {err.get('ename')}: "
                         f"{str(err.get('evalue', ''))[:300]})")  # fmt: skip
                    signature = f"{err.get('ename')}: {err.get('first_error') or err.get('evalue')}"
                    same_failures = [*same_failures, signature] if signature in same_failures[-1:] else [signature]
                    stop = None
                    if fail_fast:
                        stop = f"--fail-fast after {c.cell_id}"
                    elif len(same_failures) >= STOP_AFTER_SAME_FAILURES and i + 1 < len(todo):
                        stop = (f"{len(same_failures)} cells in a row failed with the same error, so the rest would "
                                f"too (target unreachable or a request every cell sends is wrong): {signature[:300]}")
                    if stop:
                        result.stopped_reason = stop
                        result.not_run = [r.cell_id for r in todo[i + 1 :]]
                        for rest_id in result.not_run:
                            manifest.cells[rest_id]["status"] = SKIPPED
                            manifest.cells[rest_id]["error"] = {"kind": "stopped", "evalue": stop}
                        manifest.save()
                        echo(f"stopping: {stop}")
                        break
            finally:
                bar.close()
        result.results_csv = write_results_csv(out_dir)
        result.wall_s = time.monotonic() - t_start
        echo(result.summary())
        return result


class _SearchBudget(Exception):
    """The next search level would pass the sweep's budget cap."""


def _run_search(
    config: SweepConfig, plan: Plan, out_dir: Path, manifest: Manifest, result: SweepResult, source_nb: Path | None,
    kernel: str, timeout: float | None, endpoint: Callable[[], str], echo: Callable[[str], None],
) -> None:  # fmt: skip
    """An SLO search (:mod:`bedrock_lab.sweep.search`): each level a cell run like a grid cell (manifest entry,
    fresh run id, papermill); a level done with the same parameters is read back (resume). Writes search.json."""
    from bedrock_lab.sweep.search import run_search

    bar = _LineBar(0, echo)
    ran: list[Cell] = []
    spent = [0.0]

    def run_level(c: Cell) -> Mapping[str, Any] | None:
        ran.append(c)
        params_hash = _params_hash(c.notebook_parameters())
        entry = manifest.cells.get(c.cell_id)
        summary_path = out_dir / "cells" / c.cell_id / SUMMARY
        if entry and entry.get("status") == DONE and entry.get("params_hash") == params_hash and summary_path.is_file():
            result.skipped.append(c.cell_id)
            spent[0] += float(entry.get("cost_usd") or 0.0)
            return dict(read_json(summary_path))
        if config.budget_usd is not None and spent[0] + c.est_cost_usd > config.budget_usd:
            raise _SearchBudget(f"budget cap {fmt_usd(config.budget_usd)}: {fmt_usd(spent[0])} spent, next level "
                                f"{c.cell_id} estimated {fmt_usd(c.est_cost_usd)}")  # fmt: skip
        manifest.cells[c.cell_id] = {
            "status": PENDING, "params_hash": params_hash, "attempts": (entry or {}).get("attempts", 0),
            "tier": c.tier, "prompt_size": c.prompt_size, "users": c.users, "rate_rps": c.rate_rps,
            "model_id": c.model_id, "est_cost_usd": c.est_cost_usd, "search_level": True,
        }  # fmt: skip
        if c.cell_id not in manifest.data["order"]:
            manifest.data["order"].append(c.cell_id)
        bar.total += 1
        ok = _run_one(c, plan, out_dir, source_nb, kernel, timeout, endpoint(), manifest, bar)
        (result.ran if ok else result.failed).append(c.cell_id)
        spent[0] += float(manifest.cells[c.cell_id].get("cost_usd") or 0.0)
        return dict(read_json(summary_path)) if ok else None

    try:
        outcome = run_search(config, run_level, echo=echo)
    except _SearchBudget as stop:
        result.stopped_reason = str(stop)
        result.not_run.append("the rest of the SLO search")
        echo(f"stopping: {stop}")
        return
    write_json_atomic(out_dir / SEARCH, outcome)
    levels = {c.cell_id: c for c in ran}
    write_json_atomic(out_dir / PLAN, {**plan.to_dict(), "cells": [c.to_dict() for c in levels.values()],
                                       "search": True})  # fmt: skip
    for g in outcome["groups"]:
        found = "none" if g["found"] is None else f"{g['found']:g}"
        echo(f"search {g['model_id']} {g['tier']} {g['prompt_size']}: highest {outcome['load']} meeting the SLO "
             f"{found} (bracket {g['bracket']}, {g['status']}, {len(g['levels'])} levels)")  # fmt: skip


class _OwnEmulator:
    """The emulator a sweep starts for itself, checked before every cell: if it died it is restarted once per
    death (with a message), and if it cannot be restarted the sweep stops with a clear error."""

    def __init__(self, config: SweepConfig, echo: Callable[[str], None], *, level: float | None = None) -> None:
        self.config, self.echo = config, echo
        self.stack = ExitStack()
        self.emu: Any = None
        self.restarts = 0
        self.level = level  #: the background load it runs at (grid.background_load; None: as configured)

    def _start(self) -> str:
        from bedrock_lab.emulator import run_emulator

        t = self.config.target
        overrides = dict(t.emulator_overrides)
        if self.level is not None:  # other customers at this cell's level: constant unless the sweep set a shape
            given = dict(overrides.get("background") or {})
            pattern = given.get("pattern", "none")
            overrides["background"] = {**given, "pattern": "constant" if pattern == "none" else pattern,
                                       "level": self.level}  # fmt: skip
        self.emu = self.stack.enter_context(run_emulator(seed=t.emulator_seed, mode="subprocess", **overrides))
        return str(self.emu.url)

    def at_level(self, level: float | None) -> str:
        """The emulator's URL for a cell at background ``level`` (None: any): restarted at a new level, so each
        level's cells meet the same seeded demand from a fresh start."""
        if level is None or level == self.level:
            return self.ensure_alive()
        self.stack.close()
        self.stack, self.level = ExitStack(), level
        url = self._start()
        self.echo(f"emulator restarted at {url} with background load {level:g}")
        return url

    def __enter__(self) -> _OwnEmulator:
        at = "" if self.level is None else f" with background load {self.level:g}"
        self.echo(f"emulator started at {self._start()}{at}")
        return self

    def ensure_alive(self) -> str:
        proc = self.emu.process
        if proc is None or proc.poll() is None:
            return str(self.emu.url)
        tail = "".join(self.emu.stderr_tail).strip()[-300:]
        self.echo(f"the sweep's emulator (pid {proc.pid}) died with exit code {proc.returncode}"
                  + (f": {tail}" if tail else "") + "; restarting it")  # fmt: skip
        self.restarts += 1
        try:
            url = self._start()
        except EmulatorError as exc:
            raise SweepError(f"the sweep's emulator died and could not be restarted: {exc}") from exc
        self.echo(f"emulator restarted at {url}")
        return url

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


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
    # a fresh run id per attempt, in the manifest before anything runs: the reader keeps only its records
    run_id = f"{cell.cell_id}.{int(entry.get('attempts', 0)) + 1}.{uuid.uuid4().hex[:6]}"
    manifest.update(cell.cell_id, status=RUNNING, started_at=now(), finished_at=None, error=None, run_id=run_id,
                    attempts=int(entry.get("attempts", 0)) + 1)  # fmt: skip
    t0 = time.monotonic()
    error: dict[str, Any] | None = None
    try:
        with _stderr_to(cell_dir / "kernel.log"):
            pm.execute_notebook(
                str(source_nb), str(cell_dir / CELL_NOTEBOOK),
                parameters={**_cell_notebook_params(cell, plan, cell_dir, endpoint), "run_id": run_id},
                kernel_name=kernel,
                progress_bar=False, log_output=False, cwd=str(cell_dir), execution_timeout=timeout,
                extra_arguments=list(KERNEL_ARGUMENTS),
                # the cell has written its records and summary: stop the kernel at once. "graceful" interrupts
                # it first, and an ipykernel interrupted while idle often ignores the shutdown request, so each
                # cell waited jupyter_client's shutdown_wait_time / 2 (2.5 s) for the SIGTERM that follows
                shutdown_kernel="immediate",
            )  # fmt: skip
    except (KeyboardInterrupt, SystemExit):
        manifest.update(cell.cell_id, status=PENDING, error={"kind": "interrupted"}, finished_at=now())
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
        partial = read_json(summary_path) if summary_path.is_file() else {}
        stats, health = partial.get("stats", {}), partial.get("health") or {}
        if health.get("first_error"):
            error["first_error"] = health["first_error"]
        manifest.update(cell.cell_id, status=FAILED, finished_at=now(), duration_s=duration, error=error,
                        requests=stats.get("requests"), ok=stats.get("ok"),
                        cost_usd=_failed_cost(cell, cell_dir, run_id, partial))  # fmt: skip
        return False
    summary = read_json(summary_path)
    stats = summary.get("stats", {})
    manifest.update(
        cell.cell_id, status=DONE, finished_at=now(), duration_s=duration, error=None,
        requests=stats.get("requests"), ok=stats.get("ok"), cost_usd=_actual_cost(cell, summary),
        **_stop_fields(summary),
    )  # fmt: skip
    return True


