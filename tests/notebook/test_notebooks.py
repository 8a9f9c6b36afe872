"""The analyst notebooks: the papermill health report end to end, and the shape of each file.

The notebooks themselves run top to bottom under nbval (a second pytest invocation:
``pytest --nbval-lax notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from phantom_notebook.cli import main
from phantom_notebook.notebook.reports import PACKAGE_NOTEBOOK, run_health_report

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("quickstart", "queue_monitoring", "trace_investigation", "health_report",
         "ioc_enrichment_pipeline")
PARAMETERS = {"redis_url": None, "queues": None, "window": "15min", "thresholds": {},
              "output_dir": "reports", "status_file": None, "seed_demo": True}


def _parameters_cell() -> nbformat.NotebookNode:
    book = nbformat.read(PACKAGE_NOTEBOOK, as_version=4)
    [cell] = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def test_the_health_report_declares_its_papermill_parameters() -> None:
    namespace: dict[str, object] = {}
    exec(_parameters_cell().source, namespace)  # our own notebook's cell
    assert {k: namespace[k] for k in PARAMETERS} == PARAMETERS


def test_the_health_report_runs_under_papermill_and_exports_html_without_code(
        tmp_path: Path) -> None:
    result = run_health_report(output_dir=tmp_path)
    assert result.notebook.exists() and result.html.exists()
    assert result.status == "warn"  # the demo dead-letters a few messages on purpose
    assert result.exit_code == 0
    summary = json.loads((tmp_path / (result.notebook.stem + ".json")).read_text())
    assert summary["status"] == "warn"
    assert {p["check"] for p in summary["problems"]} >= {"dead letters"}
    page = result.html.read_text(encoding="utf-8")
    code_cells = re.findall(r'class="(jp-Cell jp-CodeCell[^"]*)"', page)
    assert code_cells and all("jp-mod-noInput" in c for c in code_cells)  # no code shown
    assert "hl-ipython3" not in page
    assert "pn.connect(redis_url)" not in page and "HealthThresholds(**" not in page
    assert "Overall: WARN" in page and "Checks that need attention" in page
    assert "plotly.js v" in page  # plotly.js embedded: the report opens offline
    assert not re.search(r'<script[^>]+src="https://cdn[^"]*plotly', page)
    executed = nbformat.read(result.notebook, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def test_a_critical_report_makes_the_command_exit_non_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "health", "--output-dir", str(tmp_path),
                 "-p", "thresholds", '{"dlq_growth_critical": 0}'])
    assert code == 2
    out = capsys.readouterr().out
    assert "health: CRITICAL" in out
    [status] = tmp_path.glob("health-*.json")
    assert json.loads(status.read_text())["status"] == "critical"
    assert len(list(tmp_path.glob("health-*.html"))) == 1


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_is_small_runnable_on_a_python_kernel_and_has_checked_cells(
        name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.stat().st_size < 300_000
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    assert book.metadata["kernelspec"]["name"] == "python3"
    assert book.cells[0].cell_type == "markdown" and book.cells[0].source.startswith("# ")
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs)  # no widget state is stored: views would not render
    assert not any(o.get("output_type") == "error" for o in outputs)
    checked = [c for c in book.cells if "# NBVAL_CHECK_OUTPUT" in c.get("source", "")]
    if name != "health_report":  # the report's outputs are never stored
        assert checked and all(c.outputs for c in checked)
