-- Cancel. KEYS: job, cancel flag, queue, finished, metrics counts. ARGV: id, now, ttl.
-- Returns the status the job had (false: no job): a queued job becomes cancelled at once, so it can
-- never also start (claim.lua); a running one gets the flag its worker checks.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[2],
             'error', 'cancelled before it started')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
elseif status == 'running' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
end
return status
