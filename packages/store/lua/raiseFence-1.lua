--[[
  Raises a fence copy to a new ingest leader's fencing number (set-if-greater), before that
  leader reads or writes what the copy guards: a queue's jobs and watermark, or the ring. A
  deposed leader's transactions WATCH the copy and find a number that is not theirs.

  Input:
    KEYS[1] the fence copy (ingestKeys().queueFence(queue), ingestKeys().ringFence)

    ARGV[1] the new leader's fencing number

  Output:
    the number the copy holds now: ARGV[1] when raised (or already there), a larger one when a
    newer leader raised it first (the caller is deposed)
]]
local held = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local fence = tonumber(ARGV[1])
if held < fence then
  redis.call('SET', KEYS[1], ARGV[1])
  return fence
end
return held
