"""Real client libraries against the emulator: does each one's plain, streaming and structured-output call work
unchanged? (issue #13). Not a performance claim: a compatibility table.

    python3 -m venv .venv-clients && .venv-clients/bin/pip install langchain-aws strands-agents \\
        'pydantic-ai-slim[bedrock]' litellm aiobotocore            # once (or: this script with --setup)
    .venv/bin/python bench/clients_compat.py                     # prints the table, writes bench/clients.md

The clients live in their own venv (``.venv-clients``, git-ignored): aiobotocore pins botocore and the agent
frameworks pull large trees, none of which belong in ``.venv``. The parent (this script under ``.venv``) starts
one emulator subprocess and runs this same file under the clients' interpreter once per client
(``--client NAME``); that child imports only the client library, talks to the emulator through
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (or the client's own endpoint option) and prints one JSON line per call.
Every call is bounded (``--call-timeout``) and retries are off, so a shape a client trips on is a "failed" row
with the error, never a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS = ("langchain-aws", "strands-agents", "pydantic-ai", "litellm", "aiobotocore")
PACKAGES = ("langchain-aws", "strands-agents", "pydantic-ai-slim[bedrock]", "litellm", "aiobotocore")
DISTRIBUTION = {"langchain-aws": "langchain-aws", "strands-agents": "strands-agents", "pydantic-ai": "pydantic-ai-slim",
                "litellm": "litellm", "aiobotocore": "aiobotocore"}  # fmt: skip
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
REGION = "us-east-1"
PROMPT = "What is the weather in Paris? Answer briefly."
MAX_TOKENS = 1024  #: room for a whole answer: strands raises MaxTokensReachedException on a max_tokens stop


# ------------------------------------------------------------------------------------------ child side
# Runs under the clients' interpreter: stdlib + the one client library; never imports bedrock_lab.


def _weather_model() -> Any:
    from typing import Literal

    from pydantic import BaseModel, Field

    class Weather(BaseModel):
        """The weather in one city."""

        city: str = Field(description="the city")
        temperature_c: float = Field(description="temperature in degrees Celsius")
        conditions: Literal["sunny", "cloudy", "rain", "snow"]

    return Weather


def _text_of(chunk: Any) -> str:
    t = getattr(chunk, "text", "")
    return str(t() if callable(t) else t)


def _langchain(url: str) -> dict[str, Callable[[], str]]:
    from langchain_aws import ChatBedrock, ChatBedrockConverse

    weather = _weather_model()
    conv = ChatBedrockConverse(model=MODEL, region_name=REGION, endpoint_url=url, max_tokens=MAX_TOKENS)
    inv = ChatBedrock(model_id=MODEL, region_name=REGION, endpoint_url=url, provider="anthropic",
                      model_kwargs={"max_tokens": MAX_TOKENS})  # fmt: skip

    def structured(llm: Any, **kw: Any) -> Callable[[], str]:
        def call() -> str:
            w = llm.with_structured_output(weather, **kw).invoke(PROMPT)
            if not isinstance(w, weather):
                raise TypeError(f"with_structured_output returned {type(w).__name__}")
            return w.model_dump_json()
        return call

    return {
        "ChatBedrockConverse.invoke (Converse)": lambda: _text_of(conv.invoke(PROMPT)),
        "ChatBedrockConverse.stream (ConverseStream)": lambda: "".join(_text_of(c) for c in conv.stream(PROMPT)),
        "ChatBedrockConverse.with_structured_output": structured(conv),
        "ChatBedrockConverse.with_structured_output(method=json_schema) (outputConfig)":
            structured(conv, method="json_schema"),
        "ChatBedrock.invoke (InvokeModel)": lambda: _text_of(inv.invoke(PROMPT)),
        "ChatBedrock.stream (InvokeModelWithResponseStream)": lambda: "".join(_text_of(c) for c in inv.stream(PROMPT)),
        "ChatBedrock.with_structured_output (InvokeModel tools)": structured(inv),
    }


def _strands(url: str) -> dict[str, Callable[[], str]]:
    from strands import Agent
    from strands.models import BedrockModel

    weather = _weather_model()

    def model(streaming: bool) -> Any:
        return BedrockModel(model_id=MODEL, region_name=REGION, endpoint_url=url, max_tokens=MAX_TOKENS, streaming=streaming)

    def structured() -> str:
        res = Agent(model=model(True), callback_handler=None)(PROMPT, structured_output_model=weather)
        w = res.structured_output
        if not isinstance(w, weather):
            raise TypeError(f"structured_output is {type(w).__name__}")
        return str(w.model_dump_json())

    return {
        "Agent() non-streaming (Converse)": lambda: str(Agent(model=model(False), callback_handler=None)(PROMPT)),
        "Agent() streaming (ConverseStream)": lambda: str(Agent(model=model(True), callback_handler=None)(PROMPT)),
        "Agent(structured_output_model=...)": structured,
    }


def _pydantic_ai(url: str) -> dict[str, Callable[[], str]]:
    import boto3
    from pydantic_ai import Agent
    from pydantic_ai.models.bedrock import BedrockConverseModel
    from pydantic_ai.providers.bedrock import BedrockProvider

    weather = _weather_model()
    client = boto3.client("bedrock-runtime", endpoint_url=url, region_name=REGION)
    model = BedrockConverseModel(MODEL, provider=BedrockProvider(bedrock_client=client))
    settings: Any = {"max_tokens": MAX_TOKENS}

    async def stream() -> str:
        async with Agent(model).run_stream(PROMPT, model_settings=settings) as run:
            return "".join([t async for t in run.stream_text(delta=True)])

    def structured() -> str:
        out = Agent(model, output_type=weather).run_sync(PROMPT, model_settings=settings).output
        if not isinstance(out, weather):
            raise TypeError(f"output is {type(out).__name__}")
        return str(out.model_dump_json())

    async def structured_stream() -> str:
        async with Agent(model, output_type=weather).run_stream(PROMPT, model_settings=settings) as run:
            out = await run.get_output()
        if not isinstance(out, weather):
            raise TypeError(f"output is {type(out).__name__}")
        return str(out.model_dump_json())

    return {
        "Agent.run_sync (Converse)": lambda: str(Agent(model).run_sync(PROMPT, model_settings=settings).output),
        "Agent.run_stream (ConverseStream)": lambda: asyncio.run(stream()),
        "Agent(output_type=...)": structured,
        "Agent(output_type=...).run_stream (ConverseStream)": lambda: asyncio.run(structured_stream()),
    }


def _litellm(url: str) -> dict[str, Callable[[], str]]:
    import litellm

    weather = _weather_model()
    common: dict[str, Any] = {"aws_bedrock_runtime_endpoint": url, "aws_region_name": REGION, "max_tokens": MAX_TOKENS,
                              "num_retries": 0, "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
    tool = {"type": "function", "function": {"name": "get_weather", "description": "the weather in a city",
                                             "parameters": weather.model_json_schema()}}  # fmt: skip

    def text(model: str, stream: bool) -> Callable[[], str]:
        def call() -> str:
            r = litellm.completion(model=model, stream=stream, **common)
            if not stream:
                return str(r.choices[0].message.content)
            return "".join(c.choices[0].delta.content or "" for c in r if c.choices)
        return call

    def tools() -> str:
        r = litellm.completion(model=f"bedrock/converse/{MODEL}", tools=[tool], tool_choice="required", **common)
        calls = r.choices[0].message.tool_calls or []
        if not calls:
            raise ValueError(f"no tool call; finish_reason={r.choices[0].finish_reason}")
        return str(weather.model_validate_json(calls[0].function.arguments).model_dump_json())

    def structured(model: str, stream: bool = False) -> Callable[[], str]:
        def call() -> str:
            r = litellm.completion(model=model, response_format=weather, stream=stream, **common)
            text = ("".join(c.choices[0].delta.content or "" for c in r if c.choices) if stream
                    else r.choices[0].message.content)  # fmt: skip
            return str(weather.model_validate_json(text).model_dump_json())
        return call

    return {
        "completion (Converse)": text(f"bedrock/converse/{MODEL}", False),
        "completion stream (ConverseStream)": text(f"bedrock/converse/{MODEL}", True),
        "completion tools, tool_choice=required": tools,
        "completion response_format=<pydantic model>": structured(f"bedrock/converse/{MODEL}"),
        "completion response_format stream (ConverseStream)": structured(f"bedrock/converse/{MODEL}", True),
        "completion response_format (bedrock/invoke)": structured(f"bedrock/invoke/{MODEL}"),
        "completion (bedrock/invoke, InvokeModel)": text(f"bedrock/invoke/{MODEL}", False),
        "completion stream (bedrock/invoke, InvokeModelWithResponseStream)": text(f"bedrock/invoke/{MODEL}", True),
    }


def _aiobotocore(url: str) -> dict[str, Callable[[], str]]:
    from aiobotocore.session import get_session

    weather = _weather_model()
    msgs = [{"role": "user", "content": [{"text": PROMPT}]}]
    cfg = {"maxTokens": MAX_TOKENS}
    tool_cfg = {"tools": [{"toolSpec": {"name": "get_weather", "description": "the weather in a city",
                                        "inputSchema": {"json": weather.model_json_schema()}}}],
                "toolChoice": {"tool": {"name": "get_weather"}}}  # fmt: skip

    async def with_client(fn: Callable[[Any], Any]) -> str:
        async with get_session().create_client("bedrock-runtime", endpoint_url=url, region_name=REGION) as c:
            return str(await fn(c))

    async def converse(c: Any) -> str:
        r = await c.converse(modelId=MODEL, messages=msgs, inferenceConfig=cfg)
        return str(r["output"]["message"]["content"][0]["text"])

    async def converse_stream(c: Any) -> str:
        r = await c.converse_stream(modelId=MODEL, messages=msgs, inferenceConfig=cfg)
        parts = [ev["contentBlockDelta"]["delta"].get("text", "") async for ev in r["stream"]
                 if "contentBlockDelta" in ev]  # fmt: skip
        return "".join(parts)

    async def tool_use(c: Any) -> str:
        r = await c.converse(modelId=MODEL, messages=msgs, inferenceConfig=cfg, toolConfig=tool_cfg)
        blocks = [b["toolUse"] for b in r["output"]["message"]["content"] if "toolUse" in b]
        if r["stopReason"] != "tool_use" or not blocks:
            raise ValueError(f"no toolUse block; stopReason={r['stopReason']}")
        return str(weather.model_validate(blocks[0]["input"]).model_dump_json())

    async def tool_use_stream(c: Any) -> str:
        r = await c.converse_stream(modelId=MODEL, messages=msgs, inferenceConfig=cfg, toolConfig=tool_cfg)
        raw, stop = "", None
        async for ev in r["stream"]:
            if "contentBlockDelta" in ev:
                raw += ev["contentBlockDelta"]["delta"].get("toolUse", {}).get("input", "")
            elif "messageStop" in ev:
                stop = ev["messageStop"]["stopReason"]
        if stop != "tool_use":
            raise ValueError(f"stopReason={stop}")
        return str(weather.model_validate_json(raw).model_dump_json())

    async def structured_stream(c: Any) -> str:
        schema = json.dumps(weather.model_json_schema())
        out_cfg = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": schema}}}}
        r = await c.converse_stream(modelId=MODEL, messages=msgs, inferenceConfig=cfg, outputConfig=out_cfg)
        parts = [ev["contentBlockDelta"]["delta"].get("text", "") async for ev in r["stream"]
                 if "contentBlockDelta" in ev]  # fmt: skip
        return str(weather.model_validate_json("".join(parts)).model_dump_json())

    async def invoke_stream(c: Any) -> str:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
        r = await c.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
        out = ""
        async for ev in r["body"]:
            chunk = json.loads(ev["chunk"]["bytes"])
            if chunk.get("type") == "content_block_delta":
                out += chunk["delta"].get("text", "")
        return out

    return {
        "converse": lambda: asyncio.run(with_client(converse)),
        "converse_stream": lambda: asyncio.run(with_client(converse_stream)),
        "converse toolConfig (toolChoice tool)": lambda: asyncio.run(with_client(tool_use)),
        "converse_stream toolConfig (toolChoice tool)": lambda: asyncio.run(with_client(tool_use_stream)),
        "converse_stream outputConfig (json_schema)": lambda: asyncio.run(with_client(structured_stream)),
        "invoke_model_with_response_stream (anthropic body)": lambda: asyncio.run(with_client(invoke_stream)),
    }


_CHILDREN: dict[str, Callable[[str], dict[str, Callable[[], str]]]] = {
    "langchain-aws": _langchain, "strands-agents": _strands, "pydantic-ai": _pydantic_ai, "litellm": _litellm,
    "aiobotocore": _aiobotocore,
}  # fmt: skip


def child(client: str, url: str) -> int:
    """Run one client's calls; one JSON line per call on stdout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(DISTRIBUTION[client])
        calls = _CHILDREN[client](url)
    except (ImportError, PackageNotFoundError) as exc:
        print(json.dumps({"client": client, "version": "-", "call": "(import)", "ok": False,
                          "error": f"not installed: {exc}"}))  # fmt: skip
        return 0
    for name, fn in calls.items():
        t0 = time.perf_counter()
        try:
            out = fn()
            ok, err = bool(out.strip()), ("" if out.strip() else "empty answer")
        except Exception as exc:
            ok, err = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            if os.environ.get("CLIENTS_COMPAT_TRACE"):
                traceback.print_exc(file=sys.stderr)
        print(json.dumps({"client": client, "version": ver, "call": name, "ok": ok, "error": err,
                          "s": round(time.perf_counter() - t0, 2)}), flush=True)  # fmt: skip
    return 0


