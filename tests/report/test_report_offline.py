"""The offline altair renderer: one bundle per kernel, safe script embedding, static fallbacks."""

from __future__ import annotations

import base64
import re

import altair as alt
import pandas as pd
import pytest

from bedrock_lab.report import offline

FAKE_BUNDLE = "window.vegaEmbed = function () { return '</script><!-- x'; };"


@pytest.fixture
def fake_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny stand-in for vl-convert's 0.9 MB bundle (renderer logic only; the browser test uses the real one)."""
    monkeypatch.setattr(offline, "javascript_bundle", lambda vl_version=None: FAKE_BUNDLE)
    offline.reset_bundle()
    yield
    offline.reset_bundle()


def _chart(title: str = "t </script> <!--") -> alt.Chart:
    df = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0], "label": ["a</script>", "b", "c"]})
    return alt.Chart(df, title=title).mark_line().encode(x=alt.X("x:Q", title="x (s)"), y=alt.Y("y:Q", title="y (s)"))


def test_bundle_is_emitted_once_per_kernel_and_guarded(fake_bundle: None) -> None:
    first = offline.offline_renderer(_chart().to_dict())
    second = offline.offline_renderer(_chart().to_dict())
    assert first["text/html"].count("data-bl-vega-bundle") == 1
    assert "data-bl-vega-bundle" not in second["text/html"]
    assert "if (window.vegaEmbed) { return; }" in first["text/html"]  # function scope + guard
    offline.reset_bundle()
    assert "data-bl-vega-bundle" in offline.offline_renderer(_chart().to_dict())["text/html"]


def test_script_content_cannot_close_the_script_tag(fake_bundle: None) -> None:
    out = offline.offline_renderer(_chart().to_dict())["text/html"]
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", out, flags=re.S | re.I)
    assert len(scripts) == 2  # bundle + one chart: nothing was cut short by an embedded "</script>"
    for body in scripts:
        assert "</script" not in body.lower() and "<!--" not in body


def test_each_chart_has_a_fallback_image_and_png(fake_bundle: None) -> None:
    out = offline.offline_renderer(_chart().to_dict(), fallback="svg")
    html = out["text/html"]
    assert re.search(r'<div class="bl-chart" id="bl-chart-\d+-[0-9a-f]{8}"', html)
    assert 'src="data:image/svg+xml;base64,' in html
    assert base64.b64decode(out["image/png"]).startswith(b"\x89PNG")
    png_html = offline.offline_renderer(_chart().to_dict(), fallback="png")["text/html"]
    assert 'src="data:image/png;base64,' in png_html
    assert not re.search(r'(src|href)="https?://', html + png_html)


def test_chart_ids_are_unique(fake_bundle: None) -> None:
    spec = _chart().to_dict()
    ids = {re.search(r'id="(bl-chart-[^"]+)"', offline.chart_html(spec)).group(1) for _ in range(3)}
    assert len(ids) == 3


def test_renderer_registers_and_enables(fake_bundle: None) -> None:
    before = alt.renderers.active
    try:
        offline.enable_offline_renderer(fallback="png")
        assert alt.renderers.active == offline.RENDERER_NAME
        bundle = _chart()._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        assert "text/html" in data and "image/png" in data
        assert "data-bl-vega-bundle" in data["text/html"]  # enabling again (a re-run) re-emits the bundle
        offline.enable_offline_renderer(fallback="png")
        again = _chart()._repr_mimebundle_()
        assert "data-bl-vega-bundle" in (again[0] if isinstance(again, tuple) else again)["text/html"]
    finally:
        alt.renderers.enable(before)


def test_bad_spec_is_a_report_error() -> None:
    from bedrock_lab.errors import ReportError

    with pytest.raises(ReportError, match="cannot render"):
        offline.offline_renderer({"mark": "nonsense-mark", "data": {"values": []}})


def test_vega_lite_version_matches_altair() -> None:
    assert alt.SCHEMA_VERSION.lstrip("v").startswith(offline.vega_lite_version())
