--[[ trace: append one lifecycle event for a batch of messages to a queue's capped trace.

trace(key, cap, event, actor, items): nothing when cap is 0 (tracing off) or items is "".
items = "<message id>|<trace id>|<attempt>|<detail>;..." (observe/tracing.py parses them).
]]
local function trace(key, cap, event, actor, items)
  if cap > 0 and items ~= '' then
    call('XADD', key, 'MAXLEN', '~', cap, '*', 'ev', event, 'c', actor, 'm', items)
  end
end
