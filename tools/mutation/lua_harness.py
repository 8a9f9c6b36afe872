"""The machinery of the Lua mutation run (``lua_mutants.py`` declares the mutants).

For each mutant: copy the working tree (tracked and untracked files git does not ignore:
no ``.venv``, no ``reports``) to a temporary directory, apply the one replacement to the
Lua file there, and run the mutant's tests with ``python -m pytest`` in that copy. The copy
comes first on ``sys.path`` (cwd with ``-m``, and ``PYTHONPATH``), so its
``phantom_notebook`` is the one imported; the library's build digest changes with the
source, so every redis-server and embedded Redis the tests start loads the mutated
functions (``check_copy`` proves both before anything is counted). Killed: a test failed
(or the run timed out). Survived: every selected test passed.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LUA = Path("phantom_notebook/core/backend/lua")
PYTEST = ("-m", "pytest", "-x", "-q", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``original`` (exactly once in ``file``) becomes ``mutated``.

    ``tests``: the pytest selection that should catch it (paths or node ids, optionally
    "-k" and an expression). ``equivalent``: why no test can tell it apart, if so.
    """

    id: str
    file: str  # relative to the lua directory, e.g. "fetch.lua", "includes/depth.lua"
    original: str
    mutated: str
    description: str
    tests: tuple[str, ...]
    equivalent: str | None = None

    @property
    def path(self) -> Path:
        return LUA / self.file

    def apply(self, text: str) -> str:
        """``text`` with the mutation applied (the original must occur exactly once)."""
        if text.count(self.original) != 1:
            raise ValueError(f"{self.id}: the original snippet occurs "
                             f"{text.count(self.original)} times in {self.file}")
        return text.replace(self.original, self.mutated, 1)

    def diff(self, root: Path = ROOT) -> str:
        """The unified diff of the mutation, 1 line of context."""
        before = (root / self.path).read_text()
        after = self.apply(before)
        return "".join(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            f"a/{self.path}", f"b/{self.path}", n=1))


@dataclass
class Outcome:
    """What the tests did to one mutant."""

    id: str
    file: str
    status: str  # killed | survived | timeout | error
    seconds: float
    caught_by: str = ""  # the first failing test
    detail: str = ""  # the end of the output, for errors

    @property
    def killed(self) -> bool:
        return self.status in ("killed", "timeout")


def check_snippets(mutants: Sequence[Mutant], root: Path = ROOT) -> list[str]:
    """Problems with the declared list: duplicate ids, snippets not found exactly once,
    a replacement equal to its original, selected tests that do not exist."""
    problems = []
    seen: set[str] = set()
    for m in mutants:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        text = (root / m.path).read_text()
        n = text.count(m.original)
        if n != 1:
            problems.append(f"{m.id}: original occurs {n} times in {m.file}")
        if m.original == m.mutated:
            problems.append(f"{m.id}: the mutation changes nothing")
        if not m.tests:
            problems.append(f"{m.id}: no tests selected")
        problems += [f"{m.id}: {arg} not found" for arg in m.tests
                     if not _selectable(arg, root)]
    return problems


def _selectable(arg: str, root: Path) -> bool:
    """An option, a path that exists, or ``path::test_name`` naming a test in it."""
    if arg.startswith("-") or " " in arg:
        return True  # "-k" and its expression
    path, _, name = arg.partition("::")
    file = root / path
    if not file.exists():
        return False
    return not name or re.search(rf"^(async )?def {re.escape(name.split('[')[0])}\(",
                                 file.read_text(), re.M) is not None


