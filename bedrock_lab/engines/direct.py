"""The Locust user's direct client: every API over urllib3, without boto3's per-request machinery.

A load generator's client, for the highest load per core (``--bl-client direct``, ``locust_client: direct``; the
chat-completions API always uses it, boto3 has no such operation). The request is the one the burst engine sends
(:func:`bedrock_lab.engines.formats.build_request`), authorised by :class:`RequestSigner` (botocore's SigV4 or an
API key); answers are read with the burst engine's decoders (:mod:`bedrock_lab.engines.eventstream`, the SSE
decoder); retries follow botocore's standard mode like the burst engine's. Sockets are whatever the process has:
gevent-patched in Locust, so a request blocks only its greenlet.

Why: measured at 250 users with 2 Locust workers, boto3 spends about 1.4 ms of CPU per request building, signing
and sending it (hooks, validation, endpoint rules: ~40% of a worker's CPU) and its event-stream parser another
~0.9 ms; on a 2-core machine shared with the target that CPU is the latency tail (``bench/engines.md``). The
boto3 client (the default) stays the choice for measuring what your application's SDK adds.
"""

from __future__ import annotations

import random
import time
from typing import Any

import urllib3
from botocore.httpsession import get_cert_path

from bedrock_lab.engines.eventstream import ParserError, stream_reader
from bedrock_lab.engines.formats import (
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    PreparedRequest,
    ResponseParser,
    classify_http_error,
    classify_stream_error,
    error_info,
)
from bedrock_lab.engines.measure import Measurement
from bedrock_lab.engines.target import ClientSettings, RequestSigner, Target

#: botocore's standard retry mode: full jitter, base 1 s, cap 20 s
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 20.0


class DirectClient:
    """One pooled client per process: :meth:`send` runs one request (its attempts) into a parser and a
    :class:`Measurement`. Thread- and greenlet-safe (urllib3's pool; the signer holds no per-request state)."""

    def __init__(self, target: Target, settings: ClientSettings, seed: int | None = None) -> None:
        if not target.is_openai and target.auth == "sigv4":
            target.credentials()  # fail here, not on every request, when there are none
        self.signer = RequestSigner(target)
        self.max_attempts = settings.max_attempts
        self.timeout = urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s)
        # the CAs boto3 would trust: the target's bundle, else botocore's default (certifi's when installed)
        ca = target.ca_bundle or get_cert_path(True)
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=settings.pool_size, block=False, retries=False,
                                        cert_reqs="CERT_REQUIRED", ca_certs=ca)  # fmt: skip
        self._rng = random.Random(seed)

    def send(self, prep: PreparedRequest, parser: ResponseParser, m: Measurement) -> None:
        """The request, retried (at most ``max_attempts`` attempts) on throttling, server errors and failures
        before an answer started, like botocore; the answer into ``parser``, the outcome into ``m``."""
        attempt = 0
        while not self._attempt(prep, parser, m, last=attempt + 1 >= self.max_attempts):
            attempt += 1
            m.retries = attempt
            m.headers = {}
            time.sleep(self._rng.random() * min(BACKOFF_BASE_S * 2 ** (attempt - 1), BACKOFF_CAP_S))

    def _attempt(self, prep: PreparedRequest, parser: ResponseParser, m: Measurement, last: bool) -> bool:
        """One attempt: True when the request is over (``m`` holds its outcome), False to retry."""
        url, headers = self.signer.sign(prep.api, prep.path, prep.body, prep.headers)
        try:
            resp = self.pool.urlopen("POST", url, body=prep.body, headers=headers, preload_content=False,
                                     timeout=self.timeout, redirect=False)  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:  # nothing of an answer yet: botocore retries these
            if not last:
                return False
            m.finish()
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                m.fail("timeout", "ReadTimeout", message=str(exc))
                return True
            # NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError: it keeps its own name
            timed_out = isinstance(exc, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
                exc, urllib3.exceptions.NewConnectionError)
            m.fail("connection", "ConnectTimeout" if timed_out else type(exc).__name__, message=str(exc))
            return True
        read_all = False
        try:
            m.http_status, m.headers = resp.status, dict(resp.headers)
            if resp.status != 200:
                raw = resp.read()
                read_all = True
                code, message = error_info(resp.headers, raw)
                if not last and (resp.status in RETRYABLE_STATUS or code in RETRYABLE_CODES):
                    return False
                m.finish()
                m.fail(classify_http_error(resp.status, code), code, resp.status, message)
                return True
            parser.apply_headers(m.headers)
            if not prep.streaming:
                raw = resp.read()
                read_all = True
                m.finish()
                if not parser.feed_body(raw, m.headers):
                    m.fail("client", "MalformedResponse")
                return True
            read_all = _read_stream(resp, parser, m)
        except urllib3.exceptions.ReadTimeoutError as exc:
            m.finish()
            m.fail("timeout", "ReadTimeout", message=str(exc))
        except (urllib3.exceptions.HTTPError, ParserError, ValueError, TypeError, AttributeError) as exc:
            m.finish()  # a broken stream, a corrupt frame, an undecodable payload
            m.fail("stream" if m.http_status == 200 else "connection", type(exc).__name__, message=str(exc) or None)
        finally:
            if not read_all:
                resp.close()  # bytes left unread: the connection is not reused (the pool opens a fresh one)
            resp.release_conn()
        return True


def _read_stream(resp: Any, parser: ResponseParser, m: Measurement) -> bool:
    """A streamed answer, chunk by chunk as it arrives (one arrival time per content event); True when it was read
    to its end (an in-stream error ends the reading early)."""
    reader = stream_reader(parser)
    for data in resp.read_chunked() if resp.chunked else resp.stream(65536):
        now = time.monotonic()
        texts, failure = reader.feed(data)
        if texts:
            m.chunk_mono.extend([now] * texts)
        if failure is not None:
            m.finish()
            m.fail(classify_stream_error(failure[0]), failure[0], message=failure[1])
            return False
    m.finish()
    if not parser.completed:
        m.fail("stream", "TruncatedStream")
    return True
