--[[ xinfo: read a field of an XINFO reply entry.

xinfo_field(entry, name): XINFO GROUPS / CONSUMERS reply a flat field list per entry (a
map under RESP3 and on some servers): the value of ``name``, or nil.
]]
local function xinfo_field(entry, name)
  if entry[name] ~= nil then return entry[name] end
  for i = 1, #entry, 2 do
    if entry[i] == name then return entry[i + 1] end
  end
  return nil
end
