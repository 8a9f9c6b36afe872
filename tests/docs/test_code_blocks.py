"""Every code block of the documentation is run, parsed, or marked as something else.

``python`` blocks of README.md and docs/**/*.md run in order per page, in one namespace per
page, on the embedded Redis (``pn.connect()`` without a URL) under a key prefix of their
own; a block that raises fails its page's test naming the page and the block's first line
(the traceback points at the line in the Markdown file). A block may ``await`` at top level
(as in Jupyter): it runs on one event loop kept for the whole page. A ``python`` block that
cannot run here starts with ``# not run: <reason>``; each is reported as a skipped test.
``bash`` / ``shell`` / ``console`` blocks are commands and are not run; ``toml`` blocks are
parsed and loaded as ``Settings``; ``text`` blocks are plain text. A block without one of
these languages fails ``test_every_block_names_its_language``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import tomllib
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import phantom_notebook as pn
from tests.support.aio import in_thread

ROOT = Path(__file__).resolve().parents[2]
RUN = {"python"}
COMMANDS = {"bash", "shell", "console"}
DATA = {"toml", "text"}
NOT_RUN = "# not run:"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # the line of the opening fence, 1-based
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        return first[len(NOT_RUN):].strip() if first.startswith(NOT_RUN) else None


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md")
                  if "notebooks" not in p.relative_to(ROOT / "docs").parts)
    return [ROOT / "README.md", *docs]


def blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of one Markdown file, in order (indented fences included)."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        lang = (m["info"].split() or [""])[0].strip("{}.").lower()
        closing = re.compile(rf"^{re.escape(indent)}{fence[0]}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        yield Block(path.relative_to(ROOT).as_posix(), i + 1, lang, "\n".join(body) + "\n")
        i = j + 1


ALL = [b for p in pages() for b in blocks(p)]
PYTHON_PAGES = sorted({b.page for b in ALL if b.lang in RUN})
NOT_RUN_BLOCKS = [b for b in ALL if b.lang in RUN and b.skip_reason is not None]


def test_the_pages_have_blocks_of_every_kind() -> None:
    assert "README.md" in PYTHON_PAGES and len(PYTHON_PAGES) >= 5
    assert {b.lang for b in ALL} >= {"python", "bash", "toml"}


def test_every_block_names_its_language() -> None:
    unmarked = [f"{b.where} ({b.lang or 'no language'})" for b in ALL
                if b.lang not in RUN | COMMANDS | DATA]
    assert not unmarked, ("mark each block python (run), bash/shell/console (commands) or "
                          f"toml/text (data): {', '.join(unmarked)}")


def test_blocks_not_run_say_why() -> None:
    assert all(b.skip_reason for b in NOT_RUN_BLOCKS), [b.where for b in NOT_RUN_BLOCKS]


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS, ids=[b.where for b in NOT_RUN_BLOCKS])
def test_block_marked_not_run(block: Block) -> None:
    compile(block.code, block.where, "exec")  # still valid Python
    pytest.skip(f"{block.where} not run: {block.skip_reason}")


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "toml"],
                         ids=[b.where for b in ALL if b.lang == "toml"])
def test_toml_block_is_valid_settings(block: Block) -> None:
    data = tomllib.loads(block.code)
    if set(data) <= {"redis", "queue_defaults", "queues", "security", "roles", "acl"}:
        pn.Settings.from_dict(data)


@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The embedded Redis for a page, under a key prefix no other test uses."""
    for name in list(os.environ):
        if name.startswith("PHANTOM_"):
            monkeypatch.delenv(name)
    prefix = f"docs{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PHANTOM_REDIS_KEY_PREFIX", prefix)
    yield prefix


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page: str, page_env: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a block writing files writes them here
    # in a thread of its own: the browser suite keeps an event loop running in this one
    in_thread(lambda: _run_page(page))


def _run_page(page: str) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    loop = asyncio.new_event_loop()  # for blocks that await at top level, one per page
    ran = 0
    try:
        for block in (b for b in ALL if b.page == page and b.lang in RUN):
            if block.skip_reason is not None:
                continue
            # padded so the traceback names the block's lines in the Markdown file
            code = compile("\n" * block.line + block.code, str(ROOT / page), "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            failure = None
            try:
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(code, namespace))
                else:
                    exec(code, namespace)
            except Exception as exc:
                failure = (f"{block.where}: the block raised {type(exc).__name__}: {exc}\n"
                           + "".join(traceback.format_exception(exc)[1:]))
            if failure:
                pytest.fail(failure, pytrace=False)
            ran += 1
    finally:
        for value in namespace.values():
            if isinstance(value, pn.MessageQueue):
                value.close()
            elif type(value).__name__ == "AsyncMessageQueue":
                loop.run_until_complete(value.close())  # type: ignore[attr-defined]
        loop.close()
    assert ran, f"{page}: every python block is marked not run"
