"""Property-based abuse of a running emulator (hypothesis, seeded): random and malformed JSON bodies, random
bytes, random header values and random paths. Every answer is either a success or a 4xx in AWS's shape
(x-amzn-ErrorType, x-amzn-RequestId, a JSON body with a message), never a 5xx; afterwards a normal boto3
Converse still succeeds. Example counts are modest so the file runs in well under 30 s."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from emu_helpers import make_client, raw_post, user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_lab.emulator import Emulator, run_emulator

NOVA = "amazon.nova-lite-v1%3A0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1%3A0"
OPS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens")
ERR_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
# derandomize: the same examples every run (seeded, reproducible); no example database written to the repo
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    # no quota or capacity limit, tiny latencies: only the parsing and validation paths are under test
    with run_emulator(seed=0, time_scale=0.001, tpm_quota=10**12, capacity=10_000) as e:
        yield e


@pytest.fixture(scope="module", autouse=True)
def stays_healthy(emu: Emulator) -> Iterator[None]:
    yield
    c = make_client(emu.url)
    r = c.converse(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"maxTokens": 5})
    assert r["output"]["message"]["content"][0]["text"]
    s = c.converse_stream(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"maxTokens": 5})
    assert any("contentBlockDelta" in ev for ev in s["stream"])
    assert emu.stats()["outcomes"].get("InternalServerException", 0) == 0


def _check(answer: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = answer
    assert status < 500, (status, body)
    assert headers.get("x-amzn-requestid")
    if status >= 400:
        assert 400 <= status < 500
        assert headers.get("x-amzn-errortype", "").endswith(ERR_SUFFIX), headers
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# shaped like the real requests, with wrong types and values in every slot: reaches past the first checks
content_block = st.one_of(st.fixed_dictionaries({"text": json_values}), st.dictionaries(
    st.sampled_from(["text", "image", "document", "toolUse", "toolResult", "cachePoint", "video"]), json_values,
    max_size=2), json_values)  # fmt: skip
message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", ""]) | json_values,
                                              "content": st.lists(content_block, max_size=3) | json_values})  # fmt: skip
converse_doc = st.fixed_dictionaries({}, optional={
    "messages": st.lists(message, max_size=3) | json_values,
    "system": st.lists(st.fixed_dictionaries({"text": json_values}) | json_values, max_size=2) | json_values,
    "inferenceConfig": st.fixed_dictionaries({}, optional={
        "maxTokens": st.integers(-5, 10_000) | json_values, "temperature": st.floats() | json_values,
        "topP": st.floats() | json_values, "stopSequences": json_values}) | json_values,
    "serviceTier": st.fixed_dictionaries({"type": st.sampled_from(["default", "flex", "priority", "x"]) | json_values})
    | json_values,
    "performanceConfig": st.fixed_dictionaries({"latency": st.sampled_from(["standard", "optimized"]) | json_values}),
    "additionalModelRequestFields": json_values, "toolConfig": json_values,
})  # fmt: skip
anthropic_doc = st.fixed_dictionaries({}, optional={
    "anthropic_version": st.sampled_from(["bedrock-2023-05-31", ""]) | json_values,
    "max_tokens": st.integers(-5, 10_000) | json_values, "messages": st.lists(message, max_size=3) | json_values,
    "system": json_values, "temperature": json_values, "stream": json_values,
})  # fmt: skip


@FUZZ
@given(model=st.sampled_from([NOVA, CLAUDE]), op=st.sampled_from(OPS),
       doc=st.one_of(json_values, converse_doc, anthropic_doc))  # fmt: skip
def test_random_json_bodies_get_a_success_or_an_aws_shaped_4xx(emu: Emulator, model: str, op: str, doc: Any) -> None:
    if op == "count-tokens" and isinstance(doc, dict) and doc:
        doc = {"input": {"converse": doc}} if model == NOVA else {"input": {"invokeModel": {"body": json.dumps(doc)}}}
    _check(raw_post(emu.url, f"/model/{model}/{op}", json.dumps(doc)))


@FUZZ
@given(op=st.sampled_from(OPS), body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode)
       | st.integers(1, 3000).map(lambda n: b"[" * n) | st.integers(1, 3000).map(lambda n: b'{"a":' * n))  # fmt: skip
def test_malformed_bodies_get_an_aws_shaped_4xx(emu: Emulator, op: str, body: bytes) -> None:
    answer = raw_post(emu.url, f"/model/{NOVA}/{op}", body)
    _check(answer)


header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=60).map(str.strip)  # fmt: skip


@FUZZ
@given(name=st.sampled_from(["Content-Type", "Accept", "X-Amzn-Bedrock-Accept", "X-Amzn-Bedrock-Service-Tier",
                             "X-Amzn-Bedrock-PerformanceConfig-Latency", "Authorization", "X-Amz-Date",
                             "X-Amz-Content-SHA256", "Content-Encoding", "X-Amzn-Bedrock-Trace"]),
       value=st.sampled_from(["gzip", "deflate", "br", "zstd", "chunked", "*/*", "application/json;x"]) | header_value,
       op=st.sampled_from(OPS))  # fmt: skip
def test_random_header_values_get_a_success_or_an_aws_shaped_4xx(emu: Emulator, name: str, value: str,
                                                                  op: str) -> None:  # fmt: skip
    body = json.dumps({"messages": user(), "inferenceConfig": {"maxTokens": 3}} if op != "count-tokens"
                      else {"input": {"converse": {"messages": user()}}})  # fmt: skip
    if op.startswith("invoke"):
        body = json.dumps({"schemaVersion": "messages-v1", "messages": user(), "inferenceConfig": {"maxTokens": 3}})
    _check(raw_post(emu.url, f"/model/{NOVA}/{op}", body, {name: value}))


path_chars = string.ascii_letters + string.digits + "-._~:/%?#[]@!$&'()*+,;=" + "é中"


@FUZZ
@given(path=st.text(alphabet=path_chars, max_size=80), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
       prefix=st.sampled_from(["/", "/model/", f"/model/{NOVA}/", "/_bedrock_lab/"]))  # fmt: skip
def test_random_paths_get_an_aws_shaped_4xx_or_a_success(emu: Emulator, path: str, method: str, prefix: str) -> None:
    from urllib.parse import quote

    target = quote(prefix + path, safe="/%:@!$&'()*+,;=-._~?")
    _check(raw_post(emu.url, target, b"{}", method=method))
