-- Publish a tick write's notice on its symbol's channel, from inside the write's MULTI/EXEC.
--
-- KEYS[1]  the symbol's tick index: not touched, declared so that Redis Cluster runs the call
--          on the symbol's slot, inside the write's transaction (redis-py refuses a bare PUBLISH
--          in a cluster pipeline, and SPUBLISH needs Redis 7 where the local store runs 6.2)
-- ARGV[1]  the channel (KeySchema.tick_channel)
-- ARGV[2]  the notice (notices.TickNotice, JSON)
-- Returns the number of subscribers that received it on this node.
return redis.call('PUBLISH', ARGV[1], ARGV[2])
