-- Fire the price alerts of one symbol met by a batch of prices, each exactly once.
--
-- The script is atomic, so an alert it pops from its index is gone for every other checker:
-- however many checkers run at once, each due alert is returned by exactly one of them.
-- Cost grows with the alerts that expire or fire, not with the alerts that exist.
--
-- KEYS[1..3]  the symbol's above, below and crosses indexes (member = id, score = target)
-- KEYS[4]     the symbol's expiry index (member = id, score = expiry ms)
-- KEYS[5]     the symbol's alert data hash (id -> alert JSON)
-- KEYS[6]     the price the previous check ended at
-- KEYS[7]     the symbol's stream of fired alerts (consumer groups read it)
-- KEYS[8]     the hand-off list of the batch's last price (see ARGV[10])
-- ARGV[1..3]  low, high, last of the batch: exact float text (never tostring'd here, as Lua 5.1
--             would round it to 14 digits)
-- ARGV[4]     now (ms, wall clock): judges expiry, stamps recorded_at
-- ARGV[5]     head of the per-user fired logs; the owner's user id completes the key. The head
--             carries the symbol's hash tag, so the log sits in this script's slot.
-- ARGV[6]     pub/sub channel for fired alerts
-- ARGV[7]     most entries kept in one fired log
-- ARGV[8]     the price path as JSON {"up": [[price, ms], ...], "down": [...]}: the ticks at which
--             the batch's running high rose (prices increasing) and its running low fell
--             (decreasing), as exact text. The first point of a staircase that reaches an
--             alert's target is the tick that fired it: its price and time go in the record.
-- ARGV[9]     stream entries older than this id (ms) are trimmed
-- ARGV[10]    'file': fired records are also appended to KEYS[8] for a later check_price_alerts
--             at the batch's last price to hand over; 'take': KEYS[8]'s records are handed
--             over (returned, then deleted) before this check fires anything itself
-- ARGV[11]    ms the hand-off list lives after its last append
-- Returns {id, record, id, record, ...}; a record is the JSON logged, streamed and published.
-- With ARGV[1] empty the script only drops expired alerts, trims the stream and returns how
-- many alerts it dropped.
local low, high, last, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- Expired alerts never fire: drop them from every index first.
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, id in ipairs(expired) do
  for i = 1, 3 do
    redis.call('ZREM', KEYS[i], id)
  end
  redis.call('HDEL', KEYS[5], id)
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
end
if low == '' then
  if redis.call('EXISTS', KEYS[7]) == 1 then
    redis.call('XTRIM', KEYS[7], 'MINID', ARGV[9])
  end
  return #expired
end

local out = {}
if ARGV[10] == 'take' then
  local handed = redis.call('LRANGE', KEYS[8], 0, -1)
  redis.call('DEL', KEYS[8])
  for _, record in ipairs(handed) do
    out[#out + 1] = cjson.decode(record)['alert']['alert_id']
    out[#out + 1] = record
  end
end

-- A crosses alert fires when its target lies in the batch's range [low, high], or strictly
-- between the previous check's price and that range: the price moved through it.
local cross_low, cross_high = low, high
local prev = redis.call('GET', KEYS[6])
if prev then
  local p = tonumber(prev)
  if p < tonumber(low) then
    cross_low = '(' .. prev
  elseif p > tonumber(high) then
    cross_high = '(' .. prev
  end
end
redis.call('SET', KEYS[6], last)

local path = cjson.decode(ARGV[8])
-- The first point of a staircase whose price satisfies reached(): both are monotone, so a
-- binary search finds it.
local function first(steps, reached)
  local lo, hi = 1, #steps
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if reached(tonumber(steps[mid][1])) then
      hi = mid
    else
      lo = mid + 1
    end
  end
  return steps[lo]
end
local function rising_to(target)
  return first(path['up'], function(price) return price >= target end)
end
local function falling_to(target)
  return first(path['down'], function(price) return price <= target end)
end
local function crossing(target)
  if prev and tonumber(prev) < target then
    return rising_to(target)
  elseif prev and tonumber(prev) > target then
    return falling_to(target)
  end
  -- No earlier price, or it sat on the target: the batch crossed once it had been on both sides.
  local up, down = rising_to(target), falling_to(target)
  if tonumber(up[2]) >= tonumber(down[2]) then
    return up
  end
  return down
end

local function fire(index, hits, met)
  for i = 1, #hits, 2 do
    local id = hits[i]
    local raw = redis.call('HGET', KEYS[5], id)
    redis.call('ZREM', index, id)
    redis.call('ZREM', KEYS[4], id)
    if raw then
      redis.call('HDEL', KEYS[5], id)
      local tick = met(tonumber(hits[i + 1]))
      local record = '{"alert":' .. raw .. ',"price":' .. tick[1] .. ',"fired_at":' .. tick[2]
        .. ',"recorded_at":' .. now .. '}'
      local log = ARGV[5] .. cjson.decode(raw)['user_id']
      redis.call('LPUSH', log, record)
      redis.call('LTRIM', log, 0, tonumber(ARGV[7]) - 1)
      redis.call('XADD', KEYS[7], 'MINID', ARGV[9], '*', 'alert_id', id, 'record', record)
      redis.call('PUBLISH', ARGV[6], record)
      if ARGV[10] == 'file' then
        redis.call('RPUSH', KEYS[8], record)
        redis.call('PEXPIRE', KEYS[8], ARGV[11])
      end
      out[#out + 1] = id
      out[#out + 1] = record
    end
  end
end
fire(KEYS[1], redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', high, 'WITHSCORES'), rising_to)
fire(KEYS[2], redis.call('ZRANGEBYSCORE', KEYS[2], low, '+inf', 'WITHSCORES'), falling_to)
fire(KEYS[3], redis.call('ZRANGEBYSCORE', KEYS[3], cross_low, cross_high, 'WITHSCORES'), crossing)
return out
