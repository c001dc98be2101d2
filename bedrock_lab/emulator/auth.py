"""Who may call the emulator: SigV4 (``sigv4.py``) or a Bedrock API key sent as ``Authorization: Bearer <key>``.

Bedrock has two kinds of API key (AWS user guide, "Generate Amazon Bedrock API keys"):

- **short-term**: ``bedrock-api-key-`` + base64 of a SigV4 *presigned URL* (``bedrock.amazonaws.com/?Action=
  CallWithBearerToken&X-Amz-Algorithm=...&X-Amz-Credential=...&X-Amz-Signature=...&Version=1``), what the
  ``aws-bedrock-token-generator`` package builds with botocore's ``SigV4QueryAuth`` from ordinary credentials;
  valid for ``X-Amz-Expires`` seconds (at most 12 h) from ``X-Amz-Date``.
- **long-term**: an opaque service-specific credential of an IAM user.

Default mode accepts any non-empty bearer token (as it accepts any SigV4-shaped header). Strict mode verifies a
short-term key the way it verifies a SigV4 header (same access key -> secret key table: the signature, the
service scope ``bedrock`` and the expiry) and accepts a long-term key only when it is one of ``api_keys``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Collection, Mapping

from bedrock_lab.emulator import sigv4
from bedrock_lab.emulator.providers import ApiError

SHORT_TERM_PREFIX = "bedrock-api-key-"  #: aws_bedrock_token_generator.token_generator.AUTH_PREFIX
MAX_SHORT_TERM_S = 43_200  #: 12 hours, the generator's TOKEN_DURATION
_UNRESERVED = "-_.~"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_INVALID = "The API key included in the request is invalid."


def _deny(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def is_short_term(token: str) -> bool:
    return token.startswith(SHORT_TERM_PREFIX)


def check(method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
          credentials: Mapping[str, str] | None, api_keys: Collection[str] | None = None) -> None:  # fmt: skip
    """Raise an ApiError (403) unless the request is authorised by SigV4 or a Bedrock API key.

    ``credentials`` (access key -> secret key) set = strict mode: signatures and short-term keys are verified,
    long-term keys must be in ``api_keys``."""
    value = headers.get("Authorization") or ""
    if value.startswith("Bearer "):
        check_bearer(value[7:].strip(), credentials, api_keys)
        return
    sigv4.check(method, raw_path, headers, body, credentials)


def check_bearer(token: str, credentials: Mapping[str, str] | None, api_keys: Collection[str] | None = None,
                 now: float | None = None) -> None:  # fmt: skip
    """A bearer token: any non-empty one by default; strict mode verifies it (see the module docstring)."""
    if not token:
        raise _deny("UnrecognizedClientException", _INVALID)
    if credentials is None:
        return
    if is_short_term(token):
        verify_short_term(token, credentials, now=now)
        return
    if not api_keys or not any(hmac.compare_digest(token.encode(), k.encode()) for k in api_keys):
        raise _deny("UnrecognizedClientException", _INVALID)


def verify_short_term(token: str, credentials: Mapping[str, str], now: float | None = None) -> str:
    """Check a short-term key's presigned-URL signature and expiry; returns its access key id.

    The canonical request is the one botocore's ``SigV4QueryAuth`` signed: ``POST``, path ``/``, the query
    without ``X-Amz-Signature`` (and without the ``Version`` the generator appends after signing), the signed
    ``host`` header and the hash of the empty body (botocore signs payloads; the token's request has none)."""
    try:
        url = base64.b64decode(token[len(SHORT_TERM_PREFIX):], validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _deny("UnrecognizedClientException", _INVALID) from None
    host, _, query = url.partition("/?")
    params = urllib.parse.parse_qsl(query, keep_blank_values=True)
    q = dict(params)
    need = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
            "X-Amz-Signature")  # fmt: skip
    if not host or any(k not in q for k in need) or q["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise _deny("UnrecognizedClientException", _INVALID)
    scope = q["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[3] != "bedrock" or scope[4] != "aws4_request":
        raise _deny("UnrecognizedClientException", _INVALID)
    access, date, region, service, term = scope
    secret = credentials.get(access)
    if secret is None:
        raise _deny("UnrecognizedClientException", "The security token included in the request is invalid.")
    try:
        signed_at = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        expires = int(q["X-Amz-Expires"])
    except ValueError:
        raise _deny("UnrecognizedClientException", _INVALID) from None
    if not 0 < expires <= MAX_SHORT_TERM_S:
        raise _deny("UnrecognizedClientException", _INVALID)
    t = time.time() if now is None else now
    if t > signed_at.timestamp() + expires:
        raise _deny("ExpiredTokenException", "The security token included in the request is expired")
    signed = [k for k, _ in params if k not in ("X-Amz-Signature", "Version")]
    canonical_qs = "&".join(
        f"{urllib.parse.quote(k, safe=_UNRESERVED)}={urllib.parse.quote(v, safe=_UNRESERVED)}"
        for k, v in sorted((k, v) for k, v in params if k in signed))  # fmt: skip
    headers = {"host": host}
    names = q["X-Amz-SignedHeaders"].split(";")
    canonical_headers = "".join(f"{h}:{headers.get(h, '')}\n" for h in names)
    canonical = "\n".join(["POST", "/", canonical_qs, canonical_headers, ";".join(names), _EMPTY_SHA256])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", q["X-Amz-Date"], f"{date}/{region}/{service}/{term}",
                         hashlib.sha256(canonical.encode()).hexdigest()])  # fmt: skip
    expected = sigv4.signature(secret, (date, region, service, term), to_sign)
    if not hmac.compare_digest(expected, q["X-Amz-Signature"]):
        raise _deny("InvalidSignatureException", "The request signature we calculated does not match the signature "
                    "you provided.")
    return access


__all__ = ["MAX_SHORT_TERM_S", "SHORT_TERM_PREFIX", "check", "check_bearer", "is_short_term", "verify_short_term"]
