--[[ depth: how many messages a queue holds, and the bounded-queue check.

depth(streams, delayed): XLEN of the four level streams + ZCARD of the delayed set.
room(streams, delayed, max, n): nil when n more messages fit under max (0 = unbounded),
else the error reply "QUEUE_FULL <depth> <max>" (the caller returns it: nothing written).
]]
local function depth(keys, delayed)
  local n = call('ZCARD', delayed)
  for i = 1, 4 do n = n + call('XLEN', keys[i]) end
  return n
end

local function room(keys, delayed, max_size, n)
  if max_size <= 0 then return nil end
  local d = depth(keys, delayed)
  if d + n > max_size then
    return redis.error_reply('QUEUE_FULL ' .. d .. ' ' .. max_size)
  end
  return nil
end
