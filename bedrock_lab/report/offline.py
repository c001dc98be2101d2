"""An altair renderer whose output works with no network: in JupyterLab, in nbconvert HTML, behind firewalls.

Altair's own renderers either load vega from a CDN (a blank page offline), embed the ~0.9 MB bundle in every
chart (only the first chart draws: duplicate top-level names), or emit a mimetype that nbconvert cannot turn into
HTML. This renderer instead

- emits the vega / vega-lite / vega-embed bundle (from ``vl_convert.javascript_bundle``) once per kernel,
  wrapped in a function scope and guarded by ``if (!window.vegaEmbed)``;
- emits per chart a ``<div class="bl-chart">`` holding a static fallback image (SVG or PNG rendered by
  vl-convert) plus a small script that replaces the image with the interactive chart once ``vegaEmbed`` exists;
- also returns ``image/png`` so exports that drop HTML, and untrusted notebooks, still show a picture.

Enable it with :func:`enable_offline_renderer` (the analysis notebook does this in its first cell).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import altair as alt
import vl_convert as vlc

from bedrock_lab.errors import ReportError

RENDERER_NAME = "bedrock_lab_offline"
Fallback = Literal["svg", "png"]

_counter = itertools.count(1)
_state = {"bundle_emitted": False}


def vega_lite_version() -> str:
    """The Vega-Lite version altair writes specs for, as vl-convert wants it ("6.4")."""
    m = re.match(r"v?(\d+)\.(\d+)", alt.SCHEMA_VERSION)
    if not m:  # pragma: no cover - altair always has a version
        raise ReportError(f"cannot read altair's Vega-Lite version from {alt.SCHEMA_VERSION!r}")
    return f"{m.group(1)}.{m.group(2)}"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bedrock-lab"


@functools.lru_cache(maxsize=4)
def javascript_bundle(vl_version: str | None = None) -> str:
    """vega + vega-lite + vega-embed as one script that defines ``window.vegaEmbed``.

    Building it takes ~3 s, so it is cached in memory and on disk (``~/.cache/bedrock-lab``, keyed by the
    vl-convert and Vega-Lite versions); a cache that cannot be written is simply skipped.
    """
    vl_version = vl_version or vega_lite_version()
    path = _cache_dir() / f"vega-bundle-vlc{getattr(vlc, '__version__', 'x')}-vl{vl_version}.js"
    try:
        text = path.read_text(encoding="utf-8")
        if "window.vegaEmbed" in text:
            return text
    except OSError:
        pass
    text = vlc.javascript_bundle(vl_version=vl_version)  # type: ignore[call-arg]  # stub marks snippet required
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    return text


def _escape_script(text: str) -> str:
    """Make JavaScript safe to put inside ``<script>``: the HTML parser must not see ``</script`` or ``<!--``."""
    text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)
    return text.replace("<!--", "<\\!--")


def _spec_json(spec: dict[str, Any]) -> str:
    """The spec as a JavaScript literal; ``</`` becomes ``<\\/`` (same JSON string, harmless to HTML)."""
    return json.dumps(spec, separators=(",", ":"), sort_keys=True).replace("</", "<\\/").replace("<!--", "<\\u0021--")


def bundle_html(vl_version: str | None = None) -> str:
    """A ``<script>`` that defines ``window.vegaEmbed`` unless something already did."""
    body = _escape_script(javascript_bundle(vl_version))
    return (
        '<script type="text/javascript" data-bl-vega-bundle="1">\n'
        "(function () {\nif (window.vegaEmbed) { return; }\n" + body + "\n})();\n</script>\n"
    )


def reset_bundle() -> None:
    """Forget that the bundle was emitted (the next chart carries it again); for a fresh page or a test."""
    _state["bundle_emitted"] = False


def _title_of(spec: dict[str, Any]) -> str:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, dict):  # a title that follows a menu ({"expr": "'Distribution of ... at ' + ..."})
        m = re.match(r"""\s*(["'])(.*?)\1""", str(title.get("expr", "")))
        title = m.group(2).strip() if m else None
    if isinstance(title, list):
        title = " ".join(map(str, title))
    return str(title) if title else "chart"


def chart_html(
    spec: dict[str, Any],
    *,
    fallback: Fallback = "png",
    png: bytes | None = None,
    vl_version: str | None = None,
    embed_renderer: Literal["svg", "canvas"] = "svg",
    chart_id: str | None = None,
) -> str:
    """The HTML of one chart: a fallback image, replaced by the interactive chart when vega-embed is there."""
    vl_version = vl_version or vega_lite_version()
    try:
        if fallback == "svg":
            svg = vlc.vegalite_to_svg(spec, vl_version=vl_version)
            src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        else:
            png = png if png is not None else vlc.vegalite_to_png(spec, vl_version=vl_version)
            src = "data:image/png;base64," + base64.b64encode(png).decode()
    except Exception as exc:  # vl-convert raises ValueError for bad specs, others for engine problems
        raise ReportError(f"cannot render a static image of chart {_title_of(spec)!r}: {exc}") from exc
    if chart_id is None:
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
        chart_id = f"bl-chart-{next(_counter)}-{digest}"
    alt_text = html.escape(_title_of(spec) + " (static image)")
    options = json.dumps({"renderer": embed_renderer, "actions": False, "mode": "vega-lite"})
    return f"""<div class="bl-chart" id="{chart_id}" data-bl-chart="1">
<img class="bl-fallback" alt="{alt_text}" src="{src}">
</div>
<script type="text/javascript">
(function () {{
  var el = document.getElementById("{chart_id}");
  var spec = {_spec_json(spec)};
  if (!el || !window.vegaEmbed) {{ return; }}
  var target = document.createElement("div");
  el.appendChild(target);
  window.vegaEmbed(target, spec, {options}).then(function () {{
    var img = el.querySelector("img.bl-fallback");
    if (img) {{ img.remove(); }}
    el.setAttribute("data-bl-drawn", "1");
  }}).catch(function (err) {{
    target.remove();
    el.setAttribute("data-bl-error", String(err));
    console.error("bedrock-lab chart {chart_id}:", err);
  }});
}})();
</script>
"""


def offline_renderer(
    spec: dict[str, Any],
    fallback: Fallback = "png",
    embed_renderer: Literal["svg", "canvas"] = "svg",
    png_scale: float = 1.0,
    **_: Any,
) -> dict[str, Any]:
    """Altair renderer: a mimebundle with ``text/html`` (offline, interactive) and ``image/png``."""
    vl_version = vega_lite_version()
    try:
        png = vlc.vegalite_to_png(spec, vl_version=vl_version, scale=png_scale)
    except Exception as exc:
        raise ReportError(f"cannot render chart {_title_of(spec)!r} to PNG: {exc}") from exc
    parts = []
    if not _state["bundle_emitted"]:
        parts.append(bundle_html(vl_version))
        _state["bundle_emitted"] = True
    parts.append(chart_html(spec, fallback=fallback, png=png, vl_version=vl_version, embed_renderer=embed_renderer))
    return {
        "text/html": "".join(parts),
        "image/png": base64.b64encode(png).decode(),
        "text/plain": f"<chart: {_title_of(spec)}>",
    }


def enable_offline_renderer(fallback: Fallback = "png", embed_renderer: Literal["svg", "canvas"] = "svg") -> None:
    """Register (once) and enable the offline renderer for this kernel.

    Also forgets that the bundle was emitted, so the next chart carries it again: re-running a notebook
    from the top in the same kernel must not leave the saved notebook (and its HTML) without a bundle.
    """
    reset_bundle()
    if RENDERER_NAME not in alt.renderers.names():
        alt.renderers.register(RENDERER_NAME, offline_renderer)
    alt.renderers.enable(RENDERER_NAME, fallback=fallback, embed_renderer=embed_renderer)
