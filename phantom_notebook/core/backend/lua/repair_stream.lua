--[[ repair_stream: undo a last id pushed into the future (a raw XADD with an explicit id).

KEYS[1]  the damaged stream (a level stream, the DLQ, the trace, or an audit stream)
KEYS[2]  where entries with future ids go when ARGV[2] is "quarantine" (same slot)

ARGV[1]  slack in ms: ids more than this ahead of the server clock are "in the future"
ARGV[2]  "requeue" (queue data: the entries are added again with fresh ids, nothing lost)
         or "quarantine" (audit streams: those entries are forgeries by construction,
         since a genuine writer lets Redis pick the id; they are moved aside for forensics)
then     the audit section, and last its index (0 = not audited)

A stream whose last id is the largest possible one refuses every later XADD ("exhausted
the last possible ID"); one far in the future hands out future ids. The repair, in one
atomic call: read the future entries, delete them, set the stream's last id back to its
newest remaining entry (XSETID may move it backwards once the entries above are gone),
move every consumer group whose last-delivered id is ahead back to it, acknowledge the
deleted ids in their pending lists, then requeue or quarantine the entries. Needs the
operator's XSETID / XGROUP SETID (manage). Returns {entries moved, groups reset}.
]]
--- @include "audit"
local stream, aside = KEYS[1], KEYS[2]
local slack, mode = tonumber(ARGV[1]), ARGV[2]
local refused = audit_first(KEYS, ARGV, nil, 0)
if refused then return refused end
if call('EXISTS', stream) == 0 then return {0, 0} end

local t = call('TIME')
local limit = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + slack
local info = call('XINFO', 'STREAM', stream)
local last, added = '0-0', 0
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
end
local last_ms = tonumber(string.match(last, '^(%d+)-'))
if last_ms == nil or last_ms <= limit then return {0, 0} end

local future = call('XRANGE', stream, (limit + 1) .. '-0', '+')
for _, entry in ipairs(future) do call('XDEL', stream, entry[1]) end
local newest = call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local back = '0-1'
if #newest > 0 then back = newest[1][1] end
call('XSETID', stream, back, 'ENTRIESADDED', added, 'MAXDELETEDID', back)

local reset = 0
local groups = call('XINFO', 'GROUPS', stream)
for _, g in ipairs(groups) do
  local name, delivered = nil, '0-0'
  for j = 1, #g, 2 do
    if g[j] == 'name' then name = g[j + 1] end
    if g[j] == 'last-delivered-id' then delivered = g[j + 1] end
  end
  local ms = tonumber(string.match(delivered, '^(%d+)-'))
  if name ~= nil and ms ~= nil and ms > limit then
    call('XGROUP', 'SETID', stream, name, back)
    reset = reset + 1
  end
  for _, entry in ipairs(future) do
    if name ~= nil then call('XACK', stream, name, entry[1]) end
  end
end

local target = stream
if mode == 'quarantine' then target = aside end
for _, entry in ipairs(future) do
  local fields = entry[2]
  if mode == 'quarantine' then
    fields[#fields + 1] = 'pn-original-id'
    fields[#fields + 1] = entry[1]
  end
  call('XADD', target, '*', unpack(fields))
end
return {#future, reset}
