-- Open-loop load for wrk (Debian package `wrk`): requests are sent at the times of a Poisson process of the
-- given rate, scheduled on a monotonic clock, not when the previous answer arrived. Each wrk thread keeps
-- its own schedule (rate / threads) and sends each request on whichever of its connections is free; when
-- none is free at the scheduled time the request goes out late, and the lateness is counted ("late",
-- "max_lag_ms"), so an offered rate that was not really offered is visible in the results.
--
--   wrk -t2 -c200 -d20s --timeout 10s -s benchmarks/open_loop.lua URL -- RATE BODY_FILE [Name:value ...]
--
-- BODY_FILE holds one JSON body per line; with several lines the requests cycle through them.
--
-- Prints one JSON line at the end: requests, duration, statuses, wrk's errors, latency percentiles (us,
-- from wrk's HdrHistogram: send to last byte), late requests and the largest lag.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } sf_timespec;
int clock_gettime(int clk_id, sf_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("sf_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
mean_gap_us = 0
next_at = 0
statuses = {}
late = 0
max_lag_us = 0
bodies = {}
next_body = 1

function init(args)
  local rate = tonumber(args[1])
  local body_file = args[2]
  local threads_n = tonumber(os.getenv("WRK_THREADS") or "2")
  mean_gap_us = 1e6 * threads_n / rate
  -- one JSON body per line: with several, each request takes the next one (from a random start)
  for line in io.lines(body_file) do
    if string.match(line, "%S") then table.insert(bodies, line) end
  end
  assert(#bodies > 0, "no request body in " .. body_file)
  wrk.body = bodies[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for i = 3, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  math.randomseed(os.time() * 1000 + (thread_index or 0))
  next_body = math.random(#bodies)
  next_at = now_us()
end

function request()
  if #bodies == 1 then return wrk.format() end
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

local function exponential(mean)
  return -mean * math.log(1.0 - math.random())
end

function delay()
  next_at = next_at + exponential(mean_gap_us)
  local wait = next_at - now_us()
  if wait < 0 then
    late = late + 1
    if -wait > max_lag_us then max_lag_us = -wait end
    return 0
  end
  return wait / 1000.0 -- ms
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local codes, late_total, lag = {}, 0, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      codes[code] = (codes[code] or 0) + n
    end
    late_total = late_total + t:get("late")
    lag = math.max(lag, t:get("max_lag_us"))
  end
  local parts = {}
  for code, n in pairs(codes) do table.insert(parts, string.format('"%d": %d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "statuses": {%s}, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "late": %d, "max_lag_us": %d}\n',
    summary.requests, summary.duration, table.concat(parts, ", "), e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, late_total, lag))
end
