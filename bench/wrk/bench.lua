-- wrk script for every load scenario; BENCH_MODE chooses the URLs:
--   hot   the command line's URL every time (no request() hook, so wrk
--         sends a pre-built request and Lua costs nothing)
--   miss  a URL never asked before: BENCH_PREFIX/<thread>/<n>?size=BENCH_SIZE
--   zipf  BENCH_PREFIX/<rank>?size=BENCH_SIZE, rank ~ Zipf(1.0) over
--         BENCH_OBJECTS objects (edge_bench::zipf has the same sampler)
--   BENCH_ACCEPT_ENCODING, if set, is sent as Accept-Encoding.
-- done() prints one line, "BENCH_JSON {...}", that bench/run turns into a
-- results record (edge_bench::results::WrkSummary).

local mode = os.getenv("BENCH_MODE") or "hot"
-- The compression scenario's clients: a browser's Accept-Encoding. Set
-- here, before wrk builds its request, so hot mode still sends one
-- pre-built request.
local accept_encoding = os.getenv("BENCH_ACCEPT_ENCODING")
if accept_encoding then
  wrk.headers["Accept-Encoding"] = accept_encoding
end
local prefix = os.getenv("BENCH_PREFIX") or "/obj"
local size = os.getenv("BENCH_SIZE") or "1024"
local objects = tonumber(os.getenv("BENCH_OBJECTS") or "100000")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")

local next_id = 1
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

local cdf
function init(args)
  if mode == "zipf" then
    cdf = {}
    local sum = 0
    for k = 1, objects do
      sum = sum + 1 / k
      cdf[k] = sum
    end
    for k = 1, objects do
      cdf[k] = cdf[k] / sum
    end
    -- Each thread its own stream, the same in every round and contestant.
    math.randomseed(seed * 1000 + thread_id)
  end
end

if mode == "miss" then
  local n = 0
  request = function()
    n = n + 1
    return wrk.format(nil, prefix .. "/" .. thread_id .. "/" .. n .. "?size=" .. size)
  end
elseif mode == "zipf" then
  request = function()
    local u = math.random()
    local lo, hi = 1, objects
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    return wrk.format(nil, prefix .. "/" .. lo .. "?size=" .. size)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"non2xx":%d,'
      .. '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
