--[[ settle: finish a batch of deliveries in one call — ack, retry later, or dead-letter.

KEYS[1..4]  streams s:0 .. s:3
KEYS[5]     delayed zset
KEYS[6]     dlq stream
KEYS[7]     metrics hash (current bucket)
KEYS[8]     trace stream

ARGV[1]  group
ARGV[2]  "1" to XDEL settled entries (keeps XLEN = depth); "0" on broadcast streams
ARGV[3]  now ms
ARGV[4]  metrics TTL s (0 = off)
ARGV[5]  dead-letter retention ms (entries older than this are trimmed from the DLQ)
ARGV[6]  number of ack groups g, then g groups: level, count k, k stream ids (one XACK and
         one XDEL per group of up to 1,000 ids instead of one pair of calls per message)
then     number of retries r, then r groups of 4: level, stream id, due ms, new envelope
then     number of dead letters d, then d groups of 10: level, stream id, envelope, reason,
         error type, error, traceback, attempts, consumer, first failure ms
then     metric increments: k, then k pairs field, amount (e.g. failed, expired, h:e2e:12)
then     trace cap t (0 = no tracing), consumer, number of events e, then e pairs:
         event name, items ("<id>|<trace id>|<attempt>|<detail>;...")

Each entry is XACKed (and XDELed) in the same call that re-schedules or dead-letters it,
so a crash can never both lose and keep a message. Returns {acked, retried, dead}.
]]
local group = ARGV[1]
local delete = ARGV[2] == '1'
local now = tonumber(ARGV[3])
local metrics_ttl = tonumber(ARGV[4])
local dlq_retention = tonumber(ARGV[5])

local function finish(level, sid)
  local stream = KEYS[tonumber(level) + 1]
  local n = redis.call('XACK', stream, group, sid)
  if delete then redis.call('XDEL', stream, sid) end
  return n
end

local p = 6
local groups = tonumber(ARGV[p]); p = p + 1
local acked = 0
for _ = 1, groups do
  local stream, count = KEYS[tonumber(ARGV[p]) + 1], tonumber(ARGV[p + 1])
  p = p + 2
  local last = p + count - 1
  while p <= last do
    local upto = math.min(p + 999, last)
    acked = acked + redis.call('XACK', stream, group, unpack(ARGV, p, upto))
    if delete then redis.call('XDEL', stream, unpack(ARGV, p, upto)) end
    p = upto + 1
  end
end

local retries = tonumber(ARGV[p]); p = p + 1
local retried = 0
for _ = 1, retries do
  local level, sid, due, env = ARGV[p], ARGV[p + 1], tonumber(ARGV[p + 2]), ARGV[p + 3]
  p = p + 4
  -- only re-schedule what this group still holds: a stale settle must not duplicate
  if finish(level, sid) == 1 then
    if due > now then
      redis.call('ZADD', KEYS[5], due, level .. env)
    else
      redis.call('XADD', KEYS[tonumber(level) + 1], '*', 'm', env)
    end
    retried = retried + 1
  end
end

local deads = tonumber(ARGV[p]); p = p + 1
local dead = 0
for _ = 1, deads do
  if finish(ARGV[p], ARGV[p + 1]) == 1 then
    redis.call('XADD', KEYS[6], '*', 'm', ARGV[p + 2], 'reason', ARGV[p + 3],
      'error_type', ARGV[p + 4], 'error', ARGV[p + 5], 'traceback', ARGV[p + 6],
      'attempts', ARGV[p + 7], 'consumer', ARGV[p + 8], 'group', group,
      'first_failure_ms', ARGV[p + 9], 'last_failure_ms', now, 'stream_id', ARGV[p + 1])
    dead = dead + 1
  end
  p = p + 10
end
if dead > 0 and dlq_retention > 0 then
  redis.call('XTRIM', KEYS[6], 'MINID', '~', now - dlq_retention)
end

local k = tonumber(ARGV[p]); p = p + 1
if metrics_ttl > 0 then
  if acked > 0 then redis.call('HINCRBY', KEYS[7], 'acked', acked) end
  if retried > 0 then redis.call('HINCRBY', KEYS[7], 'retried', retried) end
  if dead > 0 then redis.call('HINCRBY', KEYS[7], 'dead_lettered', dead) end
  for _ = 1, k do
    redis.call('HINCRBY', KEYS[7], ARGV[p], ARGV[p + 1]); p = p + 2
  end
  redis.call('EXPIRE', KEYS[7], metrics_ttl)
else
  p = p + 2 * k
end

local trace_cap = tonumber(ARGV[p])
local consumer = ARGV[p + 1]
local events = tonumber(ARGV[p + 2]); p = p + 3
if trace_cap > 0 then
  for _ = 1, events do
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', trace_cap, '*', 'ev', ARGV[p], 'c', consumer,
               'm', ARGV[p + 1])
    p = p + 2
  end
end
return {acked, retried, dead}
