"""Where load goes: the embedded emulator or AWS, and how clients for it are built.

Credentials never leave botocore objects: they are not printed, logged, stored in records or passed around
as parameters. Against the emulator, configured credentials are used if any (without the slow instance/container
metadata look-ups), otherwise dummy ones: the emulator checks only the shape of the signature.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab._net import is_loopback_url, parse_endpoint
from bedrock_lab.errors import ConfigError, EngineError

#: SigV4 signing name of Bedrock Runtime (scope .../{region}/bedrock/aws4_request)
SIGNING_NAME = "bedrock"
EMULATOR_REGION = "us-east-1"


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
    """A Bedrock Runtime endpoint. Build with :meth:`emulator` or :meth:`aws`."""

    kind: str  #: "emulator" or "aws"
    region: str
    endpoint_url: str | None = None
    profile: str | None = field(default=None)

    @classmethod
    def emulator(cls, url: str, region: str = EMULATOR_REGION) -> Target:
        parse_endpoint(url)
        return cls("emulator", region, url.rstrip("/"), None)

    @classmethod
    def aws(cls, region: str, profile: str | None = None, endpoint_url: str | None = None) -> Target:
        if not region:
            raise ConfigError("an AWS target needs a region", key="region", value=region)
        if endpoint_url:
            parse_endpoint(endpoint_url)
        return cls("aws", region, endpoint_url.rstrip("/") if endpoint_url else None, profile)

    @property
    def is_loopback(self) -> bool:
        """True when requests go to this machine (an emulator, or any endpoint on 127.0.0.0/8, ::1, localhost)."""
        return is_loopback_url(self.base_url)

    @property
    def is_emulator(self) -> bool:
        return self.kind == "emulator"

    @property
    def base_url(self) -> str:
        return self.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    def describe(self) -> str:
        """Human-readable, credential-free description (safe to print and store)."""
        if self.is_emulator:
            return f"emulator at {self.base_url}"
        prof = f", profile {self.profile}" if self.profile else ""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""  # the endpoint really used
        return f"AWS Bedrock Runtime in {self.region}{prof}{where}"

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
            signature_version="v4",  # also keeps SigV4 when AWS_BEARER_TOKEN_BEDROCK is set (http emulator)
            tcp_keepalive=True,
        )
        session = boto3.Session(botocore_session=self.botocore_session())
        kwargs: dict[str, Any] = {"config": config, "endpoint_url": self.endpoint_url}
        if self.is_emulator and session.get_credentials() is None:
            frozen = self.credentials()
            kwargs.update(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key)
        return session.client("bedrock-runtime", **kwargs)
