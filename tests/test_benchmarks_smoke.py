"""The benchmark harness runs end to end at a tiny size, so it cannot rot."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "publish.single", "publish.batch100", "publish.batch1000", "consume.1proc",
    "consume.2proc", "latency.critical@2k.p50", "latency.critical@2k.p99",
    "latency.critical@2k.p999", "latency.critical@10k.p50", "latency.critical@10k.p99",
    "latency.critical@10k.p999", "delayed.lateness.p50", "delayed.lateness.p99",
    "depth.publish", "depth.memory", "depth.stats", "depth.drain",
    "request.reply@1k.p50", "request.reply@1k.p99", "request.plain@1k.p50",
    "request.plain@1k.p99", "group.fanout3",
}
# ratio-free scenarios (no raw equivalent) and lateness (can be ~0 or negative by design)
NO_CEILING = {"depth.stats", "delayed.lateness.p50", "delayed.lateness.p99"}


@pytest.mark.timeout(150)
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_smoke_run_writes_every_scenario(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "phantom_notebook vs raw redis-py ceiling" in proc.stdout

    [report] = tmp_path.glob("bench-*.json")
    [chart] = tmp_path.glob("bench-*.html")
    assert chart.stat().st_size > 1_000_000  # plotly.js embedded: opens offline
    doc = json.loads(report.read_text())
    assert doc["meta"]["mode"] == "smoke"
    seen: dict[tuple[str, str], dict[str, object]] = {
        (r["scenario"], r["profile"]): r for r in doc["results"]}
    for profile in ("off", "on"):
        for name in EXPECTED:
            r = seen.get((name, profile))
            assert r is not None, f"{name} [{profile}] missing"
            ours = r["ours"]
            assert isinstance(ours, float | int) and math.isfinite(ours), (name, profile, r)
            if not name.startswith("delayed."):
                assert ours > 0, (name, profile, r)
            if name not in NO_CEILING:
                ceiling = r["ceiling"]
                assert isinstance(ceiling, float | int) and ceiling > 0, (name, profile, r)
                assert isinstance(r["ratio"], float) and r["ratio"] > 0
    judged = [r for r in doc["results"] if r["passed"] is not None]
    assert {r["scenario"] for r in judged} >= {"publish.batch1000", "consume.1proc",
                                                "depth.memory", "depth.stats"}
