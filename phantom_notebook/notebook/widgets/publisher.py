"""``IOCPublisher``: paste text, review the indicators found, publish them for enrichment.

The model (``IOCPublisherModel``) does the work and is usable without a browser::

    model = IOCPublisherModel(mq)
    model.extract("C2 at 198.51.100[.]23, dropper hxxp://cdn-files.example[.]net/a.exe")
    model.iocs_df()                   # type, defanged value, valid?, problem
    ids = model.publish(tlp="AMBER")  # one ioc.enrichment.request per valid IOC
    model.published_df()              # message ids, with their trace ids

Indicator values are always shown defanged, also those that failed validation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ...core.errors import ValidationError
from ...core.model.envelope import MessagePriority, new_id
from ...intel import IOC, TLP, InvalidIOCError, IOCMessageProducer, detect_type, extract_iocs
from ...intel.defang import refang
from .._dtypes import STRING
from ..helpers import NO_CONSUMER_HINT, known_queue, live_consumers
from ._base import TraceLink, View, heading, html_table, ipywidgets

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    from .. import require

    require("pandas")
    raise

if TYPE_CHECKING:
    from ...core.queues import MessageQueue

MESSAGE_TYPE = "ioc.enrichment.request"
DEFAULT_QUEUE = "ioc-processing"
PRIORITIES = tuple(p.name for p in MessagePriority)
TLPS = tuple(t.value for t in TLP)
_DEFANGED = re.compile(r"\[\.\]|\(\.\)|\[dot\]|\(dot\)|\[@\]|\[at\]|hxxp|\[:\]", re.I)
_DOTTED_QUAD = re.compile(r"^\d{1,4}(\.\d{1,4}){3}$")
_TOKEN_EDGE = "\"'`()<>[]{},;:!?."


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One row of the review table: a valid IOC, or a value that looked like one."""

    type: str
    value: str  # defanged, always
    valid: bool
    problem: str = ""
    ioc: IOC | None = None


@dataclasses.dataclass(frozen=True)
class Published:
    """One published request: the message id (its trace is in ``TraceExplorer``)."""

    message_id: str
    type: str
    value: str  # defanged
    queue: str
    priority: str
    tlp: str


class IOCPublisherModel:
    """Extracts indicators from text and publishes them as enrichment requests."""

    def __init__(self, mq: MessageQueue, *, queue: str = DEFAULT_QUEUE,
                 priority: str = "HIGH", tlp: str = "AMBER", confidence: int = 50,
                 source: str | None = None, origin: str = "analyst-notebook") -> None:
        self.mq = mq
        self.queue = queue
        self.priority = priority
        self.tlp = tlp
        self.confidence = confidence
        self.source = source
        self.producer = IOCMessageProducer(mq, origin=origin)
        self.text = ""
        self.candidates: list[Candidate] = []
        self.published: list[Published] = []
        self.report_ids: list[str] = []

    def __repr__(self) -> str:
        return (f"IOCPublisherModel({len(self.iocs)} valid of {len(self.candidates)} found, "
                f"{len(self.published)} published)")

    @property
    def iocs(self) -> list[IOC]:
        """The valid indicators of the last extraction, in order of appearance."""
        return [c.ioc for c in self.candidates if c.ioc is not None]

    def queues(self) -> list[str]:
        """Queues to offer: the default queue first, then every known queue."""
        return list(dict.fromkeys([self.queue, DEFAULT_QUEUE, *self.mq.queues()]))

    def consumers(self, queue: str | None = None) -> int:
        """How many live workers consume ``queue`` (default: the model's queue) right now."""
        name = queue or self.queue
        return live_consumers(self.mq, [name])[name]

    def extract(self, text: str | None = None) -> pd.DataFrame:
        """Find the indicators of ``text`` (defanged or not); returns ``iocs_df()``.

        Values that were clearly meant as indicators (written defanged, or four dotted
        numbers) but fail validation are listed too, with ``valid`` False and the reason.
        """
        if text is not None:
            self.text = text
        found = extract_iocs(self.text, tlp=self.tlp, confidence=self.confidence,
                             source=self.source)
        rows = [Candidate(i.type.value, i.defanged, True, ioc=i) for i in found]
        self.candidates = rows + _invalid_candidates(self.text, found)
        return self.iocs_df()

    def iocs_df(self) -> pd.DataFrame:
        """The review table: ``type``, ``value`` (defanged), ``valid``, ``problem``."""
        return pd.DataFrame({
            "type": pd.Series([c.type for c in self.candidates], dtype=STRING),
            "value": pd.Series([c.value for c in self.candidates], dtype=STRING),
            "valid": pd.Series([c.valid for c in self.candidates], dtype="bool"),
            "problem": pd.Series([c.problem or None for c in self.candidates], dtype=STRING)})

    def publish(self, *, queue: str | None = None, priority: str | None = None,
                tlp: str | None = None, select: Iterable[int] | None = None) -> list[str]:
        """Publish one ``ioc.enrichment.request`` per valid IOC; returns the message ids.

        ``select`` picks rows of ``iocs_df()`` (default: every valid one). The IOCs of
        one publish share a ``report_id``, so the enrichment relates them to each other.
        The TLP marks both the indicator and the message envelope.
        """
        priority = MessagePriority.parse(priority or self.priority).name
        marking = TLP.parse(tlp or self.tlp)
        rows = [self.candidates[i] for i in select] if select is not None else self.candidates
        chosen = [c.ioc for c in rows if c.ioc is not None]
        if not chosen:
            raise ValidationError("no valid indicator to publish: extract some text first")
        queue = known_queue(self.mq, queue or self.queue)
        iocs = [dataclasses.replace(i, tlp=marking) for i in chosen]
        report = f"notebook-{new_id()}"
        messages = [dataclasses.replace(
            self.producer.message(MESSAGE_TYPE, {"ioc": _wire(i), "report_id": report},
                                  priority=priority), tlp=marking.value) for i in iocs]
        ids = self.producer.publish_batch(queue, messages, progress=False)
        self.report_ids.append(report)
        self.published += [Published(mid, i.type.value, i.defanged, queue, priority,
                                     marking.value) for mid, i in zip(ids, iocs, strict=True)]
        return ids

    def published_df(self) -> pd.DataFrame:
        """Every request published from this model: message id, IOC (defanged), queue..."""
        cols = ("message_id", "type", "value", "queue", "priority", "tlp")
        return pd.DataFrame({c: pd.Series([getattr(p, c) for p in self.published],
                                          dtype=STRING) for c in cols})


