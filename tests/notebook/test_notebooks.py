"""The analyst notebooks: the papermill health report end to end, and the shape of each file.

The notebooks themselves run top to bottom under nbval (a second pytest invocation:
``pytest --nbval-lax notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from phantom_notebook.cli import main
from phantom_notebook.notebook.reports import (
    PACKAGE_NOTEBOOK,
    checks_html,
    describe_target,
    run_health_report,
)

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
    assert "Overall: WARN" in page and "<h2 id=\"Checks\">Checks" in page
    assert "embedded Redis with a demo workload" in page  # a description, not a repr:
    assert "MessageQueue(" not in page and "RedisSettings(" not in page
    executed = nbformat.read(result.notebook, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def test_the_health_report_loads_plotly_once_from_a_shared_file_and_nothing_from_a_cdn(
        tmp_path: Path) -> None:
    first = run_health_report(output_dir=tmp_path)
    second = run_health_report(output_dir=tmp_path)
    [shared] = tmp_path.glob("plotly-*.min.js")  # one copy for every report in the directory
    assert "plotly.js v" in shared.read_text(encoding="utf-8")[:200]
    for result in (first, second):
        page = result.html.read_text(encoding="utf-8")
        assert page.count(f'<script src="{shared.name}"></script>') == 1
        assert "plotly.js v" not in page  # not embedded: 5 MB per run was ~1 GB a day
        assert re.findall(r'<script[^>]+src="(https?:[^"]*)"', page) == []
        assert "require.min.js" not in page and "mathjax" not in page.lower()
        assert page.count("Plotly.newPlot(") >= 4  # the figures are still drawn
        assert result.html.stat().st_size < 600_000
        assert result.notebook.stat().st_size < 400_000
        assert "plotly.js v" not in result.notebook.read_text(encoding="utf-8")


def test_the_health_report_inlines_plotly_when_asked_for_a_report_that_travels_alone(
        tmp_path: Path) -> None:
    result = run_health_report(output_dir=tmp_path, plotlyjs="inline")
    page = result.html.read_text(encoding="utf-8")
    assert page.count("plotly.js v") == 1 and not list(tmp_path.glob("plotly-*.js"))


def test_a_remote_target_is_described_by_url_without_password_prefix_and_role() -> None:
    redis = SimpleNamespace(url="rediss://ana:s3cret-pw@redis.example:6380/2?ssl_password=x",
                            key_prefix="phantom:prod")
    mq = SimpleNamespace(embedded=False, role="analyst", settings=SimpleNamespace(redis=redis))
    where = describe_target(mq)
    assert where.startswith("rediss://ana@redis.example:6380/2")
    assert "s3cret-pw" not in where and "***" not in where.split("?")[0]
    assert "prefix phantom:prod" in where and "role analyst" in where
    assert "role none (full access)" in describe_target(
        SimpleNamespace(embedded=False, role=None, settings=mq.settings))


def test_the_checks_table_shows_problems_first_and_folds_the_ok_ones_into_one_line() -> None:
    import pandas as pd

    checks = pd.DataFrame([
        {"check": "dead letters", "target": "ioc", "status": "warn", "value": 3, "message": "3"},
        *[{"check": "depth", "target": f"q{i}", "status": "ok", "value": 0, "message": ""}
          for i in range(5)],
        {"check": "memory", "target": "redis", "status": "ok", "value": 1, "message": ""}])
    page = checks_html(checks)
    assert page.index("dead letters") < page.index("<details>")
    assert "6 check(s) ok: depth ×5, memory</summary>" in page
    assert checks_html(checks[checks["status"] == "ok"]).count("Every check is <b>ok</b>") == 1


def test_a_relative_output_dir_gets_the_status_the_runner_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # like cron: `cd /opt/phantom && ./run report health`
    code = main(["report", "health", "--output-dir", "reports"])
    out = capsys.readouterr().out
    assert "health: WARN" in out and code == 0  # WARN never pages on-call
    [status] = (tmp_path / "reports").glob("health-*.json")
    assert json.loads(status.read_text())["status"] == "warn"


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
    assert checked and all(c.outputs for c in checked)  # what nbval compares
    if name == "health_report":  # papermill clears outputs: the template keeps only those
        assert not [c for c in book.cells if c.cell_type == "code" and c.get("outputs")
                    and "# NBVAL_CHECK_OUTPUT" not in c.source]


def test_a_report_pasted_into_the_pipeline_notebook_may_contain_windows_paths() -> None:
    book = nbformat.read(NOTEBOOKS / "ioc_enrichment_pipeline.ipynb", as_version=4)
    [cell] = [c for c in book.cells if c.cell_type == "code" and "REPORT = " in c.source]
    pasted = cell.source.replace(
        "Incident 2024-117", r"Dropped C:\Users\Public\x.exe and \\fs01\drop\n.dll. Incident"
        " 2024-117", 1)
    assignment = pasted[:pasted.index('"""', pasted.index('"""') + 3) + 3]
    namespace: dict[str, object] = {}
    exec(compile(assignment, "pasted report", "exec"), namespace)  # our own notebook's cell
    assert r"C:\Users\Public\x.exe and \\fs01\drop\n.dll" in str(namespace["REPORT"])
