-- Record a session's latest activity, only while the session lives and belongs to the user.
-- A plain HSET on an expired session would recreate it as a hash without a TTL.
--
-- KEYS[1]  the session hash
-- ARGV[1]  user id
-- ARGV[2]  the encoded activity
-- ARGV[3]  now (ms)
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'activity', ARGV[2], 'last_activity', ARGV[3])
return 1
