--[[
  Locks a job the caller holds again after its lock lapsed (it expired while Redis was
  unreachable, and perhaps BullMQ's stalled checker put the job back in wait), moving it back
  from wait to active if needed, so that it is neither fetched a second time nor run twice.
  Never takes a lock another token holds.

  Input:
    KEYS[1] the queue's active list
    KEYS[2] the queue's wait list
    KEYS[3] the queue's stalled set
    KEYS[4] the job's lock ("<job key>:lock")

    ARGV[1] the job id
    ARGV[2] the caller's token
    ARGV[3] lock duration in milliseconds

  Output:
    'active'     the job was active: locked again
    'moved-back' the job was back in wait: moved to active and locked
    'gone'       the job is neither active nor waiting
    'foreign'    another token holds the lock (another process took the job over)
]]
local active = KEYS[1]
local wait = KEYS[2]
local stalled = KEYS[3]
local lock = KEYS[4]
local id = ARGV[1]
local current = redis.call('GET', lock)
if current and current ~= ARGV[2] then return 'foreign' end
if redis.call('LPOS', active, id) then
  redis.call('SET', lock, ARGV[2], 'PX', ARGV[3])
  redis.call('SREM', stalled, id)
  return 'active'
end
if redis.call('LREM', wait, 1, id) > 0 then
  redis.call('LPUSH', active, id)
  redis.call('SET', lock, ARGV[2], 'PX', ARGV[3])
  return 'moved-back'
end
return 'gone'
