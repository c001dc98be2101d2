"""Coming from the public AWS tier-sweep sample (run_tests.py + locustfile.py + prompts.json): its command line and
its prompts.json run through ``bedrock-lab sweep --dry-run``; its environment variables are honoured or named in a
warning; a bad value is one precise ConfigError naming the flag (docs/migration.md)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import ROOT

from bedrock_lab.cli import build_parser, main
from bedrock_lab.cli.sweep import build_config
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync
from bedrock_lab.engines.workloads import load_workload
from bedrock_lab.errors import ConfigError
from bedrock_lab.params import ENV_OVERRIDES, SAMPLE_LOCUST_ENV, estimate_input_tokens
from bedrock_lab.plan import build_plan
from bedrock_lab.prompts import read_prompt_file
from bedrock_lab.records import load_records
from bedrock_lab.tokens import count_request

#: the sample's prompts.json format: one prompt per size, {"text", "description"}
SAMPLE_PROMPTS = {
    "small": {"text": "What is the capital of France?", "description": "Small prompt (~5 words)"},
    "medium": {"text": "Explain how a load balancer spreads requests over servers, and name two algorithms it "
                       "can use to pick the server for each new request, with one weakness of each.",
               "description": "Medium prompt (~40 words)"},
    "large": {"text": " ".join(["Review this migration plan for a support chatbot and list its risks."] * 12),
              "description": "Large prompt (~150 words)"},
}  # fmt: skip

#: the sample's README example command lines, combined (every flag it has but --yes)
SAMPLE_ARGS = ["--model-id", "amazon.nova-2-lite-v1:0", "--region-prefixes", "us", "--service-tiers", "priority,flex",
               "--prompt-sizes", "small,large", "--user-counts", "30,60", "--test-duration", "30s",
               "--spawn-rate", "10", "--max-tokens", "4096", "--include-failures"]  # fmt: skip

SAMPLE_ENV = ("RESULTS_DIR", "INCLUDE_FAILURES", "PROMPTS_FILE", *SAMPLE_LOCUST_ENV, "AWS_REGION", "AWS_DEFAULT_REGION")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No override from the developer's shell; the working folder is the test's (as the sample's folder is)."""
    for var in (*ENV_OVERRIDES, *SAMPLE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def prompts_json(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(SAMPLE_PROMPTS, indent=2))
    return path


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["sweep", *argv])


def _config(*argv: str, env: dict[str, str] | None = None) -> tuple[Any, str, list[str]]:
    warnings: list[str] = []
    config, out = build_config(_args(*argv), env or {}, warnings.append)
    return config, out, warnings


# ------------------------------------------------------------------------------------ the sample's command line


