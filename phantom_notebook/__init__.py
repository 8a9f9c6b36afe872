"""phantom_notebook: a Redis-backed message queue for threat-intelligence teams.

Examples:
    >>> import phantom_notebook as pn
    >>> mq = pn.connect()            # embedded Redis; pn.connect("redis://host:6379/0") for real
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core import *  # noqa: F403 - the curated core surface
from .core import __all__ as _core_all

if TYPE_CHECKING:
    from . import aio as aio

__version__ = "0.1.0"
"""The version of this package, written only here (pyproject.toml reads it)."""
__all__ = [*_core_all, "__version__"]


def __getattr__(name: str) -> object:
    """``pn.aio`` (the asyncio API) is imported on first use, not with the package."""
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
