--[[ reseal: replace stored envelopes by their re-encrypted copies (key rotation), atomically.

KEYS[1]  the key holding the envelopes: a level stream, the delayed zset or the DLQ stream

ARGV[1]  mode: "stream" (ready entries), "zset" (delayed) or "dlq" (dead letters)
ARGV[2]  number of pairs n, then n pairs: old (stream id, or zset member), new envelope

stream: an entry is moved (XADD the new bytes, XDEL the old entry) only while it still
        exists and no consumer group has been handed it (its id is above every group's
        last-delivered id); delivered / in-flight entries are left for their worker.
zset:   ZREM the old member and ZADD the new one with the same score (level digit kept).
dlq:    XADD a copy of the dead letter's fields with the new envelope, XDEL the old one.
Returns the number of envelopes replaced; an entry that vanished meanwhile is skipped, so
running the same batch twice never duplicates anything.
]]
local mode = ARGV[1]
local n = tonumber(ARGV[2])
local replaced = 0

local function newer(a, b)  -- stream id a > b
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end

local delivered = '0-0'
if mode == 'stream' and redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    for j = 1, #g, 2 do
      if g[j] == 'last-delivered-id' and newer(g[j + 1], delivered) then
        delivered = g[j + 1]
      end
    end
  end
end

for i = 0, n - 1 do
  local old, new = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if mode == 'zset' then
    local score = redis.call('ZSCORE', KEYS[1], old)
    if score then
      redis.call('ZREM', KEYS[1], old)
      redis.call('ZADD', KEYS[1], score, new)
      replaced = replaced + 1
    end
  else
    local entry = redis.call('XRANGE', KEYS[1], old, old)
    if #entry == 1 and (mode == 'dlq' or newer(old, delivered)) then
      local fields = entry[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then fields[j + 1] = new end
      end
      redis.call('XADD', KEYS[1], '*', unpack(fields))
      redis.call('XDEL', KEYS[1], old)
      replaced = replaced + 1
    end
  end
end
return replaced
