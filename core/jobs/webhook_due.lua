-- A finished job's webhook is due: mark it pending, once (the web's cancel and a worker's finish may
-- both ask). KEYS: job. Returns 1 when the caller should send it, else 0 (no callback, not finished,
-- already sent, or no such job).
if redis.call('HGET', KEYS[1], 'webhook_state') ~= 'waiting' then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'succeeded' and status ~= 'failed' and status ~= 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'webhook_state', 'pending')
return 1
