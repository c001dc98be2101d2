"""Authorization checks the way AWS answers them (403 + x-amzn-ErrorType).

Default: the header must be present and shaped like SigV4 (``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...`` plus ``X-Amz-Date``) or be a bearer token (a Bedrock API key: ``auth.py``). Strict mode also
recomputes the signature with the configured secret key for the access key in the credential scope.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping

from bedrock_lab.emulator.providers import ApiError

_AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)
_UNRESERVED = "-_.~"


def _deny(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def parse_authorization(value: str) -> dict[str, str]:
    m = _AUTH_RE.match(value.strip())
    if not m:
        raise _deny("IncompleteSignatureException", f"Authorization header requires 'Credential' parameter. "
                    f"Authorization header requires 'Signature' parameter. Authorization header requires "
                    f"'SignedHeaders' parameter. Authorization={value[:40]}")
    parts: dict[str, str] = {}
    for item in m.group(1).split(","):
        k, _, v = item.strip().partition("=")
        parts[k.strip()] = v.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not parts.get(k)]
    if missing:
        raise _deny("IncompleteSignatureException",
                    " ".join(f"Authorization header requires '{k}' parameter." for k in missing))
    if len(parts["Credential"].split("/")) != 5:
        raise _deny("IncompleteSignatureException", "Credential should be scoped to a valid region. "
                    f"Credential={parts['Credential']}")
    return parts


def check(method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
          credentials: Mapping[str, str] | None) -> None:  # fmt: skip
    """Raise an ApiError (403) unless the request is authorised; ``credentials`` (access -> secret) = strict."""
    auth = headers.get("Authorization")
    if not auth:
        raise _deny("MissingAuthenticationTokenException", "Missing Authentication Token")
    if auth.startswith("Bearer "):  # a Bedrock API key: auth.py (strict mode verifies short-term keys there)
        from bedrock_lab.emulator.auth import check_bearer  # auth imports this module

        check_bearer(auth[7:].strip(), credentials)
        return
    parts = parse_authorization(auth)
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise _deny("IncompleteSignatureException",
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if credentials is None:
        return
    access, date, region, service, term = parts["Credential"].split("/")
    secret = credentials.get(access)
    if secret is None:
        raise _deny("UnrecognizedClientException", "The security token included in the request is invalid.")
    signed = parts["SignedHeaders"].split(";")
    path, _, query = raw_path.partition("?")
    canonical_uri = urllib.parse.quote(path, safe="/" + _UNRESERVED)
    qs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    canonical_qs = "&".join(f"{urllib.parse.quote(k, safe=_UNRESERVED)}={urllib.parse.quote(v, safe=_UNRESERVED)}"
                            for k, v in qs)
    lower: dict[str, list[str]] = {}
    for k, v in headers.items():
        lower.setdefault(k.lower(), []).append(" ".join(v.split()))
    canonical_headers = "".join(f"{h}:{','.join(lower.get(h, []))}\n" for h in signed)
    payload_hash = headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, canonical_uri, canonical_qs, canonical_headers, ";".join(signed), payload_hash])
    scope = f"{date}/{region}/{service}/{term}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = signature(secret, (date, region, service, term), to_sign)
    if not hmac.compare_digest(expected, parts["Signature"]):
        raise _deny("InvalidSignatureException", "The request signature we calculated does not match the signature "
                    "you provided. Check your AWS Secret Access Key and signing method. Consult the service "
                    "documentation for details.")


def signature(secret: str, scope: tuple[str, str, str, str], string_to_sign: str) -> str:
    """SigV4's HMAC chain: the signing key from the secret and the scope (date, region, service, terminator)."""
    key = ("AWS4" + secret).encode()
    for part in scope:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
