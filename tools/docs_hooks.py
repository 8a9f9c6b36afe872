"""mkdocs hooks (mkdocs.yml ``hooks:``): the API reference must cover every public name.

After the build, every name in the ``__all__`` of each public surface must be the id of an
entry on that surface's reference page (the name itself, ``<module>.<name>``, or the name in
the submodule that defines it, ``<module>.<sub>.<name>``); a name re-exported from another
surface may instead be covered on that surface's page. A gap is logged as a warning, which
``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import importlib
import logging
import re
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
    pages = {m: p for m, p in SURFACES.items() if (Path(config["site_dir"]) / p).exists()}
    for module in sorted(set(SURFACES) - set(pages)):
        log.warning("the API reference has no page for %s (%s)", module, SURFACES[module])
    gaps = missing_names(Path(config["site_dir"]), pages)
    if gaps:
        log.warning("public names missing from the API reference: %s", ", ".join(gaps))
    else:
        log.info("API reference: every public name of %d modules documented", len(pages))
