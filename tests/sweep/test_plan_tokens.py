"""The plan's input tokens are what the target bills: on the demo sweep the local estimate matches the emulator's
billed ``input_tokens`` in real burst records within 1%; against an AWS-marked endpoint (the emulator on loopback,
no real AWS) CountTokens replaces the estimate, and where it is refused or unreachable the local estimate stays
and the plan text says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import FAST

from bedrock_lab.params import (
    estimate_input_tokens,
    estimate_request_tokens,
    load_sweep_config,
    parse_sweep,
    repo_root,
)
from bedrock_lab.plan import INPUT_COUNTED, INPUT_LOCAL, INPUT_SWEEP_FILE, Plan, build_plan

DEMO = repo_root() / "params" / "sweeps" / "demo.yaml"


@pytest.fixture(scope="module")
def demo_plan() -> Plan:
    """The demo sweep's cell settings (workload, API, max_tokens) on the grid these tests pin: one Nova model
    with small and large prompts (the demo itself compares two Claude models on small prompts)."""
    cfg = load_sweep_config(DEMO, env={})
    grid = cfg.grid.model_copy(update={"models": ["amazon.nova-2-lite-v1:0"], "prompt_sizes": ["small", "large"]})
    return build_plan(cfg.model_copy(update={"grid": grid}))


def _per_size(plan: Plan) -> dict[tuple[str, str], float]:
    return {(c.model_id, c.prompt_size): c.input_tokens_per_request for c in plan.cells}


def test_demo_plan_input_tokens_are_what_the_emulator_bills(demo_plan: Plan, emu: Any, tmp_path: Path) -> None:
    """Real burst runs of each demo prompt size: every prompt of the size is billed, and the uniform mean over
    the prompts (what the engine draws from) equals the plan's tokens per request within 1%."""
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync
    from bedrock_lab.engines.workloads import load_workload

    cfg = demo_plan.config
    assert {c.input_tokens_source for c in demo_plan.cells} == {INPUT_LOCAL}
    for (model_id, size), planned in _per_size(demo_plan).items():
        spec = BurstSpec(model_id, api=cfg.cell.api, tier="default", workload=cfg.cell.workload, prompt_size=size,
                         users=4, requests=24, max_tokens=4, seed=11)  # fmt: skip
        df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path / size, progress=False).records()
        ok = df[df["status"] == "ok"]
        assert len(ok) == 24
        billed = ok.groupby("prompt_id")["input_tokens"].agg(["min", "max"])
        assert (billed["min"] == billed["max"]).all()  # one prompt, one count
        prompts = {item.prompt_id for item in load_workload(cfg.cell.workload, size)._items}
        assert set(billed.index) == prompts, "every prompt of the size was sent"
        mean_billed = float(billed["min"].mean())
        assert abs(planned / mean_billed - 1) <= 0.01, (size, planned, mean_billed)
    assert _per_size(demo_plan) == pytest.approx({("us.amazon.nova-2-lite-v1:0", "small"): 28 / 3,
                                                  ("us.amazon.nova-2-lite-v1:0", "large"): 287.0})  # fmt: skip


@pytest.mark.parametrize(("workload", "size"), [
    ("single", "small"), ("single", "medium"), ("single", "large"), ("summarise", "small"), ("mix", "small"),
    ("chat", "small"), ("cached", "small"), ("agent", "small"),
])  # fmt: skip
def test_the_local_estimate_counts_the_requests_the_engines_build(workload: str, size: str) -> None:
    """params reads the prompt files, the engines build the requests: both give the same mean token count of
    the first turn's texts (what CountTokens is asked; an agent's later turns and tool specs come on top)."""
    from bedrock_lab.engines.preflight import workload_requests
    from bedrock_lab.engines.workloads import load_workload
    from bedrock_lab.tokens import count_request

    reqs = workload_requests(load_workload(workload, size), answer_tokens=50)
    assert sum(share for _, share in reqs) == pytest.approx(1.0)
    engines = sum(share * count_request(item.system, item.turns) for item, share in reqs)
    local = estimate_request_tokens(workload, size, answer_tokens=50)
    assert local is not None and local.counted == pytest.approx(engines)
    assert estimate_input_tokens(workload, size, answer_tokens=50) == local.total
    assert (local.total > local.counted) == (workload == "agent")


