"""Sweep files: every kind of mistake gives one ConfigError naming file, key path, value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _sweep_helpers import ROOT, base_sweep, write_sweep

from bedrock_lab.errors import ConfigError
from bedrock_lab.params import load_sweep_config, parse_duration


def _grid(**changes: Any) -> dict[str, Any]:
    grid = base_sweep()["grid"]
    grid.update(changes)
    return base_sweep(grid=grid)


def _cell(**changes: Any) -> dict[str, Any]:
    cell = base_sweep()["cell"]
    cell.update(changes)
    return base_sweep(cell=cell)


# (case id, sweep data, expected key, text in the message or allowed list, expected bad value)
CASES = [
    ("unknown-top-key", base_sweep(cooldown=5), "cooldown", "did you mean 'cooldown_s'", "cooldown"),
    ("unknown-nested-key", _grid(user=[3]), "grid.user", "unknown key", "user"),
    ("wrong-type-number", _cell(duration_s="long"), "cell.duration_s", "a number", "long"),
    ("wrong-type-list-item", _grid(users=[2, "many"]), "grid.users[1]", "an integer", "many"),
    ("wrong-type-list", _grid(tiers="default"), "grid.tiers", "a list", "default"),
    ("unknown-model", _grid(models=["amazon.nova-ultra-v9:0"]), "grid.models[0]", "amazon.nova-lite-v1:0",
     "us.amazon.nova-ultra-v9:0"),
    ("unknown-tier", _grid(tiers=["default", "turbo"]), "grid.tiers[1]", "flex", "turbo"),
    ("tier-not-offered", _grid(models=["anthropic.claude-v2"], tiers=["flex"]), "grid.tiers[0]",
     "does not offer", "flex"),
    ("empty-axis", _grid(tiers=[]), "grid.tiers", "empty grid", []),
    ("empty-load", _grid(users=[]), "grid.users", "empty grid", []),
    ("negative-duration", _cell(duration_s=-5), "cell.duration_s", ">= 0", -5),
    ("zero-users", _grid(users=[0, 2]), "grid.users[0]", ">= 1", 0),
    ("negative-users-index", _grid(users=[2, -5]), "grid.users[1]", ">= 1", -5),
    ("bool-users", _grid(users=[True]), "grid.users[0]", "an integer", True),
    ("bool-repeats", _grid(repeats=True), "grid.repeats", "an integer", True),
    ("max-tokens-over-model-limit", _cell(max_tokens=1_000_000), "cell.max_tokens", "every request would be rejected",
     1_000_000),
    ("cell-read-timeout-zero", _cell(read_timeout_s=0), "cell.read_timeout_s", "> 0", 0),
    ("cell-success-rate", _cell(min_success_rate=2), "cell.min_success_rate", "<= 1", 2),
    ("bad-prefix", _grid(region_prefixes=["mars"]), "grid.region_prefixes", "global.", ["mars"]),
    ("bad-literal", base_sweep(target={"kind": "azure"}), "target.kind", "'emulator', 'aws' or 'openai'", "azure"),
    ("bad-prompt-size", _grid(prompt_sizes=["small", "huge"]), "grid.prompt_sizes[1]", "medium", "huge"),
    ("duplicate-users", _grid(users=[2, 2]), "grid.users[1]", "duplicate", 2),
    ("no-stopping-rule", _cell(duration_s=0), "cell.duration_s", "stopping rule", 0.0),
    ("bad-name", base_sweep(name="my sweep"), "name", "letters, digits", "my sweep"),
    ("missing-grid", {"name": "t"}, "grid", "required", None),
    ("locust-open-loop", {**_grid(rates_rps=[2.0]), "cell": {"engine": "locust", "duration_s": 5}},
     "grid.rates_rps", "closed loop only", [2.0]),
]


@pytest.mark.parametrize(("data", "key", "text", "value"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_names_file_key_value_and_allowed(
    tmp_path: Path, data: dict[str, Any], key: str, text: str, value: Any
) -> None:
    path = write_sweep(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path, env={})
    err = info.value
    assert err.source is not None and str(path) in err.source
    assert err.key == key
    assert text in str(err), str(err)
    assert err.value == value
    assert err.allowed, "the error must say what is allowed"
    assert str(path) in str(err) and key in str(err)


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "name: t\ngrid:\n  models: [a, b\n  tiers: [default]\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+") as info:
        load_sweep_config(path, env={})
    assert info.value.source == str(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_sweep_config(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="empty"):
        load_sweep_config(write_sweep(tmp_path, ""), env={})
    with pytest.raises(ConfigError, match="mapping"):
        load_sweep_config(write_sweep(tmp_path, "- a\n- b\n"), env={})


def test_env_overrides_like_the_public_examples(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, base_sweep())
    env = {"BASE_MODEL_ID": "global.amazon.nova-pro-v1:0", "SERVICE_TIERS": "priority, flex",
           "USER_COUNTS": "5,10,20", "TEST_DURATION": "2m", "MAX_TOKENS": "64"}  # fmt: skip
    cfg = load_sweep_config(path, env=env)
    assert cfg.grid.models == ["amazon.nova-pro-v1:0"]
    assert cfg.grid.region_prefixes == ["global."]
    assert cfg.grid.tiers == ["priority", "flex"]
    assert cfg.grid.users == [5, 10, 20]
    assert cfg.cell.duration_s == 120.0
    assert cfg.cell.max_tokens == 64
    # no env: the file as written
    plain = load_sweep_config(path, env={})
    assert plain.grid.users == [2] and plain.grid.region_prefixes == ["us."]


@pytest.mark.parametrize(
    ("env", "key", "text"),
    [
        ({"USER_COUNTS": "30,lots"}, "USER_COUNTS", "cannot parse"),
        ({"TEST_DURATION": "soon"}, "TEST_DURATION", "not a duration"),
        ({"SERVICE_TIERS": "default,turbo"}, "grid.tiers[1]", "turbo"),
        ({"USER_COUNTS": "-3"}, "grid.users[0]", ">= 1"),
    ],
)
def test_env_mistakes_name_the_variable(tmp_path: Path, env: dict[str, str], key: str, text: str) -> None:
    path = write_sweep(tmp_path, base_sweep())
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path, env=env)
    var = next(iter(env))
    assert info.value.key == key
    assert text in str(info.value)
    if key.startswith("grid.users") or key == var:
        assert f"environment variable {var}" in (info.value.source or "")


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("1m30s") == 90
    assert parse_duration("1h") == 3600
    with pytest.raises(ValueError):
        parse_duration("")


@pytest.mark.parametrize("name", ["default", "demo"])
def test_shipped_sweeps_are_valid(name: str) -> None:
    cfg = load_sweep_config(ROOT / "params" / "sweeps" / f"{name}.yaml", env={})
    assert cfg.name == name
    assert cfg.target.kind == "emulator"


@pytest.mark.parametrize(("content", "key", "text"), [
    (b"name: t\ngrid:\n  models: [amazon.nova-lite-v1:0]\n  users: [2]\n# caf\xe9\n", None, "not UTF-8 text: byte 0xe9 at line 5"),
    (b"name: t\nname: u\ngrid:\n  models: [amazon.nova-lite-v1:0]\n  users: [2]\n", "name",
     "duplicate key 'name' at line 2 (first at line 1)"),
    (b"name: t\ngrid:\n  users: [2]\n  models: [amazon.nova-lite-v1:0]\n  users: [3]\n", "users",
     "duplicate key 'users' at line 5 (first at line 3)"),
])  # fmt: skip
def test_file_level_mistakes_are_config_errors_not_tracebacks(
    tmp_path: Path, content: bytes, key: str | None, text: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_sweep_config(path, env={})
    assert info.value.key == key and text in str(info.value) and str(path) in str(info.value)
    assert info.value.allowed


def test_a_folder_given_as_the_sweep_file_is_named_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a sweep file"):
        load_sweep_config(tmp_path, env={})
