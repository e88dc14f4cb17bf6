-- wrk script for bench/throughput.py.
--
-- If BENCH_BODY_FILE is set, requests are POSTs with that file as JSON body;
-- otherwise they stay GETs. Headers (cookie, Authorization, Origin) come from
-- wrk's -H flags. wrk counts a 302 to a login page as a success, so we count
-- every status other than 200 ourselves and print one machine-readable line.
--
-- If BENCH_RECONNECT_EVERY is N > 0, every Nth request of a thread carries
-- "Connection: close", so that connection is opened again. uvicorn and
-- hypercorn keep a connection on the worker that accepted it, and wrk opens
-- its connections at once, so one worker could take all of them for the whole
-- run; reopened connections go to whichever worker accepts first, the idle one.
-- (gunicorn's sync workers close every connection anyway.)

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

local reconnect_every = tonumber(os.getenv("BENCH_RECONNECT_EVERY") or "") or 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local keep, close
local sent = 0

function init(args)
  non200 = 0
  keep = wrk.format()
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Connection"] = "close"
  close = wrk.format(nil, nil, headers)
end

function request()
  sent = sent + 1
  if reconnect_every > 0 and sent % reconnect_every == 0 then
    return close
  end
  return keep
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non200=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, bad,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
