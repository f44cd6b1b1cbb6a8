-- wrk script of the end-to-end check: a repeated-request mix. The paths come as arguments
-- (wrk ... -s wrk_mix.lua <url> -- <path> <path> ...); each wrk thread cycles through them
-- from its own offset, so the mix is the list's proportions and every path repeats.
local paths = {}
local next_index = 1

function init(args)
  for i = 1, #args do paths[#paths + 1] = args[i] end
  if #paths == 0 then paths[1] = "/" end
  -- wrk numbers no threads for us: a random start spreads the threads over the list.
  next_index = math.random(#paths)
end

function request()
  local path = paths[next_index]
  next_index = next_index % #paths + 1
  return wrk.format("GET", path)
end
