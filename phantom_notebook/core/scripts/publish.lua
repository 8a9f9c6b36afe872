--[[ publish: add a batch of messages to one queue, atomically.

KEYS[1..4]  streams s:0 .. s:3 (priority levels, CRITICAL first)
KEYS[5]     delayed   (zset, member = level digit .. envelope bytes, score = due ms)
KEYS[6]     metrics   (hash of the current time bucket)
KEYS[7]     trace     (capped stream of lifecycle events)
KEYS[8]     dedup hash of the current window bucket (field = dedup key, value = first id)
KEYS[9]     dedup hash of the previous window bucket

ARGV[1]  max queue size (0 = unbounded); depth = sum XLEN(streams) + ZCARD(delayed)
ARGV[2]  dedup window in ms (the current bucket's hash expires after two windows)
ARGV[3]  now in ms
ARGV[4]  metrics bucket TTL in seconds (0 = no metrics)
ARGV[5]  trace stream cap in entries (0 = no tracing)
ARGV[6]  actor written to the trace (producer origin, may be empty)
ARGV[7]  number of messages n, then n groups of 5:
         level (0-3), due ms (0 = now), dedup field ("" = none), trace item
         ("<id>|<trace id>|1|<detail>", its id is the message id), envelope

Dedup: a key seen in the current or the previous bucket is a duplicate, so every duplicate
within one window is caught (and some up to two windows old). Buckets are hashes, not one
key per message: ~100 bytes less per message than SET NX PX.

Returns the duplicates only, as a flat array: 1-based index, first message's id, ...
(empty when every message was written). Errors "QUEUE_FULL <depth> <max>" when the batch
does not fit (nothing is written).
]]
local max_size = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
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

local dups, published, duplicates = {}, {}, {}
local deduped = false
for i = 0, n - 1 do
  local b = 8 + i * 5
  local field, item = ARGV[b + 2], ARGV[b + 3]
  local first = false
  local id = string.sub(item, 1, string.find(item, '|', 1, true) - 1)
  if field ~= '' then
    -- previous window first, then claim the field in the current one (HSETNX: one call)
    first = redis.call('HGET', KEYS[9], field)
    if not first and redis.call('HSETNX', KEYS[8], field, id) == 0 then
      first = redis.call('HGET', KEYS[8], field)
    end
    deduped = true
  end
  if first then
    dups[#dups + 1] = i + 1
    dups[#dups + 1] = first
    -- the event belongs to the first message: its id replaces ours in the item
    duplicates[#duplicates + 1] = first .. string.sub(item, #id + 1)
  else
    local level, due = tonumber(ARGV[b]), tonumber(ARGV[b + 1])
    if due > now then
      redis.call('ZADD', KEYS[5], due, level .. ARGV[b + 4])
    else
      redis.call('XADD', KEYS[level + 1], '*', 'm', ARGV[b + 4])
    end
    published[#published + 1] = item
  end
end
if deduped then redis.call('PEXPIRE', KEYS[8], 2 * window) end

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
return dups
