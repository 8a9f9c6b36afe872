--[[ restore: write a batch of archived records into one partition, each exactly once.

KEYS[1..4]  streams s:0 .. s:3      KEYS[5]  delayed      KEYS[6]  dlq
KEYS[7]     the partition's restore ledger (hash: record key -> 1)

ARGV[1]  ledger TTL in ms
ARGV[2]  the consumer that holds restored in-flight entries ("pn-restore")
ARGV[3]  their idle time in ms (long: the next reclaim hands them out at once)
ARGV[4]  number of records n, then per record: kind, ledger field, then
         "e" (stream entry): level, received ("<group>=<count>,..."; count 0 = delivered
             and acked but kept, > 0 = pending with that delivery count; "" = ready),
             number of fields f, f strings (field, value, ...)
         "d" (delayed): level, due ms, envelope
         "x" (dead letter): number of fields f, f strings
then     the audit-section index every function takes (0)

Idempotent: a record whose ledger field is already set was restored before and is
skipped (restoring the same archive twice writes nothing the second time).

A received entry keeps its place in each group that had it when that group has nothing
undelivered here (its position is at the stream's end): the group's position moves past
the new entry (XGROUP SETID) and, if it was pending, the entry is pending again with its
delivery count, owned by ARGV[2] and idle long enough to be reclaimed at once (the
delivery that follows counts one more, as after a crash). Otherwise (a busy target, or
partitions merged) moving the position would skip other entries: the entry stays ready
for that group, and is counted as "as_ready".

Returns {written, skipped, pending restored, as_ready}.
]]
--- @include "ids"
--- @include "xinfo"
local ledger_ttl = tonumber(ARGV[1])
local holder, idle = ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])

-- the group's position when nothing is undelivered in the stream, else nil
local function at_end(stream, group)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if groups.err then return nil end  -- no such stream
  local last = call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  for _, g in ipairs(groups) do
    if xinfo_field(g, 'name') == group then
      local pos = xinfo_field(g, 'last-delivered-id')
      if #last == 0 or not newer(last[1][1], pos) then return pos end
      return nil
    end
  end
  return nil
end

local written, skipped, pending, as_ready = 0, 0, 0, 0
local p = 5
for _ = 1, n do
  local kind, key = ARGV[p], ARGV[p + 1]
  p = p + 2
  local fresh = call('HSETNX', KEYS[7], key, '1') == 1
  if kind == 'e' then
    local level, received, f = tonumber(ARGV[p]), ARGV[p + 1], tonumber(ARGV[p + 2])
    local stream = KEYS[level + 1]
    p = p + 3
    if fresh then
      local places = {}
      for group, count in string.gmatch(received, '([^=,]+)=(%d+)') do
        places[#places + 1] = {group, tonumber(count), at_end(stream, group)}
      end
      local id = call('XADD', stream, '*', unpack(ARGV, p, p + f - 1))
      for _, place in ipairs(places) do
        local group, count, pos = place[1], place[2], place[3]
        if pos then
          call('XGROUP', 'SETID', stream, group, id)
          if count > 0 then
            call('XCLAIM', stream, group, holder, 0, id, 'IDLE', idle, 'RETRYCOUNT', count,
                 'FORCE', 'JUSTID')
            pending = pending + 1
          end
        else
          as_ready = as_ready + 1
        end
      end
    end
    p = p + f
  elseif kind == 'd' then
    if fresh then call('ZADD', KEYS[5], ARGV[p + 1], ARGV[p] .. ARGV[p + 2]) end
    p = p + 3
  else
    local f = tonumber(ARGV[p])
    if fresh then call('XADD', KEYS[6], '*', unpack(ARGV, p + 1, p + f)) end
    p = p + 1 + f
  end
  if fresh then written = written + 1 else skipped = skipped + 1 end
end
if n > 0 then call('PEXPIRE', KEYS[7], ledger_ttl) end
return {written, skipped, pending, as_ready}
