"""Where load goes: the embedded emulator, AWS, or any OpenAI-compatible server, and how clients for it are built.

Credentials never leave botocore objects: they are not printed, logged, stored in records or passed around
as parameters. Against the emulator, configured credentials are used if any (without the slow instance/container
metadata look-ups), otherwise dummy ones: the emulator checks only the shape of the signature.

API keys (a Bedrock API key for ``auth="api-key"``, an OpenAI-compatible server's key) are read from an environment
variable, named by ``api_key_env``, only when a client is built (:meth:`Target.api_key`); the target itself holds
only the variable's name, so describing, printing or storing a target never reveals a key.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bedrock_lab._net import is_loopback_url, parse_endpoint
from bedrock_lab.errors import ConfigError, EngineError

#: SigV4 signing name of Bedrock Runtime (scope .../{region}/bedrock/aws4_request)
SIGNING_NAME = "bedrock"
EMULATOR_REGION = "us-east-1"
#: the environment variable boto3 reads a Bedrock API key from (botocore: AWS_BEARER_TOKEN_<signing name>)
BEDROCK_KEY_ENV = "AWS_BEARER_TOKEN_BEDROCK"
#: the OpenAI SDK's own variable, the default for an OpenAI-compatible target
OPENAI_KEY_ENV = "OPENAI_API_KEY"
#: where Bedrock Runtime serves the OpenAI Chat Completions API, relative to its endpoint
BEDROCK_OPENAI_PREFIX = "/openai/v1"
AUTH_KINDS = ("sigv4", "api-key")


@dataclass(frozen=True)
class ClientSettings:
    """Client knobs for load testing: retries off, pool >= concurrency, explicit timeouts."""

    max_attempts: int = 1  #: total attempts (1 = retries off); >1 mirrors botocore standard mode
    pool_size: int = 100  #: connection pool size; engines raise it to at least the concurrency
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0  #: max silence between bytes (botocore semantics), not total time

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("must be >= 1", key="max_attempts", value=self.max_attempts)
        if self.pool_size < 1:
            raise ConfigError("must be >= 1", key="pool_size", value=self.pool_size)


@dataclass(frozen=True)
class Target:
    """A Bedrock Runtime endpoint (:meth:`emulator`, :meth:`aws`) or an OpenAI-compatible server (:meth:`openai`)."""

    kind: str  #: "emulator", "aws" or "openai"
    region: str
    endpoint_url: str | None = None
    profile: str | None = field(default=None)
    auth: str = "sigv4"  #: Bedrock targets: "sigv4" or "api-key" (Authorization: Bearer, key from ``api_key_env``)
    api_key_env: str | None = None  #: the environment variable holding the API key (never the key itself)
    ca_bundle: str | None = None  #: a CA file to trust for https (the emulator's ``tls=True`` CA), else the system's

    def __post_init__(self) -> None:
        if self.auth not in AUTH_KINDS:
            raise ConfigError("unknown authentication", key="auth", value=self.auth, allowed=", ".join(AUTH_KINDS))
        if self.kind == "openai" and not self.endpoint_url:
            raise ConfigError("an OpenAI-compatible target needs its base URL", key="base_url", value=None,
                              allowed="e.g. http://127.0.0.1:8000/v1 (the URL before /chat/completions)")  # fmt: skip

    @classmethod
    def emulator(cls, url: str, region: str = EMULATOR_REGION, *, auth: str = "sigv4", ca_bundle: str | None = None,
                 api_key_env: str | None = None) -> Target:  # fmt: skip
        parse_endpoint(url)
        return cls("emulator", region, url.rstrip("/"), None, auth, _key_env(auth, api_key_env), ca_bundle)

    @classmethod
    def aws(cls, region: str, profile: str | None = None, endpoint_url: str | None = None, *, auth: str = "sigv4",
            api_key_env: str | None = None, ca_bundle: str | None = None) -> Target:  # fmt: skip
        if not region:
            raise ConfigError("an AWS target needs a region", key="region", value=region)
        if endpoint_url:
            parse_endpoint(endpoint_url)
        return cls("aws", region, endpoint_url.rstrip("/") if endpoint_url else None, profile, auth,
                   _key_env(auth, api_key_env), ca_bundle)  # fmt: skip

    @classmethod
    def openai(cls, base_url: str, api_key_env: str | None = OPENAI_KEY_ENV, *, ca_bundle: str | None = None) -> Target:
        """Any OpenAI-compatible server (vLLM, TGI, SGLang, ...): ``base_url`` is the URL before
        ``/chat/completions`` (e.g. ``http://127.0.0.1:8000/v1``); the key, if the server wants one, is read from
        ``api_key_env`` (None or an unset variable: no Authorization header). Only the ``chat-completions`` API."""
        parse_endpoint(base_url)
        return cls("openai", "", base_url.rstrip("/"), None, "api-key", api_key_env, ca_bundle)

    @property
    def is_loopback(self) -> bool:
        """True when requests go to this machine (an emulator, or any endpoint on 127.0.0.0/8, ::1, localhost)."""
        return is_loopback_url(self.base_url)

    @property
    def is_emulator(self) -> bool:
        return self.kind == "emulator"

    @property
    def is_openai(self) -> bool:
        """An OpenAI-compatible server: no SigV4, only the chat-completions API."""
        return self.kind == "openai"

    @property
    def base_url(self) -> str:
        return self.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @property
    def openai_base_url(self) -> str:
        """The URL the OpenAI SDK's ``base_url`` takes (before ``/chat/completions``): Bedrock's ``/openai/v1``."""
        return self.base_url if self.is_openai else self.base_url + BEDROCK_OPENAI_PREFIX

    def describe(self) -> str:
        """Human-readable, credential-free description (safe to print and store)."""
        key = f", API key from ${self.api_key_env}" if self.auth == "api-key" and self.api_key_env else ""
        if self.is_openai:
            return f"OpenAI-compatible server at {self.base_url}{key}"
        if self.is_emulator:
            return f"emulator at {self.base_url}{key}"
        prof = f", profile {self.profile}" if self.profile else ""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""  # the endpoint really used
        return f"AWS Bedrock Runtime in {self.region}{prof}{where}{key}"

    # -- API keys and TLS --------------------------------------------------------------------------
    def api_key(self) -> str | None:
        """The API key from the environment (read at client build time, never stored); ConfigError when a Bedrock
        target is set to ``auth="api-key"`` and the variable is unset."""
        if self.auth != "api-key" or not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "").strip()
        if not key and not self.is_openai:
            raise ConfigError(f"auth is api-key but the environment variable {self.api_key_env} is not set",
                              key="api_key_env",
                              value=self.api_key_env, allowed="export the Bedrock API key in it")  # fmt: skip
        return key or None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` takes: a context trusting ``ca_bundle``, else True (the system's CAs)."""
        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True

    # -- credentials -------------------------------------------------------------------------------
    def botocore_session(self) -> Any:
        import botocore.session

        session = botocore.session.Session(profile=self.profile) if self.profile else botocore.session.Session()
        if self.is_emulator:
            resolver = session.get_component("credential_provider")
            for name in ("iam-role", "container-role"):
                with contextlib.suppress(Exception):  # provider missing in this botocore: nothing to remove
                    resolver.remove(name)
        return session

    def credentials(self) -> Any:
        """Frozen botocore credentials for signing (dummy ones for an emulator without configured ones)."""
        from botocore.credentials import Credentials

        try:
            creds = self.botocore_session().get_credentials()
        except Exception as exc:
            if not self.is_emulator:
                raise EngineError(f"could not resolve AWS credentials: {type(exc).__name__}") from None
            creds = None
        if creds is None:
            if self.is_emulator:
                return Credentials("bedrock-lab-emulator", "bedrock-lab-emulator").get_frozen_credentials()
            raise EngineError("no AWS credentials found (standard chain: env vars, profiles, SSO, instance roles)")
        return creds.get_frozen_credentials()

    # -- boto3 ---------------------------------------------------------------------------------------
    def boto3_client(self, settings: ClientSettings | None = None) -> Any:
        """A real boto3 ``bedrock-runtime`` client configured for load testing."""
        import boto3
        from botocore.config import Config

        s = settings or ClientSettings()
        config = Config(
            region_name=self.region,
            retries={"total_max_attempts": s.max_attempts, "mode": "standard"},
            max_pool_connections=s.pool_size,
            connect_timeout=s.connect_timeout_s,
            read_timeout=s.read_timeout_s,
            # SigV4 pinned: also when AWS_BEARER_TOKEN_BEDROCK is set (http emulator); auth="api-key" = bearer
            signature_version="bearer" if self.auth == "api-key" else "v4",
            tcp_keepalive=True,
        )
        if self.is_openai:
            raise ConfigError("an OpenAI-compatible target has no boto3 client", key="api", value=self.kind,
                              allowed="chat-completions")  # fmt: skip
        session = boto3.Session(botocore_session=self.botocore_session())
        kwargs: dict[str, Any] = {"config": config, "endpoint_url": self.endpoint_url}
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        # botocore reads the token from AWS_BEARER_TOKEN_BEDROCK itself
        if self.auth == "api-key" and self.api_key() is not None and self.api_key_env != BEDROCK_KEY_ENV:
            raise ConfigError("boto3 reads a Bedrock API key only from AWS_BEARER_TOKEN_BEDROCK", key="api_key_env",
                              value=self.api_key_env, allowed=BEDROCK_KEY_ENV)  # fmt: skip
        if self.is_emulator and session.get_credentials() is None:
            frozen = self.credentials()
            kwargs.update(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key)
        return session.client("bedrock-runtime", **kwargs)


def _key_env(auth: str, api_key_env: str | None) -> str | None:
    return (api_key_env or BEDROCK_KEY_ENV) if auth == "api-key" else None


class RequestSigner:
    """Authorises one prepared request for a target: SigV4 with botocore (credentials held only inside botocore
    objects), or an API key (``Authorization: Bearer``) read from the target's environment variable once and held
    only here (never logged or recorded). Both engines sign with it (the burst engine's aiohttp requests, the
    Locust user's chat-completions requests)."""

    def __init__(self, target: Target) -> None:
        from botocore.auth import SigV4Auth

        self._key = target.api_key()
        self._auth = None if target.auth == "api-key" else SigV4Auth(target.credentials(), SIGNING_NAME, target.region)
        self.base_url = target.base_url
        self.openai_url = target.openai_base_url  # Bedrock's /openai/v1, or the OpenAI-compatible server's base
        # the Host header, given rather than derived from the URL by botocore at each signature (a fifth of its cost)
        self._host = {url: _host_header(url) for url in (self.base_url, self.openai_url)}
        if self._key and not target.is_openai and target.base_url.startswith("http:") and not target.is_loopback:
            raise ConfigError("a Bedrock API key is sent only over HTTPS (as botocore does)", key="endpoint_url",
                              value=target.base_url, allowed="an https:// endpoint, or a loopback emulator")  # fmt: skip

    def sign(self, api: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The URL and the headers to send (``path`` relative to the endpoint, or to ``openai_base_url`` for the
        chat-completions API)."""
        url = (self.openai_url if api == "chat-completions" else self.base_url) + path
        if self._auth is None:
            out = dict(headers)
            if self._key:
                out["Authorization"] = f"Bearer {self._key}"
            return url, out
        from botocore.awsrequest import AWSRequest

        base = self.openai_url if api == "chat-completions" else self.base_url
        req = AWSRequest(method="POST", url=url, data=body, headers={**headers, "host": self._host[base]})
        self._auth.add_auth(req)
        return url, dict(req.headers.items())


def _host_header(url: str) -> str:
    """The Host header for ``url`` as botocore's signer derives it: lower-case host, IPv6 in brackets, the port only
    when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host
