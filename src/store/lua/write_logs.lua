-- Writes output into a run's logs at a byte offset, and renews their expiry.
-- Writing at an offset makes a retried call harmless. When the stored logs
-- are shorter than the offset (Redis lost writes it had acknowledged), it
-- writes nothing and returns the stored length, so the caller resends from there.
-- KEYS: 1 logs
-- ARGV: 1 offset, 2 bytes, 3 TTL in s
-- Returns the stored length after the call.
local length = redis.call('STRLEN', KEYS[1])
local offset = tonumber(ARGV[1])
if length < offset then
  return length
end
redis.call('SETRANGE', KEYS[1], offset, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return offset + string.len(ARGV[2])
