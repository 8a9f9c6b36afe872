--[[ publish: add a batch of messages to one queue, atomically.

KEYS[1..4]  streams s:0 .. s:3 (priority levels, CRITICAL first)
KEYS[5]     delayed   (zset, member = level digit .. envelope bytes, score = due ms)
KEYS[6]     metrics   (hash of the current time bucket)
KEYS[7]     trace     (capped stream of lifecycle events)
KEYS[8..]   dedup keys, referenced by index from ARGV (0 = no dedup)

ARGV[1]  max queue size (0 = unbounded); depth = sum XLEN(streams) + ZCARD(delayed)
ARGV[2]  dedup window in ms
ARGV[3]  now in ms
ARGV[4]  metrics bucket TTL in seconds (0 = no metrics)
ARGV[5]  trace stream cap in entries (0 = no tracing)
ARGV[6]  actor written to the trace (producer origin, may be empty)
ARGV[7]  number of messages n, then n groups of 6:
         level (0-3), due ms (0 = now), dedup key index (0 = none), message id, trace id,
         envelope

Returns an array of n strings: the message id written, or "=<id>" when the message was a
duplicate inside the dedup window (<id> = the first message's id; nothing was written).
Errors "QUEUE_FULL <depth> <max>" when the batch does not fit (nothing is written).
]]
local max_size = tonumber(ARGV[1])
local window = ARGV[2]
local now = tonumber(ARGV[3])
local metrics_ttl = tonumber(ARGV[4])
local trace_cap = tonumber(ARGV[5])
local n = tonumber(ARGV[7])

if max_size > 0 then
  local depth = redis.call('ZCARD', KEYS[5])
  for i = 1, 4 do depth = depth + redis.call('XLEN', KEYS[i]) end
  if depth + n > max_size then
    return redis.error_reply('QUEUE_FULL ' .. depth .. ' ' .. max_size)
  end
end

local out, published, duplicates = {}, {}, {}
for i = 0, n - 1 do
  local b = 8 + i * 6
  local level = tonumber(ARGV[b])
  local due = tonumber(ARGV[b + 1])
  local dk = tonumber(ARGV[b + 2])
  local id, tid = ARGV[b + 3], ARGV[b + 4]
  local first = false
  if dk > 0 then
    first = redis.call('SET', KEYS[7 + dk], id, 'NX', 'PX', window, 'GET')
  end
  if first then
    out[#out + 1] = '=' .. first
    duplicates[#duplicates + 1] = first .. '|' .. tid .. '|1|duplicate suppressed'
  else
    local detail = ''
    if due > now then
      redis.call('ZADD', KEYS[5], due, level .. ARGV[b + 5])
      detail = 'due ' .. due
    else
      redis.call('XADD', KEYS[level + 1], '*', 'm', ARGV[b + 5])
    end
    out[#out + 1] = id
    published[#published + 1] = id .. '|' .. tid .. '|1|' .. detail
  end
end

if metrics_ttl > 0 then
  if #published > 0 then redis.call('HINCRBY', KEYS[6], 'published', #published) end
  if #duplicates > 0 then redis.call('HINCRBY', KEYS[6], 'deduplicated', #duplicates) end
  redis.call('EXPIRE', KEYS[6], metrics_ttl)
end
if trace_cap > 0 then
  if #published > 0 then
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', trace_cap, '*', 'ev', 'published',
               'c', ARGV[6], 'm', table.concat(published, ';'))
  end
  if #duplicates > 0 then
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', trace_cap, '*', 'ev', 'deduplicated',
               'c', ARGV[6], 'm', table.concat(duplicates, ';'))
  end
end
return out
