"""Build the documentation site: ``./run docs`` (``python -m tools.build_docs [-d DIR]``).

``mkdocs build`` in strict mode into ``site/`` (or ``DIR``): any warning fails the build (a
broken link or anchor, a docstring griffe cannot parse, a public name missing from the API
reference). Only warnings and errors are printed, then one line with the page count and the
build time. (``mkdocs build --quiet`` would not do: it drops warnings before strict mode
counts them, so a quiet strict build passes with broken links.)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(site_dir: Path) -> int:
    """Build the site; returns its page count. Raises ``mkdocs.exceptions.Abort`` on a
    warning and ``BuildError`` / ``ConfigurationError`` on errors."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # material's banner about its successor
    # jsonschema (imported by nbformat, for mkdocs-jupyter) loads rfc3987_syntax when it is
    # installed, which compiles a lark grammar at import: ~2 s of CPU, for IRI format checks
    # this build never makes; without the module jsonschema skips that one format
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from mkdocs import config
    from mkdocs.commands import build as mkdocs_build

    log = logging.getLogger("mkdocs")
    log.setLevel(logging.INFO)  # strict mode counts what reaches this logger
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    log.addHandler(console)
    cfg = config.load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(site_dir))
    cfg.plugins.on_startup(command="build", dirty=False)
    try:
        mkdocs_build.build(cfg)
    finally:
        cfg.plugins.on_shutdown()
        log.removeHandler(console)
    return sum(1 for _ in site_dir.rglob("index.html"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./run docs", description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--site-dir", type=Path, default=ROOT / "site")
    args = parser.parse_args(argv)
    from mkdocs.exceptions import MkDocsException

    start = time.perf_counter()
    try:
        pages = build(args.site_dir.resolve())
    except MkDocsException as exc:
        print(f"docs: the build failed: {exc}", file=sys.stderr)
        return 1
    shown = args.site_dir.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    print(f"docs: {pages} pages in {shown}/, built in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
