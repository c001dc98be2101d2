"""Bad input gets the 4xx AWS sends (x-amzn-ErrorType, JSON message naming the problem); the server survives."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from emu_helpers import make_client, raw_post, user

from bedrock_lab.emulator import Emulator, run_emulator

NOVA = "/model/amazon.nova-lite-v1%3A0"
CLAUDE = "/model/anthropic.claude-3-haiku-20240307-v1%3A0"
ANTHROPIC_OK = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_unknown_model_is_validation_exception(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="model identifier is invalid"):
        client.converse(modelId="acme.nonexistent-v1:0", messages=user())


def test_unknown_provisioned_arn_is_resource_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.converse(modelId="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl",
                        messages=user())


def test_unsupported_and_invalid_tiers(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="service tier 'flex' is not supported"):
        client.converse(modelId="amazon.titan-text-express-v1", messages=user(), serviceTier={"type": "flex"})
    with pytest.raises(client.exceptions.ValidationException, match="serviceTier.type"):
        client.invoke_model(modelId="amazon.nova-lite-v1:0", body=json.dumps({"messages": user()}),
                            serviceTier="turbo")


def test_anthropic_extraneous_and_missing_keys(client: Any) -> None:
    mid = "anthropic.claude-3-haiku-20240307-v1:0"
    with pytest.raises(client.exceptions.ValidationException, match=r"extraneous key \[stream\] is not permitted"):
        client.invoke_model(modelId=mid, body=json.dumps({**ANTHROPIC_OK, "stream": True}))
    body = dict(ANTHROPIC_OK)
    del body["max_tokens"]
    with pytest.raises(client.exceptions.ValidationException, match=r"required key \[max_tokens\] not found"):
        client.invoke_model_with_response_stream(modelId=mid, body=json.dumps(body))


def test_converse_ranges(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="inferenceConfig.temperature"):
        client.converse(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"temperature": 1.5})
    with pytest.raises(client.exceptions.ValidationException, match="exceeds the model limit of 10000"):
        client.converse(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"maxTokens": 20000})
    with pytest.raises(client.exceptions.ValidationException, match="must start with a user message"):
        client.converse(modelId="amazon.nova-lite-v1:0", messages=[])


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "fragment"),
    [
        (f"{NOVA}/converse", {"messages": user(), "inferenceConfig": {"maxTokens": 0}}, None, 400,
         "ValidationException", "inferenceConfig.maxTokens"),
        (f"{NOVA}/converse", "{not json", None, 400, "SerializationException", "not valid JSON"),
        (f"{NOVA}/converse", {"messages": user(), "bogus": 1}, None, 400, "ValidationException", "bogus"),
        (f"{NOVA}/converse", {"messages": user()}, {"Content-Type": "text/plain"}, 400, "ValidationException",
         "Content-Type"),
        (f"{CLAUDE}/invoke", "{not json", None, 400, "ValidationException", "Malformed input request"),
        (f"{CLAUDE}/invoke", ANTHROPIC_OK, {"Accept": "image/png"}, 400, "ValidationException", "Accept"),
        (f"{CLAUDE}/invoke", {**ANTHROPIC_OK, "max_tokens": 0}, None, 400, "ValidationException", "max_tokens"),
        (f"{CLAUDE}/invoke", {**ANTHROPIC_OK, "temperature": 3}, None, 400, "ValidationException", "temperature"),
        (f"{CLAUDE}/invoke", [1, 2], None, 400, "ValidationException", "JSONObject"),
        (f"{NOVA}/invoke", {"messages": user(), "inferenceConfig": {"maxTokens": 5}, "stream": True}, None, 400,
         "ValidationException", "extraneous key [stream]"),
        ("/model/amazon.titan-text-express-v1/invoke", {"inputText": ""}, None, 400, "ValidationException",
         "inputText"),
        ("/model/anthropic.claude-v2/invoke", {"prompt": "hi", "max_tokens_to_sample": 5}, None, 400,
         "ValidationException", "Assistant:"),
        (f"{NOVA}/count-tokens", {"input": {}}, None, 400, "ValidationException", "converse or invokeModel"),
        (f"{NOVA}/frobnicate", {}, None, 404, "UnknownOperationException", "frobnicate"),
        ("/nothing/here", {}, None, 404, "UnknownOperationException", "/nothing/here"),
        (f"{NOVA}/converse", {"messages": user()}, {"Authorization": None}, 403,
         "MissingAuthenticationTokenException", "Missing Authentication Token"),
        (f"{NOVA}/converse", {"messages": user()}, {"Authorization": "AWS4-HMAC-SHA256 Signature=abc"}, 403,
         "IncompleteSignatureException", "Credential"),
    ],
)
def test_bad_requests(post: Callable[..., Any], path: str, body: Any, headers: dict | None, status: int,
                      code: str, fragment: str) -> None:  # fmt: skip
    raw = body if isinstance(body, str) else json.dumps(body)
    st, h, doc = post(path, raw, headers)
    assert st == status, doc
    assert h["x-amzn-errortype"].split(":")[0] == code
    assert h.get("x-amzn-requestid")
    assert fragment in doc["message"]


def test_wrong_method_is_unknown_operation(post: Callable[..., Any]) -> None:
    st, h, _ = post(f"{NOVA}/converse", "", method="GET")
    assert st == 404 and h["x-amzn-errortype"].startswith("UnknownOperationException")


def test_server_keeps_serving_after_bad_input(post: Callable[..., Any], client: Any) -> None:
    for junk in (b"\xff\xfe\x00", b"null", b"[]", b'{"messages": "x"}', b'{"messages": [{"role": "robot"}]}'):
        st, _, _ = post(f"{NOVA}/converse", junk)
        assert 400 <= st < 500
    assert client.converse(modelId="amazon.nova-lite-v1:0", messages=user())["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_missing_authorization_via_unsigned_boto3(emulator: Emulator) -> None:
    from botocore import UNSIGNED

    c = boto3.client("bedrock-runtime", endpoint_url=emulator.url, region_name="us-east-1",
                     config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        c.converse(modelId="amazon.nova-lite-v1:0", messages=user())
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert _code(exc.value) == "MissingAuthenticationTokenException"


def test_oversized_body_and_too_long_input() -> None:
    with run_emulator(max_body_bytes=2000, time_scale=0.02) as emu:
        st, h, doc = raw_post(emu.url, f"{NOVA}/converse", json.dumps({"messages": user("x " * 5000)}))
        assert st == 413 and h["x-amzn-errortype"].startswith("ValidationException")
        assert "2000 bytes" in doc["message"]
    with run_emulator(catalog=None, time_scale=0.02) as emu:
        c = make_client(emu.url)
        with pytest.raises(c.exceptions.ValidationException, match="Input is too long"):
            c.converse(modelId="amazon.titan-text-express-v1", messages=user("word " * 9000))


def test_strict_sigv4(monkeypatch: pytest.MonkeyPatch) -> None:
    with run_emulator(strict_auth=True, credentials={"AKIDEXAMPLE": "s3cret"}, time_scale=0.02) as emu:
        def signed_by(key: str, secret: str) -> Any:
            return boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="eu-west-1",
                                aws_access_key_id=key, aws_secret_access_key=secret,
                                config=Config(retries={"total_max_attempts": 1}))  # fmt: skip

        good = signed_by("AKIDEXAMPLE", "s3cret")
        arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-lite-v1:0"
        assert good.converse(modelId=arn, messages=user())["ResponseMetadata"]["HTTPStatusCode"] == 200
        body = json.dumps({"inputText": "hi"})
        assert good.invoke_model(modelId="amazon.titan-text-express-v1", body=body)["contentType"]
        bad = signed_by("AKIDEXAMPLE", "wrong")
        with pytest.raises(ClientError) as exc:
            bad.converse(modelId=arn, messages=user())
        assert _code(exc.value) == "InvalidSignatureException"
        stranger = signed_by("AKIDOTHER", "s3cret")
        with pytest.raises(ClientError) as exc:
            stranger.converse(modelId=arn, messages=user())
        assert _code(exc.value) == "UnrecognizedClientException"


def test_seeded_junk_never_breaks_the_server(post: Callable[..., Any], client: Any) -> None:
    """200 seeded random bodies and paths: never a 5xx; every 4xx carries an error type and a message."""
    import random

    rng = random.Random(42)
    models = ["amazon.nova-lite-v1%3A0", "anthropic.claude-3-haiku-20240307-v1%3A0", "anthropic.claude-v2",
              "amazon.titan-text-express-v1", "meta.llama3-1-70b-instruct-v1%3A0", "mistral.mistral-large-2402-v1%3A0",
              "nope", "%ZZ", "us.amazon.nova-lite-v1%3A0%2Fx"]  # fmt: skip
    ops = ["converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens"]
    values: list[Any] = [None, 0, -1, 1.5, "x", "", [], {}, [{}], {"text": 1}, True, 10**12, "\u2603" * 3]
    keys = ["messages", "system", "inferenceConfig", "max_tokens", "prompt", "inputText", "anthropic_version",
            "textGenerationConfig", "serviceTier", "input", "performanceConfig", "max_gen_len", "maxTokens"]
    for _ in range(200):
        body = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 4))}
        raw = json.dumps(body) if rng.random() < 0.9 else bytes(rng.randrange(256) for _ in range(20))
        st, h, doc = post(f"/model/{rng.choice(models)}/{rng.choice(ops)}", raw)
        assert st < 500, (st, body, doc)
        if st >= 400:
            assert h.get("x-amzn-errortype") and doc.get("message")
    assert client.converse(modelId="amazon.nova-lite-v1:0", messages=user())["ResponseMetadata"]["HTTPStatusCode"] == 200
