"""Notebooks: jupytext py:percent sources that work wherever they are opened, and are all executed here.

Each notebook runs through papermill on the bedrock-lab kernel with a tiny load (1 s on the emulator), from the
repository root and from ``notebooks/`` (JupyterLab's kernel folder). Saving an unchanged notebook through
jupytext's contents manager (what JupyterLab does) must leave the file byte-identical.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pytest
from jupytext.formats import guess_format

from bedrock_lab.cli.notebooks import write_twin
from bedrock_lab.paths import project_root, resolve

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
EXPECTED = {"cell.py", "analysis.py", "explore.py", "sweep.py"}
KERNEL = "bedrock-lab"


def test_the_expected_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert names >= EXPECTED, f"missing notebooks: {EXPECTED - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_py_percent_on_the_project_kernel(path: Path) -> None:
    text = path.read_text()
    assert guess_format(text, ".py")[0] == "percent", f"{path.name} is not a jupytext py:percent notebook"
    nb = jupytext.reads(text, fmt="py:percent")
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    assert len(nb.cells) >= 2
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_headers_say_only_what_works(path: Path) -> None:
    """papermill reads .ipynb only: no header may tell a person to give it the .py file."""
    text = path.read_text()
    assert "papermill --help-notebook notebooks/" not in text
    assert not [w for w in text.split() if w.startswith("notebooks/") and w.rstrip("`.,;:)").endswith(".ipynb")]
    if "bedrock-lab notebooks --ipynb" in text:
        assert f"outputs/notebooks/{path.stem}.ipynb" in text


def test_no_ipynb_is_tracked_next_to_the_sources() -> None:
    proc = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [f for f in proc.stdout.split() if f.endswith(".ipynb")]


# ---------------------------------------------------------------- saving in JupyterLab changes nothing


def _save_through_jupyterlab(folder: Path, names: list[str]) -> None:
    """Open and save each notebook as JupyterLab does (jupytext's contents manager, the repo's config), after
    adding what a run in JupyterLab leaves behind: outputs, counts, run metadata, cell state."""
    from jupytext import AsyncTextFileContentsManager

    async def main() -> None:
        cm = AsyncTextFileContentsManager(root_dir=str(folder))
        for name in names:
            model = await cm.get(f"notebooks/{name}")
            nb = model["content"]
            nb.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0]}
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
            nb.metadata["papermill"] = {"parameters": {"users": 2}}
            for cell in nb.cells:
                cell.metadata["collapsed"] = False
                cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
                if cell.cell_type == "code":
                    cell.execution_count = 1
                    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            await cm.save(model, f"notebooks/{name}")

    asyncio.run(main())


def test_saving_an_unchanged_notebook_changes_nothing(tmp_path: Path) -> None:
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    _save_through_jupyterlab(tmp_path, [p.name for p in NOTEBOOKS])
    for src in NOTEBOOKS:
        saved = (tmp_path / "notebooks" / src.name).read_bytes()
        assert saved == src.read_bytes(), f"saving {src.name} changed it:\n{saved.decode()[:600]}"


def test_without_the_config_a_save_would_add_version_lines(tmp_path: Path) -> None:
    """The test above can fail: jupytext's defaults do write a jupytext_version into the header."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    _save_through_jupyterlab(tmp_path, ["cell.py"])
    assert "jupytext_version" in (tmp_path / "notebooks" / "cell.py").read_text()


# ---------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_root() == ROOT
    assert resolve("outputs/demo") == ROOT / "outputs" / "demo"
    assert resolve(tmp_path / "x") == tmp_path / "x"
    monkeypatch.chdir(ROOT / "notebooks")
    assert resolve("outputs/demo") == ROOT / "outputs" / "demo"


def test_the_cell_notebook_writes_inside_the_repository_by_default() -> None:
    nb = jupytext.read(ROOT / "notebooks" / "cell.py")
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict[str, Any] = {}
    exec(params.source, namespace)  # the parameters cell is plain assignments
    assert resolve(namespace["out_dir"]).is_relative_to(ROOT / "outputs")


# ---------------------------------------------------------------- papermill, as a user calls it


def test_ipynb_twins_work_with_papermill_directly(tmp_path: Path) -> None:
    """`bedrock-lab notebooks --ipynb` writes twins; `papermill --help-notebook` on one lists its parameters."""
    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "notebooks", "--ipynb", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT / "notebooks")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in tmp_path.glob("*.ipynb")} == {p.stem + ".ipynb" for p in NOTEBOOKS}
    assert "users: int = 4" in proc.stdout and "sweep_dir: str" in proc.stdout
    papermill = Path(sys.executable).with_name("papermill")
    help_ = subprocess.run([str(papermill), "--help-notebook", str(tmp_path / "cell.ipynb")],
                           capture_output=True, text=True)  # fmt: skip
    assert help_.returncode == 0, help_.stderr
    assert "out_dir: str" in help_.stdout and "Traceback" not in help_.stderr


def test_unknown_notebook_name_is_a_clean_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "notebooks", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown notebook" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- every notebook is executed


@pytest.fixture(scope="module")
def workspace() -> Iterator[str]:
    """A folder under the repo's outputs/ (git-ignored), named relative to the root as a person would."""
    rel = f"outputs/.test-notebooks-{uuid.uuid4().hex[:8]}"
    yield rel
    shutil.rmtree(ROOT / rel, ignore_errors=True)


