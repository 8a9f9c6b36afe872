--[[ publish: add a batch of messages to one queue, atomically.

KEYS[1..4]  streams s:0 .. s:3 (priority levels, CRITICAL first)
KEYS[5]     delayed   (zset, member = level digit .. envelope bytes, score = due ms)
KEYS[6]     metrics   (hash of the current time bucket)
KEYS[7..]   dedup keys, referenced by index from ARGV (0 = no dedup)

ARGV[1]  max queue size (0 = unbounded); depth = sum XLEN(streams) + ZCARD(delayed)
ARGV[2]  dedup window in ms
ARGV[3]  now in ms
ARGV[4]  metrics bucket TTL in seconds (0 = no metrics)
ARGV[5]  number of messages n, then n groups of 5:
         level (0-3), due ms (0 = now), dedup key index (0 = none), message id, envelope

Returns an array of n strings: the message id written, or "=<id>" when the message was a
duplicate inside the dedup window (<id> = the first message's id; nothing was written).
Errors "QUEUE_FULL <depth> <max>" when the batch does not fit (nothing is written).
]]
local max_size = tonumber(ARGV[1])
local window = ARGV[2]
local now = tonumber(ARGV[3])
local metrics_ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])

if max_size > 0 then
  local depth = redis.call('ZCARD', KEYS[5])
  for i = 1, 4 do depth = depth + redis.call('XLEN', KEYS[i]) end
  if depth + n > max_size then
    return redis.error_reply('QUEUE_FULL ' .. depth .. ' ' .. max_size)
  end
end

local out = {}
local written, dups = 0, 0
for i = 0, n - 1 do
  local b = 6 + i * 5
  local level = tonumber(ARGV[b])
  local due = tonumber(ARGV[b + 1])
  local dk = tonumber(ARGV[b + 2])
  local id = ARGV[b + 3]
  local first = false
  if dk > 0 then
    first = redis.call('SET', KEYS[6 + dk], id, 'NX', 'PX', window, 'GET')
  end
  if first then
    out[#out + 1] = '=' .. first
    dups = dups + 1
  else
    if due > now then
      redis.call('ZADD', KEYS[5], due, level .. ARGV[b + 4])
    else
      redis.call('XADD', KEYS[level + 1], '*', 'm', ARGV[b + 4])
    end
    out[#out + 1] = id
    written = written + 1
  end
end

if metrics_ttl > 0 then
  if written > 0 then redis.call('HINCRBY', KEYS[6], 'published', written) end
  if dups > 0 then redis.call('HINCRBY', KEYS[6], 'deduplicated', dups) end
  redis.call('EXPIRE', KEYS[6], metrics_ttl)
end
return out