# ----------------------------------------------------------------------------------------- parent side


def setup(python: Path) -> None:
    """Create the clients' venv and install the client libraries into it (never into .venv)."""
    venv = python.parent.parent
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)


def run_all(python: Path, clients: list[str], call_timeout: float, time_scale: float) -> list[dict[str, Any]]:
    from bedrock_lab.emulator import run_emulator

    rows: list[dict[str, Any]] = []
    with run_emulator(seed=0, time_scale=time_scale, mode="subprocess") as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LITELLM"))}
        env.update(AWS_ENDPOINT_URL_BEDROCK_RUNTIME=emu.url, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
                   AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard", LITELLM_LOCAL_MODEL_COST_MAP="True",
                   OTEL_SDK_DISABLED="true", STRANDS_OTEL_ENABLE_CONSOLE_EXPORT="false")  # fmt: skip
        for client in clients:
            cmd = [str(python), str(Path(__file__).resolve()), "--client", client, "--url", emu.url]
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE,
                                      timeout=call_timeout * 8)  # fmt: skip
                out, err = proc.stdout, proc.stderr
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                err = f"timed out after {call_timeout * 8:.0f} s"
            got = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            if not got:
                got = [{"client": client, "version": "-", "call": "(run)", "ok": False,
                        "error": " ".join(err.split())[-300:]}]  # fmt: skip
            rows += got
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| client | version | call | result | error |", "|---|---|---|---|---|"]
    for r in rows:
        error = str(r.get("error") or "").replace("|", "\\|")
        lines.append(f"| {r['client']} | {r['version']} | {r['call']} | {'ok' if r['ok'] else 'FAILED'} | {error} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients-python", type=Path, default=ROOT / ".venv-clients" / "bin" / "python",
                    help="the interpreter of the venv holding the client libraries (default .venv-clients)")
    ap.add_argument("--only", nargs="*", choices=CLIENTS, default=list(CLIENTS), help="run only these clients")
    ap.add_argument("--setup", action="store_true", help="create the clients' venv and install the clients first")
    ap.add_argument("--call-timeout", type=float, default=60.0, help="seconds per call (a client run gets 8x)")
    ap.add_argument("--time-scale", type=float, default=0.05, help="emulator time_scale (latencies x this)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        return child(args.client, args.url)
    if args.setup:
        setup(args.clients_python)
    if not args.clients_python.exists():
        print(f"no clients venv at {args.clients_python}: run with --setup (or see this file's docstring)")
        return 2
    rows = run_all(args.clients_python, args.only, args.call_timeout, args.time_scale)
    text = table(rows)
    print(text)
    ok = sum(r["ok"] for r in rows)
    print(f"\n{ok} of {len(rows)} calls ok")
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
