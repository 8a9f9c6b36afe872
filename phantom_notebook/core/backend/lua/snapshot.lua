--[[ snapshot: copy what one partition stores into snapshot keys, in one atomic step.

KEYS[1..4]  streams s:0 .. s:3      KEYS[5]  delayed      KEYS[6]  dlq
KEYS[7]     dedup hash of the current window bucket      KEYS[8]  of the previous one
KEYS[9..16] the snapshot copies of KEYS[1..8] (same hash tag, "...:bk:<token>:<part>")
KEYS[17]    the snapshot's pending hash: "<level>:<stream id>" -> "<group>=<count>,..."

ARGV[1]  snapshot TTL in ms (a backup that dies leaves nothing behind for long)

Every key of a partition shares one slot, so this one call sees the partition at a single
point: a message moving while the backup runs (promoted, retried, dead-lettered, acked)
is in the copy exactly once, where it was at that point. COPY duplicates the entries
inside Redis (about 1.4 s per million 400-byte entries, measured on 7.0: the partition's
size in free memory, and that long a pause of this Redis); the reader then pages
through the copies at leisure. The consumer groups' positions and pending entries are
returned / written here, not read from the copies (COPY of the groups is not portable).

Returns {server time ms, copied flags for KEYS[1..8] (1/0), PTTL of KEYS[7], PTTL of
KEYS[8], groups: level, name, last-delivered id, pending count, ...}.
]]
--- @include "xinfo"
local ttl = tonumber(ARGV[1])
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local copied = {}
for i = 1, 8 do
  local ok = call('COPY', KEYS[i], KEYS[i + 8], 'REPLACE')
  copied[i] = ok
  if ok == 1 then call('PEXPIRE', KEYS[i + 8], ttl) end
end
call('DEL', KEYS[17])

local groups = {}
for level = 0, 3 do
  local stream = KEYS[level + 1]
  if copied[level + 1] == 1 then
    for _, g in ipairs(call('XINFO', 'GROUPS', stream)) do
      local name = xinfo_field(g, 'name')
      local pending = tonumber(xinfo_field(g, 'pending')) or 0
      groups[#groups + 1] = level
      groups[#groups + 1] = name
      groups[#groups + 1] = xinfo_field(g, 'last-delivered-id')
      groups[#groups + 1] = pending
      if pending > 0 then
        for _, p in ipairs(call('XPENDING', stream, name, '-', '+', pending)) do
          local f = level .. ':' .. p[1]
          local prev = call('HGET', KEYS[17], f)
          local item = name .. '=' .. p[4]
          call('HSET', KEYS[17], f, prev and (prev .. ',' .. item) or item)
        end
      end
    end
  end
end
if call('EXISTS', KEYS[17]) == 1 then call('PEXPIRE', KEYS[17], ttl) end
return {now, copied, call('PTTL', KEYS[7]), call('PTTL', KEYS[8]), groups}
