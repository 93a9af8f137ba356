--[[
  Unblocks a document once its re-run is done: its parked line is empty and its block is not
  (again) 'blocked', i.e. it is the retry or discard that was replayed.

  Input:
    KEYS[1] the worker's blocked documents (hash, workerKeys().blocked; values: codecs/block-state.ts)
    KEYS[2] the document's parked line (workerKeys().parked(doc))

    ARGV[1] the document identity

  Output:
    1 the document is not blocked (any more)
    0 it stays blocked (events still parked, or blocked again)
]]
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 1 end
local state = cjson.decode(value)
if state['state'] == 'blocked' then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
