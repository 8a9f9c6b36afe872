--[[ throttle: per-key rate limits for a batch of deliveries (GCRA, as in fetch.lua).

KEYS[1]  the limiter hash (field "k:<group>:<key>" -> theoretical arrival time, us)
KEYS[2]  the reservations hash ("<message id>:<attempt>" -> the us it may run at)

ARGV[1]  reservation TTL ms, ARGV[2] number of deliveries n, then n groups of 4:
         limiter field, emission interval T (us), burst tolerance tau (us), reservation field

A delivery whose key has room runs now (its slot taken). One that has none is given the
next slot — the limiter moves past it, and the slot is written to its reservation — so it
waits (deferred to the delayed set, holding no worker) exactly once, and runs when it
comes back: a backlog of one key is not re-deferred every slot.
Returns n numbers: 0 = may run now, else ms until its slot.
]]
local t = call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, reserved = {}, false
local p = 3
for i = 1, n do
  local field, interval, tau, rfield = ARGV[p], tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]),
                                       ARGV[p + 3]
  p = p + 4
  local slot = call('HGET', KEYS[2], rfield)
  if slot then
    slot = tonumber(slot)
    if slot <= clock then
      call('HDEL', KEYS[2], rfield)
      out[i] = 0
    else
      out[i] = math.ceil((slot - clock) / 1000)
    end
  else
    local tat = math.max(tonumber(call('HGET', KEYS[1], field) or 0), clock)
    call('HSET', KEYS[1], field, tat + interval)
    if tat - clock <= tau then
      out[i] = 0
    else
      call('HSET', KEYS[2], rfield, tat - tau)
      reserved = true
      out[i] = math.ceil((tat - tau - clock) / 1000)
    end
  end
end
if reserved then call('PEXPIRE', KEYS[2], ttl) end
return out
