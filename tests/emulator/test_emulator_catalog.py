"""The catalog: every id of the issue resolves (base, us., global., ARN); bad files say where and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bedrock_lab.catalog import (
    PROVIDER_FORMATS,
    Catalog,
    ModelSpec,
    load_catalog,
    parse_catalog,
    split_model_id,
)
from bedrock_lab.errors import ConfigError

ISSUE_IDS = {
    "anthropic.claude-3-haiku-20240307-v1:0": "anthropic",
    "anthropic.claude-3-sonnet-20240229-v1:0": "anthropic",
    "anthropic.claude-3-5-sonnet-20241022-v2:0": "anthropic",
    "anthropic.claude-sonnet-4-5-20250929-v1:0": "anthropic",
    "anthropic.claude-v2": "anthropic-text",
    "amazon.nova-micro-v1:0": "nova",
    "amazon.nova-lite-v1:0": "nova",
    "amazon.nova-pro-v1:0": "nova",
    "amazon.nova-premier-v1:0": "nova",
    "amazon.nova-2-lite-v1:0": "nova",
    "amazon.titan-text-premier-v1:0": "titan",
    "amazon.titan-text-express-v1": "titan",
    "meta.llama3-1-70b-instruct-v1:0": "llama",
    "mistral.mistral-large-2402-v1:0": "mistral",
}


@pytest.mark.parametrize("base", sorted(ISSUE_IDS))
def test_every_issue_id_resolves_under_prefixes_and_arns(base: str) -> None:
    cat = load_catalog()
    forms = [base, f"us.{base}", f"global.{base}", f"eu.{base}", f"apac.{base}",
             f"arn:aws:bedrock:us-east-1::foundation-model/{base}",
             f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{base}",
             f"us.{base}".replace(":", "%3A")]  # fmt: skip
    for form in forms:
        spec = cat.resolve(form)
        assert spec.model_id == base, form
        assert spec.provider_format == ISSUE_IDS[base]
    assert spec.provider_format in PROVIDER_FORMATS
    assert "default" in spec.tiers and spec.price().input_per_1k > 0 and spec.tpm_quota > 0


def test_prices_and_costs() -> None:
    spec = load_catalog().resolve("us.amazon.nova-lite-v1:0")
    assert spec.price("flex").input_per_1k == pytest.approx(spec.price().input_per_1k * 0.5)
    assert spec.price("priority").output_per_1k > spec.price("default").output_per_1k
    assert spec.cost_usd(1000, 1000) == pytest.approx(spec.price().input_per_1k + spec.price().output_per_1k)
    with pytest.raises(ConfigError, match="no tier 'reserved'"):
        spec.price("reserved")


def test_unknown_model_is_a_config_error_naming_the_id() -> None:
    with pytest.raises(ConfigError) as exc:
        load_catalog().resolve("us.acme.nonexistent-v1:0")
    assert exc.value.key == "model_id" and exc.value.value == "us.acme.nonexistent-v1:0"
    assert "amazon.nova-lite-v1:0" in (exc.value.allowed or "")


def test_split_model_id() -> None:
    assert split_model_id("us-gov.anthropic.claude-v2") == ("us-gov.", "anthropic.claude-v2")
    assert split_model_id("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc")[1].startswith("arn:")


def _write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "cat.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


MINI = {"models": {"acme.small-v1": {"provider_format": "nova", "prices": {"default": {"input": 0.1, "output": 0.2}}}}}


def test_minimal_catalog_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path, MINI)
    monkeypatch.setenv("BEDROCK_LAB_CATALOG", str(p))
    cat = load_catalog()
    assert isinstance(cat, Catalog) and cat.ids() == ["acme.small-v1"]
    spec = cat.resolve("global.acme.small-v1")
    assert isinstance(spec, ModelSpec) and spec.tiers == ("default",)


@pytest.mark.parametrize(
    ("patch", "key", "fragment"),
    [
        ({"provider_format": "cohere"}, "models.acme.small-v1.provider_format", "allowed: anthropic"),
        ({"tiers": ["default", "turbo"]}, "models.acme.small-v1.tiers", "allowed: priority"),
        ({"latency": {"ttft_ms": -5}}, "models.acme.small-v1.latency.ttft_ms", "-5"),
        ({"latency": {"warp": 9}}, "models.acme.small-v1.latency.warp", "unknown key"),
        ({"faults": {"error_500": 1.5}}, "models.acme.small-v1.faults.error_500", "1.5"),
        ({"tpm_quota": "lots"}, "models.acme.small-v1.tpm_quota", "lots"),
        ({"colour": "red"}, "models.acme.small-v1.colour", "unknown key"),
    ],
)
def test_bad_catalog_names_file_key_value_and_allowed(tmp_path: Path, patch: dict, key: str, fragment: str) -> None:
    doc = {"models": {"acme.small-v1": {**MINI["models"]["acme.small-v1"], **patch}}}
    p = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as exc:
        load_catalog(p)
    assert exc.value.source == str(p) and exc.value.key == key
    assert str(p) in str(exc.value) and fragment in str(exc.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read catalog"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(bad)
    with pytest.raises(ConfigError, match="defines no models"):
        parse_catalog({"models": {}})
