"""Open an HTML file in headless Chromium with all network blocked and report what the page did.

Uses the DevTools protocol over a websocket (aiohttp's client): every request the page makes, console errors and
uncaught exceptions, per chart container whether vega-embed drew an svg/canvas, and a full-page screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,900",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
]  # fmt: skip
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

CHART_STATE_JS = """
(() => Array.from(document.querySelectorAll('div.bl-chart')).map(el => ({
  id: el.id,
  drawn: el.getAttribute('data-bl-drawn') === '1',
  error: el.getAttribute('data-bl-error'),
  marks: el.querySelectorAll('svg.marks, canvas.marks').length,
  fallback: el.querySelectorAll('img.bl-fallback').length,
})))()
"""


@dataclass
class PageReport:
    charts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    results: list[Any] = field(default_factory=list)  #: the value of each step, in order

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.load_fired = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.load_fired.set()

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
                   timeout: float = 30) -> dict[str, Any]:
        i = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def _devtools_url(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stderr is not None
    async def scan() -> str:
        while True:
            line = await proc.stderr.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("chromium exited before opening the DevTools port")
            m = re.search(rb"DevTools listening on (ws://\S+)", line)
            if m:
                return m.group(1).decode()
    return await asyncio.wait_for(scan(), timeout)


async def _drain(stream: asyncio.StreamReader | None) -> None:
    if stream is None:
        return
    while await stream.readline():
        pass


async def inspect_page(chromium: str, html: Path, screenshot: Path, *, timeout: float = 90,
                       steps: Sequence[str] = ()) -> PageReport:
    """Load ``html`` headless, wait until every chart drew (or errored, or ``timeout``), run ``steps`` (JavaScript
    expressions, awaited when they return a promise: what a reader does, e.g. pick a menu entry, and what the page
    then shows, as JSON values in :attr:`PageReport.results`), then screenshot it. Requests and console errors
    of the steps are recorded like those of the load."""
    profile = Path(tempfile.mkdtemp(prefix="bl-chromium-"))
    proc = await asyncio.create_subprocess_exec(
        chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    report = PageReport()
    drain: asyncio.Task[None] | None = None
    try:
        url = await _devtools_url(proc, timeout)
        drain = asyncio.create_task(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            cdp = _Session(ws)
            target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
            sid = (await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            for domain in ("Network", "Runtime", "Log", "Page"):
                await cdp.send(f"{domain}.enable", session=sid)
            await cdp.send("Page.navigate", {"url": html.resolve().as_uri()}, session=sid)
            await asyncio.wait_for(cdp.load_fired.wait(), timeout)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:  # vega-embed draws asynchronously after load: wait for every chart, bounded
                res = await cdp.send("Runtime.evaluate", {"expression": CHART_STATE_JS, "returnByValue": True},
                                     session=sid)
                report.charts = res["result"]["value"]
                if all(c["drawn"] or c["error"] for c in report.charts) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
            for step in steps:
                res = await cdp.send("Runtime.evaluate", {"expression": step, "returnByValue": True,
                                                          "awaitPromise": True}, session=sid, timeout=timeout)
                if "exceptionDetails" in res:
                    d = res["exceptionDetails"]
                    raise RuntimeError(f"step failed: {d.get('exception', {}).get('description') or d.get('text')}")
                report.results.append(res["result"].get("value"))
            metrics = await cdp.send("Page.getLayoutMetrics", session=sid)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = await cdp.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1},
            }, session=sid, timeout=60)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
            for ev in cdp.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Network.requestWillBeSent":
                    report.requests.append(p["request"]["url"])
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    report.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", [])))
                elif m == "Runtime.exceptionThrown":
                    d = p.get("exceptionDetails", {})
                    report.console_errors.append(str(d.get("exception", {}).get("description") or d.get("text")))
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                    report.console_errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
            with contextlib.suppress(RuntimeError, TimeoutError, aiohttp.ClientError):
                await cdp.send("Browser.close", timeout=10)
            cdp.reader.cancel()
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain:
            drain.cancel()
        shutil.rmtree(profile, ignore_errors=True)
    return report
