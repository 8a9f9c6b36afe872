"""Process settings for a process that streams messages (worker processes, bulk producers).

Three process defaults cost a message-streaming process real throughput:

* the cyclic GC's first-generation threshold (700 allocations): each message allocates
  about ten container objects (envelope, header and payload dicts, context, tuples), so a
  collection ran every ~70 messages and re-scanned the in-flight batch each time, while
  every full collection re-scanned the startup objects (modules, settings, clients);
* the GIL switch interval (5 ms): a lane's helper thread, which settles one batch and
  fetches the next while handlers run, waited up to 5 ms for the GIL after each reply;
* glibc's malloc trimming: a ``publish_batch`` of 1,000 packs a ~700 KB command (the
  packed buffer and its ``bytes``); glibc handed both back to the kernel after each batch
  and took ~320 page faults per batch to get them again (0.3 per message, ~0.5 us of the
  ~14 us a message costs; batches of 250 stay below its thresholds and took none).

``tune_process_for_throughput`` freezes what exists at startup, collects every 10,000
allocations, switches threads every 1 ms and, on glibc, serves blocks up to 4 MiB from the
heap and keeps up to 32 MiB of freed heap top (``mallopt``) instead of returning it at
once. Measured on the consume path (docs/architecture.md): ~15 % less CPU from the GC
settings, ~10 % more throughput from the switch interval. Reference counting still frees
almost everything at once; only cyclic garbage waits a little longer. Process-wide, so
``Worker.run`` (worker processes) applies it and ``Worker.start`` (notebooks) does not.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

GC_GEN0 = 10_000
SWITCH_INTERVAL_S = 0.001
MMAP_THRESHOLD_BYTES = 4 << 20
TRIM_THRESHOLD_BYTES = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


def tune_process_for_throughput(gen0: int = GC_GEN0,
                                switch_interval_s: float = SWITCH_INTERVAL_S) -> None:
    """Apply the GC, GIL and malloc settings above to this process (idempotent)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 1), gen1, gen2)
    sys.setswitchinterval(switch_interval_s)
    keep_freed_memory()


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_BYTES,
                      trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """On glibc, keep freed memory for reuse instead of page-faulting it back per batch.

    Blocks up to ``mmap_threshold`` come from the heap (not a fresh ``mmap`` each time) and
    up to ``trim_threshold`` of free heap top stays mapped. Returns False where there is no
    glibc ``mallopt`` (musl, macOS, Windows): nothing is changed there.
    """
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
                and mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def is_glibc() -> bool:
    """True when this process runs on GNU libc (whose ``mallopt`` the settings use)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def overlap_fits(processes: int = 1) -> bool:
    """True when ``processes`` worker processes leave this host a spare core.

    A lane that works one batch ahead (its helper thread settles and fetches while handlers
    run) uses a second core; when every core is already busy with a worker process the
    overlap only adds thread hand-offs and half-size batches. Measured on 2 cores: one
    process 57-66k -> 73-74k msg/s with the overlap, two processes 97-117k -> 80-97k.
    """
    return (os.cpu_count() or 1) > processes
