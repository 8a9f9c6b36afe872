--[[ trim_broadcast: drop broadcast entries that every consumer group has acked.

KEYS[1..4]  streams s:0 .. s:3

For each stream with at least one group, the safe point is the smallest of, per group,
its oldest pending id (if any) or else its last-delivered id; entries below it are gone
for everybody and are removed with XTRIM MINID. Streams without groups are left alone.
Returns the number of entries removed.
An operator's job (the keeper of an admin or unrestricted connection): it needs XTRIM,
which consumers do not hold. Runs under OOM (allow-oom): it frees memory.
]]
--- @include "ids"
local removed = 0
for i = 1, 4 do
  local stream = KEYS[i]
  if call('EXISTS', stream) == 1 then
    local groups = call('XINFO', 'GROUPS', stream)
    local safe = nil
    for _, g in ipairs(groups) do
      local name, last = nil, nil
      for j = 1, #g, 2 do
        if g[j] == 'name' then name = g[j + 1] end
        if g[j] == 'last-delivered-id' then last = g[j + 1] end
      end
      local point = last
      local summary = call('XPENDING', stream, name)
      if tonumber(summary[1]) > 0 then point = summary[2] end
      if safe == nil or newer(safe, point) then safe = point end
    end
    if safe ~= nil then
      -- MINID keeps entries >= safe; an entry equal to a last-delivered id is done, so
      -- keeping it costs one entry and is always correct
      removed = removed + call('XTRIM', stream, 'MINID', safe)
    end
  end
end
return removed
