"""The analyst layer (DataFrames, plotly charts, ipywidgets, papermill reports).

Behind the ``[notebook]`` extra: nothing here is imported by the core, and every module
that needs pandas / plotly / ipywidgets / papermill asks for it through ``require`` so a
missing package produces an actionable error instead of a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..core.errors import PhantomError


class MissingExtraError(PhantomError, ImportError):
    """Raised when a notebook feature needs a package of the ``[notebook]`` extra."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed for this notebook feature: "
            f"pip install 'phantom_notebook[notebook]' ({exc})") from None


__all__ = ["MissingExtraError", "require"]
