"""Mutation testing of the pure-Python modules with mutmut; writes reports/mutation-python.md.

    python -m tools.mutation.python_mutants                  every module of MODULES
    python -m tools.mutation.python_mutants --module routing one (repeat --module for more)
    python -m tools.mutation.python_mutants --report-only    rewrite the report from the
                                                             last run's results

mutmut 3 (shared options in pyproject.toml, ``[tool.mutmut]``) copies the package to
``mutants/``, mutates the functions of one file, records once which tests of its selection
call each function, and runs for each mutant only those tests. Each module runs in its own
``build/mutation/<module>/`` with its own test selection (``MODULES``), so a mutant of a
function every test touches (the envelope header, the partition names) runs the tests of
its module, not the whole suite. One throwaway redis-server per module serves every
mutant's tests (``PHANTOM_TEST_REDIS_URL``). The report gives, per module, the mutants,
kills, survivors and kill rate, and each survivor's diff with its verdict: "needs a test",
or the one-line reason it is equivalent (``python_equivalents.EQUIVALENT``). The JSON
beside the report keeps the numbers; a ``--module`` run replaces only its modules' entries.

Exit status: 0 when the kill rate of every module run is at least ``--fail-under`` percent
(85 by default), 1 otherwise, 2 when mutmut itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from tools.mutation.python_equivalents import BASELINE, EQUIVALENT, EXCLUDED

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: the report, its JSON, mutmut's log, the work directories."""

    report: Path = ROOT / "reports" / "mutation-python.md"
    json: Path = ROOT / "reports" / "mutation-python.json"
    log: Path = ROOT / "reports" / "mutation-python.log"
    work: Path = ROOT / "build" / "mutation"

    @classmethod
    def under(cls, directory: Path) -> Outputs:
        """Everything inside ``directory`` (e.g. a before/after comparison's own place)."""
        return cls(directory / "mutation-python.md", directory / "mutation-python.json",
                   directory / "mutation-python.log", directory / "work")


#: short name -> (source file, the tests its mutants run against: mutmut picks, per mutant,
#: those of them that call the mutated function). Never the browser or notebook tests.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "policies": ("phantom_notebook/core/model/policies.py", (
        "tests/core/model/test_policies.py", "tests/core/model/test_policies_edges.py")),
    "middleware": ("phantom_notebook/core/consume/middleware.py", (
        "tests/core/consume/test_middleware_policies.py", "tests/core/consume/test_tlp_gate.py",
        "tests/core/consume/test_custom_middleware.py",
        "tests/core/consume/test_middleware_edges.py")),
    "envelope": ("phantom_notebook/core/model/envelope.py", (
        "tests/core/model/test_envelope.py", "tests/core/model/test_decoder_properties.py",
        "tests/core/model/test_envelope_fields.py", "tests/core/model/test_envelope_edges.py")),
    "codec": ("phantom_notebook/core/model/codec.py", (
        "tests/core/model/test_envelope.py", "tests/core/model/test_envelope_fields.py",
        "tests/core/security/test_sealing.py", "tests/core/model/test_codec_edges.py")),
    "sealing": ("phantom_notebook/core/security/sealing.py", (
        "tests/core/security/test_sealing.py", "tests/core/security/test_sealing_edges.py",
        "tests/core/publish/test_publish_fastpath.py")),
    "keyring": ("phantom_notebook/core/security/keyring.py", (
        "tests/core/security/test_sealing.py", "tests/core/security/test_keyring.py")),
    "access": ("phantom_notebook/core/security/access.py", (
        "tests/core/security/test_access.py", "tests/core/security/test_access_rules.py")),
    "health": ("phantom_notebook/core/observe/health.py", (
        "tests/core/observe/test_health.py", "tests/core/observe/test_health_thresholds.py",
        "tests/core/observe/test_health_rules.py")),
    "routing": ("phantom_notebook/core/model/routing.py", (
        "tests/core/admin/test_partitions.py", "tests/core/admin/test_partition_routing.py",
        "tests/core/admin/test_routing_edges.py",
        "tests/core/security/test_access.py")),  # restricted roles read layouts too
    "ioc_extract": ("phantom_notebook/intel/ioc_extract.py", (
        "tests/intel/test_ioc_extract.py", "tests/intel/test_ioc_extract_report.py",
        "tests/intel/test_ioc_extract_edges.py")),
    "defang": ("phantom_notebook/intel/defang.py", (
        "tests/intel/test_ioc_defang.py", "tests/intel/test_ioc_extract.py",
        "tests/intel/test_ioc_extract_edges.py")),
    "frames": ("phantom_notebook/notebook/frames.py", (
        "tests/notebook/test_frame_values.py", "tests/notebook/test_frame_schemas.py",
        "tests/notebook/test_frames.py")),
    "dtypes": ("phantom_notebook/notebook/_dtypes.py", (
        "tests/notebook/test_dtypes.py", "tests/notebook/test_frame_schemas.py")),
}

