-- Claim a delivered job (JobStore.claim, ClaimOutcome).
-- KEYS: job, queue, running, metrics counts. ARGV: id, now, worker, lease seconds, max attempts.
-- Returns {outcome, attempts or lease_until, extra}: extra is the creation time for 'started' (the
-- queue wait), '1' for a job its stopped worker handed back (release.lua).
-- A redelivered running job is taken over only once the lease of the worker that ran it has lapsed,
-- so two live workers never run one job. A handed-back job is resumed without counting an attempt:
-- preemption is not a crash. run_start_step: the step this run starts at (for seconds per step).
-- handed_over: the flag's old name, written by workers before the rename (record.py).
local status = redis.call('HGET', KEYS[1], 'status')
local now = tonumber(ARGV[2])
local lease_until = tostring(now + tonumber(ARGV[4]))
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2], 'worker', ARGV[3],
             'attempts', '1', 'lease_until', lease_until, 'run_start_step', '0')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return {'started', '1', redis.call('HGET', KEYS[1], 'created_at') or ARGV[2]}
end
if status ~= 'running' then return {status and 'finished' or 'missing', '0', ''} end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') or 0
if lease > now then return {'leased', tostring(lease), ''} end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '1') or 1
local checkpoint = redis.call('HGET', KEYS[1], 'checkpoint_step') or '0'
if redis.call('HGET', KEYS[1], 'handed_back') == '1' or redis.call('HGET', KEYS[1], 'handed_over') == '1' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'lease_until', lease_until, 'run_start_step', checkpoint)
  redis.call('HDEL', KEYS[1], 'handed_back', 'handed_over')
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  return {'resumed', tostring(attempts), '1'}
end
if attempts >= tonumber(ARGV[5]) then return {'exhausted', tostring(attempts), ''} end
redis.call('HSET', KEYS[1], 'attempts', tostring(attempts + 1), 'worker', ARGV[3],
           'lease_until', lease_until, 'run_start_step', checkpoint)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'redelivered', 1)
return {'resumed', tostring(attempts + 1), ''}
