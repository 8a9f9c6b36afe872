--[[ settle: finish a batch of deliveries in one call — ack, retry later, or dead-letter.

KEYS[1..4]  streams s:0 .. s:3
KEYS[5]     delayed zset
KEYS[6]     dlq stream
KEYS[7]     metrics hash (current bucket)
KEYS[8]     trace stream
KEYS[9]     the group's seen hash of the current replay-window bucket (lua/claim.lua)
KEYS[10]    the group's seen hash of the previous bucket
KEYS[11]    the group's running set (global concurrency, see fetch.lua)
KEYS[12]    the wake-up stream: a call that schedules retries for later appends one entry
            (capped at ~64), so an idle consumer blocked past their due time looks again
KEYS[13..]  per stored result: the request's result hash, then its wake-up list
last        the caller's audit stream, when audited (includes/audit.lua)

ARGV[1]  group
ARGV[2]  two digits: "1" to XDEL settled entries (keeps XLEN = depth; "0" on broadcast
         streams), then "1" when the group counts its running entries (global
         concurrency): every entry settled here leaves KEYS[11]
ARGV[3]  now ms
ARGV[4]  metrics TTL s (0 = off)
ARGV[5]  number of ack groups g, then g groups: level, count k, k stream ids (one XACK and
         one XDEL per group of up to 1,000 ids instead of one pair of calls per message)
then     number of retries r, then r groups of 4: level, stream id, due ms, new envelope
then     number of dead letters d, then d groups of 10: level, stream id, envelope, reason,
         error type, error, traceback, attempts, consumer, first failure ms
then     number of results n, then n groups of 7: mode ("a": ack the entry and store its
         result; "d": store it when this call dead-lettered the entry; "x": store it, the
         entry is gone already (fetch dead-lettered it)), level, stream id,
         KEYS index of the result hash (its wake-up list is the next key), sealed result,
         TTL ms, state ("done" or "failed")
then     metric increments: k, then k pairs field, amount (e.g. failed, expired, h:e2e:12)
then     trace cap t (0 = no tracing), consumer, number of events e, then e pairs:
         event name, items ("<id>|<trace id>|<attempt>|<detail>;...")
then     number of unclaims u, then u seen fields: messages handed back untouched (added
         again under a new stream id, so their next delivery is no replay)
then     the audit section, and last its index (0 = not audited)

Each entry is XACKed (and XDELed) in the same call that re-schedules or dead-letters it
(or stores its result: a request's result is written exactly when its entry is acked),
so a crash can never both lose and keep a message. A retry, dead letter or acked result is
written only while the settling consumer (the one named in the trace section) still holds
its entry: once its lease lapsed and another consumer reclaimed the entry, or settled it,
the late outcome writes nothing and the holder's settle counts (plain acks are the group's:
the work is done whoever acks it). Without a consumer name the group's hold is enough.
Dead-letter retention is the operator's (DeadLetterQueue.trim_expired): consumers hold no
XTRIM. Runs under OOM (allow-oom): settling is what frees memory. Returns {acked,
retried, dead}.
]]
--- @include "metrics"
--- @include "trace"
--- @include "deadletter"
--- @include "audit"
local group = ARGV[1]
local delete = string.sub(ARGV[2], 1, 1) == '1'
local track = string.sub(ARGV[2], 2, 2) == '1'
local now = tonumber(ARGV[3])
local metrics_ttl = tonumber(ARGV[4])

local refused = audit_first(KEYS, ARGV, KEYS[7], metrics_ttl)
if refused then return refused end

-- the settling consumer: step over the sections before the trace section that names it
local function settling_consumer()
  local q = 6
  for _ = 1, tonumber(ARGV[5]) do q = q + 2 + tonumber(ARGV[q + 1]) end
  q = q + 1 + 4 * tonumber(ARGV[q])   -- retries
  q = q + 1 + 10 * tonumber(ARGV[q])  -- dead letters
  q = q + 1 + 7 * tonumber(ARGV[q])   -- results
  q = q + 1 + 2 * tonumber(ARGV[q])   -- metric increments
  return ARGV[q + 1]                  -- after the trace cap
end
local consumer = settling_consumer()

