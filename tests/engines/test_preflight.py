"""The preflight before load that can cost money: against an AWS-marked endpoint nothing is sent without
confirmation (and never without a terminal), a failing probe stops the run before any load, missing credentials
stop it before anything starts, and the estimate is printed with readable digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_lab.cli import main

#: an AWS-marked target that is unreachable (a closed port on loopback: no traffic leaves this machine)
AWS_UNREACHABLE = ["--region", "us-east-1", "--endpoint", "http://127.0.0.1:9"]


@pytest.mark.parametrize("command", ["burst", "locust"])
def test_without_a_terminal_an_aws_run_is_refused_and_nothing_is_written(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([command, *AWS_UNREACHABLE, "--requests", "10", "--out", str(tmp_path / "o")])
    assert rc == 2
    out, err = capsys.readouterr()
    assert "estimated $0.0" in out and "$0.00 " not in out  # readable digits, never "$0.00"
    assert "no terminal to ask for confirmation; pass --yes" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["burst", "locust"])
def test_with_yes_the_probe_fails_and_no_load_starts(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([command, *AWS_UNREACHABLE, "--requests", "10", "--yes", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "the probe request failed, nothing else was sent: EndpointConnectionError" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_confirmed_question_names_the_endpoint_really_used(capsys: pytest.CaptureFixture[str]) -> None:
    from bedrock_lab.engines import BurstSpec, Target
    from bedrock_lab.engines.preflight import preflight

    asked: list[str] = []
    res = preflight(BurstSpec(model_id="us.amazon.nova-lite-v1:0", users=2, requests=10),
                    Target.aws("us-east-1", endpoint_url="http://localhost:9"),
                    confirm=lambda q: asked.append(q) or True, probe=False)  # fmt: skip
    assert asked and "at http://localhost:9" in asked[0]
    assert res.est_cost_usd is not None and 0 < res.est_cost_usd < 0.01 and res.expected_requests == 10


def test_an_unknown_model_is_noted_and_left_to_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    from bedrock_lab.engines import BurstSpec, Target
    from bedrock_lab.engines.preflight import preflight

    res = preflight(BurstSpec(model_id="us.amazon.nova-9-v1:0", users=2, requests=10), Target.aws("us-east-1"),
                    yes=True, probe=False)  # fmt: skip
    assert res.est_cost_usd is None and "may be new on AWS" in res.notes[0]
    assert "an unknown cost" in capsys.readouterr().out


def test_locust_with_no_credentials_never_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    rc = main(["locust", "--region", "us-east-1", "--requests", "10", "--yes", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "no AWS credentials found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
