"""Worker processes tune the GC and the GIL switch interval; notebooks keep the defaults."""

from __future__ import annotations

import subprocess
import sys

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
