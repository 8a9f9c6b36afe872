"""Each shipped notebook, opened in JupyterLab in Chromium and run top to bottom (Run All).

What a person would see is checked in the page itself: every cell ran without an error,
every widget rendered (no "Loading widget" placeholder left), every plotly chart has traces
with points, the pipeline's progress bar reaches "N/N done", the DLQBrowser's filters show
labels and its replay works by clicks, and the browser console has no error. A few
screenshots go to ``reports/screenshots/`` for review.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser.conftest import SCREENSHOTS, Lab, new_page, screenshot_on_failure

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOKS = ("quickstart", "queue_monitoring", "trace_investigation", "ioc_enrichment_pipeline",
             "health_report")
WIDGET_NOTEBOOKS = {"queue_monitoring", "trace_investigation", "ioc_enrichment_pipeline"}
RUN_TIMEOUT_S = 150.0

_STATE_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const prompts = cells.map(c => (c.node.querySelector('.jp-InputPrompt') || {}).textContent);
  const errors = [];
  cells.forEach((c, i) => {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  });
  return {kernel: kernel ? kernel.status : null, ready: panel.sessionContext.isReady,
          cells: cells.length, counted: cells.filter(c => c.model.executionCount).length,
          busy: prompts.filter(p => (p || '').includes('*')).length, errors};
}"""

#: points per chart, from plotly's decoded traces (``_fullData``: typed arrays decoded)
_POINTS = """(el => (el._fullData || []).reduce((n, t) => n + Array.from(
    (t.orientation === 'h' ? t.x : t.y) || []).filter(
    v => v !== null && v !== undefined && !Number.isNaN(v)).length, 0))"""
_CHARTS_JS = ("""() => [...document.querySelectorAll('.js-plotly-plot')].map(el => ({
  title: (el.layout && el.layout.title && el.layout.title.text) || '',
  traces: (el._fullData || []).length, points: """ + _POINTS + "(el)}))")


def _wait(page: Any, js: str, ok: Any, timeout_s: float, what: str) -> Any:
    """Evaluate ``js`` until ``ok(value)``; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(js)
        if ok(value):
            return value
        page.wait_for_timeout(200)  # the page's own clock; bounded by the deadline
    raise AssertionError(f"{what} not reached in {timeout_s:g} s; last: {value}")


def start(page: Any, lab: Lab, name: str) -> None:
    """Open ``name``, wait for its kernel, press Run All (without waiting for the end)."""
    page.goto(lab.notebook_url(f"{name}.ipynb"))
    _wait(page, _STATE_JS, lambda s: bool(s) and s["ready"] and s["kernel"] == "idle",
          60, f"{name}: an idle kernel")
    # not awaited: the command's promise settles only when the last cell has run; pressed
    # again if the notebook was not ready to take it (nothing started within 10 s)
    for _ in range(3):
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells');"
                      " return true; }")
        try:
            _wait(page, _STATE_JS, lambda s: s["counted"] > 0 or s["busy"] > 0, 10,
                  f"{name}: Run All started")
            return
        except AssertionError:
            continue
    raise AssertionError(f"{name}: Run All did not start")


def finish(page: Any, name: str) -> dict[str, Any]:
    """Wait until every cell of the notebook in ``page`` ran; fail on an error output."""
    state = _wait(page, _STATE_JS,
                  lambda s: s["counted"] == s["cells"] and not s["busy"] and s["kernel"] == "idle"
                  or bool(s["errors"]), RUN_TIMEOUT_S, f"{name}: every cell run")
    assert not state["errors"], state["errors"]
    return state


class Runs:
    """Notebooks run on demand, one at a time in the foreground page, each once per module
    (their idle kernels stay up until the module ends, for the click tests).

    (Started in a background page, JupyterLab neither renders the widgets nor reliably
    takes Run All: a hidden page gets no animation frames.)"""

    def __init__(self, lab: Lab, chromium: Any) -> None:
        self.lab, self.chromium = lab, chromium
        self.pages: dict[str, Any] = {}

    def start(self, name: str) -> Any:
        if name not in self.pages:
            self.pages[name] = new_page(self.chromium)
            start(self.pages[name], self.lab, name)
        return self.pages[name]

    def get(self, name: str) -> Any:
        fresh = name not in self.pages
        page = self.start(name)
        page.bring_to_front()
        if fresh:
            finish(page, name)
        return page

    def close(self) -> None:
        for page in self.pages.values():
            try:
                _shutdown(page)
            finally:
                page.context.close()


def _shutdown(page: Any) -> None:
    page.evaluate("() => { const p = window.jupyterapp.shell.currentWidget;"
                  " if (p && p.sessionContext && p.sessionContext.session)"
                  " p.sessionContext.shutdown(); return true; }")


@pytest.fixture(scope="module")
def runs(lab: Lab, chromium: Any) -> Iterator[Runs]:
    """The notebooks' pages, each run once for the whole module."""
    started = Runs(lab, chromium)
    yield started
    started.close()


@pytest.fixture
def ran(runs: Runs, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Any]]:
    """``ran(name)``: the page of notebook ``name`` once Run All finished (screenshot if the
    test fails)."""
    used: list[Any] = []

    def get(name: str) -> Any:
        page = runs.get(name)
        used.append(page)
        return page

    yield get
    for page in used:
        screenshot_on_failure(request, page)


def cell(page: Any, source_text: str) -> Any:
    """The notebook cell whose input contains ``source_text``."""
    return page.locator(".jp-Cell").filter(
        has=page.locator(".jp-InputArea", has_text=source_text)).first


