--[[
  Sets a queue's watermark for an ingest, but only if every job added before it in the same
  MULTI transaction is in Redis. EXEC does not roll back when one command of a transaction
  fails (a NOSCRIPT after SCRIPT FLUSH, a refused job): an unguarded watermark would then claim
  jobs that are not there, and the ingest's retry would skip them.

  Input:
    KEYS[1] the watermark (ingestKeys().watermark(queue, kind))
    KEYS[2] the queue's job key prefix, "<prefix>:<queue>:" (a job's hash is prefix .. id)

    ARGV[1] the position to store (the last job's)
    ARGV[2..] the ids of the transaction's jobs

  Output:
    1 the watermark was set
    0 a job is missing; nothing was written
]]
for i = 2, #ARGV do
  if redis.call('EXISTS', KEYS[2] .. ARGV[i]) == 0 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
