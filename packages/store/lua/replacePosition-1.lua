--[[
  Stores an ingest's new position, but only if its token key still holds what that ingest last
  read or wrote there. A key that is gone, or holds something else, means Redis lost writes
  (restarted empty, or from an older copy of its data) or another process wrote it: the ingest
  must look before it goes on, and nothing is written.

  Input:
    KEYS[1] the token key (ingestKeys().token)

    ARGV[1] "1" when the key is expected to hold ARGV[2], "0" when it is expected to be absent
    ARGV[2] the value expected (ignored when ARGV[1] is "0")
    ARGV[3] the value to store

  Output:
    1 the value was stored
    0 the key held something else (or a value of another type); nothing was written
]]
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[1] == '0' then
  if kind ~= 'none' then return 0 end
elseif kind ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
