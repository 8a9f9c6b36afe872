"""``Dashboard``: the live operations page (what ``phantom-notebook dashboard`` serves).

Top to bottom: the header bar (deployment, identity, role, liveness, health), the tiles, the
per-queue table, three charts, the workers, a search box (message id, trace id or
indicator value -> its trace timeline) and the dead letters, paged, with replay and purge
for operators. Widgets update in place; the page never reloads.

The clock is in the browser: a hidden ``ipywidgets.Play`` ticks every ``refresh_s``, and
each tick it sends refreshes once (the Redis reads run in a thread, so clicks stay
responsive; a tick that arrives while a refresh runs is skipped). A kernel nobody watches
reads nothing from Redis. A Play set playing before the browser built its model (Voila's
pre-heated kernel) does not start by itself, so ``start()`` also runs a small task on the
kernel's event loop that restarts the clock when no tick came for a while; once a viewer
has come and gone for ``give_up_s`` it stops too, the kernel goes idle and Voila's culler
shuts it down even when the tab died without saying goodbye.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ...core.errors import PermissionDeniedError, PhantomError, ValidationError
from ..widgets._base import View, html_table, ipywidgets
from ..widgets.traces import TraceExplorerModel
from . import charts, render, svg
from .deadletters import DeadLetterPager
from .model import DashboardModel, Snapshot

if TYPE_CHECKING:
    from ...core.queues import MessageQueue

log = logging.getLogger("phantom_notebook.dashboard")
ALL = ""


class Dashboard(View):
    """The operations dashboard of ``mq`` for ``role``; ``start()`` makes it live."""

    def __init__(self, mq: MessageQueue, *, role: str | None = None, user: str = "",
                 refresh_s: float = 2.0, where: str | None = None, max_tlp: str = "GREEN",
                 page_size: int = 15) -> None:
        if not refresh_s > 0:
            raise ValidationError(f"refresh_s must be > 0, got {refresh_s}")
        self.mq = mq
        self.model = DashboardModel(mq, role=role)
        self.role = self.model.role
        self.user = user or "dashboard"
        self.refresh_s = float(refresh_s)
        self.where = where or _where(mq)
        self.pager = DeadLetterPager(mq, role=self.role, page_size=page_size, max_tlp=max_tlp)
        self.error: str | None = None
        self.actions: list[dict[str, Any]] = []  # what this page did, newest last
        self._busy = threading.Lock()
        self._ui = threading.RLock()  # draw (refresh thread) vs clicks (kernel thread)
        self.ticks = 0
        self._last_tick = time.monotonic()
        self._kicker: asyncio.Task[None] | None = None
        self._build()

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        w = ipywidgets()
        self.clock = w.Play(value=0, min=0, max=10**9, step=1, interval=int(self.refresh_s * 1000),
                            playing=False, show_repeat=False,
                            layout=w.Layout(display="none"))
        self.clock.observe(lambda _: self._tick(), "value")
        self.header = w.HTML(render.header(self.where, self.role, self.user, self._operator(),
                                           None, self.refresh_s))
        self.tiles = w.HTML()
        self.queue_filter = w.Text(placeholder="filter queues", continuous_update=True,
                                   layout=w.Layout(width="220px"))
        self.queue_table = w.HTML(layout=w.Layout(width="100%"))
        self.queue_filter.observe(lambda _: self._locked(lambda: self._draw_queues()), "value")
        self.chart_views = [w.HTML(layout=w.Layout(width="33%", min_width="320px"))
                            for _ in range(3)]
        self.workers = w.HTML(layout=w.Layout(width="100%"))
        # search
        self.search_box = w.Text(placeholder="message id, trace id or indicator (e.g. "
                                 "evil.example.com)", continuous_update=False,
                                 layout=w.Layout(width="520px"))
        self.search_button = w.Button(description="Find", icon="search", button_style="info")
        self.search_status = w.HTML()
        self.search_results = w.HTML(layout=w.Layout(width="100%"))
        self.search_choice = w.Dropdown(options=[], description="Open",
                                        layout=w.Layout(width="520px", display="none"))
        self.explorer = TraceExplorerModel(self.mq)
        self.trace_view = w.HTML(layout=w.Layout(width="100%"))
        self.search_button.on_click(lambda _: self._locked(lambda: self.search()))
        self.search_box.observe(lambda _: self._locked(lambda: self.search()), "value")
        self.search_choice.observe(
            lambda change: self._locked(lambda: self._open(change["new"])), "value")
        # dead letters
        self.dlq_queue = w.Dropdown(options=[("all queues", ALL)], value=ALL,
                                    description="Queue", layout=w.Layout(width="300px"))
        self.dlq_reason = w.Text(placeholder="reason (exact), e.g. schema_invalid",
                                 continuous_update=False, layout=w.Layout(width="280px"))
        self.newer_button = w.Button(description="Newer", icon="chevron-left")
        self.older_button = w.Button(description="Older", icon="chevron-right")
        self.page_label = w.HTML()
        self.dlq_table = w.HTML(layout=w.Layout(width="100%"))
        self.selection = w.SelectMultiple(options=[], rows=6, description="Select",
                                          layout=w.Layout(width="100%"))
        self.inspect_button = w.Button(description="Inspect", icon="eye")
        self.replay_button = w.Button(description="Replay…", icon="redo", button_style="info")
        self.purge_button = w.Button(description="Purge…", icon="trash", button_style="danger")
        self.confirm_text = w.HTML()
        self.confirm_button = w.Button(description="Yes, do it", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none", align_items="center"))
        self.dlq_status = w.HTML()
        self.detail = w.HTML(layout=w.Layout(width="100%"))
        self._pending: tuple[str, list[tuple[str, str]]] | None = None
        self.dlq_queue.observe(lambda _: self._locked(lambda: self._choose()), "value")
        self.dlq_reason.observe(lambda _: self._locked(lambda: self._choose()), "value")
        self.newer_button.on_click(lambda _: self._locked(lambda: self._page(self.pager.newer)))
        self.older_button.on_click(lambda _: self._locked(lambda: self._page(self.pager.older)))
        self.inspect_button.on_click(lambda _: self._locked(lambda: self.inspect()))
        self.replay_button.on_click(lambda _: self._locked(lambda: self.ask("replay")))
        self.purge_button.on_click(lambda _: self._locked(lambda: self.ask("purge")))
        self.confirm_button.on_click(lambda _: self._locked(lambda: self.confirm()))
        self.cancel_button.on_click(lambda _: self._locked(lambda: self.cancel()))
        if not self._operator():  # clicks go through the core: refused there, and audited
            for button in (self.replay_button, self.purge_button):
                button.icon = "lock"
                button.button_style = ""
                button.tooltip = f"read-only: role {self.role!r} may not manage these queues"
        section = render.section
        self.widget = w.VBox([
            self.clock, self.header, self.tiles,
            w.HBox([w.HTML(section("Queues", "needing attention first")), self.queue_filter],
                   layout=w.Layout(justify_content="space-between", align_items="flex-end")),
            self.queue_table,
            w.HTML(section("Throughput, latency and depth", "15 minutes, 10 s buckets")),
            w.HBox(self.chart_views, layout=w.Layout(width="100%", flex_flow="row wrap")),
            w.HTML(section("Workers", "from their heartbeats")), self.workers,
            w.HTML(section("Find a message", "by message id, trace id or indicator value")),
            w.HBox([self.search_box, self.search_button]), self.search_status,
            self.search_results, self.search_choice, self.trace_view,
            w.HTML(section("Dead letters", "newest first, a page at a time")),
            w.HBox([self.dlq_queue, self.dlq_reason, self.newer_button, self.older_button,
                    self.page_label], layout=w.Layout(align_items="center", flex_flow="row wrap")),
            self.dlq_table, self.selection,
            w.HBox([self.inspect_button, self.replay_button, self.purge_button]),
            self.confirm_box, self.dlq_status, self.detail],
            layout=w.Layout(width="100%", padding="4px 8px"))

    def _operator(self) -> bool:
        return self.role is None or bool(self.mq.access.role(self.role).patterns("manage"))

    def summary(self) -> str:
        snap = self.model.snapshot
        if snap is None:
            return "Dashboard (not refreshed yet)"
        t = snap.tiles
        return (f"Dashboard: {t.queues} queues, {t.waiting:,} waiting, {t.workers_online} "
                f"workers online, health {t.health}")

    # -- refreshing --------------------------------------------------------------------------

    def refresh(self) -> Snapshot | None:
        """Read and draw once (synchronously); the snapshot, or None when it failed."""
        try:
            snapshot: Snapshot = self.model.refresh()
        except PhantomError as exc:
            self._failed(exc)
            return None
        self.draw(snapshot)
        return snapshot

    def _failed(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        log.warning("dashboard refresh failed: %s", self.error)
        self.header.value = render.header(self.where, self.role, self.user, self._operator(),
                                          self.model.snapshot, self.refresh_s, self.error)

    def _locked(self, action: Any) -> Any:
        with self._ui:
            return action()

    def draw(self, snapshot: Snapshot) -> None:
        """Put ``snapshot`` on the page."""
        with self._ui:
            self._draw(snapshot)

    def _draw(self, snapshot: Snapshot) -> None:
        self.error = None
        self.header.value = render.header(self.where, self.role, self.user, self._operator(),
                                          snapshot, self.refresh_s)
        self.tiles.value = render.tiles(snapshot.tiles)
        self._draw_queues()
        self.workers.value = render.worker_table(snapshot.workers)
        for view, chart in zip(self.chart_views, (charts.throughput(snapshot),
                                                  charts.latency(snapshot),
                                                  charts.depth(snapshot)), strict=True):
            if view.value != chart:
                view.value = chart
        self._sync_dlq(snapshot)

    def _draw_queues(self) -> None:
        snap = self.model.snapshot
        if snap is not None:
            self.queue_table.value = render.queue_table(snap.queues, self.queue_filter.value)

    def start(self, give_up_s: float = 600.0) -> Dashboard:
        """Refresh every ``refresh_s`` while a browser shows the page; returns self."""
        self.clock.playing = True
        self._last_tick = time.monotonic()
        if self._kicker is None or self._kicker.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop()
            self._kicker = loop.create_task(self._keep_ticking(give_up_s))
        return self

    def stop(self) -> None:
        """Stop refreshing."""
        self.clock.playing = False
        if self._kicker is not None:
            self._kicker.cancel()
            self._kicker = None

    async def _keep_ticking(self, give_up_s: float) -> None:
        """Restart the browser's clock when it missed a tick and a half."""
        while self.clock.playing:
            await asyncio.sleep(min(self.refresh_s, 1.0))
            quiet = time.monotonic() - self._last_tick
            if self.ticks and quiet > give_up_s:
                self.clock.playing = False  # the viewer left: let the kernel go idle
                return
            if quiet > 1.5 * self.refresh_s + 0.5:
                with self.clock.hold_sync():
                    self.clock.playing = False
                self.clock.playing = True

    @property
    def running(self) -> bool:
        """True while the page's clock ticks."""
        return bool(self.clock.playing)

    def _tick(self) -> None:
        """One browser tick: refresh in a thread unless a refresh is still running."""
        self._last_tick = time.monotonic()
        if not self._busy.acquire(blocking=False):
            return
        self.ticks += 1
        threading.Thread(target=self._refresh_in_thread, name="pn-dashboard-refresh",
                         daemon=True).start()

    def _refresh_in_thread(self) -> None:
        try:
            snapshot = self.model.refresh()
            self.draw(snapshot)
        except Exception as exc:  # noqa: BLE001 - a live page shows failures, never dies
            self._failed(exc)
        finally:
            self._busy.release()

    # -- dead letters --------------------------------------------------------------------------

    def _dead(self) -> dict[str, int]:
        snap = self.model.snapshot
        return {r.queue: r.dead for r in snap.queues} if snap is not None else {}

    def _sync_dlq(self, snapshot: Snapshot) -> None:
        options = [("all queues", ALL), *[(f"{r.queue} ({r.dead:,})", r.queue)
                                          for r in snapshot.queues if r.dead]]
        chosen = self.dlq_queue.value
        if chosen and chosen not in {v for _, v in options}:
            options.append((chosen, chosen))
        if list(self.dlq_queue.options) != options:
            self.dlq_queue.options = options
            self.dlq_queue.value = chosen
        # follow new letters live on the first page, unless someone is choosing rows
        first = self.pager.page is None or self.pager.page.number == 1
        if first and not self.selection.value and self._pending is None:
            self._page(lambda dead: self.pager.load(dead))

    def _choose(self) -> None:
        try:
            page = self.pager.choose(self.dlq_queue.value or None,
                                     self.dlq_reason.value.strip() or None)
        except PhantomError as exc:
            self.dlq_status.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            return
        self._show_page(page)

    def _page(self, move: Any) -> None:
        try:
            page = move(self._dead())
        except PhantomError as exc:
            self.dlq_status.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            return
        self._show_page(page)

    def _show_page(self, page: Any) -> None:
        start = (page.number - 1) * self.pager.page_size
        shown = len(page.letters)
        span = f"{start + 1:,}–{start + shown:,}" if shown else "0"
        self.page_label.value = (f"<span class='pn-muted' data-page='{page.number}' "
                                 f"data-total='{page.total}'>page {page.number} · {span} of "
                                 f"{page.total:,}</span>")
        self.newer_button.disabled = page.number == 1
        self.older_button.disabled = not page.has_older
        self.dlq_table.value = render.letter_table(page.letters)
        options = [(f"{d.queue} · {d.reason} · {d.message_id or d.dlq_id}", (d.queue, d.dlq_id))
                   for d in page.letters]
        if list(self.selection.options) != options:
            kept = [v for v in self.selection.value if v in {o[1] for o in options}]
            self.selection.options = options
            self.selection.value = tuple(kept)

    def inspect(self) -> None:
        """Show the first selected dead letter (payload as the role may see it)."""
        keys = list(self.selection.value)
        if not keys:
            self.dlq_status.value = "<span class='pn-muted'>select a dead letter first</span>"
            return
        try:
            letter = self.pager.inspect(*keys[0])
        except PhantomError as exc:
            self.dlq_status.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            return
        shown = {k: letter.get(k) for k in (
            "queue", "dlq_id", "message_id", "type", "tlp", "reason", "attempts", "error",
            "error_type", "origin", "payload", "payload_redacted", "traceback")}
        self.detail.value = (f"{render.CSS}<div class='pn-dash'><div class='pn-detail pn-mono'"
                             f" data-detail='{html.escape(keys[0][1])}'>"
                             f"{html.escape(json.dumps(shown, indent=2, default=str))}"
                             "</div></div>")

    def ask(self, action: str) -> None:
        """First step of replay/purge: say what would happen and ask to confirm."""
        keys = list(self.selection.value)
        if not keys:
            self.dlq_status.value = f"<span class='pn-muted'>select dead letters to {action}" \
                                    "</span>"
            return
        denied = sorted({q for q, _ in keys if not self.pager.may_manage(q)})
        if denied:
            self._refused(action, keys, denied)
            return
        queues = ", ".join(sorted({q for q, _ in keys}))
        warning = " They failed because of their content and will most likely fail again." \
            if action == "replay" and any(self.pager.inspect(q, i)["will_fail_again"]
                                          for q, i in keys[:20]) else ""
        what = "publish again as new messages" if action == "replay" else \
            "delete for good (this cannot be undone)"
        self._pending = (action, keys)
        self.confirm_button.description = f"Yes, {action} {len(keys)}"
        self.confirm_text.value = (f"<b>{action.capitalize()} {len(keys)} dead letter(s) of "
                                   f"{html.escape(queues)}</b>: {what}.{warning}&nbsp;")
        self.confirm_box.layout.display = "flex"

    def _refused(self, action: str, keys: list[tuple[str, str]], denied: list[str]) -> None:
        """A read-only role clicked an operator action: refuse it, through the core (which
        audits the denial) so the refusal is on record, not just a greyed button."""
        try:
            getattr(self.mq.dlq(denied[0]), action)([k for q, k in keys if q == denied[0]],
                                                     confirm=True)
        except PermissionDeniedError as exc:
            self.dlq_status.value = f"<span class='pn-bad' data-refused='{action}'>refused: " \
                                    f"{html.escape(str(exc))}</span>"
            self.actions.append({"action": action, "outcome": "denied", "queues": denied})
            return
        self.dlq_status.value = "<span class='pn-bad'>the core did not refuse: report this" \
                                "</span>"

    def confirm(self) -> None:
        """Second step: do the confirmed replay or purge (audited by the core)."""
        if self._pending is None:
            return
        action, keys = self._pending
        self._pending = None
        self.confirm_box.layout.display = "none"
        try:
            if action == "replay":
                ids = self.pager.replay(keys)
                done = f"replayed {len(ids)} as new message(s): " + ", ".join(
                    f"<code>{html.escape(i)}</code>" for i in ids[:5]) + \
                    (" …" if len(ids) > 5 else "")
            else:
                n = self.pager.purge(keys)
                done = f"purged {n} dead letter(s)"
        except PhantomError as exc:
            self.dlq_status.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            self.actions.append({"action": action, "outcome": "failed", "error": str(exc)})
            return
        self.actions.append({"action": action, "outcome": "ok", "keys": keys})
        self.dlq_status.value = f"<span class='pn-ok' data-done='{action}'>{done}</span> " \
                                "<span class='pn-muted'>(in the audit trail)</span>"
        self.selection.value = ()
        self.detail.value = ""
        self._page(lambda dead: self.pager.load(dead))

    def cancel(self) -> None:
        """Forget the pending replay or purge."""
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.dlq_status.value = "<span class='pn-muted'>cancelled</span>"

    # -- search --------------------------------------------------------------------------------

    def search(self, query: str | None = None) -> list[Any]:
        """Find messages by id, trace id or indicator; open the first one's trace."""
        text = (self.search_box.value if query is None else query).strip()
        if query is not None and self.search_box.value != query:
            self.search_box.value = query  # the observer calls us again: let it do the work
            return self._found
        if not text:
            self.search_status.value = ""
            return []
        try:
            found = _find(self.mq, text)
        except PhantomError as exc:
            self.search_status.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            return []
        self._found = found
        if not found:
            self.search_status.value = (f"<span class='pn-bad' data-found='0'>nothing found for "
                                        f"{html.escape(text)!s}</span> <span class='pn-muted'>"
                                        "(traces keep the newest 20,000 events per queue)</span>")
            self.search_results.value = ""
            self.search_choice.layout.display = "none"
            return []
        kinds = sorted({f.kind.replace('_', ' ') for f in found})
        self.search_status.value = (f"<span class='pn-ok' data-found='{len(found)}'>"
                                    f"{len(found)} found</span> <span class='pn-muted'>by "
                                    f"{html.escape(', '.join(kinds))}</span>")
        self.search_results.value = _found_table(found)
        options = [(f"{f.queue} · {f.event} · {f.message_id}", f.message_id) for f in found]
        self.search_choice.options = list(dict.fromkeys(options))
        self.search_choice.layout.display = "flex" if len(self.search_choice.options) > 1 \
            else "none"
        self._open(found[0].message_id)
        return found

    _found: list[Any] = []

    def _open(self, message_id: str | None) -> None:
        """Show the whole trace of ``message_id``: its timeline and its hops."""
        if not message_id:
            return
        try:
            hops = self.explorer.load(message_id)
        except PhantomError as exc:
            self.trace_view.value = f"<span class='pn-bad'>{html.escape(str(exc))}</span>"
            return
        if hops.empty:
            self.trace_view.value = "<span class='pn-muted'>no trace events kept for " \
                                    f"{html.escape(message_id)}</span>"
            return
        rows: list[dict[Any, Any]] = hops.to_dict("records")
        stamps = [float(r["time"].timestamp() * 1000) for r in rows]
        tips = [f"{r['event']} · {r['queue']} · +{int(r['elapsed_ms']):,} ms · attempt "
                f"{r['attempt']} · {r['actor'] or ''}" for r in rows]
        summary, _, tree_text = self.explorer.describe().partition("\n")
        tree = self.explorer.tree()
        if tree:  # a group or a chain: one lane per message, as a tree
            chart = svg.tree_timeline(
                [(t, str(r["message_id"]), str(r["event"]), f"{tip} · message {r['message_id']}")
                 for t, r, tip in zip(stamps, rows, tips, strict=True)],
                [svg.TreeLane(lane.key, lane.text, lane.parent, lane.virtual, lane.level)
                 for lane in tree], summary)
            # inline: the widget's own line-height (28 px) and font would win over classes
            chart += (f"<pre class='pn-detail' data-trace-tree='{len(tree)}' style='"
                      f"font-family:{svg.MONO};line-height:1.5;white-space:pre;"
                      f"font-size:12px'>{html.escape(tree_text)}</pre>")
        else:
            chart = svg.timeline([(t, str(r["queue"]), str(r["event"]), tip)
                                  for t, r, tip in zip(stamps, rows, tips, strict=True)], summary)
        table = html_table(
            self.explorer.hops_df(), mono=("message_id", "actor"), max_rows=100,
            formats={"elapsed_ms": lambda v: f"+{int(v):,} ms",
                     "time": lambda v: v.strftime("%H:%M:%S.%f")[:-3] + " UTC"},
            headers={"elapsed_ms": "elapsed", "message_id": "message"})
        self.trace_view.value = (f"<div data-trace='{html.escape(message_id)}'>{chart}</div>"
                                 f"{table}")


