"""The cell notebook explains its parameters (papermill --help-notebook / inspect_notebook)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import pytest
from _sweep_helpers import ROOT

from bedrock_lab.catalog import Catalog
from bedrock_lab.cli import main
from bedrock_lab.params import parse_sweep
from bedrock_lab.plan import build_plan
from bedrock_lab.sweep.runner import _cell_notebook_params

EXPECTED = {"cell_id", "model_id", "tier", "prompt_size", "users", "rate_rps", "duration_s", "requests", "out_dir",
            "target_kind", "endpoint_url", "region", "profile", "max_tokens", "seed", "engine", "api"}  # fmt: skip


def _ipynb(tmp_path: Path) -> Path:
    path = tmp_path / "cell.ipynb"
    nbformat.write(jupytext.read(ROOT / "notebooks" / "cell.py"), path)
    return path


def test_inspect_notebook_lists_typed_parameters_with_help(tmp_path: Path) -> None:
    params = pm.inspect_notebook(str(_ipynb(tmp_path)))
    assert set(params) >= EXPECTED
    for name, p in params.items():
        assert p["help"], f"parameter {name} has no help comment"
        assert p["inferred_type_name"] in ("str", "int", "float", "bool"), name
    assert params["users"]["inferred_type_name"] == "int"
    assert params["rate_rps"]["inferred_type_name"] == "float"
    # no credentials among the parameters
    assert not {n for n in params if "secret" in n or "key" in n or "token" in n and n != "max_tokens"}


def test_every_parameter_the_runner_injects_is_declared(tmp_path: Path, fake_catalog: Catalog) -> None:
    declared = set(pm.inspect_notebook(str(_ipynb(tmp_path))))
    data = {"name": "p", "grid": {"models": ["test.model-a-v1:0"], "users": [1]}, "cell": {"requests": 1}}
    plan = build_plan(parse_sweep(data, env={}, catalog=fake_catalog), catalog=fake_catalog)
    injected = set(_cell_notebook_params(plan.cells[0], plan, tmp_path, "http://127.0.0.1:1"))
    assert injected <= declared, f"undeclared: {injected - declared}"


def test_papermill_help_notebook_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from papermill.cli import papermill

    result = CliRunner().invoke(papermill, ["--help-notebook", str(_ipynb(tmp_path))])
    assert result.exit_code == 0, result.output
    for name in ("model_id", "tier", "users", "duration_s", "out_dir"):
        assert f"{name}: " in result.output
    assert "service tier" in result.output


def test_bedrock_lab_sweep_help_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--help-notebook"]) == 0
    assert "tier: str" in capsys.readouterr().out


#: the load of a cell run by hand: a notebook needs a concrete one, CellSpec has none
HAND_RUN_LOAD = {"users": 4, "duration_s": 3.0}


def test_the_notebook_declares_every_cell_setting_with_the_one_set_of_defaults(tmp_path: Path) -> None:
    from bedrock_lab.cellspec import DEFAULTS, CellSpec, notebook_parameters

    params = pm.inspect_notebook(str(_ipynb(tmp_path)))
    defaults = {name: eval(p["default"]) for name, p in params.items()}
    expected = {**notebook_parameters(CellSpec.model_construct(**DEFAULTS)), **HAND_RUN_LOAD}
    assert set(CellSpec.model_fields) <= set(defaults), "a CellSpec field is missing from notebooks/cell.py"
    wrong = {k: (defaults[k], v) for k, v in expected.items() if defaults[k] != v}
    assert not wrong, f"notebook default != bedrock_lab.cellspec default: {wrong}"