#: mutmut's statuses that count as the tests noticing the mutant
DETECTED = ("killed", "timeout", "segfault", "caught by type check")


@dataclass
class Survivor:
    """A mutant the tests did not notice, with its verdict."""

    name: str
    status: str
    diff: str
    verdict: str  # "needs a test" or "equivalent: <reason>"


@dataclass
class ModuleResult:
    """One module's numbers after a run."""

    module: str
    path: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    survivors: list[Survivor] = field(default_factory=list)
    finished_at: str = ""

    @property
    def kill_rate(self) -> float:
        """Detected mutants / all mutants, in percent (100 when there are none)."""
        return 100.0 * self.killed / self.mutants if self.mutants else 100.0

    @property
    def adjusted_rate(self) -> float:
        """Detected / (all - those recorded as equivalent), in percent."""
        real = self.mutants - self.equivalent
        return 100.0 * self.killed / real if real else 100.0


def dotted(path: str) -> str:
    """``phantom_notebook/core/model/routing.py`` -> ``phantom_notebook.core.model.routing``."""
    return path.removesuffix(".py").replace("/", ".")


def resolve(names: Sequence[str]) -> list[str]:
    """Short names, dotted names or paths -> short names; ``SystemExit`` for unknown ones."""
    aliases = {alias: short for short, (path, _) in MODULES.items()
               for alias in (short, path, dotted(path))}
    unknown = [n for n in names if n not in aliases]
    if unknown:
        raise SystemExit(f"unknown module(s) {unknown}: choose from {', '.join(MODULES)}")
    return list(dict.fromkeys(aliases[n] for n in names))


@contextlib.contextmanager
def test_redis() -> Iterator[None]:
    """One redis-server for every mutant's tests (unless ``PHANTOM_TEST_REDIS_URL`` is set)."""
    if os.environ.get("PHANTOM_TEST_REDIS_URL"):
        yield
        return
    from tests.support.redis_server import RedisServer

    server = RedisServer().start()
    os.environ["PHANTOM_TEST_REDIS_URL"] = server.url
    try:
        yield
    finally:
        os.environ.pop("PHANTOM_TEST_REDIS_URL", None)
        server.close()


def selection(short: str, tests_dir: Path) -> list[str]:
    """The test files of ``short`` that exist in ``tests_dir`` (an older checkout's tests
    may lack the newer files), as paths starting with ``tests/``."""
    return [t for t in MODULES[short][1] if (tests_dir / t.removeprefix("tests/")).exists()]


def workdir(short: str, tests_dir: Path, out: Outputs) -> Path:
    """A fresh ``build/mutation/<module>``: the package and tests linked, and a pyproject.toml
    whose ``[tool.mutmut]`` mutates only this module against only its tests."""
    path = MODULES[short][0]
    work = out.work / short
    shutil.rmtree(work, ignore_errors=True)  # mutmut never refreshes unmutated copies
    work.mkdir(parents=True)
    (work / "phantom_notebook").symlink_to(ROOT / "phantom_notebook", target_is_directory=True)
    (work / "tests").symlink_to(tests_dir, target_is_directory=True)
    (work / "tools").symlink_to(ROOT / "tools", target_is_directory=True)  # also_copy
    text = (ROOT / "pyproject.toml").read_text()
    shared = tomllib.loads(text)["tool"]["mutmut"]
    start = text.index("\n[tool.mutmut]\n") + 1
    end = text.index("\n[", start + 1)
    own = {**shared, "only_mutate": [path],
           "pytest_add_cli_args_test_selection": selection(short, tests_dir)}
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in own.items())
    (work / "pyproject.toml").write_text(f"{text[:start]}[tool.mutmut]\n{table}\n{text[end:]}")
    return work


