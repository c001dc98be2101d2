"""Endpoint URLs: parsed once with a clear error, and loopback recognised by address, not by spelling.

>>> is_loopback_url("http://localhost:8765"), is_loopback_url("http://127.3.0.1"), is_loopback_url("http://[::1]:9")
(True, True, True)
>>> is_loopback_url("https://bedrock-runtime.us-east-1.amazonaws.com")
False
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from bedrock_lab.errors import ConfigError

#: host names that mean this machine without a DNS lookup
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def parse_endpoint(url: str, *, key: str = "endpoint_url", source: str | None = None) -> urllib.parse.SplitResult:
    """``url`` split, or a :class:`ConfigError` naming ``key`` when it is not an http(s) URL with a host."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"not a valid URL: {exc}", source=source, key=key, value=url,
                          allowed="http(s)://host[:port], e.g. http://127.0.0.1:8765") from None  # fmt: skip
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError("must be an http(s) URL with a host", source=source, key=key, value=url,
                          allowed="http(s)://host[:port], e.g. http://127.0.0.1:8765")  # fmt: skip
    return parts


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (and IPv4-mapped loopback) and the usual localhost names."""
    h = host.strip("[]").lower().rstrip(".")
    if h in LOOPBACK_NAMES or h.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (:func:`is_loopback_host`); False for anything unparsable."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    return bool(host) and is_loopback_host(str(host))

