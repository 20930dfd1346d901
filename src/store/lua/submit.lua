-- Stores a new run and queues it, in one step.
-- KEYS: 1 run hash, 2 queue, 3 recent set, 4 event stream, 5 idempotency key
-- ARGV: 1 run id, 2 created_at (RFC 3339), 3 created_at in ms, 4 retention in s,
--       5 max queue depth, 6 stream max length, 7 use idempotency key (0/1),
--       8 idempotency TTL in s, 9.. hash field and value pairs
-- Returns {"created", id}, {"existing", id} or {"queue_full", depth}.
local id = ARGV[1]
if ARGV[7] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing and redis.call('EXISTS', 'run:' .. existing) == 1 then
    return {'existing', existing}
  end
end

local depth = redis.call('LLEN', KEYS[2])
if depth >= tonumber(ARGV[5]) then
  return {'queue_full', tostring(depth)}
end

local fields = {'status', 'queued', 'created_at', ARGV[2]}
for i = 9, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('LPUSH', KEYS[2], id)

local now_ms = tonumber(ARGV[3])
redis.call('ZADD', KEYS[3], now_ms, id)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now_ms - tonumber(ARGV[4]) * 1000))

redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*',
  'run_id', id, 'status', 'queued', 'reason', '', 'at', ARGV[2])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[5], id, 'EX', ARGV[8])
end
return {'created', id}