def working_tree_files(root: Path = ROOT) -> list[str]:
    """Tracked and untracked files git does not ignore (the tree the tests run in)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p and (root / p).is_file()]


def make_copy(files: Iterable[str], root: Path = ROOT) -> Path:
    """A temporary copy of ``files`` (removed by the caller)."""
    dest = Path(tempfile.mkdtemp(prefix="pn-mutant-"))
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return dest


def _env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PHANTOM_TEST_REDIS_URL"}
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "400"  # room for the failure's message after its long test id
    return env


def check_copy(copy: Path) -> str:
    """The library build the copy's tests load; raises unless the copy's package is the
    one imported there."""
    code = ("import phantom_notebook.core.backend.library as l, pathlib;"
            "print(pathlib.Path(l.__file__).resolve()); print(l.build())")
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=_env(copy),
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    where, build = Path(out[0]), out[1]
    if not where.is_relative_to(copy.resolve()):
        raise RuntimeError(f"the copy at {copy} imports phantom_notebook from {where}")
    return build


def run_pytest(copy: Path, selection: Sequence[str], timeout_s: float) -> tuple[str, str, float]:
    """Run ``selection`` in ``copy``: (status, the first failing test and why, seconds)."""
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, *PYTEST, *selection], cwd=copy, env=_env(copy),
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.monotonic() - start
    took = time.monotonic() - start
    output = proc.stdout + proc.stderr
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)(?: - (.*))?$", output, re.M)
    caught = failed.group(1) if failed else ""
    why = failed.group(2) if failed and failed.group(2) else ""
    if proc.returncode == 0:
        return "survived", "", took
    if proc.returncode == 1:
        return "killed", f"{caught} ({why[:160]})" if why else caught, took
    return "error", caught or output[-1500:], took


def union(mutants: Sequence[Mutant]) -> list[str]:
    """One selection covering every mutant's: its node ids and paths (a selection
    narrowed with -k counts as its whole files), without repeats."""
    whole: list[str] = []
    nodes: list[str] = []
    for m in mutants:
        args = list(m.tests)
        narrowed = "-k" in args
        skip = False
        for arg in args:
            if skip:
                skip = False
                continue
            if arg == "-k":
                skip = True
                continue
            path = arg.split("::")[0]
            if narrowed or "::" not in arg:
                if path not in whole:
                    whole.append(path)
            elif arg not in nodes:
                nodes.append(arg)
    return whole + [n for n in nodes if n.split("::")[0] not in whole]


def run_mutant(m: Mutant, files: Sequence[str], base_build: str, timeout_s: float,
               exclude: Sequence[str] = (), source: Path = ROOT) -> Outcome:
    """Copy ``files`` of ``source``, mutate, check the mutated library is the one the copy
    loads, run the mutant's tests."""
    selection = without(m.tests, exclude)
    if not selection:
        return Outcome(m.id, m.file, "survived", 0.0, detail="no test selected")
    copy = make_copy(files, source)
    try:
        target = copy / m.path
        target.write_text(m.apply(target.read_text()))
        if check_copy(copy) == base_build:
            raise RuntimeError(f"{m.id}: the mutated copy's library build did not change")
        status, caught, took = run_pytest(copy, selection, timeout_s)
        detail = caught if status == "error" else ""
        return Outcome(m.id, m.file, status, round(took, 1),
                       "" if status == "error" else caught, detail)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def without(selection: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """``selection`` minus the paths and node ids under any prefix in ``exclude``; empty
    when no path is left (a "-k" alone selects nothing of ours)."""
    kept: list[str] = []
    paths = 0
    args = list(selection)
    i = 0
    while i < len(args):
        if args[i] == "-k":
            kept += args[i:i + 2]
            i += 2
            continue
        if not any(args[i].startswith(prefix) for prefix in exclude):
            kept.append(args[i])
            paths += 1
        i += 1
    return kept if paths else []


def run_all(mutants: Sequence[Mutant], *, jobs: int, timeout_s: float, baseline: bool,
            exclude: Sequence[str] = (),
            progress: Callable[[str], None] = print) -> list[Outcome]:
    """Check the list and the unmutated copy, then run every mutant, ``jobs`` at a time."""
    problems = check_snippets(mutants)
    if problems:
        raise SystemExit("bad mutant list:\n  " + "\n  ".join(problems))
    files = working_tree_files()
    # one snapshot of the tree for the whole run: edits made meanwhile do not leak in
    source = make_copy(files)
    try:
        return _run_from(source, files, mutants, jobs=jobs, timeout_s=timeout_s,
                         baseline=baseline, exclude=exclude, progress=progress)
    finally:
        shutil.rmtree(source, ignore_errors=True)


def _run_from(source: Path, files: Sequence[str], mutants: Sequence[Mutant], *, jobs: int,
              timeout_s: float, baseline: bool, exclude: Sequence[str],
              progress: Callable[[str], None]) -> list[Outcome]:
    copy = make_copy(files, source)
    try:
        base_build = check_copy(copy)
        if baseline:
            selection = union([Mutant(m.id, m.file, m.original, m.mutated, m.description,
                                      tuple(without(m.tests, exclude))) for m in mutants
                               if without(m.tests, exclude)])
            progress(f"baseline: the unmutated copy runs {len(selection)} selections ...")
            status, caught, took = run_pytest(copy, selection, timeout_s * 4)
            if status != "survived":
                raise SystemExit(f"the unmutated tree does not pass the selected tests "
                                 f"({status} after {took:.0f} s): {caught}")
            progress(f"baseline: passed in {took:.0f} s")
    finally:
        shutil.rmtree(copy, ignore_errors=True)

    def one(m: Mutant) -> Outcome:
        out = run_mutant(m, files, base_build, timeout_s, exclude, source)
        progress(f"{out.status:8} {out.seconds:6.1f} s  {m.id}  {out.caught_by or out.detail}")
        return out

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
        return list(pool.map(one, mutants))


def summarize(mutants: Sequence[Mutant], outcomes: Sequence[Outcome]) -> dict[str, object]:
    """Kill rates overall and per file."""
    files: dict[str, dict[str, int]] = {}
    for o in outcomes:
        f = files.setdefault(o.file, {"mutants": 0, "killed": 0, "survived": 0})
        f["mutants"] += 1
        f["killed" if o.killed else "survived"] += 1
    killed = sum(o.killed for o in outcomes)
    equivalent = {m.id for m in mutants if m.equivalent}
    survivors = [o for o in outcomes if not o.killed]
    counted = len(outcomes) - sum(o.id in equivalent for o in survivors)
    return {"mutants": len(outcomes), "killed": killed,
            "kill_rate": round(100 * killed / max(len(outcomes), 1), 1),
            "kill_rate_without_equivalent": round(100 * killed / max(counted, 1), 1),
            "files": files}


def write_report(mutants: Sequence[Mutant], outcomes: Sequence[Outcome], md: Path,
                 label: str, exclude: Sequence[str]) -> dict[str, object]:
    """Write the markdown report and the JSON beside it; keeps the history of full runs."""
    js = md.with_suffix(".json")
    history: list[dict[str, object]] = []
    if js.exists():
        history = list(json.loads(js.read_text()).get("history", []))
    summary = summarize(mutants, outcomes)
    history.append({"label": label, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "mutants": summary["mutants"], "killed": summary["killed"],
                    "kill_rate": summary["kill_rate"], "excluded_tests": list(exclude)})
    by_id = {m.id: m for m in mutants}
    data = {"summary": summary, "history": history,
            "outcomes": [{**asdict(o), "description": by_id[o.id].description,
                          "equivalent": by_id[o.id].equivalent} for o in outcomes]}
    md.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(data, indent=2) + "\n")
    md.write_text(_markdown(by_id, outcomes, summary, history))
    return summary


