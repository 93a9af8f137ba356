--[[
  Takes over a dead predecessor's active jobs: writes the caller's token into the lock of each
  job that is still in the active list (whoever held it) and takes it out of the stalled set.
  Only the lease holder calls it. Relies on BullMQ's internals (see bullmq-internals.ts): a job's
  lock is the string "<job key>:lock" holding the worker's token.

  Input:
    KEYS[1] the queue's active list
    KEYS[2] the queue's stalled set

    ARGV[1] the queue's job key prefix, "<prefix>:<queue>:"
    ARGV[2] the lock key suffix, ":lock"
    ARGV[3] the token to write
    ARGV[4] lock duration in milliseconds
    ARGV[5..] the job ids

  Output:
    the ids of the jobs taken over (those still active), in the order given
]]
local active = KEYS[1]
local stalled = KEYS[2]
local taken = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('LPOS', active, id) then
    redis.call('SET', ARGV[1] .. id .. ARGV[2], ARGV[3], 'PX', ARGV[4])
    redis.call('SREM', stalled, id)
    table.insert(taken, id)
  end
end
return taken
