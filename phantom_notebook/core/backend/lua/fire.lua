--[[ fire: one tick of a recurring schedule, at most once however many schedulers race.

KEYS[1..4]  streams s:0 .. s:3 of the (partition of the) queue the schedule fires into
KEYS[5]     delayed (zset; counted by the bounded-queue check only)
KEYS[6]     fired   (hash: schedule name -> the last tick fired, epoch ms)
KEYS[7]     metrics (hash of the current time bucket)
KEYS[8]     trace   (capped stream of lifecycle events)
KEYS[9]     the caller's audit stream, when audited (includes/audit.lua)

ARGV[1]  schedule name
ARGV[2]  tick (epoch ms): fired only when newer than the last one fired and than ARGV[3]
ARGV[3]  floor (epoch ms): the client's lower bound (the schedule's creation, resume or
         timing change, and the ticks fired in other partitions before a repartition)
ARGV[4]  max queue size (0 = unbounded)
ARGV[5]  metrics bucket TTL in seconds (0 = no metrics)
ARGV[6]  trace stream cap in entries (0 = no tracing)
ARGV[7]  actor written to the trace
ARGV[8]  priority level 0-3 of the message
ARGV[9]  trace item "<id>|<trace id>|1|schedule <name> tick <ms>"
ARGV[10] the sealed envelope (built and sealed by the client, headers pn-schedule, pn-tick)
then the audit section, and last its index (0 = not audited)

The bound check, the claim, the audit entry and the write are one atomic step: of N
schedulers calling with the same tick exactly one writes a message; the others (and any
call for an older tick) get {0, last} and write nothing, not even their audit entry.

Returns {1, tick} when the message was written, {0, last tick fired} when the tick was
already fired (or is not newer than the floor). Errors "QUEUE_FULL <depth> <max>" (the tick
is not claimed: a later call may still fire it) and "AUDIT_FAILED ..." (the claim is
undone: nothing written).
]]
--- @include "metrics"
--- @include "trace"
--- @include "depth"
--- @include "audit"
local name, tick = ARGV[1], tonumber(ARGV[2])
local last = tonumber(call('HGET', KEYS[6], name) or '0')
if tick <= last or tick <= tonumber(ARGV[3]) then
  return {0, math.max(last, tonumber(ARGV[3]))}
end
local full = room(KEYS, KEYS[5], tonumber(ARGV[4]), 1)
if full then return full end
-- the claim is the first write: a caller whose ACL lacks it is refused before anything
-- (its audit entry included) is written
call('HSET', KEYS[6], name, ARGV[2])
local metrics_ttl = tonumber(ARGV[5])
local refused = audit_first(KEYS, ARGV, KEYS[7], metrics_ttl)
if refused then
  if last > 0 then call('HSET', KEYS[6], name, last) else call('HDEL', KEYS[6], name) end
  return refused
end
call('XADD', KEYS[tonumber(ARGV[8]) + 1], '*', 'm', ARGV[10])
count(KEYS[7], metrics_ttl, 'published', 1)
trace(KEYS[8], tonumber(ARGV[6]), 'published', ARGV[7], ARGV[9])
return {1, tick}
