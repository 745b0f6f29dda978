-- Delete one price alert if it is still live and belongs to the user.
--
-- KEYS[1..3]  the symbol's above, below and crosses indexes
-- KEYS[4]     the symbol's alert expiry index
-- KEYS[5]     the symbol's alert data hash
-- ARGV[1]     alert id
-- ARGV[2]     user id
-- Returns 1 when deleted, 0 when no live alert has that id, -1 when it is someone else's.
local raw = redis.call('HGET', KEYS[5], ARGV[1])
if not raw then
  return 0
end
if cjson.decode(raw)['user_id'] ~= ARGV[2] then
  return -1
end
for i = 1, 4 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