def test_count_tokens_on_an_aws_marked_endpoint_replaces_the_estimate(demo_plan: Plan, emu: Any) -> None:
    from bedrock_lab.engines import Target
    from bedrock_lab.sweep.runner import count_plan_tokens

    counted = count_plan_tokens(demo_plan, Target.aws("us-east-1", endpoint_url=emu.url))
    assert {c.input_tokens_source for c in counted.cells} == {INPUT_COUNTED}
    assert _per_size(counted) == pytest.approx(_per_size(demo_plan))  # the emulator bills the local estimate
    assert counted.total_cost_usd == pytest.approx(demo_plan.total_cost_usd)
    text = counted.describe()
    assert "small 9.3, large 287: counted by CountTokens" in text and INPUT_LOCAL not in text
    assert "small 9.3, large 287: local estimate" in demo_plan.describe()


def test_count_tokens_counts_the_invoke_body_the_local_estimate_cannot(emu: Any, tmp_path: Path) -> None:
    """A flat-prompt format (Titan) over InvokeModel carries role labels: the local estimate is lower and says
    so, CountTokens counts them, and the count is what a real invoke request is billed."""
    import boto3

    from bedrock_lab.engines import Target
    from bedrock_lab.engines.formats import build_request
    from bedrock_lab.engines.workloads import load_workload
    from bedrock_lab.sweep.runner import count_plan_tokens

    model = "amazon.titan-text-express-v1"
    data = {"name": "titan", "grid": {"models": [model], "tiers": ["default"], "prompt_sizes": ["large"],
                                      "users": [1]},
            "cell": {"api": "invoke", "duration_s": 2, "max_tokens": 16}}  # fmt: skip
    plan = build_plan(parse_sweep(data, source="titan.yaml", env={}))
    assert any("role labels" in n for n in plan.notes)
    counted = count_plan_tokens(plan, Target.aws("us-east-1", endpoint_url=emu.url))
    n_counted, n_local = counted.cells[0].input_tokens_per_request, plan.cells[0].input_tokens_per_request
    assert n_counted > n_local

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=emu.url)
    billed = []
    for item in load_workload("single", "large")._items:
        prep = build_request("invoke", model, item.turns, system=item.system, max_tokens=4)
        response = client.invoke_model(**prep.boto3_kwargs)
        billed.append(int(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]))
    assert n_counted == pytest.approx(sum(billed) / len(billed))


def test_where_count_tokens_is_refused_or_unreachable_the_local_estimate_stays_and_says_why(
    demo_plan: Plan,
) -> None:
    from bedrock_lab.catalog import Catalog, load_catalog
    from bedrock_lab.emulator import run_emulator
    from bedrock_lab.engines import Target
    from bedrock_lab.sweep.runner import count_plan_tokens

    full = load_catalog()
    without = Catalog({k: v for k, v in full.models.items() if k != "amazon.nova-2-lite-v1:0"}, source="subset")
    with run_emulator(seed=0, mode="thread", catalog=without, latency=FAST) as other:  # a model it does not serve
        refused = count_plan_tokens(demo_plan, Target.aws("us-east-1", endpoint_url=other.url))
    unreachable = count_plan_tokens(demo_plan, Target.aws("us-east-1", endpoint_url="http://127.0.0.1:9"))
    for plan, why in ((refused, "CountTokens refused amazon.nova-2-lite-v1:0: "),
                      (unreachable, "CountTokens failed: EndpointConnectionError")):  # fmt: skip
        assert {c.input_tokens_source for c in plan.cells} == {INPUT_LOCAL}
        assert _per_size(plan) == _per_size(demo_plan)
        text = plan.describe()
        assert "local estimate" in text and why in text, text
        assert sum(why in n for n in plan.notes) == 1  # one note per model, not per cell