def widget(page: Any, heading: str) -> Any:
    """The outermost widget box whose heading is ``heading``."""
    return page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(f"text={heading}")).first


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_runs_in_jupyterlab_with_rendered_widgets_and_charts(
        ran: Callable[[str], Any], name: str) -> None:
    page = ran(name)
    if name in WIDGET_NOTEBOOKS:
        page.locator(".jp-OutputArea-output .widget-vbox").first.wait_for(
            state="attached", timeout=20_000)
    _wait(page, "() => document.body.innerText.includes('Loading widget')", lambda v: not v,
          20, f"{name}: every widget rendered")
    text = page.evaluate("() => document.body.innerText")
    assert "Error displaying widget" not in text
    if name in WIDGET_NOTEBOOKS:
        assert page.locator(".jp-OutputArea-output .widget-vbox").count() > 0
    charts = _wait(page, _CHARTS_JS, lambda c: bool(c) or name == "health_report", 20,
                   f"{name}: plotly charts rendered")
    empty = [c["title"] for c in charts if not c["traces"] or not c["points"]]
    assert not empty, f"charts without points: {empty}"
    errors = [e for e in page.console.errors() if "Cannot set properties" in e
              or "Uncaught" in e]
    assert not errors, errors


def test_the_quickstart_messages_frame_is_compact_and_defanged(
        ran: Callable[[str], Any]) -> None:
    page = ran("quickstart")
    out = cell(page, "compact default").locator(".jp-OutputArea-output")
    table = out.locator("table")
    headers = table.locator("thead th").all_inner_texts()
    assert "indicator" in headers and "trace_id" not in headers and len(headers) <= 14
    body = table.locator("tbody").inner_text()
    assert "[.]" in body, "indicators are shown defanged"
    ids = table.locator("tbody tr td:nth-of-type(1)")  # td 1: the id (th 0 is the index)
    line = ids.first.evaluate("el => parseFloat(getComputedStyle(el).lineHeight) || 20")
    for i in range(ids.count()):
        box = ids.nth(i).bounding_box()
        assert box["height"] < 2 * line + 8, "an id wraps onto several lines"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out.scroll_into_view_if_needed()
    out.screenshot(path=str(SCREENSHOTS / "messages_df.png"))


def test_the_dlq_browser_and_queue_monitor_work_by_clicks(ran: Callable[[str], Any]) -> None:
    page = ran("queue_monitoring")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    monitor = widget(page, "Queue monitor")
    monitor.scroll_into_view_if_needed()
    chart = monitor.locator(".js-plotly-plot").first
    chart.wait_for(state="visible")
    points = chart.evaluate(_POINTS)
    assert points > 0, "the throughput of the live run is drawn"
    monitor.screenshot(path=str(SCREENSHOTS / "queue_monitor_throughput.png"))

    browser = widget(page, "Dead-letter browser")
    browser.scroll_into_view_if_needed()
    labels = [s.evaluate("el => el.options[el.selectedIndex] ? "
                         "el.options[el.selectedIndex].text : ''").replace("\xa0", " ")
              for s in browser.locator(".widget-dropdown select").all()]
    assert labels[:3] == ["all queues", "any reason", "any time"], labels
    browser.locator(".widget-dropdown select").nth(1).select_option(label="schema_invalid")
    select = browser.locator(".widget-select-multiple select")
    _wait(page, "() => true", lambda _: select.locator("option").count() > 0, 10,
          "dead letters listed")
    select.select_option(index=0)
    browser.get_by_role("button", name="Inspect").click()
    browser.locator("text=payload redacted").wait_for()
    browser.get_by_role("button", name="Replay selected").click()
    browser.locator("text=dead-lettered again").wait_for()
    browser.screenshot(path=str(SCREENSHOTS / "dlq_replay_warning.png"))
    browser.get_by_role("button", name="Replay anyway").click()
    browser.locator("text=replayed 1 as new message(s)").wait_for()
    assert browser.locator("text=new message id").count() == 1
    assert browser.get_by_role("button", name="Open trace").is_visible()
    browser.screenshot(path=str(SCREENSHOTS / "dlq_after_replay.png"))
    errors = [e for e in page.console.errors() if "Cannot set properties" in e]
    assert not errors, errors


def test_the_pipeline_progress_bar_reaches_every_indicator_done(
        ran: Callable[[str], Any]) -> None:
    page = ran("ioc_enrichment_pipeline")
    summary = cell(page, "enricher queues: {run.status()").locator(".jp-OutputArea-output")
    found = re.match(r"(\d+) indicators x (\d+) enricher queues", summary.inner_text())
    assert found, summary.inner_text()
    n, queues = int(found[1]), int(found[2])
    out = cell(page, "verdicts = run.wait(").locator(".jp-OutputArea-output").first
    bar = out.locator(".widget-hbox").filter(has=page.locator(".widget-hprogress")).first
    bar.wait_for(state="visible", timeout=20_000)
    # the run has ended: the bar shows its final state (tqdm pads with figure spaces)
    text = " ".join(bar.inner_text().replace("\u2007", " ").split())
    assert text.startswith("scoring: 100%"), text
    assert f"{n}/{n} done · enrichment {n * queues}/{n * queues} [" in text, text
    fill = bar.locator(".progress-bar")
    assert fill.evaluate("el => el.style.width") == "100%"
    assert "progress-bar-success" in (fill.get_attribute("class") or "")  # closed complete
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out.scroll_into_view_if_needed()
    cell(page, "verdicts = run.wait(").screenshot(path=str(SCREENSHOTS / "pipeline_progress.png"))
