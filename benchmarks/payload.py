"""The benchmark payload: a ~300-byte IOC dict (stdlib only, so peer subprocesses can use it)."""

from __future__ import annotations

from typing import Any

MESSAGE_TYPE = "ioc.enrichment.request"


def ioc_payload(seq: int) -> dict[str, Any]:
    """One IOC enrichment request; ``seq`` makes every payload (and dedup key) unique."""
    return {
        "seq": seq,
        "ioc": {"type": "domain", "value": f"c2-{seq:09d}.bad-actor.example.net"},
        "tlp": "AMBER",
        "confidence": 85,
        "severity": "high",
        "source": "phantom-bench-feed",
        "first_seen": "2025-11-27T08:15:00Z",
        "tags": ["c2", "apt29", "phishing", "cobalt-strike"],
        "note": "beaconing seen in sandbox detonation",
    }
