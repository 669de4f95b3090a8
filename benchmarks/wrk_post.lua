-- wrk script for the tinytrack benchmarks.
--
--   wrk ... -s benchmarks/wrk_post.lua http://127.0.0.1:PORT -- BODIES_FILE PATH API_KEY ["Name: value" ...]
--
-- POSTs the JSON documents of BODIES_FILE (one per line, cycled, each wrk thread starting at a
-- different offset) to PATH with "Authorization: Bearer API_KEY" (none when API_KEY is "-") and
-- any extra headers given, counts every response status and prints them at the end as one line:
-- "STATUS 201=12345 503=2".

local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  local bodies_file, path, key = args[1], args[2], args[3]
  local headers = { ["Content-Type"] = "application/json" }
  if key ~= "-" then
    headers["Authorization"] = "Bearer " .. key
  end
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  requests = {}
  local f = assert(io.open(bodies_file, "r"))
  for line in f:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", path, headers, line)
    end
  end
  f:close()
  assert(#requests > 0, "no request bodies in " .. bodies_file)
  index = (offset or 0) * 7919 % #requests
  statuses = {}
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, reqs)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  io.write("STATUS")
  for status, n in pairs(total) do
    io.write(string.format(" %d=%d", status, n))
  end
  io.write("\n")
end
