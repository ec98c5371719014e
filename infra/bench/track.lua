-- POST /usage/track with a bearer token, a fresh idempotency key per request (per thread and
-- counter), so every request counts. args: <path> <bearer token> <feature>
dofile(os.getenv("PEERS_LIB") .. "/common.lua")
local path, token, feature
local n = 0
function init(args)
  path, token, feature = args[1], args[2], args[3]
end
function request()
  n = n + 1
  local body = string.format('{"feature":"%s","idempotency_key":"bench-%s-%d-%d"}',
    feature, tostring(tid), os.time(), n)
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
function done(summary, latency, requests) emit_summary("track", summary, latency) end
