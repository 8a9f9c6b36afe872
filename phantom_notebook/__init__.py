"""phantom_notebook: a Redis-backed message queue for threat-intelligence teams.

>>> import phantom_notebook as pn
>>> mq = pn.connect()            # embedded Redis; pn.connect("redis://host:6379/0") for real
"""

from __future__ import annotations

from .core import *  # noqa: F403 - the curated core surface
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__"]
