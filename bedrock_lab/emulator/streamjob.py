"""What the emulator's two stream writers share: one answer written on its schedule, straight to the transport.

:class:`ScheduledStream` is the frame loop; ``server._StreamJob`` (the event streams of ConverseStream and
InvokeModelWithResponseStream) and ``openai_chat._SseJob`` (Chat Completions' server-sent events) say what each
tick writes. Why callbacks and not a coroutine with ``await asyncio.sleep`` per frame: a callback costs one timer
handle instead of a future plus a task step, which matters at thousands of concurrent streams. Every tick is its
own write (one HTTP chunk: chunked framing is added here; aiohttp sent the headers and writes the terminator).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from bedrock_lab.emulator.text import generated_text, generated_words

if TYPE_CHECKING:
    from bedrock_lab.emulator.load import Schedule
    from bedrock_lab.emulator.providers import Result

log = logging.getLogger("bedrock_lab.emulator")

#: a client this far behind is treated as gone (bounded memory per stream)
MAX_BUFFERED = 4 << 20
_time = time.time


class ScheduledStream:
    """One streamed answer: tick ``i`` of the schedule writes chunk ``i`` (:meth:`_emit`, the subclass's) at
    ``admitted + sch.chunk_offsets[i]`` on the server's frame scheduler; :meth:`run` returns True when the stream
    ended (normally or with an in-stream error: send the terminator), False when the connection is gone."""

    __slots__ = ("admitted", "done", "i", "loop", "n", "req", "result", "sch", "sched", "server", "tier", "tokens",
                 "transport")  # fmt: skip

    #: what the log says when a tick raised
    what = "stream frame"

    def __init__(self, server: Any, transport: asyncio.BaseTransport, req: Any, sch: Schedule, result: Result,
                 admitted: float, loop: asyncio.AbstractEventLoop, tier: str) -> None:  # fmt: skip
        self.server, self.transport, self.req, self.sch, self.result = server, transport, req, sch, result
        self.admitted, self.loop, self.tier = admitted, loop, tier
        self.sched = server.scheduler(loop)
        self.n = len(sch.chunk_tokens)
        self.i = 0
        self.tokens = 0
        self.done: asyncio.Future[bool] = loop.create_future()
        req.writes = []  # the wall clock of every write: one list append per tick

    async def run(self) -> bool:
        self.sched.at(self.admitted + self.sch.chunk_offsets[0], self._tick)
        return await self.done

    def _finish(self, ok: bool) -> None:
        if not self.done.done():
            self.done.set_result(ok)

    def _send(self, data: bytes) -> None:
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))  # type: ignore[attr-defined]
        self.req.writes.append(_time())

    def _tick(self) -> None:
        try:
            self._emit()
        except Exception:  # never leave the handler waiting
            log.exception("emulator: %s failed", self.what)
            self._finish(False)

    def _emit(self) -> None:
        raise NotImplementedError

    def _client_gone(self) -> bool:
        """True (and the stream ended) when the client closed the connection or stopped reading; else the tick's
        lateness goes to the server's emit statistics."""
        tr, req = self.transport, self.req
        if tr.is_closing() or tr.get_write_buffer_size() > MAX_BUFFERED:  # type: ignore[attr-defined]
            req.error_code = req.error_code or "ClientDisconnected"
            req.outcome = "client_disconnected"
            if not tr.is_closing():
                tr.abort()  # type: ignore[attr-defined]
            self._finish(False)
            return True
        self.server.emit.add(self.loop.time() - self.admitted - self.sch.chunk_offsets[self.i])
        return False

    def _dropped(self) -> bool:
        """The ``drop`` fault at this tick: the connection is closed mid-stream."""
        sch = self.sch
        if sch.fault != "drop" or self.i != sch.fault_chunk:
            return False
        self.req.error_code, self.req.outcome = "EmulatedDrop", "emulated_drop"
        self.transport.abort()  # type: ignore[attr-defined]
        self._finish(False)
        return True

    def _text(self, k: int, last: bool) -> str:
        """The next ``k`` tokens of the answer's text (the last chunk of a stop-sequence cut: the rest of the cut
        text, which may end inside a word); advances the token count."""
        r = self.result
        if last and r.stop_sequence is not None:
            text = r.text[len(generated_text(self.sch.text_offset, self.tokens)):]
        else:
            text = generated_words(self.sch.text_offset, self.tokens, k)
        self.tokens += k
        return text

    def _next(self, last: bool) -> None:
        """After a tick's write: end the stream, or schedule the next tick."""
        if last:
            self._finish(True)
            return
        self.i += 1
        self.sched.at(self.admitted + self.sch.chunk_offsets[self.i], self._tick)
