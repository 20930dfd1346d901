-- Moves a run to a new state if that is a step forward, in one step.
-- KEYS: 1 run hash, 2 event stream, 3 active list, 4 queue, 5 logs
-- ARGV: 1 run id, 2 new status, 3 at (RFC 3339), 4 stream max length,
--       5.. hash field and value pairs written with the change
-- Returns {1, previous status} when applied, {2, status} when the run was
-- already in that unfinished state and only its fields were updated (no
-- event), {0, current status} when not applied, and {0, ''} when the run
-- does not exist. A field named __logs is stored as the run's logs (KEYS 5)
-- with the TTL in the field __logs_ttl, instead of in the hash.
local rank = {
  queued = 0, dispatched = 1, pending = 2, running = 3,
  succeeded = 4, failed = 4, timed_out = 4, cancelled = 4, error = 4,
}
local id = ARGV[1]
local new = ARGV[2]
local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  return {0, ''}
end
local same = new == current and rank[current] < 4
if not same and (rank[current] == 4 or rank[new] <= rank[current]) then
  return {0, current}
end

local fields = {'status', new}
local reason = ''
local logs = nil
local logs_ttl = nil
for i = 5, #ARGV, 2 do
  if ARGV[i] == '__logs' then
    logs = ARGV[i + 1]
  elseif ARGV[i] == '__logs_ttl' then
    logs_ttl = ARGV[i + 1]
  else
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'reason' then
      reason = ARGV[i + 1]
    end
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
if logs then
  redis.call('SET', KEYS[5], logs, 'EX', logs_ttl)
end
if same then
  return {2, current}
end

if rank[new] == 4 then
  redis.call('LREM', KEYS[3], 0, id)
  if current == 'queued' then
    redis.call('LREM', KEYS[4], 0, id)
  end
elseif current == 'queued' then
  redis.call('LREM', KEYS[3], 0, id)
  redis.call('LPUSH', KEYS[3], id)
end

redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
  'run_id', id, 'status', new, 'reason', reason, 'at', ARGV[3])
return {1, current}
