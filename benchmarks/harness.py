"""Shared machinery: the redis-server, sizes, feature profiles, raw codecs and result records."""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.redis_server import RedisServer

PROFILES = ("off", "on")
ROOT = Path(__file__).resolve().parent.parent
BENCH_KEY = bytes(range(32))  # a fixed, public test key: benchmarks only
HMAC_KEY = bytes(range(32, 64))
ORIGIN = "bench"
_HEAD = struct.Struct(">BI")


# -- sizes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """How many messages each scenario moves."""

    single: int
    batch: int
    consume: int
    probes: int
    delayed: int
    depth: int
    peers: int
    worker_timeout_s: float
    requests: int  # per request/reply latency measurement, paced at 1k/s
    groups: int  # fan-out/fan-in groups per round

    @classmethod
    def for_mode(cls, mode: str, depth: int | None = None) -> Sizes:
        """``smoke`` (seconds), ``quick`` (a few minutes) or ``full``."""
        table = {
            "smoke": cls(200, 2_000, 2_000, 60, 60, 2_000, 200, 30, 200, 100),
            "quick": cls(5_000, 100_000, 100_000, 1_000, 600, 100_000, 2_000, 120, 3_000,
                         1_000),
            "full": cls(20_000, 300_000, 300_000, 10_000, 2_000, 1_000_000, 20_000, 600,
                        20_000, 20_000),
        }
        sizes = table[mode]
        return dataclasses.replace(sizes, depth=depth) if depth else sizes


# -- results ------------------------------------------------------------------------------------

