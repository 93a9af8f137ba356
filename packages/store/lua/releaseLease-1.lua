--[[
  Gives a lease back, only if it still holds the caller's own value.

  Input:
    KEYS[1] the lease

    ARGV[1] the value the caller stored when it acquired the lease

  Output:
    1 deleted
    0 the lease is gone or another holder has it
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
