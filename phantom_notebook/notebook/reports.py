"""Scheduled health reports: run the parameterized notebook with papermill, export HTML.

``run_health_report()`` executes ``notebooks/health_report.ipynb`` (or a given notebook)
with its ``parameters`` cell overridden, writes ``<out>/health-<UTC timestamp>.ipynb`` and an
HTML file with every code cell removed, and returns the overall health status the notebook
recorded — so cron can alert on it.  ``output_dir`` may be relative: it is resolved against
the caller's working directory before papermill runs the notebook in ``notebooks/``.

Size: plotly.js (~5 MB) is written once per output directory as ``plotly-<version>.min.js``
and every HTML report loads it from there (``plotlyjs="inline"`` embeds it instead, for a
report that travels alone); the stored ``.ipynb`` keeps each figure's JSON only.  Nothing is
loaded from a CDN (no require.js, MathJax or mermaid), so a report opens offline.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ..core.config.settings import mask_url
from . import require

PACKAGE_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "health_report.ipynb"
EXIT_CODES = {"ok": 0, "warn": 0, "critical": 2}
PLOTLY_MIME = "application/vnd.plotly.v1+json"
_BUNDLE_MARKER = "* plotly.js v"
_TEMPLATE = "phantom_report.html.j2"
_TEMPLATE_SOURCE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_COLOUR = {"ok": "#1a7f37", "warn": "#9a6700", "critical": "#cf222e"}


@dataclass(frozen=True)
class ReportResult:
    """Where the report landed and what it found."""

    notebook: Path
    html: Path
    status: str
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        """Non-zero when overall health is critical (for cron / Airflow)."""
        return EXIT_CODES.get(self.status, 2)


def run_health_report(redis_url: str | None = None, *, parameters: dict[str, Any] | None = None,
                      output_dir: str | Path = "reports", notebook: str | Path | None = None,
                      kernel_name: str | None = None, timeout_s: int = 600,
                      plotlyjs: Literal["shared", "inline"] = "shared") -> ReportResult:
    """Execute the health report notebook and export it; see the module docstring."""
    papermill = require("papermill")
    out = Path(output_dir).expanduser().resolve()  # the notebook runs with cwd=notebooks/
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    executed = out / f"health-{stamp}.ipynb"
    status_file = out / f"health-{stamp}.json"
    params = {"redis_url": redis_url, "output_dir": str(out), "status_file": str(status_file),
              **(parameters or {})}
    source = Path(notebook).resolve() if notebook else PACKAGE_NOTEBOOK
    papermill.execute_notebook(str(source), str(executed), parameters=params,
                               kernel_name=kernel_name, progress_bar=False,
                               execution_timeout=timeout_s, cwd=str(source.parent))
    html_path = export_html(executed, out / f"health-{stamp}.html", plotlyjs=plotlyjs)
    slim_notebook(executed)
    summary = json.loads(status_file.read_text()) if status_file.exists() else \
        {"status": "critical", "error": "the notebook did not record a status"}
    return ReportResult(executed, html_path, str(summary.get("status", "critical")), summary)


def _is_bundle(output: Any) -> bool:
    """The output plotly's notebook renderer emits once: the whole plotly.js library."""
    text = output.get("data", {}).get("text/html", "")
    text = "".join(text) if isinstance(text, list) else text
    return PLOTLY_MIME not in output.get("data", {}) and _BUNDLE_MARKER in text


def _figure_outputs(book: Any) -> list[Any]:
    """Drop plotly.js bundles from every code cell; return the outputs holding a figure."""
    figures = []
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.get("outputs", []) if not _is_bundle(o)]
        figures += [o for o in cell.outputs if PLOTLY_MIME in o.get("data", {})]
    return figures


def slim_notebook(executed: Path) -> Path:
    """Rewrite ``executed`` without plotly.js and without each figure's HTML copy.

    JupyterLab renders the figures from their JSON (``application/vnd.plotly.v1+json``).
    """
    nbformat = require("nbformat")
    book = nbformat.read(str(executed), as_version=4)
    for output in _figure_outputs(book):
        output["data"].pop("text/html", None)
    nbformat.write(book, str(executed))
    return executed


