--[[ cancel: remove one waiting message (ready, delayed, retrying); flag one in flight.

KEYS[1..4]  streams s:0 .. s:3      KEYS[5]  delayed      KEYS[6]  metrics (current bucket)
KEYS[7]     trace stream            KEYS[8]  the queue's cancel hash (message id -> ms)

ARGV[1]  "s" (a stream entry) or "d" (a member of the delayed set)
ARGV[2]  the entry's level (s)      ARGV[3]  its stream id (s), or the member (d)
ARGV[4]  the message id             ARGV[5]  its trace item ("<id>|<trace id>|<attempt>|")
ARGV[6]  metrics TTL s (0 = off)    ARGV[7]  trace cap (0 = off)    ARGV[8]  actor
ARGV[9]  how long an in-flight flag is kept (ms)   ARGV[10] now ms

A stream entry some consumer group holds (pending) is in flight: it is not removed but
flagged in KEYS[8], where its worker sees it (``context.cancelled``; the handler may stop;
what it settles then is acked, never retried). Anything else found is removed in this
same call, counted as "cancelled" and traced. Returns 1 removed, 2 flagged in flight,
0 not there any more (settled, promoted or moved since the caller found it).
]]
--- @include "metrics"
--- @include "trace"
--- @include "xinfo"
local kind, level, what, mid = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local item, metrics_ttl, trace_cap, actor = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
if kind == 'd' then
  if call('ZREM', KEYS[5], what) == 0 then return 0 end
else
  local stream = KEYS[level + 1]
  if #call('XRANGE', stream, what, what) == 0 then return 0 end
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if not groups.err then
    for _, g in ipairs(groups) do
      if #call('XPENDING', stream, xinfo_field(g, 'name'), what, what, 1) > 0 then
        call('HSET', KEYS[8], mid, ARGV[10])
        call('PEXPIRE', KEYS[8], tonumber(ARGV[9]))
        trace(KEYS[7], trace_cap, 'cancel_requested', actor, item)
        return 2
      end
    end
  end
  call('XDEL', stream, what)
end
count(KEYS[6], metrics_ttl, 'cancelled', 1)
trace(KEYS[7], trace_cap, 'cancelled', actor, item)
return 1