def test_the_sample_command_line_and_prompts_json_dry_run(prompts_json: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    results = tmp_path / "test_results" / "nova_run"
    rc = main(["sweep", *SAMPLE_ARGS, "--prompts-file", "prompts.json", "--results-dir", str(results), "--dry-run"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Traceback" not in out + err
    # the plan: 1 model x 2 tiers x 2 sizes x 2 user counts, max_tokens 4096, 30 s of load + the cell overhead
    assert "sweep 'nova_run'" in out
    assert "cells       : 8 " in out
    assert "max_tokens 4096" in out
    cells = sorted(line.split()[1] for line in out.splitlines() if line.strip()[:1].isdigit() and "users" in line)
    assert cells == sorted(f"us.amazon.nova-2-lite-v1-0_{t}_{s}_u{u}" for t in ("priority", "flex")
                           for s in ("small", "large") for u in (30, 60))  # fmt: skip
    assert all(" 40s" in line for line in out.splitlines() if "_u30 " in line or "_u60 " in line)
    assert "command line: cell.duration_s = 30.0 (--test-duration 30s)" in out
    assert "command line: cell.ramp_s = 6.0 (--spawn-rate 10)" in out  # 60 users at 10 per second
    assert f"command line: cell.workload = '{prompts_json}' (--prompts-file prompts.json)" in out
    assert "input/req   : small 9.3" not in out  # the sample's prompts are counted, not ours
    assert "--include-failures" in err and "summarize(records, include_failures=True)" in err
    assert not results.exists()  # a dry run writes nothing


def test_the_sample_command_line_builds_the_typed_sweep(prompts_json: Path, tmp_path: Path) -> None:
    config, out, warnings = _config(*SAMPLE_ARGS, "--prompts-file", str(prompts_json),
                                    "--results-dir", str(tmp_path / "test_results" / "nova_run"))  # fmt: skip
    assert (config.name, out) == ("nova_run", str(tmp_path / "test_results"))
    assert config.source.endswith("params/sweeps/default.yaml")  # the sample's grid is our default.yaml
    assert config.grid.models == ["amazon.nova-2-lite-v1:0"] and config.grid.region_prefixes == ["us."]
    assert (config.grid.tiers, config.grid.prompt_sizes, config.grid.users) == (["priority", "flex"],
                                                                              ["small", "large"], [30, 60])
    assert (config.cell.duration_s, config.cell.max_tokens, config.cell.ramp_s) == (30.0, 4096, 6.0)
    assert config.cell.workload == str(prompts_json)
    assert any("--include-failures" in w for w in warnings)

    plan = build_plan(config)
    assert len(plan.cells) == 8
    assert {(c.model_id, c.tier, c.prompt_size, c.users) for c in plan.cells} == {
        ("us.amazon.nova-2-lite-v1:0", t, s, u) for t in ("priority", "flex") for s in ("small", "large") for u in (30, 60)
    }
    assert {(c.spec.duration_s, c.spec.max_tokens, c.spec.ramp_s) for c in plan.cells} == {(30.0, 4096, 6.0)}
    large = SAMPLE_PROMPTS["large"]["text"]
    assert {c.input_tokens_per_request for c in plan.cells if c.prompt_size == "large"} == {
        float(count_request(None, [("user", large)]))}


def test_without_a_file_the_sample_defaults_grid_with_our_defaults_stated(tmp_path: Path) -> None:
    config, out, _ = _config("--user-counts", "10")
    assert (config.name, out) == ("test_results", "outputs")
    assert config.grid.tiers == ["default", "priority", "flex"]  # the sample's defaults: every tier and size
    assert config.grid.prompt_sizes == ["small", "medium", "large"] and config.grid.region_prefixes == ["us."]
    assert (config.cell.duration_s, config.cell.max_tokens, config.cell.ramp_s) == (60.0, 256, 0.0)  # ours
    assert config.target.kind == "emulator"
    # the sample's default model and max_tokens are valid here too
    config, _, _ = _config("--model-id", "amazon.nova-premier-v1:0", "--max-tokens", "4096", "--user-counts", "10")
    assert config.grid.models == ["amazon.nova-premier-v1:0"] and config.cell.max_tokens == 4096


def test_flags_override_the_file_and_the_environment(tmp_path: Path) -> None:
    demo = str(ROOT / "params" / "sweeps" / "demo.yaml")
    config, out, _ = _config(demo, "--user-counts", "2,3", env={"USER_COUNTS": "7", "SERVICE_TIERS": "flex"})
    assert config.grid.users == [2, 3]  # flag over environment over file
    assert config.grid.tiers == ["flex"]  # environment over file
    assert config.grid.prompt_sizes == ["small"] and config.name == "demo" and out == "outputs"
    config, _, _ = _config(demo, "--name", "mine", "--out", str(tmp_path))
    assert config.name == "mine"


# ------------------------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(("argv", "flag", "fragment"), [
    (["--user-counts", "30,x"], "--user-counts", "cannot parse '30,x'"),
    (["--user-counts", "0"], "--user-counts", "must be >= 1"),
    (["--user-counts", "30,30"], "--user-counts", "duplicate value 30"),
    (["--service-tiers", "default,bogus"], "--service-tiers", "does not offer service tier 'bogus'"),
    (["--region-prefixes", "mars"], "--region-prefixes", "unknown region prefix"),
    (["--prompt-sizes", "small,huge"], "--prompt-sizes", "unknown prompt size 'huge'"),
    (["--test-duration", "0"], "--test-duration", "needs a stopping rule"),
    (["--test-duration", "soon"], "--test-duration", "not a duration"),
    (["--max-tokens", "0"], "--max-tokens", "must be >= 1"),
    (["--max-tokens", "999999"], "--max-tokens", "more than amazon.nova-2-lite-v1:0 can produce"),
    (["--spawn-rate", "0"], "--spawn-rate", "must be > 0"),
    (["--model-id", "amazon.nova-ultra-v9:0"], "--model-id", "unknown model"),
    (["--results-dir", "runs/bad name!"], "--results-dir", "a sweep name is letters"),
    (["--prompts-file", "missing.json"], "--prompts-file", "prompt file not found"),
    (["--target", "moon"], "--target", "not one of the allowed values"),
])  # fmt: skip
def test_a_bad_flag_is_one_precise_error(argv: list[str], flag: str, fragment: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(ConfigError) as info:
        _config(*argv)
    assert (info.value.source, info.value.key) == ("command line", flag)
    assert fragment in str(info.value)
    assert main(["sweep", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"error: command line: {flag}: " in err and fragment in err and "Traceback" not in err


@pytest.mark.parametrize(("content", "key", "fragment"), [
    ({"small": {"description": "no text"}}, "small.text", "needs a non-empty text"),
    ({"small": {"text": "  "}}, "small.text", "needs a non-empty text"),
    ({}, None, "maps each prompt size"),
    ([1, 2], None, "maps each prompt size"),
])  # fmt: skip
def test_a_malformed_prompts_json_names_the_file_and_the_size(tmp_path: Path, content: Any, key: str | None,
                                                              fragment: str) -> None:  # fmt: skip
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as inner:
        read_prompt_file(path)
    assert (inner.value.source, inner.value.key) == (str(path), key) and fragment in str(inner.value)
    with pytest.raises(ConfigError) as info:
        _config("--prompts-file", str(path))
    assert info.value.key == "--prompts-file" and str(path) in str(info.value) and fragment in str(info.value)


def test_invalid_json_and_duplicate_keys_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"small": {"text": "a"},}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_prompt_file(broken)
    twice = tmp_path / "twice.json"
    twice.write_text('{"small": {"text": "a"}, "small": {"text": "b"}}')
    with pytest.raises(ConfigError, match="duplicate key 'small'"):
        read_prompt_file(twice)


# -------------------------------------------------------------------------------------- environment variables


def test_results_dir_is_honoured_and_out_replaces_its_parent(tmp_path: Path) -> None:
    env = {"RESULTS_DIR": str(tmp_path / "test_results" / "baseline_run")}
    config, out, warnings = _config("--user-counts", "5", env=env)
    assert (config.name, out, warnings) == ("baseline_run", str(tmp_path / "test_results"), [])
    config, out, warnings = _config("--user-counts", "5", "--out", str(tmp_path / "o"), env=env)
    assert (config.name, out) == ("baseline_run", str(tmp_path / "o"))
    assert len(warnings) == 1 and "RESULTS_DIR" in warnings[0] and "--out" in warnings[0]
    # a sweep file too: RESULTS_DIR names its folder, like the sample's
    config, out, _ = _config(str(ROOT / "params" / "sweeps" / "demo.yaml"), env=env)
    assert (config.name, out) == ("baseline_run", str(tmp_path / "test_results"))
    with pytest.raises(ConfigError) as info:
        _config("--results-dir", "a/b", "--out", "c")
    assert info.value.key == "--results-dir" and "give one" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _config("--user-counts", "5", env={"RESULTS_DIR": "runs/bad name!"})
    assert (info.value.source, info.value.key) == ("environment variable", "RESULTS_DIR")
    assert "a sweep name is letters" in str(info.value)
    from bedrock_lab.params import load_sweep_config

    python_api = load_sweep_config(ROOT / "params" / "sweeps" / "demo.yaml", env=env)  # the command's variable only
    assert python_api.name == "demo"


def test_prompts_file_is_honoured_and_a_stray_prompts_json_is_named(prompts_json: Path) -> None:
    config, _, warnings = _config("--user-counts", "5", env={"PROMPTS_FILE": "prompts.json"})
    assert config.cell.workload == str(prompts_json) and warnings == []
    config, _, warnings = _config("--user-counts", "5")  # the sample's locustfile would read ./prompts.json
    assert config.cell.workload == "single"
    assert len(warnings) == 1 and "./prompts.json is not used" in warnings[0] and "--prompts-file" in warnings[0]


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_include_failures_true_is_a_warning_that_says_what_to_do(value: str) -> None:
    _, _, warnings = _config("--user-counts", "5", env={"INCLUDE_FAILURES": value})
    assert len(warnings) == 1 and warnings[0].startswith(f"INCLUDE_FAILURES={value}: ")
    assert "include_failures=True" in warnings[0]


def test_include_failures_false_is_our_behaviour_and_garbage_is_an_error() -> None:
    assert _config("--user-counts", "5", env={"INCLUDE_FAILURES": "false"})[2] == []
    with pytest.raises(ConfigError) as info:
        _config("--user-counts", "5", env={"INCLUDE_FAILURES": "sometimes"})
    assert info.value.key == "INCLUDE_FAILURES" and info.value.allowed == "true or false"


@pytest.mark.parametrize(("var", "instead"), [("REGION_PREFIX", "--region-prefixes"),
                                              ("SERVICE_TIER", "--service-tiers"),
                                              ("PROMPT_SIZE", "--prompt-sizes")])  # fmt: skip
def test_the_locustfile_variables_are_named_with_what_to_use(var: str, instead: str) -> None:
    config, _, warnings = _config("--user-counts", "5", env={var: "flex"})
    assert len(warnings) == 1 and warnings[0].startswith(f"{var}=flex is not read by a sweep") and instead in warnings[0]
    assert config.grid.tiers == ["default", "priority", "flex"]  # not applied


def test_the_sample_variables_through_the_real_command(prompts_json: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_OVERRIDES, *SAMPLE_ENV)}
    env.update(BASE_MODEL_ID="amazon.nova-2-lite-v1:0", REGION_PREFIXES="us", USER_COUNTS="30,60,90",
               MAX_TOKENS="2048", INCLUDE_FAILURES="true", RESULTS_DIR=str(tmp_path / "test_results" / "baseline"),
               PROMPTS_FILE=str(prompts_json), SERVICE_TIER="priority")  # the sample's README example, plus two
    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "sweep", "--service-tiers", "default",
                           "--prompt-sizes", "small", "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sweep 'baseline'" in proc.stdout and "cells       : 3 " in proc.stdout and "max_tokens 2048" in proc.stdout
    cells = {line.split()[1] for line in proc.stdout.splitlines() if line.strip()[:1].isdigit() and "users" in line}
    assert cells == {f"us.amazon.nova-2-lite-v1-0_default_small_u{u}" for u in (30, 60, 90)}
    assert "warning: INCLUDE_FAILURES=true" in proc.stderr and "warning: SERVICE_TIER=priority" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_target_aws_takes_the_region_the_sample_would(tmp_path: Path) -> None:
    config, _, _ = _config("--user-counts", "5", "--target", "aws", env={"AWS_DEFAULT_REGION": "us-west-2"})
    assert (config.target.kind, config.target.region) == ("aws", "us-west-2")
    config, _, _ = _config("--user-counts", "5", "--target", "aws", "--region", "eu-west-1",
                           env={"AWS_DEFAULT_REGION": "us-west-2"})  # fmt: skip
    assert config.target.region == "eu-west-1"


def test_no_file_and_no_flag_still_asks_which_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep"]) == 2
    assert "which sweep?" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- prompts.json at work


def test_prompts_json_is_a_single_workload_sent_as_written(prompts_json: Path, tmp_path: Path) -> None:
    work = load_workload(str(prompts_json), "medium")
    assert work.kind == "single"
    item = work.draw(__import__("random").Random(0))
    assert (item.prompt_id, item.prompt_size, item.turns) == ("medium", "medium",
                                                              [("user", SAMPLE_PROMPTS["medium"]["text"])])
    with pytest.raises(ConfigError, match="unknown prompt size"):
        load_workload(str(prompts_json), "huge")
    expected = count_request(None, [("user", SAMPLE_PROMPTS["small"]["text"])])
    assert estimate_input_tokens(str(prompts_json), "small") == expected

    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0) as emu:  # real boto3-shaped requests over HTTP, billed by the emulator
        spec = BurstSpec("us.amazon.nova-2-lite-v1:0", workload=str(prompts_json), prompt_size="small",
                         users=2, requests=6, max_tokens=16, seed=1)  # fmt: skip
        result = run_burst_sync(spec, Target.emulator(emu.url), tmp_path / "run", progress=False)
    assert result.n_ok == 6
    df = load_records(tmp_path / "run")
    assert set(df["prompt_id"]) == {"small"} and set(df["input_tokens"]) == {expected}


@pytest.mark.slow
def test_a_real_run_from_the_sample_flags_writes_its_sweep_yaml_into_the_results_dir(prompts_json: Path,
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    from bedrock_lab.params import load_sweep_config
    from bedrock_lab.sweep import load_sweep

    results = tmp_path / "test_results" / "run1"
    rc = main(["sweep", "--service-tiers", "priority", "--prompt-sizes", "medium", "--user-counts", "2",
               "--test-duration", "1", "--max-tokens", "16", "--prompts-file", "prompts.json",
               "--results-dir", str(results), "--no-progress"])  # fmt: skip
    assert rc == 0
    again = load_sweep_config(results / "sweep.yaml", env={})  # the effective sweep, re-runnable as is
    assert (again.name, again.grid.tiers, again.grid.users) == ("run1", ["priority"], [2])
    assert (again.cell.max_tokens, again.cell.duration_s, again.cell.workload) == (16, 1.0, str(prompts_json))
    df = load_sweep(results)
    assert len(df) > 0 and set(df["prompt_id"]) == {"medium"} and set(df["tier_requested"]) == {"priority"}
    assert set(df["input_tokens"]) == {count_request(None, [("user", SAMPLE_PROMPTS["medium"]["text"])])}


def test_a_relative_prompts_json_in_a_sweep_file_is_made_absolute_for_the_cells(prompts_json: Path,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    from bedrock_lab.params import parse_sweep

    data = {"name": "mine", "grid": {"models": ["amazon.nova-2-lite-v1:0"], "prompt_sizes": ["large"], "users": [2]},
            "cell": {"workload": "prompts.json", "duration_s": 5}}  # fmt: skip
    config = parse_sweep(data, source="mine.yaml", env={})
    assert config.cell.workload == str(prompts_json)  # the cells run in their own folders
    with pytest.raises(ConfigError) as info:
        parse_sweep({**data, "grid": {**data["grid"], "prompt_sizes": ["tiny"]}}, source="mine.yaml", env={})
    assert (info.value.source, info.value.key) == ("mine.yaml", "grid.prompt_sizes[0]")
    assert info.value.allowed == "small, medium, large"
