"""The embedded Amazon Bedrock Runtime emulator: real wire protocol, statistically plausible behaviour.

    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, time_scale=0.05) as emu:      # in a thread of this process
        client = boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1")

``mode="subprocess"`` runs ``python -m bedrock_lab emulator --port 0`` instead (its own core, its own GIL);
the handle is the same. Overrides (keyword arguments, also CLI options) are the fields of
:class:`EmulatorConfig`. Docs: docs/emulator.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bedrock_lab._net import is_loopback_host
from bedrock_lab.catalog import (
    FAULT_KINDS,
    Catalog,
    LatencyProfile,
    apply_overlay,
    load_catalog,
    parse_background,
)
from bedrock_lab.emulator.server import (
    H_ARRIVAL,
    H_DECODE,
    H_PRE,
    H_QUEUE,
    H_RESPONSE,
    H_SEQ,
    H_TTFT,
    STATS_PATH,
    EmulatorServer,
    ServerSettings,
    apply_overrides,
)
from bedrock_lab.errors import ConfigError, EmulatorError

#: ground-truth response header names (milliseconds, floats)
GROUND_TRUTH_HEADERS = (H_QUEUE, H_TTFT, H_DECODE)
_LATENCY_KEYS = tuple(f.name for f in fields(LatencyProfile))
_FAULT_KEYS = (*FAULT_KINDS, "stall_ms")


@dataclass
class EmulatorConfig:
    """Emulator settings; every field is also a ``run_emulator`` keyword and a CLI option."""

    host: str = "127.0.0.1"
    port: int = 0  #: 0 = any free port
    seed: int = 0
    catalog: str | os.PathLike[str] | Catalog | None = None  #: None = default catalog (params/catalog.yaml)
    time_scale: float = 1.0  #: multiplies every latency (TTFT, gaps, stalls); 0.05 makes tests 20x faster
    capacity: int | None = None  #: override the concurrent capacity of every model
    tpm_quota: int | None = None  #: override the tokens-per-minute quota of every model
    max_queue_ms: float = 30_000.0  #: longest admission wait before ThrottlingException (keep < 60 s)
    faults: Mapping[str, float] = field(default_factory=dict)  #: override fault rates of every model
    latency: Mapping[str, float] = field(default_factory=dict)  #: override LatencyProfile knobs of every model
    #: catalog overlay file(s) merged onto the catalog in order (``bedrock-lab calibrate`` writes one)
    overlay: str | os.PathLike[str] | list[str] | tuple[str, ...] | None = None
    #: BackgroundProfile knobs for every model (other customers' demand), e.g. {"pattern": "constant", "level": 0.9}
    background: Mapping[str, Any] = field(default_factory=dict)
    strict_auth: bool = False  #: verify SigV4 signatures against ``credentials``
    credentials: Mapping[str, str] | None = None  #: access key -> secret key (default: env AWS_* or testing)
    #: strict mode: the long-term Bedrock API keys accepted as bearer tokens (default: env AWS_BEARER_TOKEN_BEDROCK
    #: when it holds a long-term key); short-term keys are verified against ``credentials`` (emulator/auth.py)
    api_keys: Sequence[str] | None = None
    tls: bool = False  #: serve HTTPS with a certificate made at start; trust ``Emulator.ca_bundle`` (emulator/tls.py)
    tls_dir: str | os.PathLike[str] | None = None  #: folder for the CA bundle (default: a new temporary folder)
    timing_log: str | os.PathLike[str] | None = None  #: JSON-lines file, one line per request
    max_body_bytes: int = 25_000_000
    event_loop: str = "asyncio"  #: "asyncio" (lowest emit lag), "uvloop" (less CPU) or "auto" (uvloop if installed)
    # connection limits: the defaults are the server's own (one source)
    header_timeout_s: float = ServerSettings.header_timeout_s  #: headers within this of the first byte, else 408
    body_timeout_s: float = ServerSettings.body_timeout_s  #: body within this of the headers, else 408
    idle_timeout_s: float = ServerSettings.idle_timeout_s  #: an idle keep-alive connection is closed after this
    max_json_depth: int = ServerSettings.max_json_depth  #: deeper JSON bodies are malformed input (400)

    def validate(self) -> None:
        h = self.host.strip("[]")
        try:
            ipaddress.ip_address(h)
        except ValueError:
            if h.replace(".", "").isdigit() or not h or any(c in h for c in " /\\:@"):
                raise ConfigError("not an IP address or host name", key="host", value=self.host,
                                  allowed="127.0.0.1 (default), ::1, localhost, or an interface address") from None
        if self.tls_dir is not None and not Path(self.tls_dir).is_dir():
            raise ConfigError("the TLS folder does not exist", key="tls_dir", value=str(self.tls_dir),
                              allowed="an existing folder")
        if self.timing_log is not None and not Path(self.timing_log).resolve().parent.is_dir():
            raise ConfigError(f"the folder of the timing log does not exist: {Path(self.timing_log).parent}",
                              key="timing_log", value=str(self.timing_log), allowed="a file in an existing folder")
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError("unknown event loop", key="event_loop", value=self.event_loop,
                              allowed="auto, asyncio, uvloop")
        if not (isinstance(self.port, int) and 0 <= self.port <= 65535):
            raise ConfigError("must be an integer 0..65535", key="port", value=self.port, allowed="0..65535")
        for key in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 3600:
                raise ConfigError("must be a number of seconds > 0 and <= 3600", key=key, value=v,
                                  allowed="0 < seconds <= 3600")
        d = self.max_json_depth
        if isinstance(d, bool) or not isinstance(d, int) or not 8 <= d <= 500:
            raise ConfigError("must be an integer 8..500", key="max_json_depth", value=d, allowed="8..500")
        if not self.time_scale > 0:
            raise ConfigError("must be > 0", key="time_scale", value=self.time_scale, allowed="> 0")
        if self.capacity is not None and self.capacity < 1:
            raise ConfigError("must be >= 1", key="capacity", value=self.capacity, allowed=">= 1")
        if self.tpm_quota is not None and self.tpm_quota < 1:
            raise ConfigError("must be >= 1", key="tpm_quota", value=self.tpm_quota, allowed=">= 1")
        if not 0 < self.max_queue_ms <= 55_000:
            raise ConfigError("must be > 0 and <= 55000 (botocore's read timeout is 60 s)", key="max_queue_ms",
                              value=self.max_queue_ms, allowed="0 < ms <= 55000")
        for k, v in self.faults.items():
            if k not in _FAULT_KEYS:
                raise ConfigError("unknown fault", key=f"faults.{k}", value=k, allowed=", ".join(_FAULT_KEYS))
            if k != "stall_ms" and not 0 <= v <= 1:
                raise ConfigError("fault rates are probabilities", key=f"faults.{k}", value=v, allowed="0..1")
        if self.background:
            parse_background(self.background, source="emulator override")
        for path in self.overlays():
            if not Path(path).is_file():
                raise ConfigError(f"overlay file not found: {path}", key="overlay", value=path,
                                  allowed="a catalog overlay YAML (bedrock-lab calibrate --out writes one)")
        for k, v in self.latency.items():
            if k not in _LATENCY_KEYS:
                raise ConfigError("unknown latency knob", key=f"latency.{k}", value=k, allowed=", ".join(_LATENCY_KEYS))
            positive = k in ("tokens_per_s", "chunk_tokens", "capacity")
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or (positive and v <= 0):
                raise ConfigError(f"must be a number {'> 0' if positive else '>= 0'}", key=f"latency.{k}", value=v)

    def overlays(self) -> list[str]:
        if self.overlay is None:
            return []
        return [str(self.overlay)] if isinstance(self.overlay, str | os.PathLike) else [str(o) for o in self.overlay]

    def load(self) -> Catalog:
        cat = self.catalog if isinstance(self.catalog, Catalog) else load_catalog(self.catalog)
        for path in self.overlays():
            cat = apply_overlay(cat, path)
        if self.background:
            if not isinstance(self.background, Mapping):
                raise ConfigError("must be a mapping of background knobs", key="background", value=self.background)
            cat = apply_overlay(cat, {"models": {m: {"background": dict(self.background)} for m in cat.ids()}},
                                source="background override")  # fmt: skip
        lat = {k: (int(v) if k in ("chunk_tokens", "capacity", "output_median_tokens") else float(v))
               for k, v in self.latency.items()}  # fmt: skip
        return apply_overrides(cat, capacity=self.capacity, tpm_quota=self.tpm_quota, faults=dict(self.faults),
                               latency=lat)  # fmt: skip

    def settings(self) -> ServerSettings:
        self.validate()
        creds = None
        if self.strict_auth:
            creds = dict(self.credentials) if self.credentials else {
                os.environ.get("AWS_ACCESS_KEY_ID", "testing"): os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")}
        return ServerSettings(catalog=self.load(), seed=self.seed, time_scale=self.time_scale,
                              max_queue_ms=self.max_queue_ms, credentials=creds, api_keys=self.strict_api_keys(),
                              timing_log=str(self.timing_log) if self.timing_log else None,
                              max_body_bytes=self.max_body_bytes, header_timeout_s=float(self.header_timeout_s),
                              body_timeout_s=float(self.body_timeout_s), idle_timeout_s=float(self.idle_timeout_s),
                              max_json_depth=self.max_json_depth)  # fmt: skip

    def strict_api_keys(self) -> frozenset[str] | None:
        """The long-term API keys a strict emulator accepts (None when not strict)."""
        if not self.strict_auth:
            return None
        if self.api_keys:
            return frozenset(self.api_keys)
        env = os.environ.get("AWS_BEARER_TOKEN_BEDROCK", "")
        return frozenset([env]) if env and not env.startswith("bedrock-api-key-") else frozenset()

    def cli_args(self) -> list[str]:
        """The ``bedrock-lab emulator`` arguments for the same settings (subprocess mode)."""
        if isinstance(self.catalog, Catalog):
            raise ConfigError("subprocess mode needs a catalog file path, not a Catalog object", key="catalog")
        if self.credentials:
            raise ConfigError("subprocess mode takes strict-auth credentials from the environment only",
                              key="credentials")
        if self.api_keys:
            raise ConfigError("subprocess mode takes API keys from the environment only (AWS_BEARER_TOKEN_BEDROCK)",
                              key="api_keys")
        args = ["--host", self.host, "--port", str(self.port), "--seed", str(self.seed),
                "--time-scale", repr(self.time_scale), "--max-queue-ms", repr(self.max_queue_ms),
                "--max-body-bytes", str(self.max_body_bytes), "--header-timeout", repr(self.header_timeout_s),
                "--body-timeout", repr(self.body_timeout_s), "--idle-timeout", repr(self.idle_timeout_s),
                "--max-json-depth", str(self.max_json_depth)]  # fmt: skip
        if self.catalog is not None:
            args += ["--catalog", str(self.catalog)]
        if self.capacity is not None:
            args += ["--capacity", str(self.capacity)]
        if self.tpm_quota is not None:
            args += ["--tpm-quota", str(self.tpm_quota)]
        for k, v in self.faults.items():
            args += ["--fault", f"{k}={v}"]
        for k, v in self.latency.items():
            args += ["--latency", f"{k}={v}"]
        for path in self.overlays():
            args += ["--overlay", path]
        for k, v in self.background.items():
            args += ["--background", f"{k}={v}"]
        if self.strict_auth:
            args.append("--strict-auth")
        if self.tls:
            args.append("--tls")
        if self.tls_dir is not None:
            args += ["--tls-dir", str(self.tls_dir)]
        if self.timing_log:
            args += ["--timing-log", str(self.timing_log)]
        args += ["--event-loop", self.event_loop]
        return args


def beyond_loopback(host: str) -> str | None:
    """The warning for a bind address other machines can reach (None on loopback: 127.0.0.0/8, ::1, localhost)."""
    if is_loopback_host(host):
        return None
    return (f"listening on {host}, beyond loopback: other machines can reach it and its stats endpoint (reading "
            "is open; a reset needs SigV4 authorization)")


def new_event_loop(kind: str = "asyncio") -> asyncio.AbstractEventLoop:
    """Plain asyncio by default: its timers fire within ~1 ms, so frames leave closest to schedule
    (bench/emulator.md). uvloop (asked for, or ``auto`` when installed) costs ~15% less CPU per frame but has
    whole-millisecond timers, so its emit lag is higher. Behaviour is otherwise the same."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("uvloop is not installed (pip install uvloop)", key="event_loop",
                                  value=kind) from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running (requests in flight at shutdown), let it unwind, close the loop."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    with contextlib.suppress(BaseException):
        loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


