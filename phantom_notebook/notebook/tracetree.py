"""The tree of a trace: which message caused which (groups and chains), depth-first.

The messages of a group or a chain share one trace id, and each names its parent in the
detail of a trace event, ``parent <id>``: a group member's ``published`` names the group
id (a virtual root, not a message), the callback's ``group_created`` /
``group_succeeded`` / ``group_failed`` name it too; in a chain step 1 names the chain id,
each later step the step before it. This module turns those links into the rows
``trace_df`` (``parent_id``, ``depth``), ``plot_trace_timeline``, the trace explorer and the
dashboard draw::

    group 7062…5248
    ├─ ioc-vt · 7a6ab9b07039
    ├─ ioc-otx · ae464bab4e1d
    └─ threat-score · 2bfa364fc6f8 (callback)

Plain Python over (message id, queue, event, detail) records, oldest first: no pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PARENT = "parent "
#: the events of a message that waits for a join (a group's callback, a chain's later step)
JOIN_EVENTS = frozenset({"group_created", "group_succeeded", "group_failed"})
#: branch glyphs: a child with siblings below it, the last child, the continuation lines
TEE, ELBOW, PIPE, BLANK = "├─\u00a0", "└─\u00a0", "│\u00a0\u00a0", "\u00a0\u00a0\u00a0"


def parent_in(detail: object) -> str | None:
    """The parent id a trace detail names (``"parent <id>"``), else None."""
    if not isinstance(detail, str) or not detail.startswith(PARENT):
        return None
    words = detail[len(PARENT):].split()
    return words[0] if words else None


def parents(events: Iterable[tuple[object, object]]) -> dict[str, str | None]:
    """message id -> its parent (the first ``parent <id>`` among its events' details), for
    every message of (message id, detail) ``events``, in the order they first appear."""
    out: dict[str, str | None] = {}
    for mid, detail in events:
        key = str(mid)
        if out.get(key) is None:
            out[key] = parent_in(detail)
    return out


def depths(parent: Mapping[str, str | None]) -> dict[str, int]:
    """message id -> how many of its ancestors are messages of ``parent``: 0 when its parent
    is not one of them (none, or a group's virtual root), +1 per level (a cycle stops)."""
    out: dict[str, int] = {}
    for mid in parent:
        path: list[str] = []
        node: str | None = mid
        while node is not None and node in parent and node not in out and node not in path:
            path.append(node)
            node = parent[node]
        level = out[node] if node is not None and node in out else -1
        for n in reversed(path):  # a cycle counts from where it was entered
            level += 1
            out[n] = level
    return out


def short_id(value: str) -> str:
    """The last group of a UUIDv7 (its head is the time, shared by a whole group)."""
    return value.rsplit("-", 1)[-1] if len(value) > 13 else value


@dataclass(frozen=True)
class Lane:
    """One row of the tree: a message, or the group / chain it belongs to (``virtual``)."""

    key: str  #: the message id, or the group / chain id of a virtual root
    label: str  #: ``ioc-vt · 7a6ab9b07039 (callback)``, ``group 7062…5248``
    prefix: str  #: the branch glyphs before the label (non-breaking spaces, no leading space)
    level: int  #: 0 at the top, +1 per level of the drawing
    parent: str | None  #: the key of the lane above it in the tree (None at the top)
    virtual: bool = False
    queue: str = ""

    @property
    def text(self) -> str:
        """The label as the tree shows it: glyphs, then the label."""
        return self.prefix + self.label


@dataclass
class _Message:
    id: str
    queue: str
    parent: str | None
    order: int
    joined: bool = False


def has_links(events: Iterable[tuple[object, object]]) -> bool:
    """Whether any (message id, detail) names a parent: the trace is a tree."""
    return any(parent_in(detail) is not None for _, detail in events)


def lanes(records: Iterable[Mapping[Any, Any]]) -> list[Lane]:
    """The lanes of the tree, depth-first from each root, roots in the order they started.

    ``records`` have ``message_id``, ``queue``, ``event`` and ``detail`` (trace rows, oldest
    first). Siblings keep their start order, except that a message waiting for a join (a
    callback) comes after the members it waits for. A parent that is not a message of
    ``records`` (a group id, a chain id, or a message outside the frame) is a virtual lane
    at the top; a message without a parent is a root of its own.
    """
    messages = _messages(records)
    children: dict[str | None, list[_Message]] = {}
    for m in messages.values():
        children.setdefault(m.parent if m.parent != m.id else None, []).append(m)
    for kids in children.values():
        kids.sort(key=lambda m: (m.joined, m.order))
    tops: list[tuple[int, str]] = [(m.order, m.id) for m in children.get(None, [])]
    tops += [(min(m.order for m in kids), key) for key, kids in children.items()
             if key is not None and key not in messages]
    walker = _Walker(children)
    for _, key in sorted(tops):
        if key in messages:
            walker.walk(messages[key], None, 0, "", "", "")
            continue
        kids = children[key]
        kind = _kind(kids, children)
        walker.out.append(Lane(key, f"{kind or 'parent'} {short_id(key)}", "", 0, None,
                               virtual=True))
        for i, k in enumerate(kids):
            role = "step 1" if kind == "chain" else "callback" if k.joined else ""
            walker.walk(k, key, 1, "", ELBOW if i == len(kids) - 1 else TEE, role)
    for m in messages.values():  # a cycle nobody reached: still one lane each
        walker.walk(m, None, 0, "", "", "")
    return walker.out


def _messages(records: Iterable[Mapping[Any, Any]]) -> dict[str, _Message]:
    out: dict[str, _Message] = {}
    for r in records:
        mid = str(r["message_id"])
        m = out.get(mid)
        if m is None:
            m = out[mid] = _Message(mid, str(r["queue"]), None, len(out))
        if m.parent is None:
            m.parent = parent_in(r.get("detail"))
        if str(r.get("event")) in JOIN_EVENTS:
            m.joined = True
    return out


class _Walker:
    """Depth-first, each message once, the branch glyphs of its ancestors before its own."""

    def __init__(self, children: Mapping[str | None, list[_Message]]) -> None:
        self.children = children
        self.out: list[Lane] = []
        self.seen: set[str] = set()

    def walk(self, m: _Message, up: str | None, level: int, glyphs: str, branch: str,
             role: str) -> None:
        if m.id in self.seen:
            return
        self.seen.add(m.id)
        label = f"{m.queue} · {short_id(m.id)}" + (f" ({role})" if role else "")
        self.out.append(Lane(m.id, label, glyphs + branch, level, up, queue=m.queue))
        kids = [k for k in self.children.get(m.id, []) if k.id not in self.seen]
        below = glyphs + (BLANK if branch == ELBOW else PIPE if branch else "")
        step = _step_of(role)
        for i, k in enumerate(kids):
            self.walk(k, m.id, level + 1, below, ELBOW if i == len(kids) - 1 else TEE,
                      f"step {step + 1}" if step else "")


def _step_of(role: str) -> int:
    return int(role[5:]) if role.startswith("step ") and role[5:].isdigit() else 0


def _kind(kids: Sequence[_Message], children: Mapping[str | None, list[_Message]]) -> str:
    """``chain`` for one line of messages each waiting for the one before, ``group`` for
    members (and a callback) under one id, "" when it cannot tell (one plain message)."""
    if len(kids) > 1 or any(k.joined for k in kids):
        return "group"
    node, length = kids[0], 1
    while len(children.get(node.id, [])) == 1:
        node = children[node.id][0]
        length += 1
    return "chain" if length > 1 and not children.get(node.id) else ""


def below(tree: Sequence[Lane], key: str) -> list[str]:
    """The keys of every lane under ``key``'s, at any depth (``tree`` depth-first)."""
    out: list[str] = []
    frontier = {key}
    for lane in tree:
        if lane.parent in frontier:
            out.append(lane.key)
            frontier.add(lane.key)
    return out


def describe(tree: Sequence[Lane], details: Mapping[str, str] | None = None) -> str:
    """The tree as indented text, one lane a line (``details``: key -> what follows it,
    in a column of its own)."""
    extra = details or {}
    width = max((len(lane.text) for lane in tree), default=0)
    return "\n".join((lane.text.ljust(width) + "  " + extra[lane.key] if extra.get(lane.key)
                      else lane.text).replace("\u00a0", " ") for lane in tree)


__all__ = ["JOIN_EVENTS", "Lane", "below", "depths", "describe", "has_links", "lanes", "parent_in",
           "parents", "short_id"]
