-- Hand a running job back (its worker is shutting down): the lease lapses now, so the next delivery
-- resumes it at once, and handed_back tells that delivery not to count an attempt. Only the worker
-- holding the lease may. KEYS: job, metrics counts. ARGV: worker, now. Returns 1, or 0 if not held.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2], 'handed_back', '1')
redis.call('HINCRBY', KEYS[1], 'preemptions', 1)
redis.call('HINCRBY', KEYS[2], 'preempted', 1)
return 1
