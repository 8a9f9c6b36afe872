"""Scheduled health reports: run the parameterized notebook with papermill, export HTML.

``run_health_report()`` executes ``notebooks/health_report.ipynb`` (or a given notebook)
with its ``parameters`` cell overridden, writes ``<out>/health-<UTC timestamp>.ipynb`` and an
HTML file with every code cell removed (plotly.js embedded, so it opens offline), and
returns the overall health status the notebook recorded — so cron can alert on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import require

PACKAGE_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "health_report.ipynb"
EXIT_CODES = {"ok": 0, "warn": 0, "critical": 2}


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
                      kernel_name: str | None = None, timeout_s: int = 600) -> ReportResult:
    """Execute the health report notebook and export it; see the module docstring."""
    papermill = require("papermill")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    executed = out / f"health-{stamp}.ipynb"
    status_file = out / f"health-{stamp}.json"
    params = {"redis_url": redis_url, "output_dir": str(out), "status_file": str(status_file),
              **(parameters or {})}
    source = Path(notebook) if notebook else PACKAGE_NOTEBOOK
    papermill.execute_notebook(str(source), str(executed), parameters=params,
                               kernel_name=kernel_name, progress_bar=False,
                               execution_timeout=timeout_s, cwd=str(source.parent))
    html = export_html(executed, out / f"health-{stamp}.html")
    summary = json.loads(status_file.read_text()) if status_file.exists() else \
        {"status": "critical", "error": "the notebook did not record a status"}
    return ReportResult(executed, html, str(summary.get("status", "critical")), summary)


def export_html(executed: Path, target: Path) -> Path:
    """Write ``executed`` as HTML without code cells or prompts (outputs only)."""
    nbconvert = require("nbconvert")
    nbformat = require("nbformat")
    exporter = nbconvert.HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                      exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(executed), as_version=4))
    target.write_text(body, encoding="utf-8")
    return target
