"""Bedrock API keys and OpenAI-style keys never reach what a run writes: error messages in records are masked
(engines.health.clean_message), and a run with a right and a wrong key over the emulator's TLS leaves neither
key in the records, the emulator's timing log or its log output. Keys are built at run time."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest
from conftest import FAST

from bedrock_lab.emulator import run_emulator
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync
from bedrock_lab.engines.health import clean_message
from bedrock_lab.records import load_records

KEY_ENV = "BEDROCK_LAB_TEST_MASK_KEY"


def _keys() -> dict[str, str]:
    """One key of each shape the masking knows, random each run."""
    return {
        "long-term": "ABSK" + secrets.token_urlsafe(40),
        "short-term": "bedrock-api-key-" + secrets.token_urlsafe(48),
        "openai": "sk-" + secrets.token_urlsafe(32),
    }


@pytest.mark.parametrize("kind", ["long-term", "short-term", "openai"])
def test_error_messages_mask_api_keys(kind: str) -> None:
    key = _keys()[kind]
    for text in (f"invalid key {key} given", f"Authorization: Bearer {key}", f"{key}"):
        msg = clean_message(text)
        assert msg is not None and key not in msg and "***" in msg, (text, msg)
    assert clean_message("Bearer " + key).startswith("Bearer ***")  # type: ignore[union-attr]  # the scheme stays


def test_a_run_with_a_right_and_a_wrong_key_stores_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    good, bad = _keys()["long-term"], _keys()["long-term"]
    log = tmp_path / "timing.jsonl"
    caplog.set_level(logging.DEBUG)
    with run_emulator(seed=0, latency=FAST, tls=True, strict_auth=True, api_keys=[good], timing_log=str(log)) as emu:
        target = Target.emulator(emu.url, auth="api-key", api_key_env=KEY_ENV, ca_bundle=emu.ca_bundle)
        spec = BurstSpec("openai.gpt-oss-20b-1:0", api="chat-completions", users=2, requests=4, max_tokens=8)
        monkeypatch.setenv(KEY_ENV, good)
        run_burst_sync(spec, target=target, out_dir=tmp_path / "good", progress=False)
        monkeypatch.setenv(KEY_ENV, bad)
        run_burst_sync(spec, target=target, out_dir=tmp_path / "bad", progress=False)
    assert (load_records(tmp_path / "good")["status"] == "ok").all()
    refused = load_records(tmp_path / "bad")
    assert set(refused["http_status"]) == {401}  # the wrong key was sent and refused: the path under test ran
    assert log.stat().st_size > 0
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert good.encode() not in data and bad.encode() not in data, f
    assert good not in caplog.text and bad not in caplog.text
    assert good not in target.describe() and KEY_ENV in target.describe()