def _find(mq: MessageQueue, text: str) -> list[Any]:
    from ...core.observe.search import find_messages

    return list(find_messages(mq, text, limit=20))


def _found_table(found: list[Any]) -> str:
    import time

    rows = "".join(
        f"<tr data-found-message='{html.escape(f.message_id)}'><td class='l'>"
        f"{html.escape(f.kind.replace('_', ' '))}</td><td class='l pn-mono'>"
        f"{html.escape(f.queue)}</td><td class='l'>{html.escape(f.event)}</td>"
        f"<td class='l pn-mono'>{html.escape(f.message_id)}</td><td class='l pn-mono'>"
        f"{html.escape(f.trace_id)}</td><td class='l'>"
        f"{time.strftime('%H:%M:%S', time.gmtime(f.at_ms / 1000))} UTC</td></tr>"
        for f in found[:20])
    return (f"{render.CSS}<div class='pn-dash pn-scroll'><table class='pn-grid' "
            "data-table='found'><thead><tr><th class='l'>matched by</th><th class='l'>queue"
            "</th><th class='l'>event</th><th class='l'>message</th><th class='l'>trace</th>"
            f"<th class='l'>at</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _where(mq: MessageQueue) -> str:
    """The deployment, without credentials: ``redis://127.0.0.1:6379 · prefix pn``."""
    if mq.embedded:
        return f"embedded Redis (in this kernel) · prefix {mq.keys.prefix}"
    url = str(mq.settings.redis.url or "")
    scheme, sep, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1] if sep else url
    return f"{scheme}{sep}{host} · prefix {mq.keys.prefix}"


__all__ = ["Dashboard"]
