"""The layers stay one-way and the core stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from phantom_notebook.notebook import MissingExtraError, require


def test_core_and_cli_never_import_notebook_packages() -> None:
    code = ("import sys, phantom_notebook, phantom_notebook.cli, phantom_notebook.intel;"
            "heavy = {'pandas', 'plotly', 'ipywidgets', 'papermill'} & set(sys.modules);"
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_a_missing_notebook_package_says_how_to_install_it() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'phantom_notebook\[notebook\]'"):
        require("a_package_that_does_not_exist_anywhere")


def test_the_public_surface_is_curated() -> None:
    import phantom_notebook as pn

    for name in pn.__all__:
        assert hasattr(pn, name), name
    assert {"connect", "MessageQueue", "Worker", "PhantomError", "Envelope"} <= set(pn.__all__)
