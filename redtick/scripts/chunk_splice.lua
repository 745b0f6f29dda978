-- Replace a raw tick chunk's bytes from ARGV[1] on with ARGV[2], leaving the string at its exact size.
-- A SETRANGE past a string's end grows it, and Redis then over-allocates (up to twice its length, or
-- a megabyte more): right for the head chunk, which grows again, but a chunk behind the head would
-- keep that slack for good. So the part kept and the new tail are joined here and SET, and only the
-- tail travels; ARGV[1] > 0 (a splice from byte 0 is a plain SET).
--
-- KEYS[1]  the tick chunk
-- ARGV[1]  the byte offset the new tail starts at
-- ARGV[2]  the new tail: the stored records from the offset on merged with the new ticks
local kept = redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('SET', KEYS[1], kept .. ARGV[2])
return 1
