--[[ reseal: replace stored envelopes by their re-encrypted copies (key rotation), atomically.

KEYS[1]  the key holding the envelopes: a level stream, the delayed zset or the DLQ stream
KEYS[2]  the queue's rotation fence (a counter: each rotation of the queue takes the next)

ARGV[1]  mode: "stream" (ready entries), "zset" (delayed) or "dlq" (dead letters)
ARGV[2]  the caller's fencing token: refused ("FENCED <current>") unless it is the fence's
         current value, so a rotation that stalled while another took over the queue can
         never write envelopes sealed under its (older) ring
ARGV[3]  number of pairs n, then n pairs: old (stream id, or zset member), new envelope

stream: an entry is moved (XADD the new bytes, XDEL the old entry) only while it still
        exists and no consumer group has been handed it (its id is above every group's
        last-delivered id); delivered / in-flight entries are left for their worker.
zset:   ZREM the old member and ZADD the new one with the same score (level digit kept).
dlq:    XADD a copy of the dead letter's fields with the new envelope, XDEL the old one.
Returns the number of envelopes replaced; an entry that vanished meanwhile is skipped, so
running the same batch twice never duplicates anything.
]]
--- @include "ids"
local mode = ARGV[1]
local fence = call('GET', KEYS[2])
if fence ~= ARGV[2] then return redis.error_reply('FENCED ' .. tostring(fence)) end
local n = tonumber(ARGV[3])
local replaced = 0


local delivered = '0-0'
if mode == 'stream' and call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(call('XINFO', 'GROUPS', KEYS[1])) do
    for j = 1, #g, 2 do
      if g[j] == 'last-delivered-id' and newer(g[j + 1], delivered) then
        delivered = g[j + 1]
      end
    end
  end
end

for i = 0, n - 1 do
  local old, new = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if mode == 'zset' then
    local score = call('ZSCORE', KEYS[1], old)
    if score then
      call('ZREM', KEYS[1], old)
      call('ZADD', KEYS[1], score, new)
      replaced = replaced + 1
    end
  else
    local entry = call('XRANGE', KEYS[1], old, old)
    if #entry == 1 and (mode == 'dlq' or newer(old, delivered)) then
      local fields = entry[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then fields[j + 1] = new end
      end
      call('XADD', KEYS[1], '*', unpack(fields))
      call('XDEL', KEYS[1], old)
      replaced = replaced + 1
    end
  end
end
return replaced
