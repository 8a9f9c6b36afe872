"""Worker processes tune the GC, the GIL switch interval and malloc; notebooks keep the
defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import phantom_notebook as pn
from phantom_notebook.core.config.tuning import is_glibc
from phantom_notebook.core.consume.lane import Lane

SCRIPT = """
import gc, sys
import phantom_notebook as pn
before = (gc.get_threshold()[0], sys.getswitchinterval(), gc.get_freeze_count())
pn.tune_process_for_throughput()
after = (gc.get_threshold()[0], sys.getswitchinterval(), gc.get_freeze_count())
print(before[0], before[1], before[2] == 0, after[0], after[1], after[2] > 0)
"""


def test_tuning_raises_the_gc_threshold_freezes_startup_objects_and_shortens_the_switch() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["700", "0.005", "True", "10000", "0.001", "True"]


FAULTS = """
import resource, sys
import phantom_notebook as pn

def batch():  # what a publish_batch of 1,000 allocates: two ~700 KB buffers, then frees
    a, b = bytearray(700_000), bytearray(700_000)
    a[::4096] = b"x" * len(a[::4096])
    b[::4096] = b"x" * len(b[::4096])

def faults():
    batch(); batch()
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        batch()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
pn.tune_process_for_throughput()
print(before, faults())
"""


@pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")
def test_tuning_keeps_freed_batch_buffers_mapped_instead_of_page_faulting_them_back() -> None:
    before, after = map(int, subprocess.run([sys.executable, "-c", FAULTS],
                                            capture_output=True, text=True,
                                            check=True).stdout.split())
    assert before >= 20 * 100, "CPython's defaults fault the buffers back in every batch"
    assert after < 20, "tuned: the same batches reuse memory that stays mapped"


def test_a_worker_started_in_the_background_leaves_the_process_settings_alone() -> None:
    script = """
import gc, sys
import phantom_notebook as pn
mq = pn.connect()
mq.subscribe("q", "*", lambda m, c: None)
with mq.worker():
    pass
print(gc.get_threshold()[0], sys.getswitchinterval())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["700", "0.005"]


def test_overlap_fits_only_while_worker_processes_leave_a_core_spare(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert [pn.overlap_fits(n) for n in (1, 2, 3)] == [True, False, False]


def test_a_worker_without_overlap_gives_its_lanes_no_helper_thread(mq: pn.MessageQueue) -> None:
    mq.subscribe("q", "*", lambda m, c: None, prefetch_count=10)
    ahead = mq.worker(overlap=True).lanes[0]
    alone = mq.worker(overlap=False).lanes[0]
    assert isinstance(ahead, Lane) and isinstance(alone, Lane)
    assert (ahead._ahead_pool is not None, ahead._chunk) == (True, 5)
    assert (alone._ahead_pool is None, alone._chunk) == (True, 10)


@pytest.mark.parametrize(("cpus", "flags", "expected"), [
    (4, ["--processes", "2"], "--overlap"),
    (2, ["--processes", "2"], "--no-overlap"),
    (4, ["--processes", "1", "--max-processes", "4"], "--no-overlap"),
    (2, ["--processes", "2", "--overlap"], "--overlap"),
])
def test_the_supervisor_gives_children_the_overlap_only_when_a_core_stays_spare(
        monkeypatch: pytest.MonkeyPatch, cpus: int, flags: list[str], expected: str) -> None:
    from phantom_notebook import cli

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    args = cli.parser_of().parse_args(["worker", "mod:setup", *flags])
    max_processes = args.max_processes or args.processes
    command = cli.child_command(args, max_processes)
    assert expected in command and command.count("--overlap") + command.count("--no-overlap") == 1
