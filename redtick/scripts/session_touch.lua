-- Record a session's latest activity, only while the session lives and belongs to the user, and
-- slide its expiry later (never earlier) to the one the caller computed from the session's ttl and
-- its maximum lifetime. A plain HSET on an expired session would recreate it as a hash without a
-- TTL. "Later" compares the expiry times the cache's clock gave (ARGV[5] against the stored
-- expires_at), never a TTL of ours against the server's PTTL: the two clocks differ (an injected
-- clock, or the milliseconds a round trip takes), and a slide equal to PTTL to the millisecond
-- was dropped. The TTL is then set relative (PEXPIRE), so the server's clock decides when the
-- hash goes; Redis 6.2 has no PEXPIRE GT, hence the comparison here.
--
-- KEYS[1]  the session hash
-- ARGV[1]  user id
-- ARGV[2]  the encoded activity
-- ARGV[3]  now (ms)
-- ARGV[4]  the TTL (ms) to slide to; 0 leaves the expiry as it is
-- ARGV[5]  the session's expiry time (ms) that TTL gives, stored as expires_at
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'activity', ARGV[2], 'last_activity', ARGV[3])
local ttl = tonumber(ARGV[4])
local stored = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
if ttl > 0 and (stored == nil or tonumber(ARGV[5]) > stored) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[5])
end
return 1
