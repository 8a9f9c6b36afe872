--[[ ids: stream id arithmetic.

newer(a, b): stream id a is greater than b ("<ms>-<seq>" strings, compared as numbers).
]]
local function split_id(id)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  return tonumber(ms), tonumber(seq)
end

local function newer(a, b)
  local am, as = split_id(a)
  local bm, bs = split_id(b)
  return am > bm or (am == bm and as > bs)
end
