"""HTTPS for the emulator: a throwaway certificate authority and a server certificate made at start.

Why: botocore sends Bedrock API keys (``AWS_BEARER_TOKEN_BEDROCK``, bearer auth) only to ``https://`` endpoints
(``botocore.auth.BearerAuth`` refuses plain HTTP), so testing API keys with boto3 needs TLS. The CA exists only
in memory and in one PEM file (the CA bundle) that clients are told to trust: ``AWS_CA_BUNDLE=<file>`` or
``boto3.client(..., verify=<file>)`` for boto3, ``httpx.Client(verify=<file>)`` / ``OpenAI(http_client=...)``,
``SSL_CERT_FILE=<file>`` for most other clients. Nothing is installed in the system trust store.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bedrock_lab.errors import ConfigError

CA_FILE = "bedrock-lab-emulator-ca.pem"  #: the CA bundle's file name inside the TLS folder
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    """A server SSL context and the CA bundle a client trusts it with."""

    context: ssl.SSLContext
    ca_bundle: str  #: path of the CA certificate (PEM)


def names_for(host: str) -> tuple[str, ...]:
    """Subject names of the server certificate: loopback, plus the bind address when it is a specific one."""
    h = host.strip("[]")
    specific = h and h not in LOOPBACK_NAMES and h not in ("0.0.0.0", "::")
    return (*LOOPBACK_NAMES, h) if specific else LOOPBACK_NAMES


def make_tls(host: str = "127.0.0.1", folder: str | os.PathLike[str] | None = None) -> TlsMaterial:
    """A fresh CA and server certificate for ``host``; the CA bundle is written to ``folder`` (default: a new
    temporary folder). TLS 1.2 or newer."""
    try:
        import trustme
    except ImportError:  # a runtime dependency; missing only in a broken install
        raise ConfigError("TLS needs the trustme package (pip install trustme)", key="tls", value=True) from None
    out = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="bedrock-lab-tls-"))
    if not out.is_dir():
        raise ConfigError("the TLS folder does not exist", key="tls_dir", value=str(out), allowed="an existing folder")
    ca = trustme.CA(organization_name="bedrock-lab emulator (throwaway test CA)")
    cert = ca.issue_cert(*names_for(host))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert.configure_cert(ctx)
    bundle = out / CA_FILE
    ca.cert_pem.write_to_path(str(bundle))
    return TlsMaterial(ctx, str(bundle))


def client_context(ca_bundle: str) -> ssl.SSLContext:
    """An SSL context that trusts exactly the emulator's CA (for urllib / aiohttp clients)."""
    return ssl.create_default_context(cafile=ca_bundle)


def trust_hint(ca_bundle: str) -> str:
    """What a person must do to make a client trust the emulator (printed by the CLI)."""
    return (f"TLS: the certificate is signed by a throwaway CA; trust it with AWS_CA_BUNDLE={ca_bundle} (boto3, "
            f"AWS CLI), verify='{ca_bundle}' (boto3.client / httpx), or SSL_CERT_FILE={ca_bundle}")


__all__ = ["CA_FILE", "TlsMaterial", "client_context", "make_tls", "names_for", "trust_hint"]
