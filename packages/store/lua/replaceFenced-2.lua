--[[
  Compare-and-set of a value only a leader writes (the ingest's resume token, the ring), fenced:
  nothing is written unless KEYS[2] still holds the writer's fencing number (the ingest lease's
  counter, which every acquisition increments; or a fence copy a new leader raises), and the
  key still holds what the writer last read or wrote there.

  Input:
    KEYS[1] the key to replace (ingestKeys().token, ringKey())
    KEYS[2] the fence (ingestKeys().fence, ingestKeys().ringFence)

    ARGV[1] "1" when KEYS[1] is expected to hold ARGV[2], "0" when it is expected to be absent
    ARGV[2] the value expected (ignored when ARGV[1] is "0")
    ARGV[3] the value to store
    ARGV[4] the writer's fencing number

  Output:
    1 the value was stored
    0 KEYS[1] held something else (or a value of another type); nothing was written
    -1 KEYS[2] does not hold ARGV[4]: another leader took over; nothing was written
]]
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[1] == '0' then
  if kind ~= 'none' then return 0 end
elseif kind ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
