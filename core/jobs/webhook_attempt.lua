-- Record one webhook delivery attempt unless the job is gone (deleted or expired: nothing recreated).
-- KEYS: job, its attempts list. ARGV: the attempt (JSON), the delivery's new state, TTL seconds.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'webhook_state', ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
