local function same_params(a, b)
  if a == b then return true end
  local ok1, x = pcall(cjson.decode, a or '{}')
  local ok2, y = pcall(cjson.decode, b or '{}')
  if not ok1 or not ok2 or type(x) ~= 'table' or type(y) ~= 'table' then return false end
  for k, v in pairs(x) do if v ~= '' and y[k] ~= v then return false end end
  for k, v in pairs(y) do if v ~= '' and x[k] ~= v then return false end end
  return true
end
