"""The chat-completions API in both engines: Bedrock's OpenAI-compatible endpoint on the emulator (SigV4 or a
Bedrock API key from the environment, over HTTP and the emulator's TLS), and the target kind for any
OpenAI-compatible server (here the emulator's own ``/openai/v1``, the way a vLLM or TGI base URL is given)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.engines.formats import SseDecoder, build_request
from bedrock_lab.errors import ConfigError
from bedrock_lab.records import load_records

MODEL = "openai.gpt-oss-20b-1:0"
KEY_ENV = "BEDROCK_LAB_TEST_CHAT_KEY"


def burst(target: Target, out: Path, **kw: Any) -> Any:
    spec = BurstSpec(MODEL, api="chat-completions", **{"users": 3, "requests": 9, "max_tokens": 24, **kw})
    res = run_burst_sync(spec, target=target, out_dir=out, progress=False)
    return res, load_records(out)


def test_request_builder_and_sse_decoder() -> None:
    prep = build_request("chat-completions", MODEL, [("user", "hi"), ("assistant", "yo"), ("user", "again")],
                         system="be brief", max_tokens=12, temperature=0.3, tier="flex")  # fmt: skip
    body = json.loads(prep.body)
    assert prep.streaming and prep.path == "/chat/completions" and prep.headers["Accept"] == "text/event-stream"
    assert body["messages"][0] == {"role": "developer", "content": "be brief"} and len(body["messages"]) == 4
    assert body["model"] == MODEL and body["max_completion_tokens"] == 12 and body["service_tier"] == "flex"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    dec = SseDecoder()
    assert dec.feed(b'data: {"a": 1}\r\n\r\n: ping\n\ndata: {"b"') == [{"a": 1}]
    assert dec.feed(b': 2}\n\ndata: [DONE]\n\n') == [{"b": 2}, SseDecoder.DONE]


def test_burst_on_the_emulator_with_sigv4(emu: Any, tmp_path: Path) -> None:
    res, df = burst(Target.emulator(emu.url), tmp_path, tier="priority")
    assert res.valid and len(df) == 9 and (df["status"] == "ok").all(), df[["error_kind", "error_code"]]
    assert set(df["api"]) == {"chat-completions"} and set(df["tier_served"]) == {"priority"}
    assert (df["ttft_s"] > 0).all() and (df["e2e_s"] >= df["ttft_s"]).all()
    assert df["server_ttft_s"].notna().all() and df["n_chunks"].min() >= 1
    assert (df["output_tokens"] > 0).all() and (df["input_tokens"] > 0).all()


def test_burst_faults_are_classified(make_emulator: Any, tmp_path: Path) -> None:
    with make_emulator(stream_error=0.3, stream_throttle=0.2, error_500=0.2) as emu:
        _, df = burst(Target.emulator(emu.url), tmp_path, requests=40, users=4)
    kinds = dict(zip(df["error_code"].fillna("ok"), df["error_kind"].fillna("ok"), strict=True))
    assert kinds.get("modelStreamErrorException") == "stream" and kinds.get("throttlingException") == "throttled"
    assert kinds.get("InternalServerException") == "server" and kinds.get("ok") == "ok"


def test_bedrock_api_key_from_the_environment_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "ABSK" + secrets.token_urlsafe(40)
    with run_emulator(seed=0, latency=FAST, tls=True, strict_auth=True, api_keys=[key]) as emu:
        target = Target.emulator(emu.url, auth="api-key", api_key_env=KEY_ENV, ca_bundle=emu.ca_bundle)
        monkeypatch.delenv(KEY_ENV, raising=False)
        with pytest.raises(ConfigError, match=KEY_ENV):
            burst(target, tmp_path / "unset")
        monkeypatch.setenv(KEY_ENV, key)
        _, df = burst(target, tmp_path / "ok")
        assert (df["status"] == "ok").all(), df[["error_code", "error_message"]]
        # the same key on a native API (converse-stream), still the burst engine's own HTTP client
        spec = BurstSpec("amazon.nova-lite-v1:0", users=2, requests=4, max_tokens=8)
        run_burst_sync(spec, target=target, out_dir=tmp_path / "native", progress=False)
        assert (load_records(tmp_path / "native")["status"] == "ok").all()
        monkeypatch.setenv(KEY_ENV, "ABSK" + secrets.token_urlsafe(40))  # a wrong key: refused, and not stored
        _, bad = burst(target, tmp_path / "bad", requests=3)
    assert set(bad["error_code"]) == {"UnrecognizedClientException"} and set(bad["http_status"]) == {401}
    assert key not in target.describe() and KEY_ENV in target.describe()
    for shard in tmp_path.rglob("*.parquet"):
        assert key.encode() not in shard.read_bytes()


def test_openai_compatible_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any OpenAI-compatible base URL with its key (a self-hosted vLLM would be http://host:8000/v1)."""
    key = "sk-" + secrets.token_urlsafe(32)
    monkeypatch.setenv(KEY_ENV, key)
    with run_emulator(seed=0, latency=FAST, strict_auth=True, api_keys=[key]) as emu:
        target = Target.openai(emu.url + "/openai/v1", KEY_ENV)
        assert target.openai_base_url == emu.url + "/openai/v1" and "OpenAI-compatible" in target.describe()
        _, df = burst(target, tmp_path)
        with pytest.raises(ConfigError, match="chat-completions"):
            run_burst_sync(BurstSpec(MODEL, api="converse-stream", users=1, requests=1), target=target,
                           out_dir=tmp_path / "x", progress=False)  # fmt: skip
    assert (df["status"] == "ok").all() and (df["output_tokens"] > 0).all()


