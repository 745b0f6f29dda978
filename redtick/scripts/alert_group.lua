-- Join a consumer group to a symbol's stream of fired alerts, creating both if needed.
--
-- KEYS[1]  the symbol's stream of fired alerts
-- ARGV[1]  the group's name
-- ARGV[2]  the entry id a new group starts after ('$' for only entries added from now on)
-- Returns 1 when the group was created, 0 when it existed (its position is kept).
-- XINFO rather than XGROUP's BUSYGROUP error: pcall's error objects differ between Redis and
-- fakeredis.
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    if group[2] == ARGV[1] then
      return 0
    end
  end
end
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
return 1
