"""Fixtures of the report tests: a synthetic sweep folder (seeded, plausible latencies), a built report, Chromium.

The synthetic sweep does not need the engines or the sweep runner: it writes RequestRecords with RecordWriter in
the layout of `outputs/<sweep>/` (cells/<cell_id>/records/*.parquet, plan.json, manifest.json, the sweep yaml).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bedrock_lab.records import RecordWriter, RequestRecord

MODELS = {"us.amazon.nova-lite-v1:0": 0.35, "us.anthropic.claude-3-haiku-20240307-v1:0": 0.55}
TIERS = {"default": 1.0, "priority": 0.75, "flex": 1.6}
PROMPTS = {"small": (300, 1.0), "large": (6000, 2.2)}
USERS = (1, 4, 16)


def write_synthetic_sweep(root: Path, *, requests_per_cell: int = 80, seed: int = 7) -> Path:
    """A 2 models x 3 tiers x 2 prompt sizes x 3 user counts sweep, with throttling on flex under load."""
    rng = np.random.default_rng(seed)
    cells = []
    t0 = 1_763_880_000.0
    for model, base in MODELS.items():
        for tier, tier_factor in TIERS.items():
            for size, (in_tokens, size_factor) in PROMPTS.items():
                for users in USERS:
                    short = "-".join(model.split(".")[2].split("-")[:2])
                    cell_id = f"{short}-{tier}-{size}-u{users}"
                    cells.append({"cell_id": cell_id, "model_id": model, "tier": tier, "prompt_size": size,
                                  "users": users, "requests": requests_per_cell})
                    load = 1 + 0.04 * (users - 1) ** 1.3  # queueing grows with users
                    median_ttft = base * tier_factor * size_factor * load
                    throttle_p = 0.08 if (tier == "flex" and users >= 16) else (0.01 if tier == "flex" else 0.0)
                    folder = root / "cells" / cell_id / "records"
                    clock = [t0] * users
                    with RecordWriter(folder, worker="w0") as writer:
                        for i in range(requests_per_cell):
                            u = i % users
                            start = clock[u]
                            tier_req = None if tier == "default" else tier
                            common = dict(run_id=f"run-{cell_id}", cell_id=cell_id, engine="burst", worker=f"u{u}",
                                          seq=i, api="converse-stream", model_id=model, tier_requested=tier_req,
                                          tier_served=tier, prompt_id=f"{size}-{i % 5}", prompt_size=size,
                                          users=users, rate_rps=None, intended_start=None, start=start,
                                          schedule_lag_s=None, input_tokens=in_tokens + int(rng.integers(0, 50)))
                            if rng.random() < throttle_p:
                                rec = RequestRecord(**common, ttft_s=None, e2e_s=float(rng.uniform(0.05, 0.2)),
                                                    status="error", error_kind="throttled",
                                                    error_code="ThrottlingException", http_status=429)
                            else:
                                ttft = float(rng.lognormal(np.log(median_ttft), 0.35))
                                out_tokens = int(rng.integers(120, 260))
                                itl = float(rng.lognormal(np.log(0.012 * tier_factor ** 0.5 * load ** 0.3), 0.15))
                                e2e = ttft + out_tokens * itl
                                rec = RequestRecord(**common, ttft_s=ttft, e2e_s=e2e, itl_mean_s=itl,
                                                    itl_p50_s=itl * 0.95, itl_p95_s=itl * 1.8, itl_max_s=itl * 4,
                                                    n_chunks=out_tokens // 4, output_tokens=out_tokens,
                                                    http_status=200, server_latency_s=e2e * 0.97)
                            clock[u] = start + (rec.e2e_s or 0.1) + 0.01
                            writer.add(rec)
    (root / "plan.json").write_text(json.dumps({"sweep": root.name, "cells": cells}, indent=1))
    (root / "manifest.json").write_text(json.dumps({
        "version": 1, "sweep": root.name, "source": "params/sweeps/synthetic.yaml", "seed": seed,
        "target": {"kind": "emulator", "region": "us-east-1", "profile": None, "emulator_seed": 0},
        "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:05:00Z",
        "cells": {c["cell_id"]: {"status": "done"} for c in cells},
    }, indent=1))
    (root / "sweep.yaml").write_text(
        "name: synthetic\ntarget: emulator\nmodels: [nova-lite, claude-haiku]\n"
        "tiers: [default, priority, flex]\nprompt_sizes: [small, large]\nusers: [1, 4, 16]\n"
        "slo:\n  ttft_s: 1.0\n  e2e_s: 10.0\n"
    )
    return root


@pytest.fixture(scope="session")
def synthetic_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_sweep(tmp_path_factory.mktemp("outputs") / "synthetic")


def _chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary; installs Debian's package when missing and we are root."""
    path = _chromium_path()
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed and installing it needs root (apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    import fcntl  # one installer at a time: `make test` runs the suite in parallel workers (pytest-xdist)

    with open(Path(tempfile.gettempdir()) / "bedrock-lab-chromium.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _chromium_path() is None:  # another worker may have installed it while this one waited
            for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
                if proc.returncode != 0:
                    pytest.skip(f"could not install Chromium ({' '.join(cmd)}): {proc.stderr[-500:]}")
    path = _chromium_path()
    if not path:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return path


@pytest.fixture(scope="session")
def analysis(synthetic_sweep: Path):  # type: ignore[no-untyped-def]
    """The statistics of the synthetic sweep (computed once)."""
    import warnings

    from bedrock_lab.stats import analyze, load_sweep_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(load_sweep_data(synthetic_sweep))
