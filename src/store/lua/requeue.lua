-- Moves every id in a processing list back to the consuming end of the queue.
-- KEYS: 1 processing list, 2 queue
-- Returns the number of ids moved.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
return moved
