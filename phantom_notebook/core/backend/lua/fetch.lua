--[[ fetch: promote due delayed messages, reclaim stale deliveries, read new ones.

KEYS[1..4]  streams s:0 .. s:3
KEYS[5]     delayed zset
KEYS[6]     dlq stream
KEYS[7]     metrics hash (current bucket)
KEYS[8]     trace stream
KEYS[9]     the queue's meta hash ("paused" / "paused:<group>" stop deliveries)
KEYS[10]    the limiter hash (field ARGV[18] -> GCRA theoretical arrival time, us)
KEYS[11]    the group's running set (zset "<level>:<stream id>" -> lease expiry ms)

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
ARGV[13] rate limit: emission interval T in us (0 = no limit)
ARGV[14] rate limit: burst tolerance tau in us (burst b: tau = (b - 1) * T)
ARGV[15] deliveries the caller made outside this function since its last call (a
         blocking read, local retries): charged to the limiter first
ARGV[16] global concurrency: most deliveries in flight across every consumer (0 = off)
ARGV[17] lease ms of a running entry (a crashed consumer's lease lapses)
ARGV[18] the limiter's field ("g:<group>")

Flow control (rides in this call: no extra round trip): a paused queue or group delivers
nothing; GCRA (generic cell rate algorithm, Redis TIME so every machine shares one clock)
grants at most floor((now + tau - TAT) / T) + 1 deliveries and advances TAT by T per
delivery: over any window W at most W / T + b are handed out. Global concurrency grants
what the running set has room for and adds every delivery to it (settle removes them).
What is over a limit stays where it is — not failed, not retried, holding no worker.

Strict priority: level 0 is drained (reclaims first, then new entries) before level 1.
A reclaimed entry whose delivery count exceeds max deliveries is moved to the DLQ (reason
"max_deliveries") in this same call instead of being returned.

Runs under OOM (allow-oom): a full Redis must still hand out and dead-letter what it holds.

Returns { flat entries: level, stream id, the entry's field list (normally {"m", envelope};
          the client dead-letters anything else as decode_failed), delivery count, ...,
          next due ms of the delayed set (or -1), number dead-lettered here,
          probed levels: level, undelivered count, ... (empty unless probing),
          throttle: 0 none, 1 paused, 2 rate limited, 3 at global concurrency,
          wait ms until the limiter grants again (rate limited), deliveries granted,
          the envelopes dead-lettered here that are requests or group members (their
          clear header names pn-reply or pn-member: the caller stores their failure) }
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
local interval, tau = tonumber(ARGV[13]), tonumber(ARGV[14])
local charge, max_running = tonumber(ARGV[15]), tonumber(ARGV[16])
local lease_ms, limiter = tonumber(ARGV[17]), ARGV[18]
local probed = {}
local dead_items = {}

-- 1. promote due delayed messages (atomic: ZREM in the same call as XADD)
local due = call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, promote_limit)
for _, member in ipairs(due) do
  local level = tonumber(string.sub(member, 1, 1))
  call('XADD', KEYS[level + 1], '*', 'm', string.sub(member, 2))
  call('ZREM', KEYS[5], member)
end

local function next_due_ms()
  local first = call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end

-- flow control: paused, rate limit, global concurrency
if call('HGET', KEYS[9], 'paused') or call('HGET', KEYS[9], 'paused:' .. group) then
  return {{}, next_due_ms(), 0, {}, 1, 0, 0, {}}
end
local throttle, wait = 0, 0
local tat, clock = 0, 0
if interval > 0 then
  local t = call('TIME')
  clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  tat = math.max(tonumber(call('HGET', KEYS[10], limiter) or 0), clock) + charge * interval
  local n = math.floor((clock + tau - tat) / interval) + 1
  if n < remaining then
    remaining = math.max(n, 0)
    if remaining == 0 then
      throttle = 2
      wait = math.ceil((tat - tau - clock) / 1000)
    end
  end
end
if max_running > 0 then
  call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now)  -- leases of crashed consumers lapse
  local room = max_running - call('ZCARD', KEYS[11])
  if room < remaining then
    remaining = math.max(room, 0)
    if remaining == 0 and throttle == 0 then throttle = 3 end
  end
end
local granted = remaining
if granted == 0 then
  if interval > 0 and charge > 0 then call('HSET', KEYS[10], limiter, tat) end
  if throttle > 0 then count(KEYS[7], metrics_ttl, 'throttled', 1) end  -- waiting for a limit
  return {{}, next_due_ms(), 0, {}, throttle, wait, 0, {}}
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
local answered = {}
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
        if string.find(envelope, '"pn-reply"', 1, true) or
            string.find(envelope, '"pn-member"', 1, true) then
          answered[#answered + 1] = envelope
        end
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

if interval > 0 then
  -- charge what is handed out: read here, or about to be read by the caller (probed)
  local taken = delivered
  for i = 2, #probed, 2 do taken = taken + probed[i] end
  taken = math.min(taken, granted)
  if taken > 0 or charge > 0 then call('HSET', KEYS[10], limiter, tat + taken * interval) end
end
if max_running > 0 and delivered > 0 then
  local leases, expiry = {}, now + lease_ms
  for i = 1, #out, 4 do
    leases[#leases + 1] = expiry
    leases[#leases + 1] = out[i] .. ':' .. out[i + 1]
  end
  call('ZADD', KEYS[11], unpack(leases))
end
return {out, next_due_ms(), dead, probed, 0, 0, granted, answered}
