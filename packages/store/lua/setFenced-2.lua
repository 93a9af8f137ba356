--[[
  Sets a flag a leader writes (a worker's handoff of a ring epoch), fenced: nothing is written
  unless the fence copy in the same slot (the worker's queue's, which a new leader raises before
  its first write) still holds the writer's fencing number.

  Input:
    KEYS[1] the key to set (workerKeys().handoff(epoch))
    KEYS[2] the fence copy (ingestKeys().queueFence(queue))

    ARGV[1] the value
    ARGV[2] its time to live in seconds
    ARGV[3] the writer's fencing number

  Output:
    1 the key was set
    -1 KEYS[2] does not hold ARGV[3]: another leader took over; nothing was written
]]
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
