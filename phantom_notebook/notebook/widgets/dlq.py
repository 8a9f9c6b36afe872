"""``DLQBrowser``: filter dead letters, inspect one, replay or purge (with confirmation).

Headless::

    model = DLQBrowserModel(mq)                       # every queue with dead letters
    df = model.list_df(reason="malformed indicator", since="1h")
    model.inspect(df.queue[0], df.dlq_id[0])          # dict; payload redacted by role
    model.replay([(df.queue[0], df.dlq_id[0])])       # new message ids
    plan = model.plan_purge(keys)                     # nothing deleted yet
    model.purge(plan)                                 # now it is

Payloads (and tracebacks) are shown in full only to a role in ``reveal_roles`` (``admin`` by
default); anyone else sees the payload through ``redact()`` (sources, reporters, PII
masked). Indicator values are shown defanged.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ...core.errors import ValidationError
from ...core.security.redaction import redact
from .._dtypes import Window, seconds
from ..accessor import IOC_COLUMNS, defang_value
from ..frames import dlq_df
from ._base import TABLE_CSS, TraceLink, View, heading, html_table, ipywidgets

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    from .. import require

    require("pandas")
    raise

if TYPE_CHECKING:
    from ...core.queues import MessageQueue

REVEAL_ROLES = ("admin",)
#: dropdown values are strings ("" = no filter): a ``None`` value renders as a blank label
#: and makes the browser's select view throw "Cannot set properties of undefined"
ALL = ""
TIME_CHOICES = (("any time", ALL), ("last 15 min", "15min"), ("last hour", "1h"),
                ("last 24 h", "24h"))
#: reasons that come from the message itself: replayed unchanged, it fails the same way
REPEATING_REASONS = frozenset({"schema_invalid", "decode_failed", "malformed", "payload_invalid",
                               "queue_mismatch", "tlp_denied", "non_retryable", "unroutable",
                               "invalid", "rejected"})
_REPEATING_WORDS = ("invalid", "malformed", "decode", "schema", "denied", "mismatch")
LIST_COLUMNS = ("dead_at", "queue", "reason", "type", "priority", "attempts", "error",
                "message_id", "dlq_id")
Key = tuple[str, str]  # (queue, dlq entry id)


@dataclass(frozen=True)
class PurgePlan:
    """What a purge would delete; nothing happens until ``DLQBrowserModel.purge(plan)``."""

    keys: tuple[Key, ...]

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self) -> str:
        """``purge 3 dead letters of ioc-processing, alerts``."""
        queues = ", ".join(dict.fromkeys(q for q, _ in self.keys))
        return f"purge {len(self.keys)} dead letter(s) of {queues}"


class DLQBrowserModel:
    """Lists, inspects, replays and purges the dead letters of several queues."""

    def __init__(self, mq: MessageQueue, queues: Iterable[str] | None = None, *,
                 role: str | None = None, reveal_roles: Sequence[str] = REVEAL_ROLES) -> None:
        self.mq = mq
        self._queues = list(queues) if queues is not None else None
        self.role = role if role is not None else mq.role
        self.reveal_roles = tuple(reveal_roles)

    def __repr__(self) -> str:
        return f"DLQBrowserModel({self.queues()}, role={self.role!r}, reveal={self.reveal})"

    @property
    def reveal(self) -> bool:
        """True when this role may read payloads and error texts unredacted."""
        return self.role is not None and self.role in self.reveal_roles

    def queues(self) -> list[str]:
        """The queues browsed: those given, else every queue that has dead letters."""
        if self._queues is not None:
            return list(self._queues)
        return [s.queue for s in self.mq.stats() if s.dead]

    def reasons(self, queue: str | None = None) -> list[str]:
        """Dead-letter reasons present, most frequent first (all queues when None)."""
        counts: dict[str, int] = {}
        for name in [queue] if queue else self.queues():
            for reason, n in self.mq.dlq(name).summary().items():
                counts[reason] = counts.get(reason, 0) + n
        return sorted(counts, key=lambda r: -counts[r])

    def list_df(self, queue: str | None = None, reason: str | None = None,
                since: Window | None = None, limit: int = 500) -> pd.DataFrame:
        """Dead letters matching the filters, newest first (``dlq_df`` rows of each queue).

        ``since`` is a duration back from now (``"1h"``). No payloads (see ``inspect``).
        """
        ago = None if since is None else timedelta(seconds=seconds(since))
        frames = [dlq_df(self.mq, name, limit=limit, reason=reason, since=ago)
                  for name in ([queue] if queue else self.queues())]
        frames = [f for f in frames if not f.empty] or frames[:1]
        if not frames:
            return dlq_df(self.mq, "none", limit=0)
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        df = df.sort_values("dead_at", ascending=False, kind="stable").head(limit)
        df = df.reset_index(drop=True)
        return df

    def inspect(self, queue: str, key: str) -> dict[str, Any]:
        """One dead letter as a dict: header, failure, and the payload (redacted by role).

        ``key`` is a DLQ entry id or a message id.
        """
        letter = self.mq.dlq(queue).get(key).to_dict()
        envelope = letter.pop("envelope", None) or {}
        payload = envelope.pop("payload", None)
        shown = redact(payload, reveal=self.reveal)
        letter["payload"] = _defang_payload(shown)
        letter["headers"] = envelope.get("headers")
        letter["traceparent"] = envelope.get("traceparent")
        letter["tlp"] = envelope.get("tlp")
        if not self.reveal and letter.get("traceback"):
            letter["traceback"] = "[redacted]"
        letter["payload_redacted"] = not self.reveal
        return letter

    def replay(self, keys: Iterable[Key]) -> list[str]:
        """Publish the chosen dead letters again (``DeadLetterQueue.replay``); new ids."""
        out: list[str] = []
        for queue, ids in _by_queue(keys).items():
            out += self.mq.dlq(queue).replay(ids, confirm=True)
        return out

    def will_fail_again(self, keys: Iterable[Key]) -> dict[Key, str]:
        """The chosen letters whose failure came from the message itself, with the reason.

        ``schema_invalid``, ``decode_failed``, a rejected or malformed payload... replayed
        unchanged these are dead-lettered again; transient failures (handler errors,
        timeouts, retries exhausted, expiry) are not listed.
        """
        out: dict[Key, str] = {}
        for queue, key in keys:
            letter = self.mq.dlq(queue).get(key)
            if repeats(letter.reason) or not letter.decodable:
                out[(queue, key)] = letter.reason if letter.decodable else "decode_failed"
        return out

    def plan_purge(self, keys: Iterable[Key]) -> PurgePlan:
        """The first step of a purge: what would be deleted (nothing is, yet)."""
        plan = PurgePlan(tuple(dict.fromkeys(keys)))
        if not plan.keys:
            raise ValidationError("select dead letters to purge first")
        return plan

    def purge(self, plan: PurgePlan) -> int:
        """The second step: delete what ``plan`` lists; returns how many were deleted."""
        if not isinstance(plan, PurgePlan):
            raise ValidationError("purge takes the PurgePlan of plan_purge() (confirmation)")
        return sum(self.mq.dlq(queue).purge(ids, confirm=True)
                   for queue, ids in _by_queue(plan.keys).items())


def repeats(reason: str | None) -> bool:
    """Whether a dead-letter ``reason`` would recur on a replay of the same message."""
    text = (reason or "").lower()
    return text in REPEATING_REASONS or any(w in text for w in _REPEATING_WORDS)


def _by_queue(keys: Iterable[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for queue, key in keys:
        out.setdefault(queue, []).append(key)
    return out


def _defang_payload(value: Any, key: str = "") -> Any:
    """Indicator values inside a payload, defanged (``value``, ``ioc``... keys)."""
    if isinstance(value, dict):
        return {k: _defang_payload(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_defang_payload(v, key) for v in value]
    if isinstance(value, str) and key.lower() in (*IOC_COLUMNS, "related", "related_iocs"):
        return defang_value(value)
    return value


class DLQBrowser(TraceLink, View):
    """Filter by queue / reason / time, select rows, inspect, replay, purge (confirmed).

    Replaying letters that failed because of their content (``schema_invalid``...) asks
    first; after a replay the pane shows each new message id with *Open trace* (wired to a
    ``TraceExplorer`` by ``connect(explorer)`` or ``on_trace``).
    """

    def __init__(self, mq: MessageQueue | None = None, *, model: DLQBrowserModel | None = None,
                 role: str | None = None, on_trace: Callable[[str], Any] | None = None,
                 ) -> None:
        if model is None:
            if mq is None:
                raise ValidationError("give a MessageQueue or a model")
            model = DLQBrowserModel(mq, role=role)
        self.model = model
        self.on_trace = on_trace
        w = ipywidgets()
        self.queue = w.Dropdown(options=[("all queues", ALL)], value=ALL, description="Queue",
                                layout=w.Layout(width="280px"))
        self.reason = w.Dropdown(options=[("any reason", ALL)], value=ALL,
                                 description="Reason", layout=w.Layout(width="320px"))
        self.since = w.Dropdown(options=TIME_CHOICES, value=ALL, description="When",
                                layout=w.Layout(width="220px"))
        self.refresh_button = w.Button(description="Refresh", icon="sync")
        self.table = w.HTML(layout=w.Layout(width="100%"))
        self.selection = w.SelectMultiple(options=[], rows=8, description="Select",
                                          layout=w.Layout(width="100%"))
        self.inspect_button = w.Button(description="Inspect", icon="eye")
        self.replay_button = w.Button(description="Replay selected", icon="redo",
                                      button_style="info")
        self.purge_button = w.Button(description="Purge selected…", icon="trash",
                                     button_style="danger")
        self.confirm_button = w.Button(description="Yes, purge", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_text = w.HTML()
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.replay_confirm_button = w.Button(description="Replay anyway",
                                              button_style="warning")
        self.replay_cancel_button = w.Button(description="Cancel")
        self.replay_text = w.HTML()
        self.replay_box = w.HBox([self.replay_text, self.replay_confirm_button,
                                  self.replay_cancel_button], layout=w.Layout(display="none"))
        self.status = w.HTML()
        self.detail = w.HTML(layout=w.Layout(width="100%"))
        self.trace_choice = w.Dropdown(options=[], description="New id",
                                       layout=w.Layout(width="460px"))
        self.trace_button = w.Button(description="Open trace", icon="stream")
        self.trace_row = w.HBox([self.trace_choice, self.trace_button],
                                layout=w.Layout(display="none"))  # shown after a replay
        self.plan: PurgePlan | None = None
        self.pending_replay: list[Key] = []
        self.replayed: list[tuple[Key, str]] = []
        self.refresh_button.on_click(lambda _: self.refresh())
        self.inspect_button.on_click(lambda _: self.inspect())
        self.replay_button.on_click(lambda _: self.replay())
        self.replay_confirm_button.on_click(lambda _: self.confirm_replay())
        self.replay_cancel_button.on_click(lambda _: self.cancel_replay())
        self.purge_button.on_click(lambda _: self.ask_purge())
        self.confirm_button.on_click(lambda _: self.confirm_purge())
        self.cancel_button.on_click(lambda _: self.cancel_purge())
        self.trace_button.on_click(lambda _: self.open_trace())
        for control in (self.queue, self.reason, self.since):
            control.observe(lambda _: self.refresh(), "value")
        who = "payloads shown" if model.reveal else "payloads redacted"
        self.widget = w.VBox([
            w.HTML(heading("Dead-letter browser", f"role {model.role or '(none)'}: {who}")),
            w.HBox([self.queue, self.reason, self.since, self.refresh_button]), self.table,
            self.selection,
            w.HBox([self.inspect_button, self.replay_button, self.purge_button]),
            self.confirm_box, self.replay_box, self.status, self.trace_row, self.detail],
            layout=w.Layout(border="1px solid #d0d7de", padding="8px", width="100%"))
        self._refreshing = False
        self.refresh()

    def summary(self) -> str:
        return f"DLQBrowser: {len(self.selection.options)} dead letter(s) listed"

    def connect(self, explorer: Any) -> DLQBrowser:
        """Send *Open trace* clicks to ``explorer`` (a ``TraceExplorer``); returns self."""
        self.on_trace = explorer.show
        return self

    def refresh(self) -> None:
        """Reload the filter choices and the list."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            queues = self.model.queues()
            _set_options(self.queue, [("all queues", ALL), *[(q, q) for q in queues]])
            reasons = self.model.reasons(self.queue.value or None)
            _set_options(self.reason, [("any reason", ALL), *[(r, r) for r in reasons]])
            df = self.model.list_df(self.queue.value or None, self.reason.value or None,
                                    self.since.value or None)
        finally:
            self._refreshing = False
        self.frame = df
        self.table.value = html_table(df.loc[:, list(LIST_COLUMNS)], max_rows=15,
                                      mono=("message_id", "dlq_id"), empty="no dead letters",
                                      formats={"error": _wrapped, "message_id": _short,
                                               "dlq_id": _short},
                                      headers={"message_id": "message", "dlq_id": "dlq id"})
        self.selection.options = [(_label(r), (r["queue"], r["dlq_id"]))
                                  for r in df.to_dict("records")]

    def selected(self) -> list[Key]:
        """The (queue, dlq id) keys selected in the list."""
        return list(self.selection.value)

    def inspect(self) -> None:
        """Show the first selected dead letter in detail."""
        keys = self.selected()
        if not keys:
            self.status.value = "<span class='pn-muted'>select a dead letter first</span>"
            return
        letter = self.model.inspect(*keys[0])
        self.detail.value = _detail_html(letter)

    def replay(self) -> None:
        """Replay the selected dead letters (asking first when they would fail again)."""
        keys = self.selected()
        if not keys:
            self.status.value = "<span class='pn-muted'>select dead letters to replay</span>"
            return
        doomed = self.model.will_fail_again(keys)
        if doomed:
            self.pending_replay = keys
            reasons = ", ".join(sorted(set(doomed.values())))
            self.replay_text.value = (
                f"<span class='pn-bad'>⚠ {len(doomed)} of {len(keys)} selected failed with "
                f"{html.escape(reasons)}</span>: replayed unchanged they will most likely be "
                "dead-lettered again (fix the producer or the data first).&nbsp;")
            self.replay_box.layout.display = "flex"
            return
        self._replay(keys)

    def confirm_replay(self) -> None:
        """Replay what ``replay`` warned about."""
        keys, self.pending_replay = self.pending_replay, []
        self.replay_box.layout.display = "none"
        if keys:
            self._replay(keys)

    def cancel_replay(self) -> None:
        """Forget the pending replay."""
        self.pending_replay = []
        self.replay_box.layout.display = "none"
        self.status.value = "<span class='pn-muted'>replay cancelled</span>"

    def _replay(self, keys: list[Key]) -> None:
        ordered = [k for keys_of in _by_queue(keys).items() for k in
                   [(keys_of[0], i) for i in keys_of[1]]]
        ids = self.model.replay(keys)
        self.replayed = list(zip(ordered, ids, strict=False))
        self.status.value = (f"<span class='pn-ok'>replayed {len(ids)} as new message(s)"
                             "</span> <span class='pn-muted'>— the originals left the "
                             "dead-letter queue; follow the new ids below</span>")
        self.detail.value = _replayed_html(self.replayed)
        self.trace_choice.options = [(f"{new} (was {q} · {old})", new)
                                     for (q, old), new in self.replayed]
        if self.replayed:
            self.trace_choice.value = self.replayed[0][1]
            self.trace_row.layout.display = "flex"
        self.refresh()


    def ask_purge(self) -> None:
        """First step: show what would be purged and ask for confirmation."""
        try:
            self.plan = self.model.plan_purge(self.selected())
        except ValidationError as exc:
            self.status.value = f"<span class='pn-muted'>{html.escape(str(exc))}</span>"
            return
        self.confirm_text.value = (f"<b>{html.escape(self.plan.describe())}?</b> "
                                   "This cannot be undone.&nbsp;")
        self.confirm_box.layout.display = "flex"

    def confirm_purge(self) -> None:
        """Second step: purge what was confirmed."""
        if self.plan is None:
            return
        n = self.model.purge(self.plan)
        self.plan = None
        self.confirm_box.layout.display = "none"
        self.status.value = f"<span class='pn-ok'>purged {n} dead letter(s)</span>"
        self.detail.value = ""
        self.refresh()

    def cancel_purge(self) -> None:
        """Forget the pending purge."""
        self.plan = None
        self.confirm_box.layout.display = "none"
        self.status.value = "<span class='pn-muted'>purge cancelled</span>"


