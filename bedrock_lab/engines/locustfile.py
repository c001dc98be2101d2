"""bedrock-lab's Locust user: real boto3, load-testing client settings, one record per request.

Use it with plain Locust (web UI or headless, single process or distributed)::

    locust -f bedrock_lab/engines/locustfile.py --host http://127.0.0.1:8765 \\
        --bl-model amazon.nova-lite-v1:0 --bl-api converse-stream --bl-out outputs/locust/records

or let :func:`bedrock_lab.engines.run_locust` / ``bedrock-lab locust`` start it in a subprocess. Never import
this module in a Jupyter kernel: importing locust monkey-patches the process with gevent.

Every option is a Locust custom argument (``--bl-*``, shown in the web UI's start form) with a ``BEDROCK_LAB_*``
environment variable fallback (:mod:`bedrock_lab.engines.locust_plugin` defines them, and the LLM stats: TTFT,
TPOT and tokens/s in an "LLM" web UI tab, a JSON endpoint and the HTML report). Locust prints ``--help`` before
it imports a locustfile, so ``python -m bedrock_lab.cli.locust --help`` (this locustfile, options registered
first) lists them. The target is the emulator at ``--host`` unless ``--bl-aws-region`` is given (then AWS with the
standard credential chain; ``--host`` optionally overrides the endpoint). Each Locust process writes its own
record shards into ``--bl-out``; in distributed mode only workers send requests, so only workers write.

Each process that sends requests keeps a circuit breaker (:mod:`bedrock_lab.engines.health`): after
``--bl-breaker-after`` consecutive connection, credential or validation errors it stops sending and quits (a
worker's quit stops the master once the last worker has quit). ``--bl-requests N`` quits the process when its
N-th request has finished. With ``BEDROCK_LAB_PARENT_PID`` set (``run_locust`` sets it) a process whose parent
is gone exits at once without writing records, so a SIGKILLed sweep never leaves Locust running or writing.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import random
import socket
from pathlib import Path
from typing import Any

import gevent
import gevent.monkey
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
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, LocalRunner, WorkerRunner

from bedrock_lab.cellspec import pick_tier, tier_weights
from bedrock_lab.engines.direct import DirectClient
from bedrock_lab.engines.fallback import (
    FallbackPolicy,
    FallbackSettings,
    answer_fields,
    request_options,
    restart,
)
from bedrock_lab.engines.formats import (
    CHAT_API,
    ResponseParser,
    build_request,
    classify_http_error,
    classify_stream_error,
)
from bedrock_lab.engines.health import CircuitBreaker, HealthPolicy
from bedrock_lab.engines.locust_plugin import OPTIONS  # noqa: F401  (registers the --bl-* options, LLM stats)
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.engines.target import ClientSettings, Target
from bedrock_lab.engines.workloads import load_workload, validate_answer
from bedrock_lab.records import records_table, write_table
from bedrock_lab.records import warm_up as warm_up_records

logger = logging.getLogger("bedrock_lab.locust")


_STATE: dict[str, Any] = {"count": 0, "done": 0, "users": itertools.count(), "quit": False}

#: exit status of a process whose parent died (nobody reads it; distinct from Locust's 0/1/2)
PARENT_GONE_EXIT = 3
PARENT_POLL_S = 0.5
_parent: dict[str, int] = {}  #: "pid": the parent this process must not outlive
#: further processes this one must not outlive (``BEDROCK_LAB_ANCESTOR_PIDS``: the sweep runner above the kernel
#: that started Locust), as (pid, start time) so a reused pid is not mistaken for the original
_ancestors: list[tuple[int, float]] = []


def _ancestor_gone() -> int | None:
    import psutil

    for pid, created in _ancestors:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() != created or proc.status() == psutil.STATUS_ZOMBIE:
                return pid
        except psutil.Error:
            return pid
    return None


def _exit_if_orphaned() -> None:
    """Exit at once, without flushing anything, when the parent we were started by (or the sweep runner above it)
    is gone: its cell folder may already be cleared and re-run (a sweep's --resume), so a late shard would
    pollute the new run. The kernel between a killed runner and Locust lives on for a moment: hence the ancestors."""
    pid = _parent.get("pid")
    gone = pid if pid is not None and os.getppid() != pid else _ancestor_gone()
    if gone is not None:
        os.write(2, f"bedrock-lab locustfile: process {gone} is gone, exiting\n".encode())
        os._exit(PARENT_GONE_EXIT)


def _read_ancestors() -> None:
    import psutil

    for text in os.environ.get("BEDROCK_LAB_ANCESTOR_PIDS", "").split(","):
        if text.strip().isdigit():
            try:
                _ancestors.append((int(text), psutil.Process(int(text)).create_time()))
            except psutil.Error:  # already gone: the first poll exits
                _ancestors.append((int(text), -1.0))


def _watch_parent(pid: int) -> None:
    """Poll the parent from a native thread: it runs even while a greenlet blocks the hub (boto3 start-up)."""
    _parent["pid"] = pid
    _exit_if_orphaned()
    start_thread = gevent.monkey.get_original("_thread", "start_new_thread")
    sleep = gevent.monkey.get_original("time", "sleep")

    def loop() -> None:
        while True:
            sleep(PARENT_POLL_S)
            _exit_if_orphaned()

    start_thread(loop, ())


def _watch_parent_after_fork() -> None:
    """Locust's --processes forks workers after importing this file: each watches the process that forked it."""
    if _parent:
        _watch_parent(_FORKED_FROM[0])


_FORKED_FROM = [os.getpid()]
if os.environ.get("BEDROCK_LAB_PARENT_PID", "").strip().isdigit():
    _read_ancestors()
    _watch_parent(int(os.environ["BEDROCK_LAB_PARENT_PID"]))
    os.register_at_fork(before=lambda: _FORKED_FROM.__setitem__(0, os.getpid()),
                        after_in_child=_watch_parent_after_fork)  # fmt: skip


def _opt(env: Any, name: str) -> Any:
    return getattr(env.parsed_options, "bl_" + name.replace("-", "_"))


def _target(env: Any) -> Target:
    """The target of this process: an OpenAI-compatible server, AWS (``--bl-aws-region``) or the emulator at
    ``--host``; its authentication (SigV4 or an API key from an environment variable) and the CA to trust."""
    host = env.host or ""
    region = _opt(env, "aws-region")
    auth, key_env, ca = _opt(env, "auth") or "sigv4", _opt(env, "api-key-env") or None, _opt(env, "ca-bundle") or None
    if _opt(env, "target-kind") == "openai":
        return Target.openai(host, key_env, ca_bundle=ca) if key_env else Target.openai(host, ca_bundle=ca)
    if region:
        return Target.aws(region, _opt(env, "aws-profile") or None, endpoint_url=host or None, auth=auth,
                          api_key_env=key_env, ca_bundle=ca)  # fmt: skip
    return Target.emulator(host or "http://127.0.0.1:8765", auth=auth, api_key_env=key_env, ca_bundle=ca)


def _client(env: Any) -> Any:
    """One client per process (thread-safe, pooled), rebuilt only if the target changes (web UI host): boto3 for
    the Bedrock Runtime APIs, or :class:`~bedrock_lab.engines.direct.DirectClient` with ``--bl-client direct`` and
    for chat-completions (boto3 has no such operation)."""
    host = env.host or ""
    key = (host, _opt(env, "aws-region"), _opt(env, "aws-profile"), _opt(env, "api"), _opt(env, "target-kind"),
           _opt(env, "auth"), _opt(env, "api-key-env"), _opt(env, "ca-bundle"), _opt(env, "client"))  # fmt: skip
    if _STATE.get("client_key") != key:
        target = _target(env)
        pool = _opt(env, "pool") or max(int(getattr(env.parsed_options, "num_users", 0) or 0), 10) + 8
        settings = ClientSettings(max_attempts=_opt(env, "max-attempts"), pool_size=pool,
                                  connect_timeout_s=_opt(env, "connect-timeout"),
                                  read_timeout_s=_opt(env, "read-timeout"))  # fmt: skip
        direct = _opt(env, "api") == CHAT_API or _opt(env, "client") == "direct"
        client = DirectClient(target, settings) if direct else target.boto3_client(settings)
        _STATE["client"], _STATE["client_key"] = client, key
    return _STATE["client"]


class _ShardWriter:
    """Buffers records off the request path; shards are encoded and written on gevent's native thread pool.

    Measured at 250 users: building and writing a shard of 1000 records when ``add`` crossed the threshold stalled
    every greenlet 20-77 ms (a thread does not help for the pure-Python part: it holds the GIL). Now ``add`` only
    appends; every ``batch_rows`` records become an arrow table at once (column by column, ~0.2 ms per 100), and a
    background greenlet hands the joined tables to a thread every ``flush_seconds`` (parquet encoding and the
    write release the GIL). Memory is bounded by one interval of arrow tables. Same file naming and atomicity as
    :class:`bedrock_lab.records.RecordWriter`, plus the orphan check before publishing."""

    def __init__(self, folder: str, worker: str, batch_rows: int = 100, flush_seconds: float = 2.0) -> None:
        self.folder, self.worker = Path(folder), worker
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self.rows: list[Any] = []
        self.tables: list[Any] = []
        self.n = 0
        self.pending: list[Any] = []
        self.flusher: Any = None

    def _path(self) -> Path:
        self.n += 1
        return self.folder / f"records-{self.worker}-{os.getpid()}-{self.n - 1:05d}.parquet"

    def add(self, rec: Any) -> None:
        self.rows.append(rec)
        if len(self.rows) >= self.batch_rows:
            rows, self.rows = self.rows, []
            self.tables.append(records_table(rows))
        if self.flusher is None:
            self.flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.flush_seconds)  # a timer, not synchronisation: flush what the batches hold
            self._flush_tables()

    def _flush_tables(self) -> None:
        if self.tables:
            tables, self.tables = self.tables, []
            self.pending = [p for p in self.pending if not p.ready()]
            self.pending.append(gevent.get_hub().threadpool.spawn(self._write, tables, self._path()))

    @staticmethod
    def _write(tables: list[Any], path: Path) -> None:
        """Write under a hidden name and publish it only if our parent is still there (see _exit_if_orphaned)."""
        import pyarrow as pa

        _exit_if_orphaned()
        hidden = path.with_name(f".{path.name}.part")
        write_table(tables[0] if len(tables) == 1 else pa.concat_tables(tables), hidden)
        _exit_if_orphaned()
        os.replace(hidden, path)

    def close(self) -> None:
        """At test stop / quitting: stop the timer, write the rest, wait for every write."""
        if self.flusher is not None:
            self.flusher.kill(block=False)
            self.flusher = None
        if self.rows:
            rows, self.rows = self.rows, []
            self.tables.append(records_table(rows))
        self._flush_tables()
        for p in self.pending:
            p.get()
        self.pending = []


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
    """Before users start: build the boto3 client (loading botocore's service model blocks for a while), pay
    pyarrow's one-off set-up, and tune the collector like the emulator and the burst engine: start-up objects
    frozen, no automatic full collections (they find next to nothing here; request objects die by reference
    counting, and a full pass over botocore's models stalled every greenlet for ~100 ms)."""
    if type(environment.runner).__name__ != "MasterRunner" and environment.parsed_options is not None:
        _client(environment)
        if _opt(environment, "out"):
            warm_up_records()
        gc.collect()
        gc.freeze()
        gen0, gen1, _gen2 = gc.get_threshold()
        gc.set_threshold(gen0, gen1, 1_000_000_000)
        # the hub's cached clock went stale while this blocked; without a refresh, Locust's -t timer (armed
        # next) would fire early by the time the client took to build
        gevent.get_hub().loop.update_now()


