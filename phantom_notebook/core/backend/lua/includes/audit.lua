--[[ audit: append the call's pre-MACed audit entries to the caller's audit stream, first.

Every audited function takes as its LAST argument the index of its audit section in ARGV
(0 = not audited) and, when audited, the caller's audit stream as its LAST key. The
section: mode ("fail" or "degrade"), number of entries e, then per entry its field count
f and f strings (field, value, ...) already carrying the client-side HMAC ("mac");
nothing keyed runs here.

audit_first(keys, argv, metrics, metrics_ttl) is called before the function writes
anything else. A refused append (a stream whose last id was pushed to the maximum, an ACL
denial) with mode "fail" returns the error reply "AUDIT_FAILED <error>", which the
function returns at once: nothing written. With mode "degrade" the action goes on and
the failure is counted as "audit_failed" in the queue's metrics (health turns CRITICAL).
Returns nil when the function may go on.
]]
local function audit_first(keys, argv, metrics, metrics_ttl)
  local p = tonumber(argv[#argv])
  if p == 0 then return nil end
  local key, mode, e = keys[#keys], argv[p], tonumber(argv[p + 1])
  p = p + 2
  local failed = false
  for _ = 1, e do
    local f = tonumber(argv[p]); p = p + 1
    if not failed then
      local ok = redis.pcall('XADD', key, '*', unpack(argv, p, p + f - 1))
      if type(ok) == 'table' and ok.err then failed = ok.err end
    end
    p = p + f
  end
  if not failed then return nil end
  if mode == 'fail' then return redis.error_reply('AUDIT_FAILED ' .. failed) end
  if metrics ~= nil then count(metrics, metrics_ttl > 0 and metrics_ttl or 86400, 'audit_failed', 1) end
  return nil
end
