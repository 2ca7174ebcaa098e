"""egma.browser_check: on hand-made pages, offline headless Chromium passes a page whose inline plotly.js
draws its figure and fails pages with a console error, an uncaught exception or a script from a CDN."""
from __future__ import annotations

import struct
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from egma import browser_check
from egma.viz import plotlyjs_script

FIGURE = go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2]))


def _page(folder: Path, name: str, body: str, head: str = "") -> Path:
    path = folder / f"{name}.html"
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{name}</title>{head}</head>"
                    f"<body><h1>{name}</h1>{body}</body></html>")
    return path


def _figure_div(include_plotlyjs) -> str:
    return pio.to_html(FIGURE, include_plotlyjs=include_plotlyjs, full_html=False)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, browser_check.PageReport]:
    """Every hand-made page, checked in one browser session."""
    folder = tmp_path_factory.mktemp("pages")
    pages = {
        "plotly_inline": _page(folder, "plotly_inline", _figure_div(False), head=plotlyjs_script()),
        "console_error": _page(folder, "console_error", "<script>console.error('something broke')</script>"),
        "uncaught": _page(folder, "uncaught", "<script>undefinedFunction()</script>"),
        "cdn_plotly": _page(folder, "cdn_plotly", _figure_div("cdn")),
        "tolerated": _page(folder, "tolerated", "<script>const THEBE_JS_URL = 1</script>" * 2),
        "redeclared": _page(folder, "redeclared", "<script>const OTHER = 1</script>" * 2),
        "missing": folder / "no_such_page.html",
    }
    shots = {pages["plotly_inline"]: folder / "shots" / "plotly_inline.png"}
    checked = browser_check.check_pages(list(pages.values()), shots)
    return dict(zip(pages, checked))


def test_a_page_with_inline_plotly_loads_cleanly_and_draws_its_figure(reports):
    report = reports["plotly_inline"]
    assert report.loaded and report.title == "plotly_inline" and report.text_chars > 0
    assert (report.figures, report.figures_drawn) == (1, 1)
    assert report.errors == [] and report.outside_requests == [] and report.problems == []


def test_a_screenshot_is_a_png_of_the_viewport(reports):
    png = reports["plotly_inline"].screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (browser_check.VIEWPORT["width"], browser_check.VIEWPORT["height"])
    assert len(png) > 10_000  # a drawn page, not a blank one


def test_console_errors_and_uncaught_exceptions_fail_the_page(reports):
    assert reports["console_error"].errors == ["something broke"]
    assert any("ReferenceError: undefinedFunction is not defined" in e for e in reports["uncaught"].errors)
    for name in ("console_error", "uncaught"):
        assert reports[name].loaded and reports[name].problems


def test_a_script_from_a_cdn_fails_offline_and_its_figure_is_not_drawn(reports):
    report = reports["cdn_plotly"]
    assert report.outside_requests and all("cdn.plot.ly" in url for url in report.outside_requests)
    assert any("failed to load https://cdn.plot.ly" in e for e in report.errors)
    assert (report.figures, report.figures_drawn) == (1, 0)
    assert "only 0 of 1 plotly figures were drawn" in report.problems


def test_only_the_listed_messages_are_tolerated_and_they_stay_visible(reports):
    tolerated = reports["tolerated"]
    assert tolerated.problems == [] and tolerated.errors == []
    assert tolerated.tolerated == ["uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"]
    assert "tolerated (see browser_check.TOLERATED): uncaught SyntaxError" in tolerated.summary()
    assert all(len(reason) > 40 for _pattern, reason in browser_check.TOLERATED)  # each says why
    assert any("Identifier 'OTHER' has already been declared" in e for e in reports["redeclared"].errors)


def test_a_missing_page_is_a_problem(reports):
    report = reports["missing"]
    assert not report.loaded and any("does not exist" in e for e in report.errors)
    assert browser_check.failures(list(reports.values())) == [
        reports[n] for n in ("console_error", "uncaught", "cdn_plotly", "redeclared", "missing")]


def test_no_chromium_is_a_clear_failure_not_a_skip(monkeypatch, tmp_path):
    monkeypatch.delenv(browser_check.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(browser_check.ChromiumMissing, match="apt-get install -y --no-install-recommends chromium"):
        browser_check.check_pages([tmp_path / "page.html"])
    monkeypatch.setenv(browser_check.CHROMIUM_ENV, str(tmp_path / "nowhere" / "chrome"))
    with pytest.raises(browser_check.ChromiumMissing, match="is not an executable"):
        browser_check.find_chromium()


def test_the_command_line_exits_non_zero_on_a_broken_page(reports, capsys):
    assert browser_check.main([str(reports["tolerated"].page)]) == 0
    assert browser_check.main([str(reports["console_error"].page)]) == 1
    assert "console error: something broke" in capsys.readouterr().out