def _plotly_script(target_dir: Path, plotlyjs: str) -> str:
    offline = require("plotly.offline")
    plotly = require("plotly")
    if plotlyjs == "inline":
        return f"<script>{offline.get_plotlyjs()}</script>"
    name = f"plotly-{plotly.__version__}.min.js"
    shared = target_dir / name
    if not shared.exists():  # written once per directory, then shared by every report
        tmp = shared.with_suffix(".tmp")
        tmp.write_text(offline.get_plotlyjs(), encoding="utf-8")
        tmp.replace(shared)
    return f'<script src="{name}"></script>'


def export_html(executed: Path, target: Path,
                plotlyjs: Literal["shared", "inline"] = "shared") -> Path:
    """Write ``executed`` as HTML without code cells or prompts (outputs only).

    Each figure is drawn from its JSON with plotly.js loaded once in the page head (from
    ``plotly-<version>.min.js`` next to ``target``, or inline); no script comes from a CDN.
    """
    nbconvert = require("nbconvert")
    nbformat = require("nbformat")
    jinja2 = require("jinja2")
    pio = require("plotly.io")
    book = nbformat.read(str(executed), as_version=4)
    for output in _figure_outputs(book):
        output["data"]["text/html"] = pio.to_html(
            output["data"][PLOTLY_MIME], include_plotlyjs=False, full_html=False,
            include_mathjax=False, validate=False)
    exporter = nbconvert.HTMLExporter(
        template_name="lab", template_file=_TEMPLATE, exclude_input=True,
        exclude_input_prompt=True, exclude_output_prompt=True,
        extra_loaders=[jinja2.DictLoader({_TEMPLATE: _TEMPLATE_SOURCE})])
    body, _ = exporter.from_notebook_node(book)
    script = _plotly_script(target.parent, plotlyjs)
    body = body.replace("</head>", f"{script}\n</head>", 1)
    target.write_text(body, encoding="utf-8")
    return target


def describe_target(mq: Any, *, demo: bool = False) -> str:
    """What a report is about, for its header: URL without password, key prefix, role."""
    if mq.embedded:
        return "embedded Redis" + (" with a demo workload" if demo else "")
    url = mask_url(mq.settings.redis.url) or ""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = (f"{parts.username}@" if parts.username else "") + (parts.hostname or "")
        netloc += f":{parts.port}" if parts.port else ""
        url = urlunsplit(parts._replace(netloc=netloc))
    role = mq.role or "none (full access)"
    return f"{url} · prefix {mq.settings.redis.key_prefix} · role {role}"


_CELL = "text-align:left;padding:3px 12px"


def _rows(frame: Any) -> str:
    cells = []
    for row in frame.itertuples(index=False):
        colour = _COLOUR.get(row.status, "#24292f")
        values = [row.check, row.target, row.value, row.message]
        cells.append(
            f"<tr><td style='{_CELL};color:{colour};font-weight:600'>"
            f"{html.escape(str(row.status))}</td>"
            + "".join(f"<td style='{_CELL}'>{html.escape(str(v))}</td>" for v in values)
            + "</tr>")
    head = "".join(f"<th style='{_CELL}'>{name}</th>"
                   for name in ("status", "check", "target", "value", "message"))
    return (f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>"
            + "".join(cells) + "</tbody></table>")


def checks_html(checks: Any) -> str:
    """The checks as HTML: the ones needing attention first, the OK ones collapsed.

    ``checks`` is a ``health_df`` frame (worst first).  The OK rows become one summary
    line (``17 checks ok: depth ×6, error rate ×6, ...``) that expands to their table.
    """
    bad = checks[checks["status"] != "ok"]
    ok = checks[checks["status"] == "ok"]
    parts = ["<div class='pn-checks'>"]
    parts.append(_rows(bad) if not bad.empty else "<p>Every check is <b>ok</b>.</p>")
    if not ok.empty:
        counts = Counter(ok["check"])
        names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items())
        parts.append(f"<details><summary style='color:{_COLOUR['ok']};margin-top:8px'>"
                     f"{len(ok)} check(s) ok: {html.escape(names)}</summary>{_rows(ok)}"
                     "</details>")
    return "".join(parts) + "</div>"
