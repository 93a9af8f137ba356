--[[
  Acquires a lease if nobody holds it, or if it still holds the value of a holder the caller
  found dead (a process of its own host that no longer exists), with a fencing number larger
  than every earlier one: the holder's description is stored with the number put first, so the
  value is unique to this acquisition (extend and release compare it).

  Input:
    KEYS[1] the lease (e.g. workerKeys().lease)
    KEYS[2] its fencing counter (e.g. workerKeys().fence)

    ARGV[1] the holder's description: a JSON object without "fence" (codecs/lease.ts)
    ARGV[2] time to live in milliseconds
    ARGV[3] the stored value of a holder known to be dead, or '' (no stored value is empty)

  Output:
    the stored value ({"fence":<n>, ...the description}) when acquired
    nil when another holder has it
]]
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then return false end
local fence = redis.call('INCR', KEYS[2])
local value = '{"fence":' .. fence .. ',' .. string.sub(ARGV[1], 2)
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
