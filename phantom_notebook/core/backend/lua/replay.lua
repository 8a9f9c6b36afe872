--[[ replay: move a batch of dead letters back into their queue, atomically.

KEYS[1..4]  streams s:0 .. s:3
KEYS[5]     delayed zset (only read: it counts towards the queue size)
KEYS[6]     dlq stream
KEYS[7]     metrics hash (current bucket)
KEYS[8]     the queue's meta hash (dlq_removed counts what left the DLQ legitimately)

ARGV[1]  max queue size (0 = unbounded); depth = sum XLEN(streams) + ZCARD(delayed)
ARGV[2]  metrics TTL s (0 = off)
ARGV[3]  number of dead letters n, then n groups of 3:
         dlq entry id, level (0-3), new envelope (a fresh message re-sealed by the caller)

Each dead letter still in the DLQ is XADDed to its level stream and XDELed from the DLQ in
this same call, so a dead letter is never both replayed and kept, nor lost. One that is
gone already (replayed or purged by someone else meanwhile) is skipped, never duplicated.

Returns an array of n integers: 1 = replayed, 0 = skipped (no longer in the DLQ).
Errors "QUEUE_FULL <depth> <max>" when the batch does not fit (nothing is written).
KEYS[9] is the caller's audit stream and the last argument the audit section's index
(0 = not audited), as for every audited function (includes/audit.lua).
]]
--- @include "metrics"
--- @include "depth"
--- @include "audit"
local max_size = tonumber(ARGV[1])
local metrics_ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

-- Refuse before writing anything. ACLs are checked command by command and a script is not
-- rolled back when one fails: a user that may XADD to the streams but not XDEL dead
-- letters would get its new messages in and then fail, the letter replayed and kept.
-- (redis.acl_check_cmd is Redis >= 7.0; the embedded Redis has no ACLs.)
if redis.acl_check_cmd and not (redis.acl_check_cmd('XDEL', KEYS[6], '0-1') and
    redis.acl_check_cmd('HINCRBY', KEYS[8], 'dlq_removed', '1')) then
  return redis.error_reply('NOPERM this user may not remove dead letters of this queue: ' ..
                           'a replay needs the manage grant')
end
local full = room(KEYS, KEYS[5], max_size, n)
if full then return full end
local refused = audit_first(KEYS, ARGV, KEYS[7], metrics_ttl)
if refused then return refused end

local out = {}
local replayed = 0
for i = 0, n - 1 do
  local b = 4 + i * 3
  local dlq_id, level = ARGV[b], tonumber(ARGV[b + 1])
  -- XRANGE id id: empty when the entry is gone (same emptiness on fakeredis)
  local found = call('XRANGE', KEYS[6], dlq_id, dlq_id)
  if #found > 0 then
    call('XADD', KEYS[level + 1], '*', 'm', ARGV[b + 2])
    call('XDEL', KEYS[6], dlq_id)
    out[#out + 1] = 1
    replayed = replayed + 1
  else
    out[#out + 1] = 0
  end
end

count(KEYS[7], metrics_ttl, 'replayed', replayed)
if replayed > 0 then call('HINCRBY', KEYS[8], 'dlq_removed', replayed) end
return out
