"""The real anthropic SDK (``AnthropicBedrock``) against the emulator (issue #13): it sends the Messages body
through InvokeModel with its own ``anthropic_version`` and SigV4; messages.create whole, streamed, and with a tool."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from bedrock_lab.emulator import Emulator

anthropic = pytest.importorskip("anthropic")

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1,
                                                                              "maximum": 7}},
          "required": ["city", "days"]}  # fmt: skip


@pytest.fixture(scope="module")
def sdk(emulator: Emulator) -> Any:
    return anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="testing", aws_secret_key="testing",
                                      base_url=emulator.url, max_retries=0)  # fmt: skip


def test_messages_create(sdk: Any) -> None:
    msg = sdk.messages.create(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "Hello"}])
    assert msg.role == "assistant" and msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 0 and 0 < msg.usage.output_tokens <= 30


def test_messages_stream(sdk: Any) -> None:
    with sdk.messages.stream(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "Hello"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text
    assert final.usage.output_tokens <= 30


def test_messages_with_a_tool(sdk: Any) -> None:
    msg = sdk.messages.create(model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "Forecast?"}],
                              tools=[{"name": "forecast", "description": "weather", "input_schema": SCHEMA}],
                              tool_choice={"type": "tool", "name": "forecast"})  # fmt: skip
    assert msg.stop_reason == "tool_use"
    (tu,) = [b for b in msg.content if b.type == "tool_use"]
    assert tu.name == "forecast"
    jsonschema.validate(tu.input, SCHEMA)


def test_streamed_tool_call(sdk: Any) -> None:
    with sdk.messages.stream(model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "Forecast?"}],
                             tools=[{"name": "forecast", "input_schema": SCHEMA}],
                             tool_choice={"type": "any"}) as s:  # fmt: skip
        final = s.get_final_message()
    (tu,) = [b for b in final.content if b.type == "tool_use"]
    jsonschema.validate(tu.input, SCHEMA)
    assert final.stop_reason == "tool_use"
