-- Move a key's expiry later, never earlier: PEXPIREAT with NX or GT, for servers before Redis 7
-- (the local store runs Redis 6.2, whose PEXPIREAT takes no options).
--
-- KEYS[1]  the key
-- ARGV[1]  the wanted expiry time (ms)
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return 0
end
local now = redis.call('TIME')
local at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl
if ttl == -1 or tonumber(ARGV[1]) > at then
  return redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return 0
