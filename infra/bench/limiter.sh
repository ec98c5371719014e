#!/usr/bin/env bash
# Issue #11's benchmark: login, /auth/me and refresh on the embedded store with the rate limiter
# on, side by side in one run with a build from before the limiter — interleaved rounds, the same
# load (infra/bench/peers/load.sh: N sign-ups, then wrk per phase at 1 and 2 connections).
#
# The limiter counts every request (per IP, per account, the failed-login record read) but its
# limits are set far above what the load sends, so what is measured is its cost, not refusals.
#
# Usage: infra/bench/limiter.sh <old dev-server binary> <new dev-server binary> [rounds]
#   e.g. git worktree add /tmp/old <commit before the limiter>
#        (cd /tmp/old && cargo build --release -p dev-server --target-dir /tmp/old/target) && cp /tmp/old/target/release/dev-server /tmp/dev-server-old
#        (its own target dir: cargo hashes workspace crates by their path relative to the workspace
#        root, so two checkouts sharing one target dir overwrite each other's artifacts)
#        cargo build --release -p dev-server && cp target/release/dev-server /tmp/dev-server-new
#        infra/bench/limiter.sh /tmp/dev-server-old /tmp/dev-server-new 5
# Results: /tmp/bench-limiter/<old|new>-r<round>/summary*, medians printed at the end.
set -euo pipefail
old=${1:?old binary}; new=${2:?new binary}; rounds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
out=/tmp/bench-limiter
rm -rf "$out"; mkdir -p "$out"
limits=login.ip=100000000/60,login.account=100000000/60,signup.ip=100000000/60
limits=$limits,refresh.ip=100000000/60,refresh.account=100000000/60
start() {
  local bin=$1 port=$2 data=$3
  rm -rf "$data"
  TOLLGATE_RATE_LIMITS=$limits RUST_LOG=warn "$bin" --addr "127.0.0.1:$port" --data-dir "$data" >"$data.log" 2>&1 &
  echo $! >"$data.pid"
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/.well-known/jwks.json" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server on $port did not start" >&2; exit 1
}
stop() { kill "$(cat "$1.pid")" 2>/dev/null || true; wait "$(cat "$1.pid")" 2>/dev/null || true; }
for r in $(seq "$rounds"); do
  for which in old new; do
    bin=$old; [[ $which == new ]] && bin=$new
    data=/tmp/bench-limiter-data-$which
    start "$bin" 3300 "$data"
    OUT_DIR="$out/$which-r$r" BASE_URL=http://127.0.0.1:3300 LABEL=tollgate-$which AUTH_STYLE=bearer \
      SIGNUP_PATH=/auth/signup SIGNIN_PATH=/auth/login SESSION_PATH=/auth/me REFRESH_PATH=/auth/refresh \
      DURATION=5s RUNS=1 N_USERS=100 bash "$here/peers/load.sh" >/dev/null
    stop "$data"
  done
done
python3 - "$out" "$rounds" "$here/peers/lib" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from summarize import parse
merged = {}
for which in ("old", "new"):
    for r in range(1, rounds + 1):
        for key, runs in parse(f"{out}/{which}-r{r}/raw.log").items():
            merged.setdefault(key, {}).setdefault(which, []).extend(runs)
order = {"signup": 0, "signin": 1, "session": 2, "refresh": 3}
print("| phase | conns | old req/s | new req/s | throughput | old p50 ms | new p50 ms | p50 latency | errors old/new |")
print("|---|---|---|---|---|---|---|---|---|")
for (phase, conns) in sorted(merged, key=lambda k: (order.get(k[0], 9), k[1])):
    by = merged[(phase, conns)]
    med = lambda w, k: statistics.median(x[k] for x in by.get(w, [])) if by.get(w) else float("nan")
    o, n = med("old", "rps"), med("new", "rps")
    op, np_ = med("old", "p50_ms"), med("new", "p50_ms")
    err = lambda w: sum(x["errors"] for x in by.get(w, []))
    print(f"| {phase} | {conns} | {o:.1f} | {n:.1f} | {(n / o - 1) * 100:+.1f} % | {op:.3f} | {np_:.3f} | "
          f"{(np_ / op - 1) * 100:+.1f} % | {err('old')}/{err('new')} |")
PY
