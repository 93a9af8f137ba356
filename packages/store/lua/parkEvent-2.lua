--[[
  Gives an event parked behind a blocked document's dead letter its place in the document's
  line, once: parking the same event again returns the place it already has.

  Input:
    KEYS[1] the document's parked line (sorted set, workerKeys().parked(doc))
    KEYS[2] the worker's park sequence (workerKeys().parkSeq)

    ARGV[1] the event's job id

  Output:
    its place in the line (a number, as a string)
]]
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then return score end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
return tostring(seq)
