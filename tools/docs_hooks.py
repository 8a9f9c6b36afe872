"""mkdocs hooks (mkdocs.yml ``hooks:``): charts in the notebook pages, and an API reference
that covers every public name.

Charts: the notebooks store plotly figures as ``application/vnd.plotly.v1+json`` only,
which nbconvert cannot show. Each notebook page is rendered from a copy whose figures also
carry an HTML rendering (``plotly.io.to_html`` without plotly.js), and the page loads the
plotly.js that ships in the plotly package from the site itself: nothing from a CDN, at
build or at view time. The notebooks themselves are not changed.

Coverage: after the build, every name in the ``__all__`` of each public surface must be the id of an
entry on that surface's reference page (the name itself, ``<module>.<name>``, or the name in
the submodule that defines it, ``<module>.<sub>.<name>``); a name re-exported from another
surface may instead be covered on that surface's page. A gap is logged as a warning, which
``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.api_coverage")

#: public surface -> its reference page (relative to the site directory)
SURFACES = {
    "phantom_notebook": "reference/phantom_notebook/index.html",
    "phantom_notebook.aio": "reference/aio/index.html",
    "phantom_notebook.intel": "reference/intel/index.html",
    "phantom_notebook.notebook": "reference/notebook/index.html",
}


PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "assets/javascripts/plotly.min.js"  # in the site
_charted: set[str] = set()  # src_uri of the notebook pages that show a chart


def _with_chart_html(source: Path, target: Path) -> bool:
    """Write ``source`` to ``target`` with an HTML rendering beside each plotly figure."""
    import plotly.io as pio

    book = json.loads(source.read_text())
    charts = 0
    for c, cell in enumerate(book.get("cells", [])):
        for o, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                # a fixed div id: the same notebook gives the same copy (mkdocs-jupyter's cache)
                data["text/html"] = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False,
                                                full_html=False, validate=False,
                                                div_id=f"{source.stem}-chart-{c}-{o}")
                charts += 1
    if charts:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(book))
    return bool(charts)


def on_files(files: Any, config: Any) -> Any:
    work = Path(tempfile.mkdtemp(prefix="pn-docs-notebooks-"))
    for file in files:
        if file.src_uri.endswith(".ipynb") and file.abs_src_path:
            copy = work / file.src_uri
            if _with_chart_html(Path(file.abs_src_path), copy):
                file.abs_src_path = str(copy)
                _charted.add(file.src_uri)
    return files


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri not in _charted:
        return html
    depth = page.url.rstrip("/").count("/") + 1 if page.url else 0
    return f'<script src="{"../" * depth}{PLOTLY_JS}"></script>\n{html}'


def _ids(site: Path, page: str) -> set[str]:
    path = site / page
    return set(re.findall(r'\bid="([\w.]+)"', path.read_text())) if path.exists() else set()


def _covers(ids: set[str], module: str, name: str) -> bool:
    """``module.name``, or ``module.sub.name`` with only module names between (a method
    ``module.SomeClass.name`` does not count)."""
    entry = re.compile(re.escape(module) + r"(\.[a-z_][a-z0-9_]*)*\." + re.escape(name))
    return any(entry.fullmatch(i) for i in ids)


def missing_names(site: Path, surfaces: dict[str, str] = SURFACES) -> list[str]:
    """``module.name`` of every public name without an entry on its reference page."""
    modules = {m: importlib.import_module(m) for m in surfaces}
    ids = {m: _ids(site, page) for m, page in surfaces.items()}
    gaps = []
    for module, mod in modules.items():
        for name in mod.__all__:
            obj = getattr(mod, name)
            # an alias (pnb.serve_metrics is prometheus.serve) is documented by its own name
            own = getattr(obj, "__name__", name) if callable(obj) else name
            if _covers(ids[module], module, name) or _covers(ids[module], module, own):
                continue
            elsewhere = [m for m, other in modules.items() if m != module
                         and name in other.__all__ and getattr(other, name) is obj]
            if not any(_covers(ids[m], m, name) for m in elsewhere):
                gaps.append(f"{module}.{name}")
    return gaps


def on_post_build(config: Any, **kwargs: Any) -> None:
    if _charted:
        import plotly

        target = Path(config["site_dir"]) / PLOTLY_JS
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", target)
    pages = {m: p for m, p in SURFACES.items() if (Path(config["site_dir"]) / p).exists()}
    for module in sorted(set(SURFACES) - set(pages)):
        log.warning("the API reference has no page for %s (%s)", module, SURFACES[module])
    gaps = missing_names(Path(config["site_dir"]), pages)
    if gaps:
        log.warning("public names missing from the API reference: %s", ", ".join(gaps))
    else:
        log.info("API reference: every public name of %d modules documented", len(pages))
