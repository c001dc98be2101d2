"""run_emulator / EmulatorConfig / CLI behaviour: options are validated, the CLI prints one line, slots and
connections are released whatever the client does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from emu_helpers import make_client, user

from bedrock_lab.emulator import EmulatorConfig, config_dict, run_emulator
from bedrock_lab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"warp_speed": 9}, "warp_speed"), ({"max_queue_ms": 90_000}, "max_queue_ms"), ({"time_scale": 0}, "time_scale"),
    ({"faults": {"meteor": 0.1}}, "faults.meteor"), ({"faults": {"drop": 2}}, "faults.drop"),
    ({"latency": {"warp": 1}}, "latency.warp"), ({"latency": {"chunk_tokens": 0}}, "latency.chunk_tokens"), ({"event_loop": "tokio"}, "event_loop"), ({"port": -1}, "port")])
def test_bad_options_are_config_errors(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc, run_emulator(**kwargs):
        pass
    assert exc.value.key == key


def test_config_dict_never_holds_credentials() -> None:
    cfg = EmulatorConfig(strict_auth=True, credentials={"AK": "secret"}, faults={"drop": 0.1})
    d = config_dict(cfg)
    assert "credentials" not in d and "secret" not in json.dumps(d) and d["faults"] == {"drop": 0.1}
    assert "--strict-auth" in EmulatorConfig(strict_auth=True).cli_args()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_both_event_loops_stream(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with run_emulator(event_loop=loop, time_scale=0.02) as emu:
        c = make_client(emu.url)
        events = list(c.converse_stream(modelId="amazon.nova-micro-v1:0", messages=user(),
                                        inferenceConfig={"maxTokens": 12})["stream"])
        assert events[-1]["metadata"]["usage"]["outputTokens"] <= 12
        r = c.invoke_model_with_response_stream(modelId="amazon.titan-text-express-v1",
                                                body=json.dumps({"inputText": "hi"}))
        assert "amazon-bedrock-invocationMetrics" in json.loads(list(r["body"])[-1]["chunk"]["bytes"])


def test_client_leaving_mid_stream_frees_the_slot() -> None:
    with run_emulator(capacity=1, max_queue_ms=10_000, time_scale=0.05,
                      latency={"output_median_tokens": 0, "tokens_per_s": 40}) as emu:
        c = make_client(emu.url)
        for _ in range(3):  # each stream would hold the only slot for ~1 s; the client leaves after 1 event
            r = c.converse_stream(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"maxTokens": 800})
            next(iter(r["stream"]))
            r["stream"].close()
        out = c.converse(modelId="amazon.nova-lite-v1:0", messages=user(), inferenceConfig={"maxTokens": 4})
        assert out["usage"]["outputTokens"] <= 4
        assert emu.stats()["outcomes"]["ok"] >= 1


def test_cli_prints_one_line_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bedrock_lab", "emulator", "--port", "0", "--seed", "3",
                             "--time-scale", "0.02", "--fault", "error_503=0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        c = make_client(url)
        assert c.converse(modelId="amazon.nova-lite-v1:0", messages=user())["usage"]["inputTokens"] > 0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and out == "", (out, err)


def test_cli_rejects_a_bad_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("models: {acme.x-v1: {provider_format: cohere, prices: {default: {input: 1, output: 1}}}}")
    proc = subprocess.run([sys.executable, "-m", "bedrock_lab", "emulator", "--port", "0", "--catalog", str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "provider_format" in proc.stderr and str(bad) in proc.stderr
