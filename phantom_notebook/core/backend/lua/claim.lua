--[[ claim: mark a fetched batch's messages as delivered to this group; name the replays.

KEYS[1]  seen hash of the current window bucket (field "<message id>:<attempt>",
         value: the stream id it was delivered from)
KEYS[2]  seen hash of the previous window bucket

ARGV[1]  window in ms (the current bucket's hash expires after two windows)
ARGV[2]  number of messages n, then n pairs: field, stream id
then     the audit-section index every function takes (0)

Signatures and AEAD prove who sealed an envelope, not that it is fresh: an exact copy of
an old stream entry, added again by a role that may XADD to the stream, authenticates.
A copy has a new stream id, so a field already claimed from a *different* stream id is a
replay; the same stream id again is a redelivery (a crashed worker's message reclaimed),
which at-least-once delivery must allow. Retries carry attempt + 1 (a new field); a
message handed back untouched (breaker open) is unclaimed by settle. Consumers write
these hashes; publishers hold no grant on them, so they cannot erase a claim.
Runs under OOM (allow-oom). Returns the 1-based indexes of the replays.
]]
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local replays, claims, fields = {}, {}, {}
for i = 1, n do fields[i] = ARGV[1 + 2 * i] end
if n == 0 then return replays end
local CHUNK = 500  -- fields per HMGET / HSET: unpack() stays far below Lua's C stack
local prev, cur = {}, {}
for s = 1, n, CHUNK do
  local e = math.min(s + CHUNK - 1, n)
  local p = call('HMGET', KEYS[2], unpack(fields, s, e))
  local c = call('HMGET', KEYS[1], unpack(fields, s, e))
  for j = 1, e - s + 1 do prev[s + j - 1], cur[s + j - 1] = p[j], c[j] end
end
local nc, batch = 0, {}
for i = 1, n do
  local sid = ARGV[2 + 2 * i]
  local seen = prev[i] or cur[i] or batch[fields[i]]  -- or a copy earlier in this batch
  batch[fields[i]] = batch[fields[i]] or sid
  if seen and seen ~= sid then
    replays[#replays + 1] = i
  elseif not seen then
    claims[nc + 1] = fields[i]
    claims[nc + 2] = sid
    nc = nc + 2
  end
end
for s = 1, nc, 2 * CHUNK do
  call('HSET', KEYS[1], unpack(claims, s, math.min(s + 2 * CHUNK - 1, nc)))
end
if nc > 0 then call('PEXPIRE', KEYS[1], 2 * window) end
return replays
