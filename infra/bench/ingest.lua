-- wrk script: POST pre-signed Stripe webhooks (from infra/bench/presign.py) to /webhooks/stripe,
-- each delivery once, and report latency percentiles as WRKJSON (the peers' summarize.py format).
-- usage: wrk -t2 -c2 -d10s -s infra/bench/ingest.lua http://127.0.0.1:3000 -- <presigned-file>
local lines, idx, offset, step = {}, 0, 0, 1
function setup(thread)
  thread:set("offset", thread_count or 0)
  thread_count = (thread_count or 0) + 1
end
function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  step = 2
  idx = offset
end
function request()
  idx = idx + step
  local line = lines[(idx % #lines) + 1]
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/webhooks/stripe",
    { ["Content-Type"] = "application/json", ["Stripe-Signature"] = line:sub(1, tab - 1) }, line:sub(tab + 1))
end
function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"label":"ingest","requests":%d,"seconds":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"status_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
