--[[
  Renews a lease, only if it still holds the caller's own value.

  Input:
    KEYS[1] the lease

    ARGV[1] the value the caller stored when it acquired the lease
    ARGV[2] time to live in milliseconds

  Output:
    1 renewed
    0 the lease is gone or another holder has it
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