def _execute(name: str, cwd: Path, tmp: Path, **parameters: Any) -> nbformat.NotebookNode:
    import papermill as pm

    twin = write_twin(ROOT / "notebooks" / f"{name}.py", tmp / "twins")
    out = tmp / f"{name}.{cwd.name}.ipynb"
    pm.execute_notebook(str(twin), str(out), parameters=parameters, kernel_name=KERNEL, cwd=str(cwd),
                        progress_bar=False, execution_timeout=240)  # fmt: skip
    return nbformat.read(out, as_version=4)


def _outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _stderr(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in _outputs(nb) if o.get("name") == "stderr")


def _has_chart(nb: nbformat.NotebookNode) -> bool:
    return any("text/html" in o.get("data", {}) and "bl-chart" in "".join(o["data"]["text/html"])
               for o in _outputs(nb))  # fmt: skip


@pytest.fixture(scope="module")
def cell_run(workspace: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, nbformat.NotebookNode]:
    """cell.py run from the repository root with a relative out_dir: a one-cell sweep folder in the workspace."""
    out_dir = f"{workspace}/cells/u2"
    nb = _execute("cell", ROOT, tmp_path_factory.mktemp("cell"), out_dir=out_dir, cell_id="u2", users=2,
                  duration_s=1.0)  # fmt: skip
    return out_dir, nb


@pytest.mark.slow
def test_cell_notebook_from_the_root_writes_inside_the_repository(cell_run: tuple[str, Any]) -> None:
    out_dir, nb = cell_run
    summary = json.loads((ROOT / out_dir / "summary.json").read_text())
    assert summary["stats"]["ok"] >= 1
    assert list((ROOT / out_dir / "records").glob("*.parquet"))
    assert not (ROOT.parent / out_dir).exists()
    assert _has_chart(nb), "the timeline chart (bedrock_lab.charts) is not drawn"
    table = next(o for o in _outputs(nb) if "text/plain" in o.get("data", {}) and "requests" in o["data"]["text/plain"])
    assert ".000000" not in "".join(table["data"]["text/plain"])  # counts read as integers


@pytest.mark.slow
@pytest.mark.parametrize("where", ["notebooks", "root"])
def test_analysis_notebook_runs_from_notebooks_and_from_the_root(
        where: str, workspace: str, cell_run: tuple[str, Any], tmp_path: Path) -> None:
    cwd = ROOT / "notebooks" if where == "notebooks" else ROOT
    out_dir = f"{workspace}/analysis-{where}"
    nb = _execute("analysis", cwd, tmp_path, sweep_dir=workspace, out_dir=out_dir, write_figures=False)
    assert (ROOT / out_dir / "tables").is_dir() and list((ROOT / out_dir / "tables").glob("*.csv"))
    assert not (cwd / out_dir).exists() or cwd == ROOT
    assert _has_chart(nb)


@pytest.mark.slow
def test_explore_notebook_from_notebooks(workspace: str, tmp_path: Path) -> None:
    out_dir = f"{workspace}/explore"
    nb = _execute("explore", ROOT / "notebooks", tmp_path, out_dir=out_dir, users=2, duration_s=1.0,
                  prompt_size="small", max_tokens=64)  # fmt: skip
    assert list((ROOT / out_dir / "records").glob("*.parquet"))
    stderr = _stderr(nb)
    assert "IProgress" not in stderr and "Warning" not in stderr, stderr
    assert _has_chart(nb), "no interactive chart from bedrock_lab.charts"
    texts = ["".join(o["data"]["text/plain"]) for o in _outputs(nb) if "text/plain" in o.get("data", {})]
    numbers = next(t for t in texts if "requests" in t and "error_rate" in t)
    assert ".000000" not in numbers
    requests = next(t for t in texts if "t_s" in t and "output_tokens" in t)
    assert "e+09" not in requests and "17" not in requests.split("\n")[1][:12]  # seconds since start, not epoch


@pytest.mark.slow
def test_sweep_notebook_dry_run_from_notebooks(tmp_path: Path) -> None:
    nb = _execute("sweep", ROOT / "notebooks", tmp_path)  # defaults: the demo sweep file, dry run
    text = "".join(o.get("text", "") for o in _outputs(nb))
    assert "demo" in text and "cells" in text, text[:2000]


@pytest.mark.slow
def test_sweep_notebook_runs_a_tiny_sweep_given_relative_paths(workspace: str, tmp_path: Path) -> None:
    (ROOT / workspace).mkdir(parents=True, exist_ok=True)
    (ROOT / workspace / "tiny.yaml").write_text(
        "name: tiny\ntarget:\n  kind: emulator\ngrid:\n  models: [amazon.nova-lite-v1:0]\n  tiers: [default]\n"
        "  prompt_sizes: [small]\n  users: [2]\ncell:\n  duration_s: 1\n  max_tokens: 32\n"
    )
    nb = _execute("sweep", ROOT / "notebooks", tmp_path, sweep_file=f"{workspace}/tiny.yaml",
                  out=f"{workspace}/sweeps", dry_run=False)  # fmt: skip
    assert (ROOT / workspace / "sweeps" / "tiny" / "results.csv").is_file()
    html = "".join("".join(o["data"].get("text/html", "")) for o in _outputs(nb) if "data" in o)
    assert "ttft_p50_s" in html and "done" in html, html[:2000]
