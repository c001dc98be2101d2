"""bedrock-lab's Locust user: real boto3, load-testing client settings, one record per request.

Use it with plain Locust (web UI or headless, single process or distributed)::

    locust -f bedrock_lab/engines/locustfile.py --host http://127.0.0.1:8765 \\
        --bl-model amazon.nova-lite-v1:0 --bl-api converse-stream --bl-out outputs/locust/records

or let :func:`bedrock_lab.engines.run_locust` / ``bedrock-lab locust`` start it in a subprocess. Never import
this module in a Jupyter kernel: importing locust monkey-patches the process with gevent.

Every option is a Locust custom argument (``--bl-*``, shown in the web UI) with a ``BEDROCK_LAB_*`` environment
variable fallback. The target is the emulator at ``--host`` unless ``--bl-aws-region`` is given (then AWS with the
standard credential chain; ``--host`` optionally overrides the endpoint). Each Locust process writes its own
record shards into ``--bl-out``; in distributed mode only workers send requests, so only workers write.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import gevent
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from locust import User, constant, events, task
from locust.exception import StopUser

from bedrock_lab.engines.formats import (
    ResponseParser,
    build_request,
    classify_http_error,
    classify_stream_error,
)
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.engines.target import ClientSettings, Target
from bedrock_lab.engines.workloads import load_workload, validate_answer
from bedrock_lab.records import write_shard

_OPTIONS: list[tuple[str, str, Any, type, str]] = [
    ("model", "BEDROCK_LAB_MODEL", "amazon.nova-lite-v1:0", str, "model id as sent (base id, prefixed profile or ARN)"),
    ("api", "BEDROCK_LAB_API", "converse-stream", str, "converse | converse-stream | invoke | invoke-stream"),
    ("tier", "BEDROCK_LAB_TIER", "", str, "service tier to request (priority/default/flex/reserved); empty: none"),
    ("workload", "BEDROCK_LAB_WORKLOAD", "single", str, "workload name (params/prompts/<name>.yaml) or YAML path"),
    ("prompt-size", "BEDROCK_LAB_PROMPT_SIZE", "small", str, "prompt size for the single workload"),
    ("max-tokens", "BEDROCK_LAB_MAX_TOKENS", 256, int, "maxTokens of each request"),
    ("temperature", "BEDROCK_LAB_TEMPERATURE", "", str, "temperature; empty: not sent"),
    ("provider-format", "BEDROCK_LAB_PROVIDER_FORMAT", "", str, "InvokeModel body format; empty: from catalog"),
    ("out", "BEDROCK_LAB_OUT", "", str, "folder for per-request record shards; empty: no records"),
    ("run-id", "BEDROCK_LAB_RUN_ID", "locust", str, "run id stored in every record"),
    ("cell-id", "BEDROCK_LAB_CELL_ID", "", str, "sweep cell id stored in every record"),
    ("seed", "BEDROCK_LAB_SEED", 0, int, "seed of prompt choice"),
    ("aws-region", "BEDROCK_LAB_AWS_REGION", "", str, "AWS region: target AWS instead of the emulator at --host"),
    ("aws-profile", "BEDROCK_LAB_AWS_PROFILE", "", str, "AWS profile (standard credential chain otherwise)"),
    ("max-attempts", "BEDROCK_LAB_MAX_ATTEMPTS", 1, int, "botocore total_max_attempts (1 = retries off)"),
    ("connect-timeout", "BEDROCK_LAB_CONNECT_TIMEOUT", 10.0, float, "connect timeout, s"),
    ("read-timeout", "BEDROCK_LAB_READ_TIMEOUT", 120.0, float, "read timeout (max silence), s"),
    ("pool", "BEDROCK_LAB_POOL", 0, int, "connection pool size; 0: max(users, 10) + 8"),
    ("requests", "BEDROCK_LAB_REQUESTS", 0, int, "stop after this many requests per Locust process; 0: no limit"),
    ("ttft-events", "BEDROCK_LAB_TTFT_EVENTS", 0, int, "1: also fire a 'ttft' request event per streaming request"),
    ("users-label", "BEDROCK_LAB_USERS_LABEL", 0, int, "users value stored in records; 0: Locust's -u"),
    ("keep-chunk-times", "BEDROCK_LAB_KEEP_CHUNK_TIMES", 1, int, "1: keep each chunk's offset in the records"),
]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("bedrock-lab", "bedrock-lab options (environment variable in brackets)")
    for name, env, default, typ, help_ in _OPTIONS:
        group.add_argument(f"--bl-{name}", type=typ, default=default, env_var=env, help=f"{help_} [{env}]")


_STATE: dict[str, Any] = {"count": 0, "users": itertools.count()}


def _opt(env: Any, name: str) -> Any:
    return getattr(env.parsed_options, "bl_" + name.replace("-", "_"))


def _client(env: Any) -> Any:
    """One boto3 client per process (thread-safe, pooled), rebuilt only if the target changes (web UI host)."""
    host = env.host or ""
    region = _opt(env, "aws-region")
    key = (host, region, _opt(env, "aws-profile"))
    if _STATE.get("client_key") != key:
        if region:
            target = Target.aws(region, _opt(env, "aws-profile") or None, endpoint_url=host or None)
        else:
            target = Target.emulator(host or "http://127.0.0.1:8765")
        pool = _opt(env, "pool") or max(int(getattr(env.parsed_options, "num_users", 0) or 0), 10) + 8
        settings = ClientSettings(max_attempts=_opt(env, "max-attempts"), pool_size=pool,
                                  connect_timeout_s=_opt(env, "connect-timeout"),
                                  read_timeout_s=_opt(env, "read-timeout"))  # fmt: skip
        _STATE["client"], _STATE["client_key"] = target.boto3_client(settings), key
    return _STATE["client"]


class _ShardWriter:
    """Buffers records and writes shards on gevent's native thread pool, so a parquet write + fsync never
    stalls the greenlets that are timing requests. Same file naming and atomicity as :class:`RecordWriter`."""

    def __init__(self, folder: str, worker: str, flush_rows: int = 1000, flush_seconds: float = 2.0) -> None:
        self.folder, self.worker = Path(folder), worker
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.rows: list[Any] = []
        self.n = 0
        self.last = time.monotonic()
        self.pending: list[Any] = []

    def _path(self) -> Path:
        self.n += 1
        return self.folder / f"records-{self.worker}-{os.getpid()}-{self.n - 1:05d}.parquet"

    def add(self, rec: Any) -> None:
        self.rows.append(rec)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self.last >= self.flush_seconds:
            rows, self.rows, self.last = self.rows, [], time.monotonic()
            self.pending = [p for p in self.pending if not p.ready()]
            self.pending.append(gevent.get_hub().threadpool.spawn(write_shard, rows, self._path()))

    def close(self) -> None:
        """Wait for background writes, then write the rest synchronously (test stop / quitting)."""
        for p in self.pending:
            p.get()
        self.pending = []
        if self.rows:
            rows, self.rows = self.rows, []
            write_shard(rows, self._path())


def _writer(env: Any) -> _ShardWriter | None:
    out = _opt(env, "out")
    if not out:
        return None
    if "writer" not in _STATE:
        host = "".join(ch if ch.isalnum() else "_" for ch in socket.gethostname())
        _STATE["writer"] = _ShardWriter(out, f"locust-{host}")
    return _STATE["writer"]


@events.init.add_listener
def _warm_up(environment: Any, **_: Any) -> None:
    """Build the boto3 client before users start (loading botocore's service model blocks for a while)."""
    if type(environment.runner).__name__ != "MasterRunner" and environment.parsed_options is not None:
        _client(environment)
        # the hub's cached clock went stale while this blocked; without a refresh, Locust's -t timer (armed
        # next) would fire early by the time the client took to build
        gevent.get_hub().loop.update_now()


@events.test_stop.add_listener
def _flush(**_: Any) -> None:
    w = _STATE.get("writer")
    if w is not None:
        w.close()


@events.quitting.add_listener
def _close(**_: Any) -> None:
    w = _STATE.pop("writer", None)
    if w is not None:
        w.close()


class BedrockFailure(Exception):
    """What Locust shows in its failures table: ``<error_kind>: <error_code>``."""


class BedrockUser(User):
    """One simulated user: sends requests back to back (closed loop) and records each one."""

    wait_time = constant(0)

    def on_start(self) -> None:
        env = self.environment
        self.index = next(_STATE["users"])
        self.client = _client(env)
        self.workload = load_workload(_opt(env, "workload"), _opt(env, "prompt-size"))
        self.conv = self.workload.conversation(random.Random(_opt(env, "seed") * 1_000_003 + self.index + 7919 * os.getpid()))
        self.seq = 0
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}-u{self.index}"

    @task
    def ask(self) -> None:
        env = self.environment
        limit = _opt(env, "requests")
        if limit:
            if _STATE["count"] >= limit:
                if env.runner is not None and env.runner.user_count <= 1 and type(env.runner).__name__ == "LocalRunner":
                    gevent.spawn_later(0.1, env.runner.quit)
                raise StopUser()
            _STATE["count"] += 1
        item = self.conv.next()
        text, ok = self.send(item)
        self.conv.observe(item, text, ok)

    def send(self, item: Any) -> tuple[str, bool]:
        env = self.environment
        api, model = _opt(env, "api"), _opt(env, "model")
        tier = _opt(env, "tier") or None
        temp = _opt(env, "temperature")
        prep = build_request(api, model, item.turns, system=item.system,
                             max_tokens=item.max_tokens or _opt(env, "max-tokens"),
                             temperature=float(temp) if temp else None, tier=tier,
                             provider_format=_opt(env, "provider-format") or None)  # fmt: skip
        parser = ResponseParser(api, prep.provider_format)
        m = Measurement.begin()
        try:
            resp = getattr(self.client, prep.boto3_method)(**prep.boto3_kwargs)
            meta = resp.get("ResponseMetadata", {})
            m.http_status, m.headers = meta.get("HTTPStatusCode"), dict(meta.get("HTTPHeaders", {}))
            m.retries = int(meta.get("RetryAttempts", 0))
            parser.apply_headers(m.headers)
            if api == "converse-stream":
                for event in resp["stream"]:
                    for key, value in event.items():
                        if parser.feed_converse_event(key, value):
                            m.chunk()
            elif api == "invoke-stream":
                for event in resp["body"]:
                    chunk = event.get("chunk")
                    if chunk and parser.feed_invoke_chunk(json.loads(chunk["bytes"])):
                        m.chunk()
            elif api == "converse":
                parser.feed_converse_body(resp)
            else:
                parser.feed_invoke_body(json.loads(resp["body"].read()), m.headers)
            m.finish()
            if prep.streaming and not parser.completed:
                m.fail("stream", "TruncatedStream")
        except EventStreamError as exc:  # exception frame inside the stream
            m.finish()
            code = exc.response.get("Error", {}).get("Code")
            m.fail(classify_stream_error(code), code)
        except ClientError as exc:  # HTTP error before the stream
            m.finish()
            meta = exc.response.get("ResponseMetadata", {})
            m.headers = dict(meta.get("HTTPHeaders", {}))
            m.retries = int(meta.get("RetryAttempts", 0))
            code = exc.response.get("Error", {}).get("Code")
            status = meta.get("HTTPStatusCode")
            m.fail(classify_http_error(status, code), code, status)
        except ReadTimeoutError:
            m.finish()
            m.fail("timeout", "ReadTimeout")
        except (ConnectTimeoutError, EndpointConnectionError) as exc:
            m.finish()
            m.fail("connection", type(exc).__name__)
        except (ResponseStreamingError, ConnectionClosedError) as exc:
            m.finish()
            m.fail("stream" if m.http_status == 200 else "connection", type(exc).__name__)
        except Exception as exc:  # urllib3 errors surfacing from a stream read, anything unexpected
            m.finish()
            name = type(exc).__name__
            m.fail("timeout" if "Timeout" in name else ("stream" if m.http_status == 200 else "client"), name)
        if m.error_kind is None:
            code = validate_answer(item, parser.text)
            if code:
                m.fail("client", code)
        users = _opt(env, "users-label") or getattr(env.parsed_options, "num_users", None)
        rec = m.to_record(
            parser, streaming=prep.streaming, keep_chunk_times=bool(_opt(env, "keep-chunk-times")),
            run_id=_opt(env, "run-id"), cell_id=_opt(env, "cell-id"), engine="locust", worker=self.worker_name,
            seq=self.seq, api=api, model_id=model, tier_requested=tier, prompt_id=item.prompt_id,
            prompt_size=item.prompt_size, users=int(users) if users else None, rate_rps=None,
        )  # fmt: skip
        self.seq += 1
        writer = _writer(env)
        if writer is not None:
            writer.add(rec)
        name = f"{api} {model} {item.prompt_size}"
        exc_obj = BedrockFailure(f"{m.error_kind}: {m.error_code}") if m.error_kind else None
        env.events.request.fire(
            request_type=api, name=name, response_time=(rec.e2e_s or 0.0) * 1000.0,
            response_length=len(parser.text), exception=exc_obj,
            context={"ttft_ms": rec.ttft_s * 1000.0 if rec.ttft_s is not None else None,
                     "error_kind": m.error_kind, "retries": m.retries},
        )  # fmt: skip
        if _opt(env, "ttft-events") and rec.ttft_s is not None:
            env.events.request.fire(request_type="ttft", name=name, response_time=rec.ttft_s * 1000.0,
                                    response_length=0, exception=None, context={})  # fmt: skip
        return parser.text, m.error_kind is None
