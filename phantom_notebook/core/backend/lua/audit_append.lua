--[[ audit_append: append one pre-MACed entry to the audit stream, optionally only if the
stream has not moved since the caller read it (compare-and-append, used for checkpoints).

KEYS[1]  audit stream (<prefix>:audit)

ARGV[1]  expected id of the newest entry: "" = append unconditionally, "0-0" = the stream
         must be empty
ARGV[2..] field, value pairs of the entry, already carrying its client-side HMAC ("mac");
         the last argument is the audit-section index every function takes (0 here)

A checkpoint commits to the chain head of every writer as of the newest entry its writer
read. Appending it only if that entry is still the newest makes "the entry right before
this checkpoint" exact, so verifying from a checkpoint and trimming at one never race
with concurrent writers. Nothing secret is computed here: the audit key never reaches
Redis (it would show in SLOWLOG, MONITOR and to anyone the trail must be protected from).

Returns {1, new entry id} when appended, {0, id of the current newest entry or "0-0"}
when the stream moved on (nothing was written).
]]
local expected = ARGV[1]
if expected ~= '' then
  local last = call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local current = '0-0'
  if #last > 0 then current = last[1][1] end
  if current ~= expected then return {0, current} end
end
local fields = {}
for i = 2, #ARGV - 1 do fields[#fields + 1] = ARGV[i] end
local id = call('XADD', KEYS[1], '*', unpack(fields))
return {1, id}