def _fallback(env: Any) -> FallbackPolicy | None:
    """This process's fallback policy (``--bl-fallback-model`` / ``--bl-fallback-tier``), the burst engine's."""
    if "fallback" not in _STATE:
        spec = FallbackSettings(_opt(env, "model"), _opt(env, "tier") or None, _opt(env, "fallback-model") or None,
                                _opt(env, "fallback-tier") or None)  # fmt: skip
        _STATE["fallback"] = FallbackPolicy.of(spec)
    return _STATE["fallback"]


def _breaker(env: Any) -> CircuitBreaker:
    """This process's breaker, built on first use (a worker gets its options from the master's spawn message)."""
    if "breaker" not in _STATE:
        policy = HealthPolicy(breaker_after=_opt(env, "breaker-after"), min_success_rate=_opt(env, "min-success-rate"))
        _STATE["breaker"] = CircuitBreaker(policy)
    return _STATE["breaker"]


def _quit_soon(env: Any, why: str, level: int = logging.INFO) -> None:
    """End this process's test from a fresh greenlet (never from the user calling it): records are flushed on
    test_stop. A worker reports its last stats first, then its quit tells the master, which stops the test when
    its last worker has quit. A master or a runner already stopping is left alone; with the web UI a single
    process only stops the test, so the UI stays up for the next one."""
    runner = env.runner
    if _STATE["quit"] or not isinstance(runner, LocalRunner | WorkerRunner):
        return
    _STATE["quit"] = True
    logger.log(level, "bedrock-lab: %s, stopping this Locust process", why)

    def run() -> None:
        if runner.state in (STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED):
            return  # -t or the master got there first
        for dead in [g for g in runner.user_greenlets if g.dead]:
            runner.user_greenlets.discard(dead)  # users that raised StopUser; Locust logs an error for each
        if isinstance(runner, WorkerRunner):
            runner.stop()
            runner._send_stats()  # Locust's own quit handler does this too; ours would otherwise lose up to 3 s
        if isinstance(runner, LocalRunner) and not getattr(env.parsed_options, "headless", True):
            runner.stop()
        else:
            runner.quit()

    gevent.spawn(run)


