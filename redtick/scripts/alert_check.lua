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
-- ARGV[1..3]  low, high, last of the batch: exact float text (never tostring'd here, as Lua 5.1
--             would round it to 14 digits)
-- ARGV[4]     now (ms)
-- ARGV[5]     head of the per-user fired logs; the owner's user id completes the key. The head
--             carries the symbol's hash tag, so the log sits in this script's slot.
-- ARGV[6]     pub/sub channel for fired alerts
-- ARGV[7]     most entries kept in one fired log
-- Returns {id, record, id, record, ...}; a record is the JSON logged and published.
-- With ARGV[1] empty the script only drops expired alerts and returns how many it dropped.
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
  return #expired
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

local out = {}
local function fire(index, ids, price)
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', KEYS[5], id)
    redis.call('ZREM', index, id)
    redis.call('ZREM', KEYS[4], id)
    if raw then
      redis.call('HDEL', KEYS[5], id)
      local record = '{"alert":' .. raw .. ',"price":' .. price .. ',"fired_at":' .. now .. '}'
      local log = ARGV[5] .. cjson.decode(raw)['user_id']
      redis.call('LPUSH', log, record)
      redis.call('LTRIM', log, 0, tonumber(ARGV[7]) - 1)
      redis.call('PUBLISH', ARGV[6], record)
      out[#out + 1] = id
      out[#out + 1] = record
    end
  end
end
fire(KEYS[1], redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', high), high)
fire(KEYS[2], redis.call('ZRANGEBYSCORE', KEYS[2], low, '+inf'), low)
fire(KEYS[3], redis.call('ZRANGEBYSCORE', KEYS[3], cross_low, cross_high), last)
return out
