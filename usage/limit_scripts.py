"""The two Redis Lua scripts behind usage/limits.py: reserve (check and take every limit of a call at once)
and settle (replace the reservation with the real usage, release the parallel slot).

A script runs atomically in Redis, so the checks of a key and its team and the writes that follow cannot
interleave with another process's: N gateway replicas enforce one limit. Time comes from Redis (`TIME`),
so replicas with skewed clocks still agree. `_engine` in usage/limits.py is the same algorithm in Python
(the database backend); keep the two in step.

Counters (KEYS[i], one per check, all under one hash tag so a Redis Cluster keeps them in one slot):
  g  GCRA state: the theoretical arrival time in ms (string with 3 decimals), expiring when it is reached.
  p  parallel slots: a sorted set of reservation tokens scored by the time they expire.
  b  budget: spent + reserved, an integer (tokens, or nano-USD), expiring after the period.
"""

# ARGV: n, max_out, min_out, member, then 5 per check: op, limit, a, b, c
#   g (GCRA, requests or tokens per period): a = period ms, b = cost
#   p (parallel requests):                   a = slot ttl ms
#   b (budget):                              a = base amount, b = amount per output token, c = ttl s
# Budgets bound the output grant `out` (max_out at most, min_out at least, else the budget refuses).
# Returns {status, failed, retry_ms, out, v1, w1, v2, w2, ...}
#   status 1 = taken, 0 = refused (`failed` = index of the first check that refused), -2 = budget counter
#   `failed` does not exist yet (the caller seeds it from the database and calls again).
#   g: v = remaining, w = ms until the limit is fully available again; p: v = slots in use;
#   b: v = spent + reserved.  All after taking (or as they stand when refused).
RESERVE = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n, max_out, min_out, member = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local EPS = 0.001
local function arg(i, j) return ARGV[4 + (i - 1) * 5 + j] end

-- Pass 1: the largest output every budget can still hold.
local out = max_out
local cur = {}
for i = 1, n do
  if arg(i, 1) == 'b' then
    local v = redis.call('GET', KEYS[i])
    if not v then return {-2, i, 0, 0} end
    cur[i] = tonumber(v)
    local per = tonumber(arg(i, 4))
    if per > 0 then
      local fit = math.floor((tonumber(arg(i, 2)) - cur[i] - tonumber(arg(i, 3))) / per)
      if fit < out then out = fit end
    end
  end
end
local need = math.max(out, min_out)

-- Pass 2: check everything; remember the first refusal. Every limit is described twice, as it would be
-- after taking (`took`) and as it stands (`kept`), for the headers of either answer.
local failed, retry = 0, 0
local took, kept, new = {}, {}, {}
for i = 1, n do
  local op, limit, a, b = arg(i, 1), tonumber(arg(i, 2)), tonumber(arg(i, 3)), tonumber(arg(i, 4))
  local v, w, v0, w0, r = 0, 0, 0, 0, nil
  if op == 'b' then
    v0 = cur[i]
    v = cur[i] + a + out * b
    if not (cur[i] < limit and cur[i] + a + need * b <= limit) then r = 0 end
  elseif op == 'g' then
    local T = a / limit
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    local nt = tat + b * T
    new[i] = nt
    v0, w0 = math.floor((a - (tat - now)) / T + EPS), math.ceil(tat - now)
    v, w = math.floor((a - (nt - now)) / T + EPS), math.ceil(nt - now)
    if nt - now > a + EPS then
      if b * T > a + EPS then r = -1 else r = math.ceil(nt - now - a) end
    end
  elseif op == 'p' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    v0 = redis.call('ZCARD', KEYS[i])
    v = v0 + 1
    if v0 >= limit then r = 1000 end
  end
  if r ~= nil and failed == 0 then failed, retry = i, r end
  took[#took + 1] = v
  took[#took + 1] = w
  kept[#kept + 1] = v0
  kept[#kept + 1] = w0
end
if failed > 0 then
  return {0, failed, retry, math.max(out, 0), unpack(kept)}
end

-- Pass 3: take everything.
for i = 1, n do
  local op = arg(i, 1)
  if op == 'g' then
    redis.call('SET', KEYS[i], string.format('%.3f', new[i]), 'PX', math.ceil(new[i] - now) + 1000)
  elseif op == 'p' then
    local ttl = tonumber(arg(i, 3))
    redis.call('ZADD', KEYS[i], now + ttl, member)
    redis.call('PEXPIRE', KEYS[i], ttl)
  elseif op == 'b' then
    local amount = tonumber(arg(i, 3)) + out * tonumber(arg(i, 4))
    redis.call('INCRBY', KEYS[i], string.format('%d', amount))
    redis.call('EXPIRE', KEYS[i], tonumber(arg(i, 5)))
  end
end
return {1, 0, 0, out, unpack(took)}
"""

# ARGV: n, then 4 per check: op, a, b, c
#   g: a = limit, b = period ms, c = cost correction (real - reserved; negative gives back)
#   p: a = reservation token (the slot to release)
#   b: a = correction (an integer; negative gives back), never below zero
SETTLE = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = tonumber(ARGV[1])
for i = 1, n do
  local o = 1 + (i - 1) * 4
  local op = ARGV[o + 1]
  if op == 'g' then
    local v = redis.call('GET', KEYS[i])
    local c = tonumber(ARGV[o + 4])
    if v and c ~= 0 then
      local nt = tonumber(v) + c * tonumber(ARGV[o + 3]) / tonumber(ARGV[o + 2])
      if nt > now then
        redis.call('SET', KEYS[i], string.format('%.3f', nt), 'PX', math.ceil(nt - now) + 1000)
      else
        redis.call('DEL', KEYS[i])
      end
    end
  elseif op == 'p' then
    redis.call('ZREM', KEYS[i], ARGV[o + 2])
  elseif op == 'b' then
    if ARGV[o + 2] ~= '0' and redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('INCRBY', KEYS[i], ARGV[o + 2]) < 0 then
        redis.call('SET', KEYS[i], '0', 'KEEPTTL')
      end
    end
  end
end
return 1
"""