def run_mutmut(short: str, max_children: int, tests_dir: Path, out: Outputs,
               log: TextIO) -> int:
    """``mutmut run`` on every mutant of one module, in its own work directory."""
    mutmut = Path(sys.executable).with_name("mutmut")
    work = workdir(short, tests_dir, out)
    command = [str(mutmut), "run", "--max-children", str(max_children),
               f"{dotted(MODULES[short][0])}.*"]
    log.write(f"\n$ cd {work} && {' '.join(command[1:])}\n")
    log.flush()
    proc = subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    return proc.returncode


def verdict(name: str, diff: str) -> str:
    """"equivalent: <reason>" when recorded (and still the same change), else "needs a test"."""
    note = EQUIVALENT.get(name)
    if note is None:
        return "needs a test"
    line, reason = note
    if line not in diff:  # the function changed and mutmut renumbered its mutants
        return "needs a test (stale equivalence note)"
    return f"equivalent: {reason}"


def collect(short: str, out: Outputs) -> ModuleResult:
    """Read mutmut's results for one module from its work directory."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    path = MODULES[short][0]
    result = ModuleResult(short, path,
                          finished_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    here = Path.cwd()
    os.chdir(out.work / short)  # mutmut's helpers read mutants/ relative to the working directory
    try:
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in sorted(data.exit_code_by_key.items(), key=lambda kv: _order(kv[0])):
            status = status_by_exit_code[code]
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.mutants += 1
            if status in DETECTED:
                result.killed += 1
                continue
            result.survived += 1
            diff = get_diff_for_mutant(name, path=path)
            found = Survivor(name, status, diff, verdict(name, diff))
            result.equivalent += found.verdict.startswith("equivalent")
            result.survivors.append(found)
    finally:
        os.chdir(here)
    return result


def _order(name: str) -> tuple[str, int]:
    stem, _, n = name.rpartition("__mutmut_")
    return stem, int(n) if n.isdigit() else 0


def merge_previous(results: list[ModuleResult], out: Outputs) -> list[ModuleResult]:
    """``results`` plus the previous report's modules that were not run this time."""
    if not out.json.exists():
        return results
    ran = {r.module for r in results}
    merged = list(results)
    for old in json.loads(out.json.read_text()).get("modules", []):
        if old["module"] in ran or old["module"] not in MODULES:
            continue
        survivors = [Survivor(**s) for s in old.pop("survivors", [])]
        old.pop("kill_rate", None)
        old.pop("adjusted_rate", None)
        merged.append(ModuleResult(**old, survivors=survivors))
    order = list(MODULES)
    return sorted(merged, key=lambda r: order.index(r.module))


def write_reports(results: list[ModuleResult], out: Outputs) -> None:
    """``reports/mutation-python.md`` and ``.json`` from ``results``."""
    total = sum(r.mutants for r in results)
    killed = sum(r.killed for r in results)
    equivalent = sum(r.equivalent for r in results)
    rate = 100.0 * killed / total if total else 100.0
    data = {"tool": "mutmut", "total": total, "killed": killed, "equivalent": equivalent,
            "kill_rate": round(rate, 1),
            "modules": [{**asdict(r), "kill_rate": round(r.kill_rate, 1),
                         "adjusted_rate": round(r.adjusted_rate, 1)} for r in results]}
    out.json.parent.mkdir(parents=True, exist_ok=True)
    out.json.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    out.report.write_text(render(results, total, killed, equivalent, rate))


