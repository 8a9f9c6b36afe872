"""Each chart draws the expected traces with titled axes, from the frames of a real workload."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import plotly.graph_objects as go
import pytest

import phantom_notebook as pn
from phantom_notebook.notebook import charts
from phantom_notebook.notebook.frames import dlq_df, metrics_df, stats_df, trace_df
from tests.notebook.conftest import Workload, flow_trace, run_flows, run_workload


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[pn.MessageQueue, Workload]]:
    """One embedded deployment with the known workload run on it, shared by the module."""
    mq = pn.connect(None, key_prefix="charts-test", settings=pn.Settings())
    work = run_workload(mq)
    run_workload(mq, queue="second", ok=5, flaky=0, rejected=1)
    yield mq, work
    mq.client.close()


@pytest.fixture(autouse=True)
def no_show(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart builder must never display anything itself."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("plot_* called .show()")

    monkeypatch.setattr(go.Figure, "show", refuse)


def _names(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data if t.name]


def _titles(fig: go.Figure) -> tuple[str, str]:
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_throughput_draws_published_and_acked_per_queue(embedded: tuple) -> None:
    mq, work = embedded
    metrics = metrics_df(mq, window="10min")
    fig = charts.plot_throughput(metrics)
    assert isinstance(fig, go.Figure)
    assert _names(fig) == ["counted · published", "counted · acked", "second · published",
                           "second · acked"]
    assert _titles(fig) == ("time (UTC)", "messages per second")
    assert "Throughput" in fig.layout.title.text and fig.layout.template.layout is not None
    published = next(t for t in fig.data if t.name == "counted · published")
    counted = metrics[metrics["queue"] == "counted"]
    assert list(published.y) == counted["published_per_s"].tolist()
    assert (counted["published_per_s"] * 10 >= counted["published"]).all()
    assert counted["published"].sum() == work.published
    one = charts.plot_throughput(metrics[metrics["queue"] == "counted"])
    assert _names(one) == ["published", "acked"]


def test_latency_draws_three_percentiles_in_ms(embedded: tuple) -> None:
    mq, _ = embedded
    metrics = metrics_df(mq, ["counted"], window="10min")
    fig = charts.plot_latency(metrics, kind="proc")
    assert _names(fig) == ["p50", "p95", "p99"]
    assert fig.layout.xaxis.title.text == "time (UTC)"
    assert fig.layout.yaxis.title.text.startswith("latency (ms")
    assert "Processing" in fig.layout.title.text


def test_latency_turns_logarithmic_when_the_range_is_wide() -> None:
    times = pd.to_datetime([0, 10_000], unit="ms", utc=True)
    frame = pd.DataFrame({"queue": ["q", "q"], "time": times, "bucket_s": [10, 10],
                          "e2e_p50_ms": [1.0, 1.2], "e2e_p95_ms": [3.0, 4.0],
                          "e2e_p99_ms": [900.0, 5.0]})
    fig = charts.plot_latency(frame)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.title.text == "latency (ms, log scale)"


def test_depth_draws_a_bar_per_state_from_stats_or_a_history(embedded: tuple) -> None:
    mq, work = embedded
    snapshot = stats_df(mq)
    fig = charts.plot_depth(snapshot)
    assert _names(fig) == ["ready", "in flight", "delayed", "dead letters"]
    assert _titles(fig) == ("queue", "messages")
    dead = next(t for t in fig.data if t.name == "dead letters")
    assert list(dead.y) == [work.dead, 2]
    assert _names(charts.plot_depth(mq.stats())) == _names(fig)
    later = snapshot.assign(time=snapshot["time"] + pd.Timedelta(seconds=30))
    history = charts.plot_depth(pd.concat([snapshot, later], ignore_index=True))
    assert _names(history) == ["counted · backlog", "counted · dead letters",
                               "second · backlog", "second · dead letters"]
    assert _titles(history) == ("time (UTC)", "messages")


def test_errors_draws_the_error_rate_and_dead_letters_per_bucket(embedded: tuple) -> None:
    mq, work = embedded
    fig = charts.plot_errors(metrics_df(mq, ["counted"], window="10min"))
    assert _names(fig) == ["error rate", "dead letters"]
    assert fig.layout.yaxis.title.text == "error rate (%)"
    assert fig.layout.yaxis2.title.text == "dead letters"
    assert fig.layout.xaxis2.title.text == "time (UTC)"
    bars = next(t for t in fig.data if t.name == "dead letters")
    assert sum(bars.y) == work.dead


def test_dlq_reasons_draws_one_bar_per_reason(embedded: tuple) -> None:
    mq, work = embedded
    fig = charts.plot_dlq_reasons(dlq_df(mq, "counted"))
    (bars,) = fig.data
    assert dict(zip(bars.y, bars.x, strict=True)) == {"retries_exhausted": 1,
                                                      "schema_invalid": work.rejected}
    assert _titles(fig) == ("dead letters", "reason")
    both = pd.concat([dlq_df(mq, "counted"), dlq_df(mq, "second")], ignore_index=True)
    assert _names(charts.plot_dlq_reasons(both)) == ["counted", "second"]


def test_trace_timeline_shows_a_retried_then_dead_lettered_message(embedded: tuple) -> None:
    mq, work = embedded
    trace = trace_df(mq, message_id=work.doomed_id)
    fig = trace.phantom.plot_timeline()
    markers = {t.name: len(t.x) for t in fig.data if t.name}
    assert markers == {"published": 1, "delivered": 3, "retried": 2, "dead_lettered": 1}
    (path,) = [t for t in fig.data if not t.name]
    assert len(path.x) == 7 and list(path.x) == sorted(path.x)
    assert fig.layout.xaxis.title.text == "time since first event (ms)"
    assert fig.layout.yaxis.title.text == "queue · consumer"
    assert len(fig.layout.yaxis.ticktext) == 2
    assert work.doomed_id in fig.layout.title.text and "dead_lettered" in fig.layout.title.text
    delivered = next(t for t in fig.data if t.name == "delivered")
    assert list(delivered.text) == ["attempt 1", "attempt 2", "attempt 3"]


def test_empty_frames_give_titled_empty_charts(embedded: tuple) -> None:
    mq, _ = embedded
    empty = metrics_df(mq, ["nothing-here"])
    for fig in (charts.plot_throughput(empty), charts.plot_latency(empty),
                charts.plot_errors(empty), charts.plot_depth(stats_df(mq, [])),
                charts.plot_dlq_reasons(dlq_df(mq, "nothing-here")),
                charts.plot_trace_timeline(trace_df(mq, queue="nothing-here"))):
        assert fig.layout.title.text
        assert [a.text for a in fig.layout.annotations] == ["no data"]


def test_a_chart_written_as_html_carries_plotly_js_for_offline_reading(
        embedded: tuple, tmp_path: pytest.TempPathFactory) -> None:
    mq, _ = embedded
    path = tmp_path / "depth.html"  # type: ignore[operator]
    charts.plot_depth(stats_df(mq)).write_html(path, include_plotlyjs=True)
    text = path.read_text()
    assert "Queue depth by state" in text and '<script src="https://cdn' not in text


def _buckets(counts: dict[int, tuple[int, int]], n: int = 360) -> pd.DataFrame:
    """A one-queue metrics frame of ``n`` 10 s buckets; ``counts``: index -> (delivered, dead)."""
    from phantom_notebook.notebook._dtypes import frame
    from phantom_notebook.notebook.frames import _METRIC_COLUMNS

    start = 1_700_000_000
    rows = []
    for i in range(n):
        delivered, dead = counts.get(i, (0, 0))
        rows.append({"queue": "q", "time": (start + 10 * i) * 1000, "bucket_s": 10,
                     "published": delivered, "delivered": delivered, "acked": delivered - dead,
                     "dead_lettered": dead, "published_per_s": delivered / 10,
                     "acked_per_s": (delivered - dead) / 10, "delivered_per_s": delivered / 10,
                     "error_rate": dead / delivered if delivered else None,
                     "e2e_p50_ms": 5.0 if delivered else None})
    return frame(rows, _METRIC_COLUMNS)


def test_throughput_of_one_busy_bucket_is_a_visible_marker_not_a_blank_chart() -> None:
    fig = charts.plot_throughput(_buckets({0: (20, 0)}, n=1))
    for trace in fig.data:
        assert "markers" in trace.mode and len(trace.x) == 1 and trace.y[0] > 0
        assert trace.marker.size >= 5


def test_charts_of_a_burst_at_the_end_of_the_window_zoom_to_the_burst() -> None:
    metrics = _buckets({354: (30, 1), 355: (10, 0), 357: (12, 2)})
    lo_busy, hi_busy = metrics["time"].iloc[354], metrics["time"].iloc[357]
    for fig in (charts.plot_throughput(metrics), charts.plot_errors(metrics),
                charts.plot_latency(metrics)):
        lo, hi = (pd.Timestamp(v, tz="UTC") for v in fig.layout.xaxis.range)
        assert lo <= lo_busy and hi >= hi_busy, fig.layout.title.text
        assert hi - lo <= pd.Timedelta(minutes=2), "the x axis fits the burst, not 1 h"
    whole = charts.plot_throughput(_buckets({i: (5, 0) for i in range(360)}))
    assert whole.layout.xaxis.range is None, "traffic all along: the axis is left alone"


def test_error_line_breaks_at_buckets_without_deliveries_and_missing_buckets() -> None:
    metrics = _buckets({0: (10, 1), 1: (10, 0), 3: (10, 5), 4: (10, 0)}, n=5)
    holed = metrics.drop(index=[2]).dropna(subset=["error_rate"])  # what a caller may do
    for source in (metrics, holed):
        fig = charts.plot_errors(source)
        line = next(t for t in fig.data if t.name == "error rate")
        assert line.connectgaps is False
        assert len(line.x) == 5 and pd.isna(line.y[2]), "bucket 2 is a gap, not a slope"
        assert list(line.y[[0, 3]]) == [10.0, 50.0]


def test_the_two_error_axis_titles_fit_their_panels_without_overlapping() -> None:
    fig = charts.plot_errors(_buckets({0: (10, 1)}, n=3))
    height = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    size = fig.layout.font.size
    spans = []
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        lo, hi = axis.domain
        title_px = len(axis.title.text) * size * 0.62  # a generous average glyph width
        assert title_px < (hi - lo) * height, axis.title.text
        spans.append(((lo + hi) / 2 * height - title_px / 2, (lo + hi) / 2 * height + title_px / 2))
    (a_lo, a_hi), (b_lo, b_hi) = sorted(spans)
    assert a_hi < b_lo, "the titles would run into each other"


def _short(message_id: str) -> str:
    return message_id.rsplit("-", 1)[-1]


def _ticks(fig: go.Figure) -> list[str]:
    """The y tick labels without the padding that lines them up."""
    return [t.rstrip("\u00a0") for t in fig.layout.yaxis.ticktext]


def _first_seen(trace: pd.DataFrame, ids: tuple[str, ...]) -> list[str]:
    return [str(m) for m in trace["message_id"].drop_duplicates() if m in ids]


def test_a_group_s_trace_is_drawn_as_a_tree_members_then_callback(mq: pn.MessageQueue) -> None:
    flows = run_flows(mq)
    trace = flow_trace(mq, flows.callback_id, "threat-score")
    fig = charts.plot_trace_timeline(trace)
    queue_of = dict(zip(trace["message_id"], trace["queue"], strict=True))
    members = _first_seen(trace, flows.member_ids)  # siblings in the order they started
    assert _ticks(fig) == [
        f"group {_short(flows.group_id)}",
        *(f"├─\u00a0{queue_of[m]} · {_short(m)}" for m in members),
        f"└─\u00a0threat-score · {_short(flows.callback_id)} (callback)"]
    assert len({len(t) for t in fig.layout.yaxis.ticktext}) == 1  # padded: glyphs line up
    assert "monospace" in fig.layout.yaxis.tickfont.family
    assert fig.layout.title.text.startswith(f"Group {_short(flows.group_id)}")
    markers = {t.name: len(t.x) for t in fig.data if t.name}
    assert markers == {"group_created": 1, "published": 3, "delivered": 4, "acked": 4,
                       "group_succeeded": 1}
    # the group's bar, then one elbow per message from the row above it in the tree
    bar = next(t for t in fig.data if t.line.width == 6)
    assert list(bar.y) == [0, 0]
    (links,) = [t for t in fig.data if t.line.dash == "dot"]
    assert [y for y in links.y if y is not None][::3] == [0, 0, 0, 0]
    assert not fig.layout.annotations  # no chain step here: nothing released by a step


def test_a_chain_s_trace_is_drawn_as_a_tree_each_step_under_the_one_before(
        mq: pn.MessageQueue) -> None:
    flows = run_flows(mq)
    trace = flow_trace(mq, flows.chain_last_id, "threat-report")
    steps = [str(m) for m in trace.sort_values("depth", kind="stable")["message_id"]
             .drop_duplicates()]
    chain_id = str(trace.loc[trace["message_id"] == steps[0], "parent_id"].iloc[0])
    fig = trace.phantom.plot_timeline()
    pad = "\u00a0" * 3
    assert _ticks(fig) == [
        f"chain {_short(chain_id)}",
        f"└─\u00a0ioc-vt · {_short(steps[0])} (step 1)",
        f"{pad}└─\u00a0threat-score · {_short(steps[1])} (step 2)",
        f"{pad * 2}└─\u00a0threat-report · {_short(steps[2])} (step 3)"]
    assert fig.layout.title.text.startswith(f"Chain {_short(chain_id)}")
    # each later step is released by the step before it: an arrow per step
    assert len(fig.layout.annotations) == 2
    assert "next step released" in _names(fig)


def test_a_trace_without_parent_links_keeps_its_lanes_per_queue_and_consumer(
        embedded: tuple) -> None:
    mq, work = embedded
    trace = trace_df(mq, message_id=work.doomed_id)
    fig = charts.plot_trace_timeline(trace)
    legacy = charts.plot_trace_timeline(trace.drop(columns=["parent_id", "depth"]))
    assert fig.to_plotly_json() == legacy.to_plotly_json()
    assert fig.layout.yaxis.title.text == "queue · consumer"
    assert [t.split(" · ")[0] for t in fig.layout.yaxis.ticktext] == ["counted", "counted"]
