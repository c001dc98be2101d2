"""The asyncio burst engine: aiohttp transport, botocore SigV4 signing and event-stream parsing.

Why not boto3 here: boto3 is synchronous, and aiobotocore pins botocore narrowly. botocore still does the parts
that must match the service exactly (credentials, SigV4 with signing name ``bedrock``, event-stream frames),
and aiohttp moves the bytes with a pool at least as large as the concurrency and explicit timeouts.

``await run_burst(spec, target, out_dir)`` inside Jupyter; ``run_burst_sync(...)`` elsewhere.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from bedrock_lab.engines.eventstream import ParserError, stream_reader
from bedrock_lab.engines.fallback import FallbackPolicy, answer_fields, request_options, restart
from bedrock_lab.engines.formats import (
    CHAT_API,
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    PreparedRequest,
    ResponseParser,
    build_request,
    classify_http_error,
    classify_stream_error,
)
from bedrock_lab.engines.formats import error_info as _error_info
from bedrock_lab.engines.health import CircuitBreaker, assess
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.engines.spec import BurstResult, BurstSpec
from bedrock_lab.engines.stopping import StopController, StopRule, bound_reason, watched_value
from bedrock_lab.engines.target import RequestSigner, Target
from bedrock_lab.engines.workloads import Conversation, WorkItem, load_workload, validate_answer
from bedrock_lab.errors import ConfigError, EngineError
from bedrock_lab.records import RecordWriter, RequestRecord, load_records, warm_up

#: saturation: the loop thread on CPU for more than this share of the run has no slack left
BUSY_WARN_PCT = 85.0
#: a wake-up of the lag probe later than this is a stall (the loop could not run anything else meanwhile) ...
STALL_MS = 10.0
#: ... and stalls adding up to more than this share of the run mean its latencies include waiting for the loop
STALLED_WARN_PCT = 10.0
#: how often the lag probe wakes and the progress bar is redrawn
PROBE_S = 0.02
PROGRESS_EVERY_S = 0.5
#: during a run automatic full collections are off (~100 ms pauses at 500 users); one runs this often instead
GC_FULL_EVERY_S = 60.0


_gc_lock = threading.Lock()
_gc_runs = 0
_gc_saved: tuple[int, int, int] = (0, 0, 0)
_gc_was_frozen = False


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """The collector tuned like the emulator's for the span of a run, then restored (concurrent runs share one
    tuning: the last to finish restores). Start-up objects are frozen out of view and automatic full
    collections (which find next to nothing: request objects die by reference counting) are off."""
    global _gc_runs, _gc_saved, _gc_was_frozen
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved, _gc_was_frozen = gc.get_threshold(), gc.get_freeze_count() > 0
            gc.collect()
            gc.freeze()
            gc.set_threshold(_gc_saved[0], _gc_saved[1], 1_000_000_000)
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0:
                gc.set_threshold(*_gc_saved)
                if not _gc_was_frozen:  # someone else's frozen objects stay frozen
                    gc.unfreeze()


def _saturation(lags_ms: list[float], wall_s: float, busy_pct: float | None) -> list[str]:
    """Warnings when the engine, not the target, shaped the latencies.

    Saturation is a loop with no idle time (its thread on CPU nearly all the run) or a loop unavailable for a
    large share of the run (stalls: a blocking notebook cell, an overloaded machine). Isolated pauses (a
    collection, a shard write) show in ``loop_lag_max_ms`` but are not saturation."""
    out = []
    if busy_pct is not None and busy_pct > BUSY_WARN_PCT:
        out.append(f"event loop busy {busy_pct:.0f}% of the run (> {BUSY_WARN_PCT:g}%): the engine is saturated and "
                   "adds latency; lower the concurrency or use Locust with several workers")  # fmt: skip
    stalls = [lag for lag in lags_ms if lag > STALL_MS]
    stalled_pct = 100.0 * sum(stalls) / 1000.0 / wall_s if wall_s > 0 else 0.0
    if stalled_pct > STALLED_WARN_PCT:
        out.append(f"event loop stalled {stalled_pct:.0f}% of the run ({len(stalls)} stalls > {STALL_MS:g} ms, longest "
                   f"{max(stalls):.0f} ms): the engine is saturated or blocked (by other code on its loop or a busy "
                   "machine) and adds latency; lower the concurrency or use Locust with several workers")  # fmt: skip
    return out


class _IdleTimeout:
    """botocore's read timeout (no byte for ``limit_s`` ends the request), with one timer per request.

    Why not aiohttp's ``sock_read``: it cancels and re-creates a loop timer at every received chunk (~16 a
    ConverseStream answer). Here the readers only stamp ``last`` (a float); the one timer, when it fires, re-arms
    itself at ``last + limit_s``, or expires the request (``TimeoutError``, through :func:`asyncio.timeout`)."""

    __slots__ = ("last", "_limit", "_cm", "_handle", "_loop")

    def __init__(self, limit_s: float) -> None:
        self._limit = limit_s
        self.last = time.monotonic()
        self._cm = asyncio.timeout(None)
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> _IdleTimeout:
        await self._cm.__aenter__()
        self._loop = asyncio.get_running_loop()
        self.last = time.monotonic()
        self._handle = self._loop.call_later(self._limit, self._check)
        return self

    def _check(self, confirm: bool = False) -> None:
        if self._loop is None:
            return
        left = self.last + self._limit - time.monotonic()
        if left > 0:
            self._handle = self._loop.call_later(left, self._check)
        elif not confirm:
            # bytes that arrived in this loop pass (during a stall, say) have woken the reader but it has not run
            # yet: it runs before a callback queued now, stamps `last`, and the request goes on (as with sock_read)
            self._handle = self._loop.call_soon(self._check, True)
        else:
            self._cm.reschedule(self._loop.time())  # expires now: the request's task is cancelled -> TimeoutError

    async def __aexit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop = None
        await self._cm.__aexit__(*exc)  # raises TimeoutError if it expired the request


class _Signer:
    """SigV4 with botocore or a Bedrock / OpenAI-compatible API key (:class:`RequestSigner`); yarl URLs as sent."""

    def __init__(self, target: Target) -> None:
        self._signer = RequestSigner(target)

    def sign(self, prep: PreparedRequest) -> tuple[URL, dict[str, str]]:
        url, headers = self._signer.sign(prep.api, prep.path, prep.body, prep.headers)
        return URL(url, encoded=True), headers


@dataclass
class _Monitor:
    """Samples event-loop lag (late wake-ups of a periodic sleep) and the loop thread's CPU; redraws the
    progress bar (at most every PROGRESS_EVERY_S, never per request)."""

    interval_s: float = PROBE_S
    lags_ms: list[float] = field(default_factory=list)
    cpu_pct: list[float] = field(default_factory=list)  #: process CPU over each ~1 s of the run
    runner: _Runner | None = None
    _t0: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        self._t0 = (time.monotonic(), time.process_time(), time.thread_time())

    async def run(self) -> None:
        self._t0 = (time.monotonic(), time.process_time(), time.thread_time())  # the loop's thread from here on
        shown, last_draw = 0, time.monotonic()
        cpu_at = (time.monotonic(), time.process_time())
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            self.lags_ms.append(max(0.0, (now - t - self.interval_s) * 1000.0))
            if now - cpu_at[0] >= 1.0:
                cpu = time.process_time()
                self.cpu_pct.append(100.0 * (cpu - cpu_at[1]) / (now - cpu_at[0]))
                cpu_at = (now, cpu)
            runner = self.runner
            if runner is not None and runner.bar is not None and now - last_draw >= PROGRESS_EVERY_S:
                runner.bar.update(runner.n - shown)
                shown, last_draw = runner.n, now

    def fill(self, result: BurstResult) -> None:
        wall = time.monotonic() - self._t0[0]
        busy = None
        if wall > 0:  # process-wide mean (includes an in-process emulator thread); busy: the loop's thread only
            result.cpu_mean_pct = 100.0 * (time.process_time() - self._t0[1]) / wall
            result.cpu_max_pct = max([result.cpu_mean_pct, *self.cpu_pct])
            if self.lags_ms:  # fill() ran on the loop's thread iff the probe did
                busy = 100.0 * (time.thread_time() - self._t0[2]) / wall
        if self.lags_ms:
            lags = sorted(self.lags_ms)
            result.loop_lag_p50_ms = lags[len(lags) // 2]
            result.loop_lag_p99_ms = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
            result.loop_lag_max_ms = lags[-1]
        result.warnings.extend(_saturation(self.lags_ms, wall, busy))


class _Runner:
    def __init__(self, spec: BurstSpec, target: Target, out_dir: Path, progress: bool) -> None:
        self.spec, self.target, self.out_dir = spec, target, out_dir
        self.workload = load_workload(spec.workload, spec.prompt_size, spec.prompts_dir)
        if target.is_openai and spec.api != CHAT_API:
            raise ConfigError("an OpenAI-compatible target serves only the chat-completions API", key="api",
                              value=spec.api, allowed=CHAT_API)  # fmt: skip
        self.signer = _Signer(target)
        # the runner decides when to flush and does it on a thread: a parquet write + fsync must not stall the loop
        self.writer = RecordWriter(out_dir, "burst", flush_rows=1 << 62, flush_seconds=float("inf"))
        self._pending = 0
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Future[None] | None = None
        self.rng = random.Random(spec.seed)
        self.breaker = CircuitBreaker(spec.health_policy)
        self.fallback = FallbackPolicy.of(spec)  #: where a throttled / failed request goes once (None: nowhere)
        self.counts: Counter[str] = Counter()
        self.n = 0
        self.issued = 0
        self.misses = 0
        self.max_lag = 0.0
        self.bar: Any = None
        self.progress = progress
        self.mono_to_epoch = time.time() - time.monotonic()
        self.session: aiohttp.ClientSession | None = None
        # sequential cells: fed in _done (one append), looked at by _watch every check_every_s
        self.stop_rule = StopRule.from_spec(spec)
        self.stopper: StopController | None = None
        self.stop_requested: str | None = None

    # -- one request ---------------------------------------------------------------------------------
    async def request(self, item: WorkItem, worker: str, seq: int,
                      intended_mono: float | None) -> tuple[str, bool, list[dict[str, Any]]]:  # fmt: skip
        """One user request (and its one fallback attempt, :mod:`bedrock_lab.engines.fallback`): its text,
        whether it succeeded, and the tool calls of the answer."""
        spec = self.spec
        options = request_options(item, spec.stop_sequences, spec.guardrail)
        asked_tier = spec.request_tier(f"{worker}:{seq}")  # the cell's tier, or one drawn from its tier_mix
        model, tier, fmt = spec.model_id, asked_tier, spec.provider_format
        m = Measurement.begin(intended_mono, self.mono_to_epoch)
        fell_back = False
        while True:
            prep = build_request(spec.api, model, item.turns, system=item.system,
                                 max_tokens=item.max_tokens or spec.max_tokens, temperature=spec.temperature,
                                 tier=tier, provider_format=fmt, options=options)  # fmt: skip
            parser = ResponseParser(spec.api, prep.provider_format)
            try:
                await self._send(prep, m, parser)
            except asyncio.CancelledError:
                raise
            if m.end_mono is None:
                m.finish()
            if fell_back or self.fallback is None or not self.fallback.applies(m.error_kind, got_content=bool(m.chunk_mono)):
                break
            restart(m)
            model, tier = self.fallback.route(spec.model_id, asked_tier)
            fmt = fmt if model == spec.model_id else None
            fell_back = True
        if m.error_kind is None:
            code = validate_answer(item, parser.text, parser.tool_uses)
            if code:
                m.fail("client", code)
        rec = m.to_record(
            parser, streaming=prep.streaming, keep_chunk_times=spec.keep_chunk_times,
            run_id=spec.run_id, cell_id=spec.cell_id, engine="burst", worker=worker, seq=seq, api=spec.api,
            model_id=spec.model_id, tier_requested=asked_tier, prompt_id=item.prompt_id,
            prompt_size=item.prompt_size, users=spec.users, rate_rps=spec.rate_rps,
            **answer_fields(item, parser, ok=m.error_kind is None, model_id=model, policy=self.fallback,
                            fell_back=fell_back),
            background_load=spec.background_load,
        )  # fmt: skip
        self._done(rec)
        return parser.text, m.error_kind is None, parser.tool_uses

    def _done(self, rec: RequestRecord) -> None:
        self.writer.add(rec)
        self._pending += 1
        due = self._pending >= self.spec.flush_rows or time.monotonic() - self._last_flush >= self.spec.flush_seconds
        if due and (self._flushing is None or self._flushing.done()):
            if self._flushing is not None:
                self._flushing.result()  # surface a failed write (RecordsError) instead of losing rows silently
            self._pending, self._last_flush = 0, time.monotonic()
            write = self.writer.prepare()  # the table is built here, encoded and written on a thread
            if write is not None:
                self._flushing = asyncio.ensure_future(asyncio.to_thread(write))
        self.n += 1
        self.counts[rec.error_kind or "ok"] += 1
        self.breaker.observe(rec.error_kind)  # once tripped, no new request starts (see _budget, open_loop)
        if self.stopper is not None:
            self.stopper.add(rec.start, watched_value(self.stopper.rule.metric, rec.status, rec.error_kind,
                                                      rec.ttft_s, rec.e2e_s, rec.tpot_s))  # fmt: skip
        if rec.schedule_lag_s is not None:
            self.max_lag = max(self.max_lag, rec.schedule_lag_s)
            if rec.schedule_lag_s > self.spec.miss_threshold_s:
                self.misses += 1

    async def _send(self, prep: PreparedRequest, m: Measurement, parser: ResponseParser) -> None:
        spec = self.spec
        session = self.session
        if session is None:
            raise EngineError("internal: request sent outside of a run")
        attempt = 0
        while True:
            url, headers = self.signer.sign(prep)
            started = False
            idle = _IdleTimeout(spec.read_timeout_s)
            try:
                async with idle, session.post(url, data=prep.body, headers=headers) as resp:
                    idle.last = time.monotonic()  # the headers are bytes too
                    m.http_status = resp.status
                    m.headers = dict(resp.headers)
                    if resp.status != 200:
                        raw = await _read_body(resp, idle)
                        code, message = _error_info(resp.headers, raw)
                        retryable = resp.status in RETRYABLE_STATUS or code in RETRYABLE_CODES
                        if not (retryable and attempt + 1 < spec.max_attempts):
                            m.finish()
                            m.fail(classify_http_error(resp.status, code), code, resp.status, message)
                            return
                    else:
                        started = True
                        parser.apply_headers(m.headers)
                        if prep.streaming:
                            await self._read_stream(resp, m, parser, idle)
                        else:
                            raw = await _read_body(resp, idle)
                            m.finish()
                            if not parser.feed_body(raw, m.headers):
                                m.fail("client", "MalformedResponse")
                        return
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                m.finish()
                connect = isinstance(exc, aiohttp.ConnectionTimeoutError) and not started
                if started or attempt + 1 >= spec.max_attempts:  # botocore retries timeouts before a response
                    m.fail("connection" if connect else "timeout", "ConnectTimeout" if connect else "ReadTimeout",
                           message=str(exc) or None)
                    return
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                m.finish()
                if started or attempt + 1 >= spec.max_attempts:
                    m.fail("stream" if started else "connection", type(exc).__name__, message=str(exc) or None)
                    return
            except aiohttp.ClientError as exc:
                m.finish()
                m.fail("client", type(exc).__name__, message=str(exc) or None)
                return
            # retry, botocore standard mode: full jitter, base 1 s, cap 20 s
            attempt += 1
            m.retries = attempt
            m.headers = {}
            await asyncio.sleep(self.rng.random() * min(1.0 * 2 ** (attempt - 1), 20.0))

    async def _read_stream(self, resp: aiohttp.ClientResponse, m: Measurement, parser: ResponseParser,
                           idle: _IdleTimeout) -> None:  # fmt: skip
        """An event stream or a Chat Completions SSE stream (:func:`~bedrock_lab.engines.eventstream.stream_reader`):
        one arrival time per content event, an in-stream error as the request's failure."""
        reader = stream_reader(parser)
        try:
            async for data in resp.content.iter_any():
                now = idle.last = time.monotonic()
                texts, err = reader.feed(data)
                if texts:
                    m.chunk_mono.extend([now] * texts)
                if err is not None:
                    m.fail(classify_stream_error(err[0]), err[0], message=err[1])
                    m.finish()
                    return
        except (ParserError, ValueError, TypeError, AttributeError) as exc:  # corrupt frame / payload
            m.finish()
            m.fail("stream", type(exc).__name__, message=str(exc) or None)
            return
        m.finish()
        if not parser.completed:
            m.fail("stream", "TruncatedStream")

    # -- loops -------------------------------------------------------------------------------------------
    def _budget(self, deadline: float | None) -> bool:
        if self.breaker.tripped or self.stop_requested is not None:
            return False
        if self.spec.requests is not None and self.issued >= self.spec.requests:
            return False
        if deadline is not None and time.monotonic() >= deadline:
            return False
        self.issued += 1
        return True

    async def closed_loop(self, deadline: float | None) -> None:
        spec = self.spec
        users = spec.users or 1

        async def worker(i: int) -> None:
            if spec.ramp_s > 0 and users > 1:
                await asyncio.sleep(spec.ramp_s * i / users)
            conv = self.workload.conversation(random.Random(spec.seed * 1_000_003 + i))
            seq = 0
            while self._budget(deadline):
                item = conv.next()
                text, ok, tools = await self.request(item, f"w{i}", seq, None)
                conv.observe(item, text, ok, tools)
                seq += 1

        await asyncio.gather(*(worker(i) for i in range(users)))

    def schedule(self) -> list[float]:
        """Arrival offsets (s from the run start), seeded; bounded by requests and duration."""
        spec = self.spec
        rate_rps = spec.rate_rps or 1.0
        rng = random.Random(spec.seed)
        limit = spec.requests if spec.requests is not None else 10**9
        out: list[float] = []
        t = 0.0
        while len(out) < limit:
            ramping = spec.ramp_s > 0 and t < spec.ramp_s  # linear ramp of the rate from ~0 to rate_rps
            rate = rate_rps * max(t / spec.ramp_s, 0.05) if ramping else rate_rps
            t += rng.expovariate(rate) if spec.arrival == "poisson" else 1.0 / rate
            if spec.duration_s is not None and t >= spec.duration_s:
                break
            out.append(t)
        return out

    async def open_loop(self, t_start: float) -> None:
        spec = self.spec
        sem = asyncio.Semaphore(spec.max_in_flight)
        idle: list[Conversation] = []
        tasks: set[asyncio.Task[None]] = set()
        n_conv = 0

        async def one(seq: int, intended: float) -> None:
            nonlocal n_conv
            async with sem:
                if idle:
                    conv = idle.pop()
                else:
                    n_conv += 1
                    conv = self.workload.conversation(random.Random(spec.seed * 1_000_003 + n_conv))
                item = conv.next()
                text, ok, tools = await self.request(item, "open", seq, intended)
                conv.observe(item, text, ok, tools)
                idle.append(conv)

        for seq, offset in enumerate(self.schedule()):
            if self.breaker.tripped or self.stop_requested is not None:
                break
            intended = t_start + offset
            delay = intended - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.issued += 1
            task = asyncio.create_task(one(seq, intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)


async def _read_body(resp: aiohttp.ClientResponse, idle: _IdleTimeout) -> bytes:
    """A whole (non-streamed) body, each arrival stamped for the read timeout."""
    parts = []
    async for data in resp.content.iter_any():
        idle.last = time.monotonic()
        parts.append(data)
    return b"".join(parts)


async def run_burst(
    spec: BurstSpec,
    target: Target | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> BurstResult:
    """Run one burst (records in ``out_dir``, default ``outputs/burst/<run_id>``); every request becomes a record in ``out_dir``. Await it in Jupyter.

    Stops at the first bound (``duration_s`` / ``requests``), then lets in-flight requests finish for up to
    ``drain_s``. On cancel or KeyboardInterrupt the records measured so far are flushed before re-raising.
    """
    if target is None:
        raise EngineError("run_burst needs a target: Target.emulator(url) or Target.aws(region)")
    out = Path(out_dir) if out_dir is not None else Path("outputs") / "burst" / str(spec.run_id)
    runner = _Runner(spec, target, out, progress)
    result = BurstResult(run_id=str(spec.run_id), spec=spec, target=target.describe(), out_dir=out)
    monitor = _Monitor(runner=runner)
    with _quiet_gc():
        return await _run(spec, runner, result, monitor, out)


async def _run(spec: BurstSpec, runner: _Runner, result: BurstResult, monitor: _Monitor, out: Path) -> BurstResult:
    mon_task = asyncio.create_task(monitor.run())
    gc_task = asyncio.create_task(_full_collections())
    warm_up()  # pyarrow's one-off set-up before the clock starts, not at the first flush
    conn = aiohttp.TCPConnector(limit=max(spec.concurrency, 1) + 8, limit_per_host=0, ttl_dns_cache=300,
                                enable_cleanup_closed=True, ssl=runner.target.ssl_context())  # fmt: skip
    # the read timeout is _IdleTimeout's (per request, cheaper than aiohttp's sock_read timer per chunk)
    timeout = aiohttp.ClientTimeout(total=None, connect=spec.connect_timeout_s)
    t_start = time.monotonic()
    deadline = t_start + spec.duration_s if spec.duration_s is not None else None
    watch_task = None
    if runner.stop_rule is not None:
        runner.stopper = StopController(runner.stop_rule, runner.mono_to_epoch + t_start)
        watch_task = asyncio.create_task(_watch(runner))
    if runner.progress:
        from tqdm.auto import tqdm

        total = spec.requests if spec.requests is not None else (
            int(spec.duration_s * spec.rate_rps) if spec.rate_rps and spec.duration_s else None)  # fmt: skip
        runner.bar = tqdm(total=total, desc=f"burst {spec.run_id}", unit="req", leave=False)
    drain = spec.drain_s if spec.drain_s is not None else spec.read_timeout_s
    try:
        async with aiohttp.ClientSession(connector=conn, timeout=timeout, auto_decompress=False,
                                         skip_auto_headers=("User-Agent",)) as session:  # fmt: skip
            runner.session = session
            main = asyncio.ensure_future(runner.open_loop(t_start) if spec.open_loop else runner.closed_loop(deadline))
            hard = None if deadline is None else max(0.0, deadline - time.monotonic()) + drain
            done, _ = await asyncio.wait({main}, timeout=hard)
            if not done:
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
                result.warnings.append(f"in-flight requests still running {drain:g} s after the bound were cancelled")
            else:
                main.result()
    except (asyncio.CancelledError, KeyboardInterrupt):
        result.interrupted = True
        raise
    finally:
        mon_task.cancel()
        gc_task.cancel()
        extra = [watch_task] if watch_task is not None else []
        for task in extra:
            task.cancel()
        await asyncio.gather(mon_task, gc_task, *extra, return_exceptions=True)
        if runner._flushing is not None:
            await asyncio.gather(runner._flushing, return_exceptions=True)
        runner.writer.close()
        if runner.bar is not None:
            runner.bar.update(runner.n - runner.bar.n)
            runner.bar.close()
        result.wall_s = time.monotonic() - t_start
        result.n_requests = runner.n
        result.n_ok = runner.counts.get("ok", 0)
        result.errors_by_kind = {k: v for k, v in runner.counts.items() if k != "ok"}
        if spec.open_loop:
            result.schedule_misses = runner.misses
            result.max_schedule_lag_s = runner.max_lag
            if runner.n and runner.misses > 0.01 * runner.n:
                result.warnings.append(
                    f"{runner.misses} of {runner.n} requests started more than {spec.miss_threshold_s * 1000:g} ms "
                    f"late (max {runner.max_lag * 1000:.0f} ms): the client could not keep the schedule")
        monitor.fill(result)
        if runner.breaker.tripped:
            result.stopped_early = f"{runner.breaker.run} consecutive {runner.breaker.kind} errors"
        if runner.stop_requested is not None and not runner.breaker.tripped and not result.interrupted:
            result.stop_reason = runner.stop_requested
            result.stopped_at_s = runner.stopper.stopped_at_s if runner.stopper is not None else None
        else:
            result.stop_reason = bound_reason(interrupted=result.interrupted, breaker_tripped=runner.breaker.tripped,
                                              issued=runner.issued, requests=spec.requests)  # fmt: skip
        if runner.stopper is not None:
            runner.stopper.finish()
            result.sequential = runner.stopper.summary()
    if not result.interrupted:
        result.health = assess(load_records(out), spec.health_policy)
    return result


async def _watch(runner: _Runner) -> None:
    """The sequential cell's periodic look (bedrock_lab.engines.stopping): off the per-request path; once the
    answer is settled no new request starts and the run ends when the in-flight ones finish."""
    stopper = runner.stopper
    if stopper is None:
        return
    while runner.stop_requested is None:
        await asyncio.sleep(stopper.rule.check_every_s)
        runner.stop_requested = stopper.look(time.time())


async def _full_collections() -> None:
    """The one full collection every GC_FULL_EVERY_S that replaces the automatic ones (see _quiet_gc)."""
    while True:
        await asyncio.sleep(GC_FULL_EVERY_S)
        gc.collect()


def run_burst_sync(
    spec: BurstSpec,
    target: Target | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> BurstResult:
    """Blocking :func:`run_burst` (CLI, scripts). Inside a running event loop it runs on a helper thread."""
    coro = run_burst(spec, target, out_dir, progress=progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def _thread() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=_thread, name="bedrock-lab-burst")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