def test_the_sweep_files_own_estimate_wins_over_a_count(emu: Any) -> None:
    from bedrock_lab.engines import Target
    from bedrock_lab.sweep.runner import count_plan_tokens

    data = {"name": "own", "grid": {"models": ["amazon.nova-lite-v1:0"], "tiers": ["default"],
                                    "prompt_sizes": ["small", "large"], "users": [1]},
            "cell": {"duration_s": 2, "max_tokens": 16}, "estimates": {"input_tokens": {"small": 50}}}  # fmt: skip
    plan = count_plan_tokens(build_plan(parse_sweep(data, source="own.yaml", env={})),
                             Target.aws("us-east-1", endpoint_url=emu.url))  # fmt: skip
    by_size = {c.prompt_size: c for c in plan.cells}
    assert by_size["small"].input_tokens_source == INPUT_SWEEP_FILE and by_size["small"].input_tokens_per_request == 50
    assert by_size["large"].input_tokens_source == INPUT_COUNTED
    assert plan.to_dict()["cells"][0]["input_tokens_source"] in (INPUT_SWEEP_FILE, INPUT_COUNTED)


def test_the_preflight_prices_with_count_tokens(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from bedrock_lab.engines import BurstSpec, Target
    from bedrock_lab.engines.preflight import preflight

    spec = BurstSpec(model_id="us.amazon.nova-2-lite-v1:0", prompt_size="large", users=2, requests=10)
    res = preflight(spec, Target.aws("us-east-1", endpoint_url=emu.url), yes=True)
    assert res.probed and res.input_tokens is not None and res.input_tokens.counted
    assert res.input_tokens.tokens == pytest.approx(287.0)
    assert "input tokens ~287.0 per request, counted by CountTokens" in capsys.readouterr().out
    quiet = preflight(spec, Target.aws("us-east-1", endpoint_url=emu.url), yes=True, probe=False)
    assert quiet.input_tokens is not None and not quiet.input_tokens.counted
    assert quiet.input_tokens.tokens == pytest.approx(287.0) and quiet.est_cost_usd == pytest.approx(res.est_cost_usd)


def test_the_preflight_prices_an_agent_run_as_the_plan_does(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Every turn of an agent task (tool specs on each, the tool round), not only the first one CountTokens sees:
    a single AWS run and a sweep cell of the same settings are priced on the same input tokens per request."""
    from bedrock_lab.engines import BurstSpec, Target
    from bedrock_lab.engines.preflight import count_inputs, preflight
    from bedrock_lab.sweep.runner import count_plan_tokens

    target = Target.aws("us-east-1", endpoint_url=emu.url)
    spec = BurstSpec(model_id="us.amazon.nova-2-lite-v1:0", workload="agent", users=2, requests=10, max_tokens=64)
    data = {"name": "agent", "target": {"kind": "aws"},
            "grid": {"models": ["amazon.nova-2-lite-v1:0"], "region_prefixes": ["us."], "tiers": ["default"],
                     "users": [2]},
            "cell": {"workload": "agent", "requests": 10, "duration_s": None, "max_tokens": 64}}  # fmt: skip
    config = parse_sweep(data, source="agent.yaml", env={})
    for counted in (True, False):
        res = preflight(spec, target, yes=True, probe=False, count_tokens=counted)
        plan = build_plan(config)
        (cell,) = (count_plan_tokens(plan, target) if counted else plan).cells
        assert res.input_tokens is not None and res.input_tokens.counted == counted
        assert res.input_tokens.tokens == pytest.approx(cell.input_tokens_per_request)
    first_turns = count_inputs(target, [(spec.model_id, "small")], workload="agent", api=spec.api, max_tokens=64)
    assert res.input_tokens.tokens > 3 * first_turns[spec.model_id, "small"].tokens  # what was priced before
    assert "of tool specs and later turns by the local estimate" in capsys.readouterr().out


def test_the_token_estimate_examples_run() -> None:
    import doctest

    from bedrock_lab import token_estimate

    result = doctest.testmod(token_estimate)
    assert result.attempted >= 2 and result.failed == 0
