-- Index a session in its user's sorted set (score = expiry, ms), drop entries already expired,
-- and let the set itself expire with its longest-lived session, so it never outlives them.
-- ZADD GT: a new session is added, and an activity that slid a session's expiry moves its entry
-- later but never earlier (two activities may arrive out of order). GT needs Redis 6.2.
--
-- KEYS[1]  the user's session index
-- ARGV[1]  session id
-- ARGV[2]  the session's expiry time (ms)
-- ARGV[3]  now (ms)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(newest[2])))
return 1
