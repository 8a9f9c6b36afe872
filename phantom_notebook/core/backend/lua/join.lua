--[[ join: the fan-in of a group of messages (core/results/join.py), atomic in Redis.

KEYS[1..4]  the callback queue's streams s:0 .. s:3     KEYS[5]  its delayed set
KEYS[6]     its metrics hash (current bucket)          KEYS[7]  its trace stream
KEYS[8..]   join hashes of groups whose callback goes to this queue (same slot)

ARGV[1] mode, ARGV[2] now ms, ARGV[3] metrics TTL s (0 = off), ARGV[4] trace cap (0 =
off), ARGV[5] actor, then by mode:

"create" (KEYS[8] the new join): ARGV[6] TTL ms of the join, ARGV[7] members n,
  ARGV[8] successes needed, ARGV[9] rule ("all": decide when every member has settled;
  "count": decide at the needed successes), ARGV[10] fail fast ("1": an "all" group fails
  as soon as its successes cannot be reached), ARGV[11] the callback's level, ARGV[12]
  the sealed callback, ARGV[13] the deadline ms, ARGV[14] the deadline's delayed-set
  member, ARGV[15] the callback's trace item, then n member message ids.
  Returns 1, or the error JOIN_EXISTS.
"settle": ARGV[6] k, then k groups of 5: KEYS index of the join, member index, member
  message id, state ("ok" or "failed"), sealed result. A member is recorded once (HSETNX
  of its state: a member redelivered after a crash, or settled late, counts once) and
  only when the join names that message id as that member. Returns per record: 0 not
  recorded (duplicate, not a member, join gone), 1 recorded, 2 recorded and the group was
  decided by it (the callback was added).
"expire" (KEYS[8] the join; its deadline message came due): every member without an
  outcome is recorded as "timeout" (failed) and the group decided. Returns 2 when that
  fired the callback, else 0.

Deciding a group adds its callback to the callback queue exactly once (the join's state
leaves "open" in the same call), removes its deadline message, counts and traces it.
The callback carries no results: its worker reads them from the join (context.join).
]]
--- @include "metrics"
--- @include "trace"
local mode, now = ARGV[1], tonumber(ARGV[2])
local metrics_ttl, trace_cap, actor = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

local function decide(key)
  local f = call('HMGET', key, 'n', 'need', 'ok', 'bad', 'rule', 'ff')
  local n, need, ok, bad = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
  local remaining = n - ok - bad
  if f[5] == 'all' then
    if remaining == 0 then
      if ok >= need then return 'succeeded' end
      return 'failed'
    end
    if f[6] == '1' and ok + remaining < need then return 'failed' end
  else
    if ok >= need then return 'succeeded' end
    if ok + remaining < need then return 'failed' end
  end
  return nil
end

local function fire(key, status)
  local f = call('HMGET', key, 'lvl', 'cb', 'dl', 'ti')
  call('HSET', key, 'st', status, 'fired', now)
  if f[3] then call('ZREM', KEYS[5], f[3]) end
  call('XADD', KEYS[tonumber(f[1]) + 1], '*', 'm', f[2])
  count(KEYS[6], metrics_ttl, 'published', 1)
  count(KEYS[6], metrics_ttl, 'groups_' .. status, 1)
  trace(KEYS[7], trace_cap, 'group_' .. status, actor, f[4] or '')
end

if mode == 'create' then
  local key = KEYS[8]
  if call('EXISTS', key) == 1 then return redis.error_reply('JOIN_EXISTS ' .. key) end
  local n = tonumber(ARGV[7])
  local fields = {'st', 'open', 'n', n, 'need', ARGV[8], 'rule', ARGV[9], 'ff', ARGV[10],
                  'ok', 0, 'bad', 0, 'lvl', ARGV[11], 'cb', ARGV[12], 'dl', ARGV[14],
                  'ti', ARGV[15], 'created', now, 'deadline', ARGV[13]}
  for i = 1, n do
    fields[#fields + 1] = 'id:' .. (i - 1)
    fields[#fields + 1] = ARGV[15 + i]
  end
  call('HSET', key, unpack(fields))
  call('PEXPIRE', key, tonumber(ARGV[6]))
  call('ZADD', KEYS[5], tonumber(ARGV[13]), ARGV[14])
  trace(KEYS[7], trace_cap, 'group_created', actor, ARGV[15])
  return 1
end

if mode == 'settle' then
  local out = {}
  local p = 7
  for r = 1, tonumber(ARGV[6]) do
    local key, i, mid, state = KEYS[tonumber(ARGV[p])], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    local code = 0
    if call('HGET', key, 'id:' .. i) == mid and call('HSETNX', key, 's:' .. i, state) == 1 then
      call('HSET', key, 'r:' .. i, ARGV[p + 4], 'at:' .. i, now)
      call('HINCRBY', key, state == 'ok' and 'ok' or 'bad', 1)
      code = 1
      if call('HGET', key, 'st') == 'open' then
        local status = decide(key)
        if status then
          fire(key, status)
          code = 2
        end
      end
    end
    out[r] = code
    p = p + 5
  end
  return out
end

if mode == 'expire' then
  local key = KEYS[8]
  local st = call('HGET', key, 'st')
  if st ~= 'open' then return 0 end
  local n = tonumber(call('HGET', key, 'n'))
  for i = 0, n - 1 do
    if call('HSETNX', key, 's:' .. i, 'timeout') == 1 then
      call('HSET', key, 'at:' .. i, now)
      call('HINCRBY', key, 'bad', 1)
    end
  end
  fire(key, decide(key) or 'failed')
  return 2
end
return redis.error_reply('ERR join: unknown mode ' .. tostring(mode))
