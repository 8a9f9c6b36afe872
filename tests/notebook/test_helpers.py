"""One namespace for the analyst, a wait that ends on the library's own records, no typos."""

from __future__ import annotations

import subprocess
import sys

import pytest

import phantom_notebook as pn
import phantom_notebook.notebook as pnb
from tests.notebook.conftest import NO_WAIT


def test_one_import_gives_frames_charts_widgets_and_helpers() -> None:
    for name in ("messages_df", "metrics_df", "plot_throughput", "plot_errors", "IOCPublisher",
                 "QueueMonitor", "DLQBrowser", "TraceExplorer", "wait_for", "connect",
                 "extract_iocs", "publish", "known_queue", "WaitTimeoutError"):
        assert name in pnb.__all__ and name in dir(pnb), name
        assert getattr(pnb, name) is not None
    assert pnb.connect is pn.connect
    assert pnb.extract_iocs("c2 at 198.51.100[.]23")[0].value == "198.51.100.23"


def test_importing_the_namespace_loads_no_heavy_package_until_used() -> None:
    code = ("import sys, phantom_notebook.notebook as pnb;"
            "print(sorted({'pandas', 'plotly', 'ipywidgets'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_wait_for_returns_once_every_id_is_acked_or_dead_lettered(mq: pn.MessageQueue) -> None:
    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload["bad"]:
            raise pn.Reject("schema_invalid")

    mq.subscribe("waited", "*", handler, retry=NO_WAIT)
    ids = [mq.publish("waited", "t", {"bad": i == 2}) for i in range(4)]
    with mq.worker():
        done = pnb.wait_for(mq, ids, timeout_s=30)
    assert done.counts() == {"acked": 3, "dead_lettered": 1}
    assert done.events[ids[2]] == "dead_lettered"
    assert mq.stats(["waited"])[0].dead == 1


def test_wait_for_without_a_consumer_times_out_naming_the_open_ids(
        mq: pn.MessageQueue) -> None:
    mid = mq.publish("unconsumed", "t", {})
    with pytest.raises(pnb.WaitTimeoutError) as raised:
        pnb.wait_for(mq, [mid], timeout_s=0.2)
    assert isinstance(raised.value, TimeoutError) and isinstance(raised.value, pn.PhantomError)
    assert raised.value.pending == [mid] and "1 of 1 message(s) not settled" in str(raised.value)
    with pytest.raises(pn.ValidationError, match="unknown state"):
        pnb.wait_for(mq, [mid], state="finished")


def test_publishing_through_the_namespace_to_a_typo_is_refused_and_creates_nothing(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing")
    with pytest.raises(pn.UnknownQueueError, match="did you mean 'ioc-processing'"):
        pnb.publish(mq, "ioc-procesing", "t", {})
    assert mq.queues() == ["ioc-processing"]
    assert pnb.publish(mq, "ioc-processing", "t", {})


def test_wait_until_returns_the_truthy_value_or_raises_naming_what_was_awaited() -> None:
    assert pnb.wait_until(lambda: [1], timeout_s=1) == [1]
    with pytest.raises(pnb.WaitTimeoutError, match="the results did not happen within 0.1 s"):
        pnb.wait_until(lambda: False, timeout_s=0.1, what="the results")


@pytest.mark.parametrize("name", ["quickstart", "queue_monitoring", "trace_investigation",
                                  "ioc_enrichment_pipeline"])
def test_the_notebooks_use_the_public_namespace_not_core_or_private_helpers(name: str) -> None:
    import json
    from pathlib import Path

    book = json.loads((Path(__file__).parents[2] / "notebooks" / f"{name}.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code")
    assert "import phantom_notebook.notebook as pnb" in code
    for private in ("core.queues import wait_until", "_dtypes", "core.testing"):
        assert private not in code, private