@dataclass
class Result:
    """One measured scenario: ours next to the raw ceiling, with the issue's target."""

    scenario: str
    profile: str
    unit: str
    ours: float | None
    ceiling: float | None = None
    higher_is_better: bool = True
    target: str = ""
    passed: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """ours / ceiling (for throughput higher is better; for ms and bytes lower is)."""
        if self.ours is None or not self.ceiling:
            return None
        return self.ours / self.ceiling

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict including the ratio."""
        return {**dataclasses.asdict(self), "ratio": self.ratio}


def judge(result: Result, target: str, *checks: bool) -> Result:
    """Attach ``target`` and its verdict (all ``checks`` true) to ``result``."""
    result.target = target
    result.passed = bool(checks) and all(checks)
    return result


def percentiles(values: Sequence[float], *qs: float) -> list[float]:
    """Nearest-rank percentiles of ``values`` (``qs`` in 0..100); NaN when empty."""
    if not values:
        return [float("nan")] * len(qs)
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, int(round(q / 100 * n + 0.5)) - 1))] for q in qs]


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` took (perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- the server -----------------------------------------------------------------------------------

class BenchServer:
    """Our own redis-server on a free port (no persistence), flushed between scenarios."""

    def __init__(self, url: str | None = None) -> None:
        self._server: RedisServer | None = None
        if url is None:
            self._server = RedisServer().start()
            url = self._server.url
        self.url = url
        self.client = redis.Redis.from_url(url)

    def flush(self) -> None:
        """Remove every key (each scenario starts from an empty server)."""
        self.client.flushall()

    def used_memory(self) -> int:
        """``INFO memory`` used_memory in bytes."""
        return int(self.client.info("memory")["used_memory"])

    def version(self) -> str:
        """The redis-server version."""
        return str(self.client.info("server")["redis_version"])

    def close(self) -> None:
        """Stop the server if we started it."""
        self.client.close()
        if self._server is not None:
            self._server.close()


# -- feature profiles -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Features:
    """What a profile turned on; publishers read ``dedup`` to pass dedup keys."""

    profile: str
    metrics: bool
    tracing: bool
    dedup: bool
    encryption: bool
    signing: bool

    def label(self) -> str:
        """A short description for the report."""
        on = [n for n in ("metrics", "tracing", "dedup", "encryption", "signing")
              if getattr(self, n)]
        return "+".join(on) or "nothing"


def configure(mq: Any, profile: str, **queue_overrides: Any) -> Features:
    """Switch ``mq``'s features for ``profile`` ("off" or "on"); call before any declare.

    Today: metrics and tracing flags, dedup keys on publish, and — when the security
    layer is importable — AES-256-GCM sealing and HMAC origin signing via ``SealingCodec``.
    ``queue_overrides`` (e.g. ``max_queue_size``) apply to every queue of ``mq``.
    """
    on = profile == "on"
    defaults = mq.settings.queue_defaults.replace(
        enable_metrics=on, enable_tracing=on, **queue_overrides)
    mq.settings = dataclasses.replace(mq.settings, queue_defaults=defaults, queues={})
    encryption = signing = False
    if on:
        try:
            from phantom_notebook.core.security.keyring import KeyRing, SecretKey
            from phantom_notebook.core.security.sealing import (
                OriginSigner,
                OriginVerifier,
                SealingCodec,
            )
        except ImportError:  # pragma: no cover - the security layer is not there yet
            pass
        else:
            # ENCRYPTION plugs in here: one AES-256-GCM key ring (fixed bench key)
            ring = KeyRing([SecretKey("bench", BENCH_KEY)])
            # ORIGIN SIGNING plugs in here: HMAC-SHA256 signer (producers) + verifier
            signer = OriginSigner(ORIGIN, HMAC_KEY)
            verifier = OriginVerifier({ORIGIN: HMAC_KEY})
            mq.codec = SealingCodec(ring, signer=signer, verifier=verifier)
            mq.origin = ORIGIN
            encryption = signing = True
    return Features(profile, metrics=on, tracing=on, dedup=on, encryption=encryption,
                    signing=signing)


def connect(url: str, prefix: str, profile: str, **queue_overrides: Any) -> tuple[Any, Features]:
    """A ``MessageQueue`` on ``url`` under ``prefix``, configured for ``profile``.

    ``PN_BENCH_REPLAY_WINDOW_S`` overrides the queues' replay window (0 = no replay claim),
    for measuring what the claim costs.
    """
    import phantom_notebook as pn

    window = os.environ.get("PN_BENCH_REPLAY_WINDOW_S")
    if window is not None:
        queue_overrides = {**queue_overrides, "replay_window_s": float(window)}
    mq = pn.connect(url, key_prefix=prefix, settings=pn.Settings())
    return mq, configure(mq, profile, **queue_overrides)


# -- the raw ceiling's codec ----------------------------------------------------------------------

class RawCodec:
    """What the raw redis-py ceiling does per message: orjson, plus AES-256-GCM when "on".

    It writes the same wire shape as ours (version byte, header length, header, body) with
    a header template of the same size, so stored bytes match ours within a few bytes.
    """

    def __init__(self, profile: str, header: bytes = b"") -> None:
        self.encrypt = profile == "on"
        self.aead = AESGCM(BENCH_KEY)
        self.header = header or orjson.dumps({"id": "0" * 26, "t": "ioc.enrichment.request",
                                              "q": "bench", "p": 2, "c": 0, "tp": "0" * 55})
        self.prefix = _HEAD.pack(1, len(self.header)) + self.header

    def encode(self, payload: Any) -> bytes:
        """Wire bytes for ``payload``."""
        body = orjson.dumps(payload)
        if not self.encrypt:
            return self.prefix + body
        nonce = os.urandom(12)
        return self.prefix + nonce + self.aead.encrypt(nonce, body, self.prefix)

    def decode(self, raw: bytes) -> Any:
        """The payload of wire bytes."""
        _, hlen = _HEAD.unpack_from(raw)
        start = _HEAD.size + hlen
        if not self.encrypt:
            return orjson.loads(raw[start:])
        body = self.aead.decrypt(raw[start:start + 12], raw[start + 12:], raw[:start])
        return orjson.loads(body)


def header_of(raw: bytes) -> bytes:
    """The header bytes of one of our envelopes (to give the raw codec the same size)."""
    _, hlen = _HEAD.unpack_from(raw)
    return raw[_HEAD.size:_HEAD.size + hlen]


# -- subprocesses -----------------------------------------------------------------------------

def spawn(role: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start ``python -m benchmarks.procs <role> <spec json>`` in the project root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.procs", role,
                             orjson.dumps(spec).decode()], cwd=ROOT, env=env)


def reap(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float = 20.0) -> None:
    """Wait for ``procs``; kill any still running after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
