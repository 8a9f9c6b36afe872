"""The Redis Functions library: every server-side operation, assembled from ``lua/``.

Application users only ``FCALL`` these functions; none of them may load code (``SCRIPT``,
``EVAL*``, ``FUNCTION``), so a role cannot run Lua of its own (an infinite loop freezes
Redis; Lua memory is outside ``maxmemory``). The operator loads the library once per
master with ``phantom-notebook deploy`` (``FUNCTION LOAD REPLACE``); functions persist in
RDB/AOF and replicate, so a promoted replica serves them without a reload.

Layout of the sources: one file per function, ``lua/<name>.lua``, its KEYS/ARGV contract
in the header comment, then ``--- @include "<part>"`` lines naming the shared code of
``lua/includes/`` it uses (metrics, trace, dead letters, depth, stream ids, audit). The
library is assembled as::

    #!lua name=phantom_<API>
    local call                        -- bound to redis.call by each function as it starts
    <every include once, in dependency order>
    local function f_<name>(KEYS, ARGV) <body of lua/<name>.lua> end
    redis.register_function{function_name='pn<API>_<name>', callback=f_<name>, flags=...}
    ...
    pn<API>_version: returns BUILD, the digest of everything above

``API`` changes only when a function's KEYS/ARGV contract changes incompatibly: both
libraries can then be loaded side by side during a rolling upgrade (function names are
global across libraries, so they carry the API number). ``BUILD`` changes with any source
change; a client refuses a server whose build differs from its own and names the command
that fixes it.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

API = 1
LIBRARY = f"phantom_{API}"
PREFIX = f"pn{API}_"

#: function -> Redis function flags. allow-oom: must run on a full Redis (settling and
#: reading are what free memory); no-writes: read-only (FCALL_RO, replicas).
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "publish": (),
    "fetch": ("allow-oom",),
    "settle": ("allow-oom",),
    "replay": (),
    "reseal": (),
    "trim_broadcast": ("allow-oom",),
    "audit_append": (),
    "repair_stream": (),
    "claim": ("allow-oom",),
    "snapshot": (),
    "restore": (),
    "cancel": (),
    "throttle": (),
    "fire": (),
    "join": ("allow-oom",),
}

#: shared parts, in the order they are defined (a part may use those before it)
INCLUDES = ("metrics", "trace", "deadletter", "depth", "ids", "xinfo", "audit")
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"\s*$', re.M)


def name(function: str) -> str:
    """The Redis name of one of our functions (``publish`` -> ``pn1_publish``)."""
    return PREFIX + function


@cache
def _read(path: str) -> str:
    return resources.files(__package__).joinpath(path).read_text("utf-8")


def _body(function: str) -> str:
    text = _read(f"lua/{function}.lua")
    for part in _INCLUDE.findall(text):
        if part not in INCLUDES:
            raise ValueError(f"lua/{function}.lua includes unknown part {part!r}")
    return text


@cache
def source() -> tuple[str, str]:
    """The library's code and its build digest (12 hex characters)."""
    lines = [f"#!lua name={LIBRARY}",
             "-- phantom_notebook's server-side functions; assembled by core/backend/library.py",
             "-- redis.call is not readable while the library loads: each function binds it",
             "local call"]
    for part in INCLUDES:
        lines += [f"-- includes/{part}.lua", _read(f"lua/includes/{part}.lua").rstrip()]
    for function, flags in FUNCTIONS.items():
        shown = ", ".join(f"'{f}'" for f in flags)
        lines += [f"-- {function}.lua", f"local function f_{function}(KEYS, ARGV)",
                  "call = redis.call", _body(function).rstrip(), "end",
                  f"redis.register_function{{function_name='{name(function)}', "
                  f"callback=f_{function}, flags={{{shown}}}}}"]
    code = "\n".join(lines) + "\n"
    build = hashlib.sha1(code.encode()).hexdigest()[:12]
    code += (f"redis.register_function{{function_name='{name('version')}', "
             f"callback=function() return '{build}' end, flags={{'no-writes'}}}}\n")
    return code, build


def build() -> str:
    """This client's library build (what ``pn<API>_version`` returns once deployed)."""
    return source()[1]


__all__ = ["API", "FUNCTIONS", "INCLUDES", "LIBRARY", "PREFIX", "build", "name", "source"]
