"""``phantom-notebook dashboard`` served by Voila, driven in the OS Chromium like on-call would.

A real redis-server with a fleet: several queues, a worker subprocess, dead letters, an open
circuit breaker, ACL users for an operator and an analyst, an audit key. Two dashboards run
(operator, analyst) as the command starts them. Screenshots of every step land in
``reports/screenshots/dashboard-*.png``.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.audit.log import AuditLog
from phantom_notebook.core.audit.verify import audit_key_from_env
from phantom_notebook.core.backend.deploy import deploy
from phantom_notebook.core.security.access import AccessPolicy, apply_acl, render_all
from phantom_notebook.core.testing import wait_until
from tests.browser.conftest import ROOT, SCREENSHOTS, new_page, screenshot_on_failure
from tests.support.redis_server import RedisServer, free_port

AUDIT_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
PASSWORDS = {"ops": secrets.token_hex(12), "ana": secrets.token_hex(12)}
REFRESH_S = 1.0
INDICATOR = "c2-beacon.evil-example.net"
FANOUT = ("ioc-fanout-vt", "ioc-fanout-otx", "ioc-fanout-whois")


@dataclass
class Served:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def page_url(self) -> str:
        return f"{self.url}/?token={self.token}"


@dataclass
class Fleet:
    server: RedisServer
    operator: pn.MessageQueue
    indicator_id: str
    group: tuple[str, tuple[str, ...], str]  # a settled group: its id, members, callback

    def url_of(self, user: str) -> str:
        return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{self.server.port}/0"


def _reject(message: pn.Envelope, context: pn.MessageContext) -> None:
    raise pn.Reject("schema_invalid")


def _fail(message: pn.Envelope, context: pn.MessageContext) -> None:
    raise RuntimeError("provider down")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    server = RedisServer().start()
    admin = server.client()
    deploy(admin)
    operator = pn.connect(server.url, settings=pn.Settings())
    for queue in ("ioc-enrich", "ioc-backlog", "ioc-poison", "threat-intel", "alerts",
                  "ioc-provider", *FANOUT, "threat-fanin"):
        operator.declare(queue)
    rules = render_all(AccessPolicy(), {"ops": ("admin", PASSWORDS["ops"]),
                                        "ana": ("analyst", PASSWORDS["ana"])}, prefix="pn",
                       queues=operator.queues())
    apply_acl(admin, rules, save=False)
    # dead letters: schema_invalid on ioc-poison (the analyst may read them) and on alerts
    operator.subscribe("ioc-poison", "*", _reject)
    operator.subscribe("alerts", "*", _reject)
    operator.publish_batch("ioc-poison", [
        pn.Message("ioc.enrichment.request", {"ioc": {"value": f"203.0.113.{i}"},
                                              "source": "partner-isac"}, tlp="AMBER")
        for i in range(1, 13)])
    operator.publish_batch("alerts", [("alert.threat.notification", {"n": i}) for i in range(4)])
    # an open breaker: a provider that always fails
    operator.subscribe("ioc-provider", "*", _fail, retry=pn.RetrySettings(
        max_retries=0, initial_delay_s=0, jitter=0), breaker=pn.BreakerSettings(
        enabled=True, failure_threshold=3, minimum_calls=3, recovery_timeout_s=3600))
    operator.publish_batch("ioc-provider", [("ioc.enrichment.request", {"n": i})
                                            for i in range(8)])
    # a group: three enrichments fanned out, a score once all three are in
    for queue in FANOUT:
        operator.subscribe(queue, "*", lambda m, c: {"verdict": "clean"})
    operator.subscribe("threat-fanin", "*", lambda m, c: len(c.join.values))
    with operator.worker():
        assert wait_until(lambda: len(operator.dlq("ioc-poison")) == 12 and
                          len(operator.dlq("alerts")) == 4, 20)
        assert wait_until(lambda: any(s.get("state") == "open" for s in
                                      operator.breakers("ioc-provider").values()), 20)
        flow = operator.group([pn.Task(q, "ioc.enrichment.request", {"ioc": INDICATOR})
                               for q in FANOUT],
                              then=pn.Task("threat-fanin", "threat.analysis.request", {}))
        assert flow.result(20) == 3
        assert wait_until(lambda: operator.stats(["threat-fanin"])[0].depth == 0, 20)
    group = (flow.id, tuple(m.id for m in flow.members), flow.callback.id)
    # a backlog nobody consumes, some threat intel waiting, a worker subprocess on ioc-enrich
    operator.publish_batch("ioc-backlog", [("ioc.enrichment.request", {"n": i})
                                           for i in range(40)])
    operator.publish_batch("threat-intel", [("threat.analysis.request", {"n": i})
                                            for i in range(6)])
    indicator_id = operator.publish("ioc-enrich", "ioc.enrichment.request",
                                    {"ioc": {"value": INDICATOR, "type": "domain"}})
    worker = _worker(server.url)
    assert wait_until(lambda: operator.stats(["ioc-enrich"])[0].depth == 0, 30)
    try:
        yield Fleet(server, operator, indicator_id, group)
    finally:
        worker.kill()
        worker.wait(10)
        operator.close()
        admin.close()
        server.close()


def _worker(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PN_TEST_RECORD_URL": url,
           "PN_TEST_RECORD_KEY": "pn-test-records"}
    return subprocess.Popen([sys.executable, "-m", "phantom_notebook.cli", "worker",
                             "tests.support.handlers:record", "--queue", "ioc-enrich",
                             "--redis-url", url], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _serve(fleet: Fleet, user: str, role: str, who: str,
           tmp: Path) -> Iterator[Served]:
    port, token = free_port(), secrets.token_urlsafe(24)
    log = tmp / f"dashboard-{user}.log"
    env = {**os.environ, "PHANTOM_DASHBOARD_TOKEN": token, "PHANTOM_AUDIT_KEY": AUDIT_KEY,
           "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "phantom_notebook.cli", "dashboard", "--redis-url",
             fleet.url_of(user), "--role", role, "--user", who, "--port", str(port),
             "--refresh", str(REFRESH_S)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/?token={token}", timeout=2):
                pass
        except OSError:
            return False
        return "filled with 1 kernel" in log.read_text()  # the pre-heated kernel is ready

    try:
        assert wait_until(ready, 90, interval_s=0.25), log.read_text()[-3000:]
        yield Served(url, token, process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def operator_board(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(fleet, "ops", "admin", "alice@soc", tmp_path_factory.mktemp("ops"))


@pytest.fixture(scope="module")
def analyst_board(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(fleet, "ana", "analyst", "bob@soc", tmp_path_factory.mktemp("ana"))


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = new_page(chromium)
    page.set_viewport_size({"width": 1400, "height": 2200})
    yield page
    screenshot_on_failure(request, page)
    page.close(run_before_unload=True)
    page.context.close()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _tile(page: Any, name: str) -> str:
    return str(page.locator(f"[data-tile={name}] .pn-value").get_attribute("data-value"))


def _updated(page: Any) -> float:
    return float(page.locator("[data-updated]").get_attribute("data-updated"))


def _open(page: Any, served: Served) -> float:
    started = time.perf_counter()
    page.goto(served.page_url())
    page.wait_for_selector("[data-tile=waiting]", timeout=30_000)
    painted = time.perf_counter() - started
    first = _updated(page)
    page.wait_for_function(  # live: a refresh after the pre-heated one
        f"() => parseFloat(document.querySelector('[data-updated]')"
        f".getAttribute('data-updated')) > {first}", timeout=15_000)
    return painted


def test_the_operator_dashboard_shows_the_fleet_as_the_library_counts_it(
        page: Any, fleet: Fleet, operator_board: Served) -> None:
    painted = _open(page, operator_board)
    print(f"first paint (tiles) {painted:.2f} s")
    stats = fleet.operator.stats()
    assert wait_until(lambda: int(_tile(page, "waiting")) == sum(s.depth for s in stats), 10)
    assert int(_tile(page, "queues")) == len(stats)
    assert int(_tile(page, "breakers")) == 1
    assert int(_tile(page, "workers")) == 1
    assert _tile(page, "health") == fleet.operator.health().status
    backlog = page.locator("tr[data-queue=ioc-backlog]")
    assert backlog.get_attribute("data-ready") == "40"
    assert "NO CONSUMER" in backlog.inner_text()
    assert "1 open" in page.locator("tr[data-queue=ioc-provider]").inner_text()
    assert page.locator("tr[data-worker]").count() == 1
    assert page.locator("svg[data-chart=throughput] polyline").count() >= 1
    assert not [e for e in page.console.errors() if "ERR_NAME_NOT_RESOLVED" not in e]
    _shot(page, "1-overview")


def test_a_new_publish_appears_within_two_refreshes(
        page: Any, fleet: Fleet, operator_board: Served) -> None:
    _open(page, operator_board)
    before = int(str(page.locator("tr[data-queue=ioc-backlog]").get_attribute("data-ready")))
    seen: set[float] = set()
    fleet.operator.publish_batch("ioc-backlog", [("ioc.enrichment.request", {"late": i})
                                                 for i in range(5)])
    published = time.time()

    def shown() -> bool:
        stamp = _updated(page)
        if stamp > published:
            seen.add(stamp)
        ready = page.locator("tr[data-queue=ioc-backlog]").get_attribute("data-ready")
        return int(str(ready)) == before + 5

    assert wait_until(shown, 4 * REFRESH_S + 5, interval_s=0.1)
    assert len(seen) <= 2, f"took {len(seen)} refreshes"
    _shot(page, "2-new-publish")


def test_searching_an_indicator_opens_the_trace_of_its_message(
        page: Any, fleet: Fleet, operator_board: Served) -> None:
    _open(page, operator_board)
    box = page.get_by_placeholder("message id, trace id or indicator (e.g. evil.example.com)")
    box.fill(INDICATOR.upper())  # an analyst types it however it came
    box.press("Enter")
    page.wait_for_selector(f"[data-trace='{fleet.indicator_id}']", timeout=15_000)
    assert page.locator("[data-found]").get_attribute("data-found") == "1"
    timeline = page.locator(f"[data-trace='{fleet.indicator_id}'] svg[data-chart=trace]")
    events = timeline.locator("circle[data-event]")
    assert {events.nth(i).get_attribute("data-event") for i in range(events.count())} >= {
        "published", "delivered", "acked"}
    _shot(page, "3-search-trace")


def test_the_trace_of_a_group_opens_as_a_tree_members_then_callback(
        page: Any, fleet: Fleet, operator_board: Served) -> None:
    group_id, members, callback = fleet.group
    _open(page, operator_board)
    box = page.get_by_placeholder("message id, trace id or indicator (e.g. evil.example.com)")
    box.fill(callback)
    box.press("Enter")
    page.wait_for_selector(f"[data-trace='{callback}'] svg[data-chart=trace][data-tree]",
                           timeout=15_000)
    chart = page.locator(f"[data-trace='{callback}'] svg[data-chart=trace]")
    assert chart.get_attribute("data-tree") == "5"
    lanes = chart.locator("text[data-lane]")
    keys = [lanes.nth(i).get_attribute("data-lane") for i in range(lanes.count())]
    assert keys[0] == group_id and set(keys[1:4]) == set(members) and keys[4] == callback
    labels = [str(lanes.nth(i).text_content()).replace("\u00a0", " ") for i in range(lanes.count())]
    assert labels[0].startswith("group ") and labels[4].startswith("└─ threat-fanin")
    assert labels[4].endswith("(callback)")
    assert [label[:3] for label in labels[1:4]] == ["├─ "] * 3
    # the labels line up: each branch glyph starts at the same x, left of the plot
    boxes = [lanes.nth(i).bounding_box() for i in range(1, 5)]
    assert len({round(b["x"]) for b in boxes if b}) == 1
    assert chart.locator("[data-link]").count() == 4
    assert chart.locator("rect[data-event=group_succeeded]").count() == 1
    tree = page.locator(f"[data-trace='{callback}'] pre[data-trace-tree]")
    assert "(callback)" in tree.inner_text()
    _shot(page, "3b-group-tree")


def test_an_operator_replays_a_dead_letter_and_the_audit_trail_names_them(
        page: Any, fleet: Fleet, operator_board: Served) -> None:
    _open(page, operator_board)
    before = len(fleet.operator.dlq("alerts"))
    page.locator("select").filter(has_text="all queues").first.select_option(label="alerts (4)")
    page.wait_for_function("() => document.querySelector('[data-page]') && "
                           "document.querySelector('[data-page]').dataset.total == '4'")
    listing = page.locator("select[multiple]")
    first_option = listing.locator("option").first
    listing.select_option(value=first_option.get_attribute("value"))
    page.get_by_role("button", name="Replay…").click()
    page.get_by_role("button", name="Yes, replay 1").click()
    page.wait_for_selector("[data-done=replay]", timeout=15_000)
    _shot(page, "4-replayed")
    assert wait_until(lambda: len(fleet.operator.dlq("alerts")) == before - 1, 10) or \
        len(fleet.operator.dlq("alerts")) == before  # the replay was rejected again: re-dead
    key = audit_key_from_env({"PHANTOM_AUDIT_KEY": AUDIT_KEY})
    reader = AuditLog(fleet.operator, key, actor="test", role="", user="default")
    replays = [e for e in reader.entries(limit=1000) if e.action == "replay"]
    assert [(e.actor, e.role, e.target, e.authentic) for e in replays] == [
        ("dashboard:alice@soc", "admin", "alerts", True)]


def test_the_same_click_as_an_analyst_is_refused_and_audited(
        page: Any, fleet: Fleet, analyst_board: Served) -> None:
    _open(page, analyst_board)
    rows = page.locator("tr[data-queue]")
    assert {rows.nth(i).get_attribute("data-queue") for i in range(rows.count())} == {
        "ioc-enrich", "ioc-backlog", "ioc-poison", "ioc-provider", "threat-intel", *FANOUT,
        "threat-fanin"}  # no alerts
    assert page.locator("[data-mode]").get_attribute("data-mode") == "read-only"
    page.locator("select").filter(has_text="all queues").first.select_option(
        label="ioc-poison (12)")
    page.wait_for_function("() => document.querySelector('[data-page]') && "
                           "document.querySelector('[data-page]').dataset.total == '12'")
    listing = page.locator("select[multiple]")
    listing.select_option(value=listing.locator("option").first.get_attribute("value"))
    page.get_by_role("button", name="Inspect").click()
    detail = page.locator("[data-detail]")
    detail.wait_for(timeout=10_000)
    assert "TLP:AMBER payload withheld" in detail.inner_text()
    assert "partner-isac" not in detail.inner_text()
    before = len(fleet.operator.dlq("ioc-poison"))
    page.get_by_role("button", name="Replay…").click()
    page.wait_for_selector("[data-refused=replay]", timeout=10_000)
    assert "may not manage 'ioc-poison'" in page.locator("[data-refused]").inner_text()
    _shot(page, "5-analyst-refused")
    assert len(fleet.operator.dlq("ioc-poison")) == before
    key = audit_key_from_env({"PHANTOM_AUDIT_KEY": AUDIT_KEY})
    reader = AuditLog(fleet.operator, key, actor="test", role="", user="default")
    denied = [e for e in reader.entries(limit=1000) if e.action == "permission_denied"]
    assert [(e.actor, e.role, e.target) for e in denied] == [
        ("dashboard:bob@soc", "analyst", "ioc-poison")]


def test_exposing_the_dashboard_without_a_token_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHANTOM_DASHBOARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "phantom_notebook.cli", "dashboard", "--host", "0.0.0.0",
         "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without --token" in done.stderr