class Emulator:
    """A running emulator. ``url`` is the endpoint for ``endpoint_url=`` / AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""

    def __init__(self, config: EmulatorConfig, mode: str) -> None:
        self.config = config
        self.mode = mode
        self.host = config.host
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.stderr_tail: list[str] = []  #: last lines the subprocess wrote to stderr
        self.server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.ca_bundle: str | None = None  #: with ``tls=True``: the CA file clients trust (AWS_CA_BUNDLE / verify=)
        self._ssl: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.config.tls else 'http'}://{host}:{self.port}"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Server counters: requests, outcomes, emit-lag quantiles, queue state per model. ``reset=True`` also
        clears the emit-lag histogram (a signed request, with this emulator's credentials)."""
        creds = dict(self.config.credentials) if self.config.credentials else None
        return fetch_stats(self.url, reset=reset, credentials=creds, ca_bundle=self.ca_bundle)

    # -- thread mode --------------------------------------------------------------------------------
    def _start_thread(self) -> None:
        settings = self.config.settings()
        if self.config.tls:
            from bedrock_lab.emulator.tls import make_tls

            material = make_tls(self.config.host, self.config.tls_dir)
            self._ssl, self.ca_bundle = material.context, material.ca_bundle
        ready: queue.Queue[tuple[int, BaseException | None]] = queue.Queue()

        def main() -> None:
            loop = new_event_loop(self.config.event_loop)
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(settings, ready))
            except BaseException as exc:  # report start-up failures to the caller
                ready.put((0, exc))
            finally:
                close_loop(loop)

        self._thread = threading.Thread(target=main, name="bedrock-lab-emulator", daemon=True)
        self._thread.start()
        try:
            port, err = ready.get(timeout=30)
        except queue.Empty:
            raise EmulatorError("emulator thread did not start within 30 s") from None
        if err is not None:
            raise EmulatorError(f"emulator failed to start: {err}") from err
        self.port = port

    async def _serve(self, settings: ServerSettings, ready: queue.Queue[tuple[int, BaseException | None]]) -> None:
        self.server = server = EmulatorServer(settings)
        try:
            port = await server.listen(self.config.host, self.config.port, ssl_context=self._ssl)
            self._stop = asyncio.Event()
            ready.put((port, None))
            await self._stop.wait()
        finally:
            await server.close()

    # -- subprocess mode ----------------------------------------------------------------------------
    def _start_subprocess(self) -> None:
        extra: list[str] = []
        if self.config.tls:  # the child writes its CA bundle where this process will look for it
            from bedrock_lab.emulator.tls import CA_FILE

            folder = self.config.tls_dir
            if folder is None:
                folder = tempfile.mkdtemp(prefix="bedrock-lab-tls-")
                extra = ["--tls-dir", folder]
            self.ca_bundle = os.path.join(folder, CA_FILE)
        cmd = [sys.executable, "-m", "bedrock_lab", "emulator", *self.config.cli_args(), *extra,
               "--exit-with-parent", str(os.getpid())]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        proc = self.process

        def read_stdout() -> None:
            for line in proc.stdout or ():
                lines.put(line)
            lines.put(None)

        def read_stderr() -> None:  # always drained, so a chatty emulator never blocks on a full pipe
            for line in proc.stderr or ():
                self.stderr_tail.append(line)
                del self.stderr_tail[:-200]

        threading.Thread(target=read_stdout, daemon=True, name="bedrock-lab-emulator-stdout").start()
        err_reader = threading.Thread(target=read_stderr, daemon=True, name="bedrock-lab-emulator-stderr")
        err_reader.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise EmulatorError("emulator subprocess printed no 'listening on' line within 60 s") from None
            if line is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                err_reader.join(timeout=5)  # the pipe closes with the process: the tail is complete
                err = "".join(self.stderr_tail).strip()[-2000:]
                self.stop()
                raise EmulatorError(f"emulator subprocess exited before it was ready: {err}")
            if line.startswith(("listening on http://", "listening on https://")):
                hostport = line.strip().split("://", 1)[1]
                self.port = int(hostport.rsplit(":", 1)[1])
                return

    # -- both ----------------------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self.mode == "thread":
            warning = beyond_loopback(self.host)
            if warning:
                warnings.warn(f"bedrock-lab emulator: {warning}", stacklevel=3)
            self._start_thread()
        elif self.mode == "subprocess":
            self.config.load()  # a bad catalog is a ConfigError here too, not a dead child process
            self._start_subprocess()
        else:
            raise ConfigError("unknown emulator mode", key="mode", value=self.mode, allowed="thread, subprocess")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)
            self._thread = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            for stream in (self.process.stdout, self.process.stderr):
                if stream:
                    with contextlib.suppress(Exception):
                        stream.close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fetch_stats(url: str, reset: bool = False, credentials: Mapping[str, str] | None = None,
                ca_bundle: str | None = None) -> dict[str, Any]:  # fmt: skip
    """``GET /_bedrock_lab/stats`` of the emulator at ``url``. Reading needs nothing; ``reset=True`` changes
    state, so it is SigV4-signed like an operation: with the first of ``credentials`` (access -> secret), else
    env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else testing/testing (what a strict emulator accepts)."""
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # loopback: never a proxy
    if ca_bundle:  # an HTTPS emulator (tls=True): trust its CA
        import ssl

        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_bundle)))
    opener = urllib.request.build_opener(*handlers)
    target = url + STATS_PATH + ("?reset=1" if reset else "")
    headers: dict[str, str] = {}
    if reset:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        if credentials:
            access, secret = next(iter(credentials.items()))
        else:
            access = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
            secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
        aws = AWSRequest(method="GET", url=target)
        SigV4Auth(Credentials(access, secret), "bedrock", "us-east-1").add_auth(aws)
        headers = {k: str(v) for k, v in aws.headers.items()}
    with opener.open(urllib.request.Request(target, headers=headers), timeout=10) as r:
        return json.loads(r.read())