def _wire(ioc: IOC) -> Any:
    from ...intel.producers import ioc_payload

    return ioc_payload(ioc)


def _invalid_candidates(text: str, found: list[IOC]) -> list[Candidate]:
    """Tokens written as indicators (defanged, or dotted quads) that are not valid ones."""
    valid = {refang(i.value).lower() for i in found}
    out: dict[str, Candidate] = {}
    for token in text.split():
        raw = token.strip(_TOKEN_EDGE)
        if not raw or not (_DEFANGED.search(raw) or _DOTTED_QUAD.match(raw)):
            continue
        plain = refang(raw)
        if plain.lower() in valid or plain in out:
            continue
        try:
            detect_type(raw)
        except InvalidIOCError as exc:
            kind = exc.ioc_type.value if exc.ioc_type is not None else "unknown"
            out[plain] = Candidate(kind, _defang_text(plain), False, exc.problem)
    return list(out.values())


def _defang_text(value: str) -> str:
    """A generic defang for values no type fits: every dot, ``@`` and scheme neutralised."""
    return re.sub(r"^http", "hxxp", value, flags=re.I).replace(".", "[.]").replace("@", "[@]")


class IOCPublisher(TraceLink, View):
    """Paste text -> review the IOCs -> choose queue, priority, TLP -> publish.

    ``on_trace`` (or ``connect(trace_explorer)``) is called with a message id when the
    analyst clicks *Open trace*; tests drive ``text.value``, ``extract_button.click()``,
    ``publish_button.click()``.
    """

    def __init__(self, mq: MessageQueue | None = None, *,
                 model: IOCPublisherModel | None = None,
                 on_trace: Callable[[str], Any] | None = None, text: str = "") -> None:
        if model is None:
            if mq is None:
                raise ValidationError("give a MessageQueue or a model")
            model = IOCPublisherModel(mq)
        self.model = model
        self.on_trace = on_trace
        w = ipywidgets()
        wide = w.Layout(width="100%")
        self.text = w.Textarea(value=text, layout=w.Layout(width="100%", height="120px"),
                               placeholder="Paste a threat report, an e-mail or a list of "
                                           "indicators (defanged or not)...")
        self.extract_button = w.Button(description="Extract IOCs", icon="search",
                                       button_style="info")
        self.table = w.HTML(layout=wide)
        self.queue = w.Dropdown(options=model.queues(), value=model.queue,
                                description="Queue", layout=w.Layout(width="260px"))
        self.priority = w.Dropdown(options=PRIORITIES, value=model.priority,
                                   description="Priority", layout=w.Layout(width="200px"))
        self.tlp = w.Dropdown(options=TLPS, value=TLP.parse(model.tlp).value,
                              description="TLP", layout=w.Layout(width="200px"))
        self.publish_button = w.Button(description="Publish", icon="paper-plane",
                                       button_style="success", disabled=True)
        self.status = w.HTML()
        self.hint = w.HTML()  # unknown queue / no consumer, shown before publishing
        self.published = w.HTML(layout=wide)
        self.trace_choice = w.Dropdown(options=[], description="Message",
                                       layout=w.Layout(width="420px"))
        self.trace_button = w.Button(description="Open trace", icon="stream", disabled=True)
        self.trace_row = w.HBox([self.trace_choice, self.trace_button],
                                layout=w.Layout(display="none"))  # shown once published
        self.extract_button.on_click(lambda _: self.extract())
        self.publish_button.on_click(lambda _: self.publish())
        self.trace_button.on_click(lambda _: self.open_trace())
        self.queue.observe(lambda _: self.check_queue(), "value")
        self.text.observe(lambda _: self._text_changed(), "value")
        self._publishing = False
        self._published_text: str | None = None
        self.widget = w.VBox([
            w.HTML(heading("IOC publisher", "indicators are shown defanged")),
            self.text, self.extract_button, self.table,
            w.HBox([self.queue, self.priority, self.tlp, self.publish_button]),
            self.hint, self.status, self.published, self.trace_row],
            layout=w.Layout(border="1px solid #d0d7de", padding="8px", width="100%"))
        if text:
            self.extract()
        else:
            self.check_queue()

    def summary(self) -> str:
        return (f"IOCPublisher: {len(self.model.iocs)} valid IOC(s) of "
                f"{len(self.model.candidates)} found, {len(self.model.published)} published")

    def connect(self, explorer: Any) -> IOCPublisher:
        """Send *Open trace* clicks to ``explorer`` (a ``TraceExplorer``); returns self."""
        self.on_trace = explorer.show
        return self

    def extract(self) -> None:
        """Extract from the text box and show the review table."""
        df = self.model.extract(self.text.value)
        valid = int(df["valid"].sum())
        self.table.value = html_table(df, mono=("value",), empty="no indicator found")
        self._published_text = None
        self.publish_button.disabled = valid == 0
        self.publish_button.description = f"Publish {valid}" if valid else "Publish"
        self.status.value = f"<span class='pn-muted'>{valid} valid, {len(df) - valid} " \
                            "invalid</span>" if len(df) else ""
        self.check_queue()

    def check_queue(self) -> bool:
        """Say whether the chosen queue exists and has a live consumer; True when it does."""
        queue = str(self.queue.value or "")
        if queue not in self.model.mq.queues():
            self.hint.value = (f"<div class='pn-bad'>⚠ queue {_esc(queue)!s} does not exist "
                               "(a typo?): publishing to it is refused. Declare it first with "
                               f"<code>mq.declare({_esc(repr(queue))})</code>.</div>")
            return False
        if not self.model.consumers(queue):
            self.hint.value = (f"<div style='color:#9a6700'>⚠ no live consumer on "
                               f"{_esc(queue)}: published requests will wait until one "
                               f"starts ({NO_CONSUMER_HINT}).</div>")
            return False
        self.hint.value = ""
        return True

    def publish(self) -> None:
        """Publish the valid IOCs with the chosen queue, priority and TLP (once per extract).

        The button is disabled while publishing and stays disabled afterwards until the
        text changes or *Extract* runs again, so a double click publishes once.
        """
        if self._publishing or self._published_text == self.text.value:
            return
        self._publishing = True
        self.publish_button.disabled = True
        try:
            ids = self.model.publish(queue=self.queue.value, priority=self.priority.value,
                                     tlp=self.tlp.value)
        except ValidationError as exc:
            self.status.value = f"<span class='pn-bad'>{_esc(str(exc))}</span>"
            self.publish_button.disabled = not self.model.iocs
            return
        finally:
            self._publishing = False
        self._published_text = self.text.value
        self.publish_button.description = "Published ✓"
        consumed = self.check_queue()
        note = "" if consumed else " <span style='color:#9a6700'>(no consumer yet)</span>"
        self.status.value = (f"<span class='pn-ok'>published {len(ids)} request(s) to "
                             f"{_esc(self.queue.value)}</span>{note}")
        df = self.model.published_df()
        self.published.value = html_table(df.iloc[::-1], mono=("message_id", "value"),
                                          max_rows=20)
        choices = [(f"{p.value} · {p.message_id}", p.message_id)
                   for p in reversed(self.model.published)]
        self.trace_choice.options = choices
        self.trace_choice.value = choices[0][1]
        self.trace_button.disabled = False
        self.trace_row.layout.display = "flex"

    def _text_changed(self) -> None:
        if self._published_text is not None and self.text.value != self._published_text:
            self.publish_button.disabled = True  # extract the new text first
            self.publish_button.description = "Publish"



def _esc(text: str) -> str:
    import html

    return html.escape(text)