@events.test_start.add_listener
def _reset(**_: Any) -> None:
    """Each test (another start from the web UI) gets a fresh breaker and request count."""
    _STATE.update(count=0, done=0, quit=False)
    _STATE.pop("breaker", None)
    _STATE.pop("fallback", None)


#: the file whose appearance ends a sequential cell: its parent (run_locust) creates it once the cell's answer is
#: settled (bedrock_lab.engines.stopping, docs/sequential.md)
STOP_FILE_ENV = "BEDROCK_LAB_STOP_FILE"
STOP_FILE_POLL_S = 0.5


@events.test_start.add_listener
def _watch_stop_file(environment: Any, **_: Any) -> None:
    """A sequential cell's stop, off the request path: a greenlet sees the stop file within half a second and
    quits this process the way ``--bl-requests`` does (a worker's quit stops the master after the last one)."""
    path = os.environ.get(STOP_FILE_ENV)
    if not path:
        return

    def loop() -> None:
        while not _STATE["quit"]:
            if os.path.exists(path):
                _quit_soon(environment, "sequential cell settled")
                return
            gevent.sleep(STOP_FILE_POLL_S)

    gevent.spawn(loop)


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


def request_name(model: str, tier: str | None, prompt_size: str) -> str:
    """Locust's request name: model, tier and prompt size (the type column is the API), e.g.
    ``amazon.nova-lite-v1:0 [priority] small``; ``[no tier]`` when none is sent."""
    return f"{model} [{tier or 'no tier'}] {prompt_size}"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def tokens_per_s(output_tokens: int | None, e2e_s: float | None, ttft_s: float | None) -> float | None:
    """Output tokens per second of decoding: the definition of :func:`bedrock_lab.stats.tokens_per_second`
    (``output_tokens / (e2e - ttft)``, or ``/ e2e`` without a TTFT), for one request (a test keeps them equal)."""
    if not output_tokens or e2e_s is None:
        return None
    denom = e2e_s - ttft_s if ttft_s is not None else e2e_s
    return output_tokens / denom if denom > 0 else None


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
        # seeded per user and worker (Locust's worker index, given by the master: stable from run to run, unlike a
        # pid), so workers do not send the same prompt and tier sequences and a run can be repeated
        self.process = env.runner.worker_index if isinstance(env.runner, WorkerRunner) else -1
        self.conv = self.workload.conversation(random.Random(_opt(env, "seed") * 1_000_003 + self.index
                                                             + 7919 * (self.process + 1)))  # fmt: skip
        self.seq = 0
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}-u{self.index}"

    @task
    def ask(self) -> None:
        """One request. With ``--bl-requests N`` the process quits when the N-th *finishes* (counting users
        still running raced with Locust removing stopped greenlets and could leave the process idle until -t)."""
        env = self.environment
        if _breaker(env).tripped:
            raise StopUser()
        limit = _opt(env, "requests")
        if limit:
            if _STATE["count"] >= limit:
                raise StopUser()
            _STATE["count"] += 1
        try:
            item = self.conv.next()
            text, ok, tools = self.send(item)
            self.conv.observe(item, text, ok, tools)
        finally:
            _STATE["done"] += 1
            if limit and _STATE["done"] >= limit:
                _quit_soon(env, f"{limit} requests done")

    def send(self, item: Any) -> tuple[str, bool, list[dict[str, Any]]]:
        """One user request, and its one fallback attempt (:mod:`bedrock_lab.engines.fallback`, the policy the
        burst engine uses too): its text, whether it succeeded, and the answer's tool calls."""
        env = self.environment
        api, model = _opt(env, "api"), _opt(env, "model")
        tier = _opt(env, "tier") or None
        mix = _opt(env, "tier-mix")
        if mix:  # tiers competing in one run: one drawn per request, seeded (bedrock_lab.cellspec.pick_tier)
            who = f"u{self.index}" if self.process < 0 else f"w{self.process}.u{self.index}"
            tier = pick_tier(tier_weights(mix), int(_opt(env, "seed")), f"{who}:{self.seq}")
        temp = _opt(env, "temperature")
        options = request_options(item, _opt(env, "stop-sequences") or None, _opt(env, "guardrail") or None)
        policy = _fallback(env)
        asked, asked_tier, fmt = model, tier, _opt(env, "provider-format") or None
        m = Measurement.begin()
        fell_back = False
        while True:
            prep = build_request(api, asked, item.turns, system=item.system,
                                 max_tokens=item.max_tokens or _opt(env, "max-tokens"),
                                 temperature=float(temp) if temp else None, tier=asked_tier,
                                 provider_format=fmt, options=options)  # fmt: skip
            parser = ResponseParser(api, prep.provider_format)
            self._call(api, prep, parser, m)
            if fell_back or policy is None or not policy.applies(m.error_kind, got_content=bool(m.chunk_mono)):
                break
            restart(m)
            asked, asked_tier = policy.route(model, tier)
            fmt = fmt if asked == model else None
            fell_back = True
        if m.error_kind is None:
            code = validate_answer(item, parser.text, parser.tool_uses)
            if code:
                m.fail("client", code)
        users = _opt(env, "users-label") or getattr(env.parsed_options, "num_users", None)
        rec = m.to_record(
            parser, streaming=prep.streaming, keep_chunk_times=bool(_opt(env, "keep-chunk-times")),
            run_id=_opt(env, "run-id"), cell_id=_opt(env, "cell-id"), engine="locust", worker=self.worker_name,
            seq=self.seq, api=api, model_id=model, tier_requested=tier, prompt_id=item.prompt_id,
            prompt_size=item.prompt_size, users=int(users) if users else None, rate_rps=None,
            **answer_fields(item, parser, ok=m.error_kind is None, model_id=asked, policy=policy,
                            fell_back=fell_back),
            background_load=float(_opt(env, "background-load")) if _opt(env, "background-load") != "" else None,
        )  # fmt: skip
        self.seq += 1
        writer = _writer(env)
        if writer is not None:
            writer.add(rec)
        breaker = _breaker(env)
        if breaker.observe(m.error_kind):  # users check it before each request; the process quits
            _quit_soon(env, f"circuit breaker: {breaker.run} consecutive {breaker.kind} errors", logging.WARNING)
        exc_obj = BedrockFailure(f"{m.error_kind}: {m.error_code}") if m.error_kind else None
        env.events.request.fire(
            request_type=api, name=request_name(model, tier, item.prompt_size),
            response_time=(rec.e2e_s or 0.0) * 1000.0, response_length=len(parser.text), exception=exc_obj,
            context={"ttft_ms": _ms(rec.ttft_s), "tpot_ms": _ms(rec.tpot_s), "output_tokens": rec.output_tokens,
                     "tokens_per_s": tokens_per_s(rec.output_tokens, rec.e2e_s, rec.ttft_s),
                     "error_kind": m.error_kind, "retries": m.retries},
        )  # fmt: skip
        return parser.text, m.error_kind is None, parser.tool_uses

    def _call(self, api: str, prep: Any, parser: ResponseParser, m: Measurement) -> None:
        """One request (boto3 retries inside it): the answer into ``parser``, clock readings and the outcome into
        ``m``."""
        if isinstance(self.client, DirectClient):
            self.client.send(prep, parser, m)
            return
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
            err = exc.response.get("Error", {})
            m.fail(classify_stream_error(err.get("Code")), err.get("Code"), message=err.get("Message"))
        except ClientError as exc:  # HTTP error before the stream
            m.finish()
            meta = exc.response.get("ResponseMetadata", {})
            m.headers = dict(meta.get("HTTPHeaders", {}))
            m.retries = int(meta.get("RetryAttempts", 0))
            err = exc.response.get("Error", {})
            status = meta.get("HTTPStatusCode")
            m.fail(classify_http_error(status, err.get("Code")), err.get("Code"), status, err.get("Message"))
        except ReadTimeoutError as exc:
            m.finish()
            m.fail("timeout", "ReadTimeout", message=str(exc))
        except (ConnectTimeoutError, EndpointConnectionError) as exc:
            m.finish()
            m.fail("connection", type(exc).__name__, message=str(exc))
        except (ResponseStreamingError, ConnectionClosedError) as exc:
            m.finish()
            m.fail("stream" if m.http_status == 200 else "connection", type(exc).__name__, message=str(exc))
        except Exception as exc:  # urllib3 errors surfacing from a stream read, anything unexpected
            m.finish()
            name = type(exc).__name__
            kind = "timeout" if "Timeout" in name else ("stream" if m.http_status == 200 else "client")
            m.fail(kind, name, message=str(exc))
