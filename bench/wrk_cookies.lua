-- wrk script for bench/session_memory.py: send each cookie of a list exactly once.
--
-- Cookies come from "$BENCH_COOKIE_FILE", one token per line. Run with one
-- thread and one connection (wrk -t1 -c1): requests then go one after another,
-- so the next request carries the cookie after the last answered one (a request
-- retried after a socket error repeats its cookie). Several threads would not
-- do: a thread that stops early leaves a freshly opened, idle connection behind,
-- which blocks the app's only sync worker until gunicorn's timeout kills it.
-- Once every cookie was answered the thread stops and creates
-- "$BENCH_COOKIE_FILE.done"; wrk itself runs for all of -d, so the caller
-- watches for that file and ends wrk early with SIGINT. Statuses other than
-- 200 are counted; one parseable line at the end.

local path = assert(os.getenv("BENCH_COOKIE_FILE"), "BENCH_COOKIE_FILE not set")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  cookies = {}
  for line in io.lines(path) do
    cookies[#cookies + 1] = line
  end
  count = #cookies
  answered = 0
  non200 = 0
end

function request()
  -- wrk also calls this once before the run to check the request; harmless here.
  local i = math.min(answered + 1, count)
  wrk.headers["Cookie"] = "dash-auth-session=" .. cookies[i]
  return wrk.format()
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    non200 = non200 + 1
  end
  if answered == count then
    wrk.thread:stop()
    assert(io.open(path .. ".done", "w")):close()
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT answered=%d expected=%d non200=%d socket_errors=%d duration_us=%d\n",
    t:get("answered"), t:get("count"), t:get("non200"),
    e.connect + e.read + e.write + e.timeout, summary.duration))
end
