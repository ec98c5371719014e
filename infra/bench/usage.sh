#!/usr/bin/env bash
# Issue #12's benchmark: POST /usage/track next to GET /auth/me, same run, same user, embedded
# store, at 2 connections (wrk, 10 s each, interleaved rounds). Every track counts (a fresh
# idempotency key per request) against a limit the run cannot reach (the free plan's `exports`
# raised to 100,000,000 in a copy of the catalog), so the conditional count is on every request.
#
# Usage: infra/bench/usage.sh <dev-server binary> [rounds]   (cargo build --release -p dev-server)
# Needs wrk and python3. Prints one JSON line per run and the medians.
set -euo pipefail
bin=${1:?dev-server binary}; rounds=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
export PEERS_LIB="$here/peers/lib"
work=$(mktemp -d)
sed 's/exports = { limit = 5 }/exports = { limit = 100000000 }/' "$here/../plans.toml" >"$work/plans.toml"
port=3310
TOLLGATE_PLANS_FILE="$work/plans.toml" TOLLGATE_RATE_LIMITS=off RUST_LOG=warn \
  "$bin" --addr "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/.well-known/jwks.json" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fsS -X POST "http://127.0.0.1:$port/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery staple"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
log="$work/runs.log"
for r in $(seq "$rounds"); do
  wrk -t2 -c2 -d10s --timeout 10s -s "$PEERS_LIB/session.lua" "http://127.0.0.1:$port" -- /auth/me Authorization "Bearer $token" | grep WRKJSON | tee -a "$log"
  wrk -t2 -c2 -d10s --timeout 10s -s "$here/track.lua" "http://127.0.0.1:$port" -- /usage/track "$token" exports | grep WRKJSON | tee -a "$log"
done
python3 - "$log" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    d = json.loads(line.split(" ", 1)[1])
    runs.setdefault(d["label"], []).append(d)
for label, rs in runs.items():
    med = lambda k: statistics.median(r[k] for r in rs)
    each = ", ".join("%.0f" % r["rps"] for r in rs)
    errors = sum(r["errors"] for r in rs)
    print(f"{label:8} c=2: {med('rps'):.0f} req/s (runs: {each}), "
          f"p50 {med('p50_ms'):.3f} ms, p99 {med('p99_ms'):.3f} ms, errors {errors}")
PY
