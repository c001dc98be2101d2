"""Bedrock API keys (``Authorization: Bearer``) on every operation and the emulator's HTTPS mode.

boto3 picks bearer auth by itself when ``AWS_BEARER_TOKEN_BEDROCK`` is set and sends it only over HTTPS, so these
run the real boto3 (and the OpenAI SDK) against the emulator's TLS port, trusting its throwaway CA. Keys are made at
run time: long-term ones at random, short-term ones with AWS's own generator from the strict emulator's
credentials."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from emu_helpers import FAST

from bedrock_lab.emulator import Emulator, auth, fetch_stats, run_emulator
from bedrock_lab.emulator.providers import ApiError
from bedrock_lab.emulator.tls import client_context

MODEL = "amazon.nova-lite-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hello over TLS"}]}]
ACCESS, SECRET = "testing", "testing"  # the strict emulator's credentials (tests/conftest.py sets them)


def long_term_key() -> str:
    return "ABSK" + secrets.token_urlsafe(48)


def short_term_key(secret: str = SECRET, region: str = "us-east-1") -> str:
    gen = pytest.importorskip("aws_bedrock_token_generator")
    return str(gen.BedrockTokenGenerator().get_token(Credentials(ACCESS, secret), region))


def bearer_client(emu: Emulator, token: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    """boto3 exactly as a user with an API key builds it: the token in the environment, nothing in code."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    cfg = Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5)
    return boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1", config=cfg, **kw)


@pytest.fixture(scope="module")
def strict_tls() -> Any:
    key = long_term_key()
    with run_emulator(seed=0, time_scale=FAST, tls=True, strict_auth=True, api_keys=[key]) as emu:
        yield emu, key


def test_tls_emulator_url_and_ca_bundle(strict_tls: tuple[Emulator, str]) -> None:
    emu, _ = strict_tls
    assert emu.url.startswith("https://127.0.0.1:")
    assert emu.ca_bundle is not None and os.path.isfile(emu.ca_bundle)
    assert "BEGIN CERTIFICATE" in Path(emu.ca_bundle).read_text()
    assert emu.stats()["requests"] >= 0  # the stats endpoint over HTTPS, trusting the CA


def test_boto3_with_a_long_term_key_converses_over_tls(strict_tls: tuple[Emulator, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    emu, key = strict_tls
    client = bearer_client(emu, key, monkeypatch, verify=emu.ca_bundle)
    out = client.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 16})
    assert out["usage"]["outputTokens"] == len(out["output"]["message"]["content"][0]["text"].split())
    events = list(client.converse_stream(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 8})["stream"])
    assert "metadata" in events[-1]
    body = json.loads(client.invoke_model(modelId="openai.gpt-oss-20b-1:0", body=json.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5}))["body"].read())
    assert body["object"] == "chat.completion"


def test_wrong_long_term_key_is_refused(strict_tls: tuple[Emulator, str], monkeypatch: pytest.MonkeyPatch) -> None:
    emu, _ = strict_tls
    monkeypatch.setenv("AWS_CA_BUNDLE", emu.ca_bundle or "")  # the environment way to trust the CA
    client = bearer_client(emu, long_term_key(), monkeypatch)
    with pytest.raises(ClientError) as info:
        client.converse(modelId=MODEL, messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_short_term_keys_are_verified_like_sigv4(strict_tls: tuple[Emulator, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    emu, _ = strict_tls
    good = bearer_client(emu, short_term_key(), monkeypatch, verify=emu.ca_bundle)
    assert good.converse(modelId=MODEL, messages=MESSAGES, inferenceConfig={"maxTokens": 4})["usage"]["outputTokens"]
    forged = bearer_client(emu, short_term_key(secret="not-the-secret"), monkeypatch, verify=emu.ca_bundle)
    with pytest.raises(ClientError) as info:
        forged.converse(modelId=MODEL, messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_short_term_key_expiry_and_shape() -> None:
    token = short_term_key()
    creds = {ACCESS: SECRET}
    assert auth.verify_short_term(token, creds) == ACCESS
    with pytest.raises(ApiError) as info:
        auth.verify_short_term(token, creds, now=time.time() + auth.MAX_SHORT_TERM_S + 60)
    assert info.value.code == "ExpiredTokenException"
    for bad in ("bedrock-api-key-not*base64", "bedrock-api-key-" + "aGVsbG8="):
        with pytest.raises(ApiError) as info:
            auth.check_bearer(bad, creds)
        assert info.value.status == 403
    auth.check_bearer("anything", None)  # default mode: any non-empty bearer token, like any SigV4-shaped header


def test_sigv4_still_works_on_the_tls_port(strict_tls: tuple[Emulator, str]) -> None:
    emu, _ = strict_tls
    client = boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1", verify=emu.ca_bundle,
                          config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    assert client.converse(modelId=MODEL, messages=MESSAGES)["stopReason"] in ("end_turn", "max_tokens")
    assert fetch_stats(emu.url, reset=True, ca_bundle=emu.ca_bundle)["requests"] > 0  # a signed reset over HTTPS


def test_openai_sdk_with_an_api_key_over_tls(strict_tls: tuple[Emulator, str]) -> None:
    openai = pytest.importorskip("openai")
    emu, key = strict_tls

    def sdk(api_key: str) -> Any:
        return openai.OpenAI(base_url=emu.url + "/openai/v1", api_key=api_key, max_retries=0,
                             http_client=openai.DefaultHttpxClient(verify=client_context(emu.ca_bundle or "")))  # fmt: skip

    r = sdk(key).chat.completions.create(model="openai.gpt-oss-120b-1:0", max_tokens=6,
                                         messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert r.usage.completion_tokens == len(r.choices[0].message.content.split())
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(long_term_key()).chat.completions.create(model="openai.gpt-oss-120b-1:0",
                                                     messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert info.value.status_code == 401 and info.value.type == "authentication_error"


def test_subprocess_mode_serves_tls_and_tells_where_the_ca_is() -> None:
    with run_emulator(mode="subprocess", time_scale=FAST, tls=True) as emu:
        assert emu.url.startswith("https://") and emu.ca_bundle and os.path.isfile(emu.ca_bundle)
        client = boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1",
                              verify=emu.ca_bundle)  # fmt: skip
        assert client.converse(modelId=MODEL, messages=MESSAGES)["output"]["message"]["role"] == "assistant"
        assert emu.stats()["requests"] == 1
    assert any("AWS_CA_BUNDLE=" in line for line in emu.stderr_tail)