@pytest.mark.slow
def test_locust_user_on_chat_completions(emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BurstSpec(MODEL, api="chat-completions", users=3, duration_s=2, max_tokens=16, tier="flex", run_id="lc")
    res = run_locust(spec, Target.emulator(emu.url), tmp_path / "sigv4", html=False)
    df = res.records()
    assert len(df) >= 6 and (df["status"] == "ok").all(), df[["error_kind", "error_code", "error_message"]]
    assert set(df["engine"]) == {"locust"} and set(df["tier_served"]) == {"flex"}
    assert (df["ttft_s"] > 0).all() and df["server_ttft_s"].notna().all() and (df["output_tokens"] > 0).all()
    key = "sk-" + secrets.token_urlsafe(32)
    monkeypatch.setenv(KEY_ENV, key)
    with run_emulator(seed=0, latency=FAST, strict_auth=True, api_keys=[key]) as strict:
        res = run_locust(BurstSpec(MODEL, api="chat-completions", users=2, duration_s=1.5, max_tokens=8),
                         Target.openai(strict.url + "/openai/v1", KEY_ENV), tmp_path / "openai", html=False)  # fmt: skip
    df = res.records()
    assert len(df) >= 2 and (df["status"] == "ok").all(), df[["error_kind", "error_code", "error_message"]]


@pytest.mark.slow
def test_sweep_cell_on_chat_completions_into_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny sweep on chat-completions (papermill + the cell notebook + the burst engine), then the report; and
    one sweep comparing a Bedrock model with a model on an OpenAI-compatible server (``target.servers``, the key
    named in the sweep file, held in the environment; the server is a strict emulator, so only that key passes)."""
    import yaml

    from bedrock_lab.cli import main
    from bedrock_lab.sweep import load_sweep, run_sweep

    data = {
        "name": "chat", "target": {"kind": "emulator", "emulator_seed": 2, "emulator_overrides": {"latency": FAST}},
        "grid": {"models": [MODEL], "tiers": ["default", "priority"], "prompt_sizes": ["small"], "users": [2]},
        "cell": {"api": "chat-completions", "duration_s": 1.0, "max_tokens": 24, "timeout_s": 120},
    }  # fmt: skip
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run_sweep(path, out=tmp_path / "out", progress=False, env={}, echo=lambda s: None)
    assert res.ok, res.summary()
    df = load_sweep(tmp_path / "out" / "chat")
    assert set(df["api"]) == {"chat-completions"} and (df["status"] == "ok").all()
    assert set(df["tier_served"]) == {"default", "priority"}
    assert main(["report", str(tmp_path / "out" / "chat"), "--no-figures"]) == 0
    html = (tmp_path / "out" / "chat" / "report.html").read_text()
    assert "gpt-oss-20b" in html

    key = "sk-" + secrets.token_urlsafe(32)
    monkeypatch.setenv(KEY_ENV, key)
    with run_emulator(seed=0, latency=FAST, strict_auth=True, api_keys=[key]) as server:
        selfhosted = "openai.gpt-oss-120b-1:0"
        data["name"] = "mixed"
        data["target"]["servers"] = {selfhosted: {"base_url": server.url + "/openai/v1", "api_key_env": KEY_ENV}}
        data["grid"].update(models=[MODEL, selfhosted], tiers=["default"])
        path.write_text(yaml.safe_dump(data))
        res = run_sweep(path, out=tmp_path / "out", progress=False, env={}, echo=lambda s: None)
        served = server.stats()["requests"]
    assert res.ok, res.summary()
    df = load_sweep(tmp_path / "out" / "mixed")
    assert (df["status"] == "ok").all() and set(df["model_id"]) == {MODEL, selfhosted}
    assert served == (df["model_id"] == selfhosted).sum()  # the server got exactly the self-hosted model's cells
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f


def test_sweep_file_checks_openai_targets() -> None:
    from bedrock_lab.params import parse_sweep

    base = {"name": "x", "grid": {"models": [MODEL], "users": [1]}, "cell": {"api": "chat-completions", "requests": 1}}
    server = {"base_url": "http://127.0.0.1:8000/v1", "api_key_env": "VLLM_KEY"}
    cfg = parse_sweep({**base, "target": {"servers": {MODEL: server}}}, env={})
    assert cfg.target.servers[MODEL].api_key_env == "VLLM_KEY"
    bad = [
        ({"kind": "openai"}, {}, "target.endpoint_url"),
        ({"kind": "openai", "endpoint_url": "http://127.0.0.1:8000/v1"}, {"api": "converse-stream"}, "cell.api"),
        ({"servers": {"other.model-v1:0": server}}, {}, "target.servers.other.model-v1:0"),
        ({"servers": {MODEL: server}}, {"api": "converse"}, "cell.api"),
        ({"auth": "api-key", "api_key_env": "not a name"}, {}, "api_key_env"),
    ]
    for target, cell, key in bad:
        with pytest.raises(ConfigError) as info:
            parse_sweep({**base, "target": target, "cell": {**base["cell"], **cell}}, env={})
        assert key in str(info.value), info.value
