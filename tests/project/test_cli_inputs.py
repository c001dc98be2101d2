"""Bad command-line input: one line naming the option, the value and what is allowed; exit 2; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_lab.cli import main


@pytest.mark.parametrize(("argv", "expected"), [
    (["burst", "--endpoint", "http://[::zz", "--requests", "1"], "--endpoint: not a valid URL"),
    (["burst", "--endpoint", "ftp://x", "--requests", "1"], "--endpoint: must be an http(s) URL with a host"),
    (["burst", "--read-timeout", "0", "--requests", "1"], "read_timeout_s: must be > 0"),
    (["burst", "--min-success-rate", "2", "--requests", "1"], "min_success_rate: must be <= 1"),
    (["burst", "--out", "{file}", "--requests", "1"], "--out: is a file, not a folder"),
    (["locust", "--out", "{file}", "--requests", "1"], "--out: is a file, not a folder"),
    (["emulator", "--host", "256.1.1.1"], "host: not an IP address or host name"),
    (["emulator", "--timing-log", "{missing}/t.jsonl"], "the folder of the timing log does not exist"),
])  # fmt: skip
def test_bad_cli_input_is_one_clear_line(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    argv = [a.format(file=tmp_path / "afile", missing=tmp_path / "missing") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
