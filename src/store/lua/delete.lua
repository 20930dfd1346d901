-- Deletes a finished run's record and logs.
-- KEYS: 1 run hash, 2 logs, 3 recent set
-- ARGV: 1 run id
-- Returns 1 when deleted, 0 when the run does not exist, and the status
-- when the run has not finished.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 0
end
if status == 'queued' or status == 'dispatched' or status == 'pending' or status == 'running' then
  return status
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
