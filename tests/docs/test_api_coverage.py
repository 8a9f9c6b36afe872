"""The build hook that fails the docs when a public name has no entry in the API reference
(tools/docs_hooks.py), checked on hand-made pages: the real site is built by ./run docs."""

from __future__ import annotations

import importlib
from pathlib import Path

from tools.docs_hooks import SURFACES, missing_names


def _site(tmp_path: Path, ids_per_module: dict[str, set[str]]) -> Path:
    for module, page in SURFACES.items():
        path = tmp_path / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f'<h3 id="{i}">x</h3>' for i in ids_per_module.get(module, ())))
    return tmp_path


def _every_entry() -> dict[str, set[str]]:
    """One id per public name, as the reference pages give them: the names pnb takes from
    the layers below are documented there only."""
    below = set(importlib.import_module("phantom_notebook.notebook")._BELOW)
    ids: dict[str, set[str]] = {}
    for module in SURFACES:
        mod = importlib.import_module(module)
        ids[module] = {f"{module}.{name}" for name in mod.__all__
                       if not (module == "phantom_notebook.notebook" and name in below)}
    return ids


def test_a_reference_with_every_name_passes(tmp_path: Path) -> None:
    assert missing_names(_site(tmp_path, _every_entry())) == []


def test_a_missing_name_is_reported_with_its_module(tmp_path: Path) -> None:
    ids = _every_entry()
    ids["phantom_notebook"].discard("phantom_notebook.publish_gone")  # not a name: no effect
    ids["phantom_notebook"].discard("phantom_notebook.Worker")
    ids["phantom_notebook.intel"].discard("phantom_notebook.intel.extract_iocs")
    assert missing_names(_site(tmp_path, ids)) == [  # pnb.extract_iocs is documented there
        "phantom_notebook.Worker", "phantom_notebook.intel.extract_iocs",
        "phantom_notebook.notebook.extract_iocs"]


def test_a_name_is_covered_in_its_defining_submodule_or_by_its_own_name(tmp_path: Path) -> None:
    ids = _every_entry()
    nb = ids["phantom_notebook.notebook"]
    nb -= {"phantom_notebook.notebook.messages_df", "phantom_notebook.notebook.serve_metrics"}
    nb |= {"phantom_notebook.notebook.frames.messages_df",
           "phantom_notebook.notebook.prometheus.serve"}  # pnb.serve_metrics is serve
    assert missing_names(_site(tmp_path, ids)) == []


def test_a_method_of_the_same_name_does_not_cover_a_function(tmp_path: Path) -> None:
    ids = _every_entry()
    ids["phantom_notebook"].discard("phantom_notebook.connect")
    ids["phantom_notebook"].add("phantom_notebook.MessageQueue.connect")
    assert missing_names(_site(tmp_path, ids)) == [
        "phantom_notebook.connect", "phantom_notebook.notebook.connect"]


def test_a_re_export_is_covered_where_it_is_documented(tmp_path: Path) -> None:
    ids = _every_entry()
    assert "phantom_notebook.notebook.connect" not in ids["phantom_notebook.notebook"]
    assert missing_names(_site(tmp_path, ids)) == []  # pnb.connect is pn.connect
    ids["phantom_notebook"].discard("phantom_notebook.connect")
    assert missing_names(_site(tmp_path, ids)) == [
        "phantom_notebook.connect", "phantom_notebook.notebook.connect"]
