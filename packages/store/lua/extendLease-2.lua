--[[
  Renews a lease, only if it still holds the caller's own value, and reads the fencing counter:
  a counter below the fence the caller holds means Redis lost its data (see lease.ts).

  Input:
    KEYS[1] the lease
    KEYS[2] its fencing counter

    ARGV[1] the value the caller stored when it acquired the lease
    ARGV[2] time to live in milliseconds

  Output:
    {1, counter} renewed
    {0, counter} the lease is gone or another holder has it
    (counter: the fencing counter's value, 0 when it is missing)
]]
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, counter}
end
return {0, counter}