-- settle one entry the settling consumer holds: 1, else 0 (nothing touched)
local function finish(level, sid)
  local stream = KEYS[tonumber(level) + 1]
  if consumer ~= '' then
    local held = call('XPENDING', stream, group, sid, sid, 1)[1]
    if not held or held[2] ~= consumer then return 0 end
  end
  local n = call('XACK', stream, group, sid)
  if delete then call('XDEL', stream, sid) end
  if track then call('ZREM', KEYS[11], level .. ':' .. sid) end
  return n
end

local p = 5
local groups = tonumber(ARGV[p]); p = p + 1
local acked = 0
for _ = 1, groups do
  local level = ARGV[p]
  local stream, count_ = KEYS[tonumber(level) + 1], tonumber(ARGV[p + 1])
  p = p + 2
  local last = p + count_ - 1
  while p <= last do
    local upto = math.min(p + 999, last)
    acked = acked + call('XACK', stream, group, unpack(ARGV, p, upto))
    if delete then call('XDEL', stream, unpack(ARGV, p, upto)) end
    if track then
      local leases = {}
      for i = p, upto do leases[#leases + 1] = level .. ':' .. ARGV[i] end
      call('ZREM', KEYS[11], unpack(leases))
    end
    p = upto + 1
  end
end

local retries = tonumber(ARGV[p]); p = p + 1
local retried = 0
local later = nil
for _ = 1, retries do
  local level, sid, due, env = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2]), ARGV[p + 3]
  p = p + 4
  -- only re-schedule what this consumer still holds: a stale settle must not duplicate
  if finish(level, sid) == 1 then
    if due > now then
      call('ZADD', KEYS[5], due, level .. env)
      if not later or due < later then later = due end
    else
      call('XADD', KEYS[tonumber(level) + 1], '*', 'm', env)
    end
    retried = retried + 1
  end
end
if later then call('XADD', KEYS[12], 'MAXLEN', '~', 64, '*', 'd', later) end

local deads = tonumber(ARGV[p]); p = p + 1
local dead = 0
local died = {}
for _ = 1, deads do
  if finish(ARGV[p], ARGV[p + 1]) == 1 then
    died[ARGV[p + 1]] = true
    dead_letter(KEYS[6], ARGV[p + 2], ARGV[p + 3], ARGV[p + 4], ARGV[p + 5], ARGV[p + 6],
                ARGV[p + 7], ARGV[p + 8], group, ARGV[p + 9], now, ARGV[p + 1])
    dead = dead + 1
  end
  p = p + 10
end

local results = tonumber(ARGV[p]); p = p + 1
for _ = 1, results do
  local mode, level, sid = ARGV[p], ARGV[p + 1], ARGV[p + 2]
  local store = false
  if mode == 'a' then
    store = finish(level, sid) == 1
    if store then acked = acked + 1 end
  elseif mode == 'd' then
    store = died[sid] == true
  else
    store = true
  end
  if store then
    local key, ttl = KEYS[tonumber(ARGV[p + 3])], tonumber(ARGV[p + 5])
    local wake = KEYS[tonumber(ARGV[p + 3]) + 1]
    call('HSET', key, 's', ARGV[p + 6], 'v', ARGV[p + 4], 'at', now)
    call('PEXPIRE', key, ttl)
    call('DEL', wake)
    call('RPUSH', wake, '1')
    call('PEXPIRE', wake, ttl)
  end
  p = p + 7
end

local k = tonumber(ARGV[p]); p = p + 1
count(KEYS[7], metrics_ttl, 'acked', acked)
count(KEYS[7], metrics_ttl, 'retried', retried)
count(KEYS[7], metrics_ttl, 'dead_lettered', dead)
for _ = 1, k do
  count(KEYS[7], metrics_ttl, ARGV[p], tonumber(ARGV[p + 1]))
  p = p + 2
end

local trace_cap = tonumber(ARGV[p])  -- then the consumer (read above)
local events = tonumber(ARGV[p + 2]); p = p + 3
for _ = 1, events do
  trace(KEYS[8], trace_cap, ARGV[p], consumer, ARGV[p + 1])
  p = p + 2
end
local u = tonumber(ARGV[p]); p = p + 1
if u > 0 then
  call('HDEL', KEYS[9], unpack(ARGV, p, p + u - 1))
  call('HDEL', KEYS[10], unpack(ARGV, p, p + u - 1))
end
return {acked, retried, dead}
