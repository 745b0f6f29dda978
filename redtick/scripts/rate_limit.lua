-- Sliding-window rate limit over a log of hits: a sorted set, score = hit time in microseconds.
--
-- KEYS[1]  the log of one identity's hits (any window)
-- KEYS[2]  the log's span: the longest window (microseconds) used on it while it held hits
-- ARGV[1]  limit: the most hits allowed in any window of this call's length
-- ARGV[2]  this call's window length in microseconds
-- ARGV[3]  cost: hits to record now (0 only reads the state)
-- ARGV[4]  a token unique to this call; members must differ or two hits would merge into one
-- ARGV[5]  now in microseconds, or "" for the server's clock
--
-- Returns {allowed 0/1, hits in this call's window after this call,
--          microseconds until the oldest of them leaves the window (0 when none),
--          microseconds until max(cost, 1) more hits would fit (0 now, -1 never)}.
--
-- Calls with different windows share one log. Each counts only the hits in its own window, and
-- the log is trimmed to its span, never to the caller's window: a 60 s check must not delete the
-- hits a 300 s limit still counts. A window longer than any used while the log held hits sees
-- only what the span kept until then.
--
-- Which clock: the server's (TIME), by default. Every client of one key then measures the
-- window on one clock. With client clocks, a client running behind would record hits that look
-- old and are trimmed early, letting more than `limit` through in a real window, and a client
-- running ahead would lock everyone else out. TIME inside a script is safe since Redis 5, which
-- replicates a script's effects rather than re-running it. ARGV[5] exists so tests and replays
-- can drive time; one key must never mix the two.
local key, span_key = KEYS[1], KEYS[2]
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

local span = math.max(tonumber(redis.call('GET', span_key) or '0') or 0, window)

-- A hit at time t counts in the windows (t - w, t]: it leaves a window of w when now reaches t + w.
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now - span))
local outside = redis.call('ZCOUNT', key, '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', key) - outside
local allowed = 0
if cost > 0 and count + cost <= limit then
  local score = string.format('%.0f', now)
  for i = 1, cost do
    redis.call('ZADD', key, score, ARGV[4] .. ':' .. i)
  end
  count = count + cost
  allowed = 1
end

local reset = 0
if count > 0 then
  local oldest = redis.call('ZRANGE', key, outside, outside, 'WITHSCORES')
  reset = tonumber(oldest[2]) + window - now
end

local need = math.max(cost, 1)
local retry = 0
if allowed == 0 and count + need > limit then
  if need > limit then
    retry = -1
  else
    -- The (count + need - limit)-th oldest hit in the window must leave before `need` more fit.
    local at = outside + count + need - limit - 1
    local blocker = redis.call('ZRANGE', key, at, at, 'WITHSCORES')
    retry = tonumber(blocker[2]) + window - now
  end
end

-- Log and span live until the newest hit is older than the span, on the clock the hits are
-- timed with (absolute, so an explicit test clock keeps its keys alive consistently). A look at
-- an empty log writes nothing: there is no hit for a span to protect.
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] then
  local expire_at = string.format('%.0f', math.ceil((tonumber(newest[2]) + span) / 1000))
  redis.call('PEXPIREAT', key, expire_at)
  redis.call('SET', span_key, string.format('%.0f', span))
  redis.call('PEXPIREAT', span_key, expire_at)
end
return {allowed, count, reset, retry}