def render(results: list[ModuleResult], total: int, killed: int, equivalent: int,
           rate: float) -> str:
    """The Markdown report."""
    lines = ["# Python mutation testing (mutmut)", "",
             f"{total} mutants in {len(results)} modules: {killed} killed, {total - killed} "
             f"not ({equivalent} of them recorded as equivalent): kill rate **{rate:.1f} %**.",
             "", "Kill rate = killed / mutants (a timeout or a crash counts as killed); "
             "'without equivalents' leaves out the survivors recorded as equivalent in "
             "`tools/mutation/python_equivalents.py` and `equivalents_*.py`. 'First run' is "
             "the rate of the first mutmut run (`BASELINE`), before the tests written "
             "against its survivors.", "",
             "| module | file | mutants | killed | survived | equivalent | kill rate | "
             "without equivalents | first run |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        before = BASELINE.get(r.module)
        lines.append(f"| {r.module} | `{r.path}` | {r.mutants} | {r.killed} | {r.survived} | "
                     f"{r.equivalent} | {r.kill_rate:.1f} % | {r.adjusted_rate:.1f} % | "
                     f"{f'{before:.1f} %' if before is not None else '-'} |")
    lines += ["", "## Tests each module's mutants run against", "",
              "mutmut runs, for each mutant, the tests of its module's selection that call the "
              "mutated function (recorded in a stats run), fastest first, stopping at the "
              "first failure. None of them needs the browser or runs a notebook.", ""]
    lines += [f"- {r.module}: " + ", ".join(f"`{t}`" for t in MODULES[r.module][1])
              for r in results]
    if EXCLUDED:
        lines += ["", "## Not mutated", ""]
        lines += [f"- `{what}`: {why}" for what, why in EXCLUDED.items()]
    for r in results:
        lines += ["", f"## {r.module} (`{r.path}`)", "",
                  f"{r.mutants} mutants, {r.killed} killed, {r.survived} survived "
                  f"({r.kill_rate:.1f} %); statuses: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
                  + f"; run {r.finished_at}."]
        for s in r.survivors:
            lines += ["", f"### `{s.name}` ({s.status}): {s.verdict}", "", "```diff",
                      s.diff.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run mutmut, write the reports."""
    parser = argparse.ArgumentParser(prog="python -m tools.mutation.python_mutants",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--module", action="append", default=[], metavar="NAME",
                        help=f"a module to mutate (repeatable): {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2,
                        help="mutants tested in parallel (default: the CPU count)")
    parser.add_argument("--fail-under", type=float, default=85.0,
                        help="exit 1 when a module's kill rate is below this percentage")
    parser.add_argument("--tests-dir", type=Path, default=ROOT / "tests",
                        help="the tests to run the mutants against (default: tests/; another "
                             "checkout's tests/ measures before/after)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the report, log and work directories here instead of "
                             "reports/ and build/mutation/")
    parser.add_argument("--report-only", action="store_true",
                        help="do not run mutmut: rewrite the report from the last results")
    args = parser.parse_args(argv)
    modules = resolve(args.module) if args.module else list(MODULES)
    started = time.monotonic()
    results = []
    out = Outputs.under(args.out.resolve()) if args.out else Outputs()
    out.log.parent.mkdir(parents=True, exist_ok=True)
    with out.log.open("a" if args.report_only else "w") as log:
        for short in modules:
            if args.report_only and not (out.work / short / "mutants").is_dir():
                continue
            began = time.monotonic()
            tests = selection(short, args.tests_dir.resolve())
            if not tests and not args.report_only:
                print(f"{short:<12} skipped: none of its tests is in {args.tests_dir}")
                continue
            if not args.report_only:
                # a fresh server per module: it holds the Lua library of this module's copy
                with test_redis():
                    code = run_mutmut(short, args.max_children, args.tests_dir.resolve(),
                                      out, log)
                if code != 0:
                    log.flush()
                    print(out.log.read_text()[-3000:], file=sys.stderr)
                    print(f"mutmut failed on {short} (exit {code}); its output: {out.log}",
                          file=sys.stderr)
                    return 2
            r = collect(short, out)
            results.append(r)
            print(f"{r.module:<12} {r.mutants:>5} mutants {r.killed:>5} killed {r.survived:>4} "
                  f"survived ({r.equivalent} equivalent) {r.kill_rate:5.1f} % "
                  f"({time.monotonic() - began:.0f} s)", flush=True)
            write_reports(merge_previous(results, out), out)
    print(f"report: {out.report} ({time.monotonic() - started:.0f} s)")
    low = [r.module for r in results if r.kill_rate < args.fail_under]
    if low:
        print(f"below {args.fail_under:g} %: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
