"""What the widgets share: the thin-view base class, HTML tables, figure outputs.

A view holds its model (``.model``, which does all the work and has a headless API) and a
root ipywidgets container (``.widget``). It renders itself: ``_repr_mimebundle_`` hands
Jupyter the container's widget view with a one-line text summary as the plain-text
fallback (papermill logs, nbconvert without widget state, a terminal).
"""

from __future__ import annotations

import html
from typing import Any

from .. import require

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    require("pandas")
    raise

#: the CSS every widget table uses (compact, zebra rows, monospace ids)
TABLE_CSS = """
<style>
.pn-table {border-collapse: collapse; font-size: 12.5px; margin: 4px 0;}
.pn-table th {text-align: left; background: #f6f8fa; border-bottom: 1px solid #d0d7de;
              padding: 4px 10px; font-weight: 600; color: #24292f;}
.pn-table td {padding: 3px 10px; border-bottom: 1px solid #eaeef2; vertical-align: top;
              color: #24292f; white-space: nowrap;}
.pn-scroll {overflow-x: auto; max-width: 100%;}
.pn-table tr:nth-child(even) td {background: #fbfcfd;}
.pn-mono {font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;}
.pn-ok {color: #1a7f37; font-weight: 600;} .pn-bad {color: #cf222e; font-weight: 600;}
.pn-muted {color: #57606a;} .pn-note {color: #57606a; font-size: 12px; margin: 2px 0;}
</style>
"""


def ipywidgets() -> Any:
    """The ``ipywidgets`` module, or an actionable ``MissingExtraError``."""
    return require("ipywidgets")


def html_table(df: pd.DataFrame, *, mono: tuple[str, ...] = (), max_rows: int = 50,
               empty: str = "nothing to show", formats: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> str:
    """``df`` as an escaped, compact HTML table (``mono`` columns in a monospace font).

    ``headers`` renames columns for display; ``formats`` maps a column to a cell formatter.
    """
    if df.empty:
        return f"<div class='pn-note'>{html.escape(empty)}</div>"
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape((headers or {}).get(str(c), str(c)))}</th>"
                   for c in shown.columns)
    body = []
    for record in shown.to_dict("records"):
        cells = []
        for name, value in record.items():
            fmt = (formats or {}).get(str(name))
            text = fmt(value) if fmt is not None else cell_text(value)
            cls = " class='pn-mono'" if name in mono else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = "" if len(df) <= max_rows else \
        f"<div class='pn-note'>… and {len(df) - max_rows:,} more rows</div>"
    return (f"{TABLE_CSS}<div class='pn-scroll'><table class='pn-table'><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>{more}")


def cell_text(value: Any) -> str:
    """One escaped cell: missing values as a dash, times to the millisecond, UTC."""
    if value is None or (not isinstance(value, list | tuple | dict) and pd.isna(value)):
        return "<span class='pn-muted'>—</span>"
    if isinstance(value, pd.Timestamp):
        return html.escape(value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    if isinstance(value, bool):
        return "<span class='pn-ok'>yes</span>" if value else "<span class='pn-bad'>no</span>"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return html.escape(str(value))


def figure_output(out: Any, fig: Any) -> None:
    """Show ``fig`` in the ``Output`` widget ``out``, replacing what was there.

    Sets the outputs in one assignment (no flicker), which also works from a background
    thread, unlike ``with out:``.
    """
    out.outputs = ({"output_type": "display_data", "data": figure_bundle(fig),
                    "metadata": {}},)


def figure_bundle(fig: Any) -> dict[str, Any]:
    """The mime bundle of a plotly figure, built without displaying anything.

    (IPython's formatter would call the figure's ``_ipython_display_``, which shows it in
    the running cell instead of the widget.)
    """
    import json

    import plotly.io as pio

    bundle: dict[str, Any] = dict(fig._repr_mimebundle_())  # the kernel's default renderer
    if not bundle:
        bundle = {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig))}
    bundle.setdefault("text/plain", "plotly figure")
    return bundle


def html_output(out: Any, markup: str) -> None:
    """Show ``markup`` (HTML) in the ``Output`` widget ``out``, replacing what was there."""
    out.outputs = ({"output_type": "display_data",
                    "data": {"text/html": markup, "text/plain": "(html)"}, "metadata": {}},)


class View:
    """Base of the widgets: a model doing the work, a root container showing it."""

    model: Any
    widget: Any

    def summary(self) -> str:
        """One line saying what the widget shows (its plain-text form)."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.widget._repr_mimebundle_(include=include,
                                                                    exclude=exclude))
        bundle["text/plain"] = self.summary()
        return bundle

    def close(self) -> None:
        """Close the widgets (the model keeps working headless)."""
        _close(self.widget)


def heading(text: str, note: str = "") -> str:
    """A small widget title with an optional grey note."""
    extra = f" <span class='pn-muted' style='font-weight:400'>{html.escape(note)}</span>" \
        if note else ""
    return (f"<div style='font-size:14px;font-weight:600;margin:2px 0 6px 0'>"
            f"{html.escape(text)}{extra}</div>")


def _close(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close(child)
    widget.close()


class TraceLink:
    """``open_trace`` for views that offer message ids (``trace_choice``) to follow: hands
    the chosen id to ``on_trace`` (e.g. a ``TraceExplorer``), else says how to open it."""

    trace_choice: Any
    status: Any
    on_trace: Any

    def open_trace(self, message_id: str | None = None) -> None:
        """Hand ``message_id`` (default: the chosen one) to ``on_trace``."""
        chosen = message_id or self.trace_choice.value
        if chosen and self.on_trace is not None:
            self.on_trace(chosen)
        elif chosen:
            self.status.value = ("<span class='pn-muted'>no trace explorer connected: "
                                 f"TraceExplorer(mq).show({html.escape(repr(chosen))})</span>")
