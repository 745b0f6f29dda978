-- Sliding-window rate limit over a log of hits: a sorted set, score = hit time in microseconds.
--
-- KEYS[1]  the window's sorted set
-- ARGV[1]  limit: the most hits allowed in any window
-- ARGV[2]  window length in microseconds
-- ARGV[3]  cost: hits to record now (0 only reads the state)
-- ARGV[4]  a token unique to this call; members must differ or two hits would merge into one
-- ARGV[5]  now in microseconds, or "" for the server's clock
--
-- Returns {allowed 0/1, hits in the window after this call,
--          microseconds until the oldest hit leaves the window (0 when empty),
--          microseconds until max(cost, 1) more hits would fit (0 now, -1 never)}.
--
-- Which clock: the server's (TIME), by default. Every client of one key then measures the
-- window on one clock. With client clocks, a client running behind would record hits that look
-- old and are trimmed early, letting more than `limit` through in a real window, and a client
-- running ahead would lock everyone else out. TIME inside a script is safe since Redis 5, which
-- replicates a script's effects rather than re-running it. ARGV[5] exists so tests and replays
-- can drive time; one key must never mix the two.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A hit at time t counts in the windows (t - window, t]: it leaves when now reaches t + window.
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', key)
local allowed = 0
if cost > 0 and count + cost <= limit then
  local score = string.format('%.0f', now)
  for i = 1, cost do
    redis.call('ZADD', key, score, ARGV[4] .. ':' .. i)
  end
  count = count + cost
  allowed = 1
  -- The newest hit is now, so the whole log is useless one window from now, on the clock the
  -- hits are timed with (absolute, so an explicit test clock keeps its keys alive consistently).
  redis.call('PEXPIREAT', key, string.format('%.0f', math.ceil((now + window) / 1000)))
end

local reset = 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end

local need = math.max(cost, 1)
local retry = 0
if allowed == 0 and count + need > limit then
  if need > limit then
    retry = -1
  else
    -- The (count + need - limit)-th oldest hit must leave before `need` more fit.
    local blocker = redis.call('ZRANGE', key, count + need - limit - 1, count + need - limit - 1, 'WITHSCORES')
    retry = tonumber(blocker[2]) + window - now
  end
end
return {allowed, count, reset, retry}
