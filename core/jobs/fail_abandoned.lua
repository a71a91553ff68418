-- Fail running jobs whose lease lapsed before a cutoff: their worker died and no delivery resumed them
-- (the hard time limit acknowledged the message, or it was lost). Not a job its stopping worker handed
-- back (handed_back, or handed_over, its old name): its message is back in its queue, where it waits
-- its turn however long the queue.
-- KEYS: running, finished, metrics counts. ARGV: now, cutoff, ttl, error message, job key prefix.
-- Returns the failed ids.
local failed = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[5] .. id
  if redis.call('HGET', key, 'status') ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  elseif redis.call('HGET', key, 'handed_back') ~= '1' and redis.call('HGET', key, 'handed_over') ~= '1'
     and (tonumber(redis.call('HGET', key, 'lease_until') or '0') or 0) < tonumber(ARGV[2]) then
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[1], 'has_result', '0',
               'error', ARGV[4], 'stats', '{}')
    redis.call('EXPIRE', key, ARGV[3])
    redis.call('DEL', key .. ':cancel')
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    redis.call('HINCRBY', KEYS[3], 'failed', 1)
    table.insert(failed, id)
  end
end
return failed
