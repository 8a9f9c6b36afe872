--[[ fetch: promote due delayed messages, reclaim stale deliveries, read new ones.

KEYS[1..4]  streams s:0 .. s:3
KEYS[5]     delayed zset
KEYS[6]     dlq stream
KEYS[7]     metrics hash (current bucket)
KEYS[8]     trace stream

ARGV[1]  group           ARGV[2]  consumer        ARGV[3]  count (max entries to return)
ARGV[4]  now ms          ARGV[5]  reclaim idle ms (0 = do not reclaim this time)
ARGV[6]  max deliveries  ARGV[7]  promote limit   ARGV[8]  metrics TTL s (0 = off)
ARGV[9]  levels to read, a string of digits in priority order, e.g. "0123" or "2"
ARGV[10] "1" to XDEL dead-lettered entries (0 for broadcast streams shared by groups)
ARGV[11] trace cap in entries (0 = no tracing)
ARGV[12] "1" = probe instead of reading new entries (queues that XDEL what they settle):
         count each level's undelivered entries (XLEN - pending), in priority order until
         they cover the count, for the caller to read with plain XREADGROUPs. Read inside
         Lua, every entry is converted RESP -> Lua -> RESP: ~2 us of server CPU per
         message, 3x a direct read.

Strict priority: level 0 is drained (reclaims first, then new entries) before level 1.
A reclaimed entry whose delivery count exceeds max deliveries is moved to the DLQ (reason
"max_deliveries") in this same call instead of being returned.

Runs under OOM (allow-oom): a full Redis must still hand out and dead-letter what it holds.

Returns { flat entries: level, stream id, the entry's field list (normally {"m", envelope};
          the client dead-letters anything else as decode_failed), delivery count, ...,
          next due ms of the delayed set (or -1), number dead-lettered here,
          probed levels: level, undelivered count, ... (empty unless probing) }
]]
--- @include "metrics"
--- @include "trace"
--- @include "deadletter"
local group, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local reclaim_idle = tonumber(ARGV[5])
local max_deliveries = tonumber(ARGV[6])
local promote_limit = tonumber(ARGV[7])
local metrics_ttl = tonumber(ARGV[8])
local levels = ARGV[9]
local delete = ARGV[10] == '1'
local trace_cap = tonumber(ARGV[11])
local probe = ARGV[12] == '1'
local probed = {}
local dead_items = {}

-- 1. promote due delayed messages (atomic: ZREM in the same call as XADD)
local due = call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, promote_limit)
for _, member in ipairs(due) do
  local level = tonumber(string.sub(member, 1, 1))
  call('XADD', KEYS[level + 1], '*', 'm', string.sub(member, 2))
  call('ZREM', KEYS[5], member)
end

-- XREADGROUP replies {{stream, entries}} (nil when empty); the embedded fakeredis
-- replies {stream, entries} (or {}): accept both shapes
local function entries_of(res)
  if not res or #res == 0 then return {} end
  if type(res[1]) == 'table' then return res[1][2] end
  return res[2]
end

local out = {}
local dead = 0
for li = 1, #levels do
  if remaining <= 0 then break end
  local level = tonumber(string.sub(levels, li, li))
  local stream = KEYS[level + 1]
  -- 2. reclaim deliveries idle longer than the visibility timeout
  if reclaim_idle > 0 then
    local claimed = call('XAUTOCLAIM', stream, group, consumer, reclaim_idle, '0-0',
                         'COUNT', remaining)
    for _, entry in ipairs(claimed[2]) do
      local sid, fields = entry[1], entry[2]
      local info = call('XPENDING', stream, group, sid, sid, 1)
      local n = 1
      if info[1] then n = tonumber(info[1][4]) end
      local envelope = envelope_of(fields) or ''
      if n > max_deliveries then
        dead_letter(KEYS[6], envelope, 'max_deliveries', 'MaxDeliveriesExceeded',
                    'delivered ' .. n .. ' times without an ack (its worker keeps dying?)',
                    '', n, consumer, group, now, now, sid)
        call('XACK', stream, group, sid)
        if delete then call('XDEL', stream, sid) end
        dead = dead + 1
        -- the clear header is canonical JSON with sorted keys: read id and trace id from it
        local mid = string.match(envelope, '"id":"([^"]+)"') or '?'
        local tid = string.match(envelope, '"tp":"00%-(%x+)%-') or ''
        dead_items[#dead_items + 1] = mid .. '|' .. tid .. '|' .. n .. '|max_deliveries'
      else
        out[#out + 1] = level
        out[#out + 1] = sid
        out[#out + 1] = fields
        out[#out + 1] = n
        remaining = remaining - 1
      end
    end
  end
  -- 3. new entries (or, probing, the first level that has some)
  if remaining > 0 and probe then
    local undelivered = call('XLEN', stream) - call('XPENDING', stream, group)[1]
    if undelivered > 0 then
      probed[#probed + 1] = level
      probed[#probed + 1] = undelivered
      remaining = remaining - undelivered
    end
  elseif remaining > 0 then
    local res = call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', remaining,
                     'STREAMS', stream, '>')
    for _, entry in ipairs(entries_of(res)) do
      out[#out + 1] = level
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2]
      out[#out + 1] = 1
      remaining = remaining - 1
    end
  end
end

local delivered = #out / 4
count(KEYS[7], metrics_ttl, 'delivered', delivered)
count(KEYS[7], metrics_ttl, 'dead_lettered', dead)
trace(KEYS[8], trace_cap, 'dead_lettered', consumer, table.concat(dead_items, ';'))

local next_due = -1
local first = call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if first[2] then next_due = tonumber(first[2]) end
return {out, next_due, dead, probed}
