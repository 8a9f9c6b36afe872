"""The asyncio client packs commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

import redis.asyncio as aredis

from phantom_notebook.aio.client import _with_hiredis_packing


def test_hiredis_packing_writes_the_bytes_redis_py_writes_for_every_argument_kind() -> None:
    packed, plain = _with_hiredis_packing(aredis.Connection)(), aredis.Connection()
    for args in (("FCALL", "pn1_publish", 3, "k1", b"k2", 7, 1.5, b"\x00\xff", "x" * 10_000),
                 ("CLIENT SETNAME", "worker-1"),  # a two-word command name
                 ("SET", "k", memoryview(b"view"))):  # not a hiredis type: redis-py packs it
        assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args))
