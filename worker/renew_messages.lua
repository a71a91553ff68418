-- Renew the visibility of a live worker's unacknowledged messages in kombu's unacked index (broker.py):
-- XX, so a message acknowledged meanwhile is not put back. KEYS: unacked index. ARGV: now, delivery
-- tags. Returns how many were still unacknowledged.
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i])
end
return renewed
