"""Helpers shared by the emulator tests (imported by name; tests/ has no packages)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import boto3
from botocore.config import Config

FAST = 0.02  # time_scale of the shared emulator: a 450 ms TTFT becomes 9 ms


def make_client(url: str, **config: Any) -> Any:
    cfg = Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5, **config)
    return boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=cfg)


def raw_post(url: str, path: str, body: bytes | str, headers: dict[str, str] | None = None,
             method: str = "POST") -> tuple[int, dict[str, str], Any]:  # fmt: skip
    """One plain HTTP request (no signing): for inputs boto3 refuses to send."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"Content-Type": "application/json", "X-Amz-Date": "20260101T000000Z",
         "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/bedrock/aws4_request, "
                          "SignedHeaders=host;x-amz-date, Signature=00"}  # fmt: skip
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data
    return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed


def user(text: str = "Hello, how are you today?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]
