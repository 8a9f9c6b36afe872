"""``python -m phantom_notebook.cli``: the ``phantom-notebook`` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
