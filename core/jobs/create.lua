-- Create a queued job unless the queue is full: one script, so concurrent submissions cannot overshoot.
-- KEYS: job, queue, metrics counts. ARGV: id, now, max queued (0 = no cap), then the record's
-- field/value pairs. Returns 1, or 0 when the queue is full (nothing written).
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('ZCARD', KEYS[2]) >= cap then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'submitted', 1)
return 1