def check_overrides(overrides: Mapping[str, Any]) -> EmulatorConfig:
    """Validate ``run_emulator`` keyword overrides with the emulator's own settings model (what a sweep file's
    ``target.emulator_overrides`` holds); :class:`ConfigError` names the key, the value and what is allowed."""
    known = {f.name for f in fields(EmulatorConfig)}
    for k in overrides:
        if k not in known:
            raise ConfigError("unknown emulator option", key=k, value=overrides[k], allowed=", ".join(sorted(known)))
    try:
        cfg = EmulatorConfig(**overrides)
        cfg.validate()
    except TypeError as exc:  # a comparison of a number with a string, a mapping that is not one, ...
        raise ConfigError(f"wrong type: {exc}", value=dict(overrides)) from None
    return cfg


@contextlib.contextmanager
def run_emulator(seed: int = 0, catalog: str | os.PathLike[str] | Catalog | None = None, port: int = 0,
                 mode: str = "thread", **overrides: Any) -> Iterator[Emulator]:  # fmt: skip
    """Start an emulator, yield its handle (``.url``), stop it on exit. Overrides: :class:`EmulatorConfig` fields."""
    check_overrides(overrides)
    cfg = EmulatorConfig(seed=seed, catalog=catalog, port=port, **overrides)
    cfg.validate()
    emu = Emulator(cfg, mode).start()
    try:
        yield emu
    finally:
        emu.stop()


def config_dict(cfg: EmulatorConfig) -> dict[str, Any]:
    """JSON-safe view of a config (for manifests); credentials are never included."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.name in ("credentials", "api_keys"):  # secrets never go into manifests
            continue
        if isinstance(v, Catalog):
            v = v.source
        elif isinstance(v, os.PathLike):
            v = os.fspath(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out


__all__ = [
    "GROUND_TRUTH_HEADERS",
    "H_ARRIVAL",
    "H_DECODE",
    "H_PRE",
    "H_QUEUE",
    "H_RESPONSE",
    "H_SEQ",
    "H_TTFT",
    "Emulator",
    "EmulatorConfig",
    "beyond_loopback",
    "close_loop",
    "config_dict",
    "fetch_stats",
    "new_event_loop",
    "run_emulator",
]
