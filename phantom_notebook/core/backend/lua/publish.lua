--[[ publish: add a batch of messages to one queue, atomically.

KEYS[1..4]  streams s:0 .. s:3 (priority levels, CRITICAL first)
KEYS[5]     delayed   (zset, member = level digit .. envelope bytes, score = due ms)
KEYS[6]     metrics   (hash of the current time bucket)
KEYS[7]     trace     (capped stream of lifecycle events)
KEYS[8]     dedup hash of the current window bucket (field = dedup key, value = first id)
KEYS[9]     dedup hash of the previous window bucket
KEYS[10]    the wake-up stream: a call that adds delayed messages appends one entry (capped
            at ~64), so an idle consumer blocked until its last known due time looks again
KEYS[11]    the caller's audit stream, when audited (includes/audit.lua)

ARGV[1]  max queue size (0 = unbounded); depth = sum XLEN(streams) + ZCARD(delayed)
ARGV[2]  dedup window in ms (the current bucket's hash expires after two windows)
ARGV[3]  now in ms (the client already marked the messages due later as delayed)
ARGV[4]  metrics bucket TTL in seconds (0 = no metrics)
ARGV[5]  trace stream cap in entries (0 = no tracing)
ARGV[6]  actor written to the trace (producer origin, may be empty)
ARGV[7]  number of messages n
ARGV[8]  one digit per message: its level 0-3, or 4-7 (level + 4) when it is delayed
ARGV[9..] n groups of 3: dedup field ("" = none), trace item
         ("<id>|<trace id>|1|<detail>", its id is the message id), envelope;
         then the due ms of each delayed message, in message order;
         then the audit section, and last its index (0 = not audited)

Few arguments per message on purpose: each one costs the client a packing step and Redis
an object, and the batch is one big command.

Dedup: a key seen in the current or the previous bucket is a duplicate, so every duplicate
within one window is caught (and some up to two windows old). Buckets are hashes, not one
key per message: ~100 bytes less per message than SET NX PX. A batch reads both buckets
with one HMGET each and claims its new keys with one HSET (the script is atomic, so this
is HSETNX per key); a key repeated inside the batch is a duplicate of its first use.

Messages without a dedup key are deduplicated per call, by the first message's id
("c:<id>", one field per call, not per message): a client retrying a call it could not
confirm sends the same envelopes again, and the retry writes none of them. One field per
message cost a third of batch-publish throughput and ~140 bytes per message for nothing
more: ids are minted per call, so only a re-sent call repeats them, and a raw XADD of an
old envelope is refused at consume by the replay claim (see claim.lua).

Returns the duplicates only, as a flat array: 1-based index, first message's id, ...
(empty when every message was written). Errors "QUEUE_FULL <depth> <max>" when the batch
does not fit, and "AUDIT_FAILED ..." when the audit entry cannot be appended (nothing is
written either way). Refused under OOM (no allow-oom flag): the client reports it as
CapacityError.
]]
--- @include "metrics"
--- @include "trace"
--- @include "depth"
--- @include "audit"
local sub, find, byte = string.sub, string.find, string.byte
local CHUNK = 500  -- fields per HMGET / HSET call: unpack() stays far below Lua's C stack

local function id_of(item)
  return sub(item, 1, find(item, '|', 1, true) - 1)
end

local argv, keys = ARGV, KEYS
local max_size = tonumber(argv[1])
local window = tonumber(argv[2])
local metrics_ttl = tonumber(argv[4])
local trace_cap = tonumber(argv[5])
local actor = argv[6]
local n = tonumber(argv[7])
local levels = argv[8]

local full = room(keys, keys[5], max_size, n)
if full then return full end
local refused = audit_first(keys, argv, keys[6], metrics_ttl)
if refused then return refused end

if n == 1 then
  -- the one-message publish, without the batch's tables: fewest calls and allocations
  local field, item, envelope = argv[9], argv[10], argv[11]
  local level = byte(levels, 1) - 48
  local first = false
  if field == '' then field = 'c:' .. id_of(item) end
  do
    first = call('HGET', keys[9], field)
    if not first then
      if call('HSETNX', keys[8], field, id_of(item)) == 1 then
        call('PEXPIRE', keys[8], 2 * window)
      else
        first = call('HGET', keys[8], field)
      end
    end
  end
  if first then
    count(keys[6], metrics_ttl, 'deduplicated', 1)
    trace(keys[7], trace_cap, 'deduplicated', actor, first .. sub(item, #id_of(item) + 1))
    return {1, first}
  end
  if level >= 4 then
    call('ZADD', keys[5], argv[12], (level - 4) .. envelope)
    call('XADD', keys[10], 'MAXLEN', '~', 64, '*', 'd', argv[12])
  else
    call('XADD', keys[level + 1], '*', 'm', envelope)
  end
  count(keys[6], metrics_ttl, 'published', 1)
  trace(keys[7], trace_cap, 'published', actor, item)
  return {}
end

-- dedup: firsts[message index] = id of the first message with the same key
local firsts = {}
local fields, at, nf = {}, {}, 0
local keyless = false
for i = 1, n do
  local field = argv[6 + 3 * i]
  if field == '' then
    keyless = true
  else
    nf = nf + 1
    fields[nf] = field
    at[nf] = i
  end
end
if keyless then
  -- the call's token: seen before means this call is a retry and its keyless messages
  -- were written by the first attempt
  local token = 'c:' .. id_of(argv[10])
  if call('HGET', keys[9], token) or call('HSETNX', keys[8], token, '1') == 0 then
    for i = 1, n do
      if argv[6 + 3 * i] == '' then firsts[i] = id_of(argv[7 + 3 * i]) end
    end
  end
  call('PEXPIRE', keys[8], 2 * window)
end
if nf > 0 then
  -- known[j]: the first id of fields[j] in the previous window, else in the current one
  local known = {}
  for s = 1, nf, CHUNK do
    local e = math.min(s + CHUNK - 1, nf)
    local prev = call('HMGET', keys[9], unpack(fields, s, e))
    local cur = call('HMGET', keys[8], unpack(fields, s, e))
    for j = 1, e - s + 1 do known[s + j - 1] = prev[j] or cur[j] end
  end
  local claimed, claims, nc = {}, {}, 0
  for j = 1, nf do
    local field, i = fields[j], at[j]
    local first = known[j] or claimed[field]  -- or earlier in this batch
    if first then
      firsts[i] = first
    else
      local id = id_of(argv[7 + 3 * i])
      claimed[field] = id
      claims[nc + 1] = field
      claims[nc + 2] = id
      nc = nc + 2
    end
  end
  for s = 1, nc, 2 * CHUNK do
    call('HSET', keys[8], unpack(claims, s, math.min(s + 2 * CHUNK - 1, nc)))
  end
  call('PEXPIRE', keys[8], 2 * window)
end

local dups, published, duplicates, np = {}, {}, {}, 0
local due_at = 9 + 3 * n  -- the next delayed message's due ms
for i = 1, n do
  local item = argv[7 + 3 * i]
  local level = byte(levels, i) - 48
  local due = nil
  if level >= 4 then
    level = level - 4
    due = argv[due_at]
    due_at = due_at + 1
  end
  local first = firsts[i]
  if first then
    dups[#dups + 1] = i
    dups[#dups + 1] = first
    -- the event belongs to the first message: its id replaces ours in the item
    duplicates[#duplicates + 1] = first .. sub(item, #id_of(item) + 1)
  else
    if due then
      call('ZADD', keys[5], due, level .. argv[8 + 3 * i])
    else
      call('XADD', keys[level + 1], '*', 'm', argv[8 + 3 * i])
    end
    np = np + 1
    published[np] = item
  end
end

if due_at > 9 + 3 * n then  -- delayed messages were added: wake an idle consumer
  call('XADD', keys[10], 'MAXLEN', '~', 64, '*', 'd', argv[9 + 3 * n])
end
count(keys[6], metrics_ttl, 'published', np)
count(keys[6], metrics_ttl, 'deduplicated', #duplicates)
trace(keys[7], trace_cap, 'published', actor, table.concat(published, ';'))
trace(keys[7], trace_cap, 'deduplicated', actor, table.concat(duplicates, ';'))
return dups
