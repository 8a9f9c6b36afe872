--[[ metrics: count into a queue's metric bucket (a hash with a TTL).

count(key, ttl, field, amount): HINCRBY; the bucket gets its TTL from the write that
created the field (HINCRBY returned exactly the increment), not from an EXPIRE per call.
Nothing is counted when ttl is 0 (metrics off) or amount is 0.
]]
local function count(key, ttl, field, amount)
  if ttl > 0 and amount ~= 0 and call('HINCRBY', key, field, amount) == amount then
    call('EXPIRE', key, ttl)
  end
end