def _markdown(by_id: dict[str, Mutant], outcomes: Sequence[Outcome],
              summary: dict[str, object], history: list[dict[str, object]]) -> str:
    lines = ["# Lua mutation testing", "",
             "Mutants declared in `tools/mutation/lua_mutants.py`, run by "
             "`python -m tools.mutation.lua_mutants` (each in a copy of the working tree, "
             "its own tests against a redis-server and the embedded Redis running the "
             "mutated functions).", "",
             f"**{summary['killed']} of {summary['mutants']} killed: "
             f"{summary['kill_rate']} %** "
             f"({summary['kill_rate_without_equivalent']} % not counting survivors "
             "declared equivalent).", "", "## Kill rate per file", "",
             "| file | mutants | killed | survived |", "|---|---|---|---|"]
    files = summary["files"]
    assert isinstance(files, dict)
    for name, f in sorted(files.items()):
        lines.append(f"| {name} | {f['mutants']} | {f['killed']} | {f['survived']} |")
    lines += ["", "## History", "", "| run | at | mutants | killed | kill rate | tests left out |",
              "|---|---|---|---|---|---|"]
    for h in history:
        excluded = h.get("excluded_tests") or []
        assert isinstance(excluded, list)
        left_out = ", ".join(f"`{e}`" for e in excluded) or "-"
        lines.append(f"| {h['label']} | {h['at']} | {h['mutants']} | {h['killed']} | "
                     f"{h['kill_rate']} % | {left_out} |")
    survivors = [o for o in outcomes if not o.killed]
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None.")
    for o in survivors:
        m = by_id[o.id]
        verdict = f"equivalent: {m.equivalent}" if m.equivalent else "needs a test"
        if o.status == "error":
            verdict = f"error, the tests did not run: {o.detail[-300:]}"
        lines += [f"### `{o.id}` — {m.description}", "", f"Verdict: {verdict}", "",
                  "```diff", m.diff().rstrip(), "```", ""]
    lines += ["", "## Every mutant", "", "| mutant | file | status | s | caught by |",
              "|---|---|---|---|---|"]
    for o in outcomes:
        cell = (o.caught_by or o.detail[:80]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{o.id}` | {o.file} | {o.status} | {o.seconds} | {cell} |")
    return "\n".join(lines) + "\n"


__all__ = ["LUA", "ROOT", "Mutant", "Outcome", "check_snippets", "run_all", "run_mutant",
           "summarize", "union", "without", "write_report"]
