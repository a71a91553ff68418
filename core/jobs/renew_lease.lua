-- Renew a running job's lease if this worker still holds it. KEYS: job. ARGV: worker, lease_until.
-- Returns 1, or 0 when the job is not running or another worker holds it.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
return 1