def _set_options(dropdown: Any, options: list[tuple[str, str]]) -> None:
    """New options, keeping the chosen value when it is still offered (else "all")."""
    keep = dropdown.value if any(v == dropdown.value for _, v in options) else ALL
    if list(dropdown.options) != options:
        dropdown.options = options
    dropdown.value = keep


def _wrapped(value: Any) -> str:
    """A long error text: wrapped in a bounded cell, the whole text in the tooltip."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "<span class='pn-muted'>—</span>"
    full = html.escape(str(value), quote=True)
    text = str(value) if len(str(value)) <= 140 else str(value)[:139] + "…"
    return (f"<div title='{full}' style='white-space:normal;min-width:220px;max-width:420px;"
            f"overflow-wrap:anywhere'>{html.escape(text)}</div>")


def _short(value: Any) -> str:
    """An id cut to its random tail; the whole id in the tooltip (selectable, copyable)."""
    if not isinstance(value, str):
        return "<span class='pn-muted'>—</span>"
    tail = "…" + value[-12:] if len(value) > 13 else value
    return f"<span title='{html.escape(value, quote=True)}'>{html.escape(tail)}</span>"


def _label(row: dict[str, Any]) -> str:
    when = row["dead_at"].strftime("%H:%M:%S") if not pd.isna(row["dead_at"]) else "?"
    return f"{when}  {row['queue']}  ·  {row['reason']}  ·  {row['type']}  ·  {row['message_id']}"


def _replayed_html(replayed: list[tuple[Key, str]]) -> str:
    rows = "".join(f"<tr><td>{html.escape(q)}</td><td class='pn-mono'>{html.escape(old)}</td>"
                   f"<td class='pn-mono'><b>{html.escape(new)}</b></td></tr>"
                   for (q, old), new in replayed)
    return (f"{TABLE_CSS}<div class='pn-note'>replayed (the inspected letters are no longer "
            "in the dead-letter queue):</div><table class='pn-table'><thead><tr><th>queue</th>"
            f"<th>dead letter</th><th>new message id</th></tr></thead><tbody>{rows}</tbody>"
            "</table>")


def _detail_html(letter: dict[str, Any]) -> str:
    keys = ("queue", "message_id", "dlq_id", "type", "priority", "reason", "error_type",
            "error", "attempts", "consumer", "decode_error")
    rows = "".join(f"<tr><th>{k}</th><td class='pn-mono' style='white-space:pre-wrap;"
                   f"overflow-wrap:anywhere'>{html.escape(str(letter.get(k)))}"
                   "</td></tr>" for k in keys if letter.get(k) not in (None, ""))
    note = "payload redacted for this role" if letter["payload_redacted"] else "payload"
    body = html.escape(json.dumps(letter["payload"], indent=2, default=str))
    return (f"{TABLE_CSS}<table class='pn-table'>{rows}</table>"
            f"<div class='pn-note'>{note} (indicators defanged):</div>"
            f"<pre style='background:#f6f8fa;padding:8px;max-height:260px;overflow:auto;"
            f"font-size:12px'>{body}</pre>")
