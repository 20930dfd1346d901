-- wrk script: POST /runs with a small Python program.
wrk.method = "POST"
wrk.body = '{"language":"python","code":"print(\\"hello\\")"}'
wrk.headers["Content-Type"] = "application/json"

-- Globals, so that done() can read them from each thread with thread:get().
created = 0
other = 0

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
  end
end

-- wrk runs response() in each thread's own Lua state, so per-thread counts
-- are read back here through the thread objects.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total_created, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_created = total_created + thread:get("created")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format("responses 201: %d, other: %d\n", total_created, total_other))
end
