-- wrk script for bench/throughput.py.
--
-- If BENCH_BODY_FILE is set, requests are POSTs with that file as JSON body;
-- otherwise they stay GETs. Headers (cookie, Authorization, Origin) come from
-- wrk's -H flags. wrk counts a 302 to a login page as a success, so we count
-- every status other than 200 ourselves and print one machine-readable line.

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
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
