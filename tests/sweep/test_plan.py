"""The plan: grid expansion, stable ids, seeded order, and estimates that match a hand computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import ROOT

from bedrock_lab.catalog import Catalog
from bedrock_lab.errors import ConfigError
from bedrock_lab.params import load_sweep_config, parse_sweep
from bedrock_lab.plan import build_plan


def _cfg(fake: Catalog, **changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": "cost",
        "grid": {"models": ["test.model-a-v1:0"], "tiers": ["default", "flex"], "prompt_sizes": ["small", "large"],
                 "users": [2]},
        "cell": {"requests": 10, "duration_s": None, "max_tokens": 50},
        "estimates": {"input_tokens": {"small": 100, "large": 1000}, "e2e_s": 1.5, "cell_overhead_s": 8},
        "cooldown_s": 5,
    }  # fmt: skip
    for k, v in changes.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_sweep(data, source="cost.yaml", env={}, catalog=fake, check_catalog=True)


def test_cost_matches_a_hand_computation(fake_catalog: Catalog) -> None:
    plan = build_plan(_cfg(fake_catalog), catalog=fake_catalog)
    assert len(plan.cells) == 4
    # 10 requests per cell, 50 output tokens each; prices per 1k tokens (input, output):
    #   default (0.001, 0.002): small 10*(100*0.001 + 50*0.002)/1000 = 0.002, large 10*(1.0 + 0.1)/1000 = 0.011
    #   flex (0.0005, 0.001):   small 10*(0.05 + 0.05)/1000 = 0.001,        large 10*(0.5 + 0.05)/1000 = 0.0055
    by_tier = plan.cost_by_tier()
    assert by_tier["default"] == pytest.approx(0.013)
    assert by_tier["flex"] == pytest.approx(0.0065)
    assert plan.total_cost_usd == pytest.approx(0.0195)
    assert plan.total_requests == 40
    assert plan.total_input_tokens == 2 * 10 * (100 + 1000)
    assert plan.total_output_tokens == 40 * 50
    # wall time: closed loop, 10 requests by 2 users at 1.5 s each = 5 rounds = 7.5 s, + 8 s overhead per cell,
    # + 3 cooldowns of 5 s between 4 cells
    assert plan.wall_time_s == pytest.approx(4 * (7.5 + 8) + 3 * 5)


def test_counted_input_tokens_replace_the_local_estimate_and_reprice(fake_catalog: Catalog) -> None:
    from bedrock_lab.plan import INPUT_COUNTED, INPUT_LOCAL

    local = build_plan(_cfg(fake_catalog, estimates={"input_tokens": {}}), catalog=fake_catalog)
    assert {c.input_tokens_source for c in local.cells} == {INPUT_LOCAL}
    assert sorted(local.input_token_keys()) == [("test.model-a-v1:0", "large"), ("test.model-a-v1:0", "small")]
    counted = local.with_input_tokens({("test.model-a-v1:0", "small"): 100, ("test.model-a-v1:0", "large"): 1000},
                                      notes=["why"])  # fmt: skip
    # the same hand computation as above: the counts are the sweep file's numbers of the first test
    assert counted.cost_by_tier() == pytest.approx({"default": 0.013, "flex": 0.0065})
    assert {c.input_tokens_source for c in counted.cells} == {INPUT_COUNTED} and counted.notes[-1] == "why"
    assert [c.cell_id for c in counted.cells] == [c.cell_id for c in local.cells]  # same cells, same order
    # the sweep file's own numbers are not replaced by a count
    own = build_plan(_cfg(fake_catalog), catalog=fake_catalog)
    assert own.input_token_keys() == []
    assert own.with_input_tokens({("test.model-a-v1:0", "small"): 1}).total_cost_usd == pytest.approx(0.0195)


def test_duration_cells_estimate_requests(fake_catalog: Catalog) -> None:
    closed = build_plan(_cfg(fake_catalog, cell={"requests": None, "duration_s": 30}), catalog=fake_catalog)
    assert {c.expected_requests for c in closed.cells} == {2 * 30 / 1.5}
    open_loop = build_plan(
        _cfg(fake_catalog, grid={"users": [], "rates_rps": [2.0]}, cell={"requests": None, "duration_s": 30}),
        catalog=fake_catalog,
    )
    assert {c.expected_requests for c in open_loop.cells} == {60}
    assert {c.rate_rps for c in open_loop.cells} == {2.0}
    assert all(c.cell_id.endswith("_r2") for c in open_loop.cells)


def test_grid_ids_are_stable_and_order_is_seeded(fake_catalog: Catalog) -> None:
    cfg = _cfg(fake_catalog, grid={"users": [1, 2, 3], "repeats": 2})
    a = build_plan(cfg, catalog=fake_catalog)
    b = build_plan(cfg, catalog=fake_catalog)
    assert [c.cell_id for c in a.cells] == [c.cell_id for c in b.cells]
    assert len({c.cell_id for c in a.cells}) == len(a.cells) == 2 * 2 * 3 * 2
    assert [c.grid_index for c in a.cells] != sorted(c.grid_index for c in a.cells)  # shuffled
    other = build_plan(_cfg(fake_catalog, grid={"users": [1, 2, 3], "repeats": 2}, order={"seed": 99}),
                       catalog=fake_catalog)  # fmt: skip
    assert {c.cell_id for c in other.cells} == {c.cell_id for c in a.cells}
    assert [c.cell_id for c in other.cells] != [c.cell_id for c in a.cells]
    ordered = build_plan(_cfg(fake_catalog, order={"randomize": False}), catalog=fake_catalog)
    assert [c.grid_index for c in ordered.cells] == list(range(4))
    # per-cell seeds depend on the id, not on the position
    seeds = {c.cell_id: c.seed for c in a.cells}
    assert seeds == {c.cell_id: c.seed for c in b.cells}
    assert "test.model-a-v1-0_flex_large_u3_rep2" in seeds


def test_only_selects_cells(fake_catalog: Catalog) -> None:
    plan = build_plan(_cfg(fake_catalog), catalog=fake_catalog)
    assert {c.tier for c in plan.select(["flex"]).cells} == {"flex"}
    assert len(plan.select(["*_large_*"]).cells) == 2
    with pytest.raises(ConfigError, match="matches no cell"):
        plan.select(["nothing-like-this"])


def test_default_sweep_is_the_seeds_grid() -> None:
    cfg = load_sweep_config(ROOT / "params" / "sweeps" / "default.yaml", env={})
    plan = build_plan(cfg)
    assert len(plan.cells) == 27
    assert {c.tier for c in plan.cells} == {"default", "priority", "flex"}
    assert {c.prompt_size for c in plan.cells} == {"small", "medium", "large"}
    assert {c.users for c in plan.cells} == {30, 60, 90}
    assert {c.region_prefix for c in plan.cells} == {"us."}
    assert all(c.model_id.startswith("us.") for c in plan.cells)
    by_tier = plan.cost_by_tier()
    assert by_tier["flex"] < by_tier["default"] < by_tier["priority"]
    text = plan.describe()
    assert "27" in text and "est. cost" in text and "wall time" in text


def test_plan_json_round_trip(fake_catalog: Catalog, tmp_path: Path) -> None:
    import json

    plan = build_plan(_cfg(fake_catalog), catalog=fake_catalog)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["totals"]["cost_usd"] == pytest.approx(0.0195)
    assert [c["cell_id"] for c in data["cells"]] == [c.cell_id for c in plan.cells]
