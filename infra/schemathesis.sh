#!/usr/bin/env bash
# The API contract, tested: Schemathesis (pinned, installed from PyPI into target/venv-schemathesis)
# against the real dev-server binary, over every operation of GET /openapi.json — authenticated
# ones with a real access token of a user who has a subscription (bought from the dev server's
# offline Stripe stand-in), so billing routes reach their logic; `DELETE /auth/me` and
# `POST /auth/logout-all` with a fresh user's token per case (infra/schemathesis_hooks.py). Fails on any 5xx and on any
# response that does not match the document (status, content type, headers, body schema), and
# on accepting data the schema calls invalid. The summary is printed for the CI log.
#
# Usage: infra/schemathesis.sh   (builds the dev-server binary if needed; about 30 s once built)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=target/venv-schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis==$SCHEMATHESIS_VERSION into $venv (PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked --quiet -p dev-server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
base="http://127.0.0.1:$port"
# No Stripe key: the offline stand-in answers Stripe's part. A Whop webhook secret, so Whop
# deliveries are verified (and refused) rather than answered 503 "not configured". GitHub sign-in
# configured (at an address nothing answers: starting an authorization calls no one, and no
# generated callback carries a state Tollgate issued), so the OAuth routes reach their logic.
# Rate rules on (every limited answer carries its RateLimit headers, checked against the
# document) but far above what one run sends, so generated cases reach the handlers; the
# failed-login throttle stays as it is (its 429 is documented too).
limits=login.ip=100000/60,login.account=100000/60,signup.ip=100000/60,code.ip=100000/60,code.account=100000/60
limits=$limits,forgot.ip=100000/60,forgot.account=100000/60,verify.ip=100000/60,refresh.ip=100000/60
limits=$limits,refresh.account=100000/60,billing.user=100000/60,oauth.ip=100000/60,api_keys.user=100000/60
env -u STRIPE_SECRET_KEY -u WHOP_API_KEY WHOP_WEBHOOK_SECRET=ws_schemathesis TOLLGATE_RATE_LIMITS=$limits \
  TOLLGATE_GITHUB_CLIENT_ID=Iv1.schemathesis GITHUB_CLIENT_SECRET=schemathesis \
  TOLLGATE_GITHUB_WEB_BASE=http://127.0.0.1:9 TOLLGATE_GITHUB_API_BASE=http://127.0.0.1:9 \
  target/debug/dev-server --addr "127.0.0.1:$port" --data-dir "$data" >target/schemathesis-dev-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

token=$(python3 - "$base" <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")
for _ in range(100):
    try:
        call("GET", "/openapi.json")
        break
    except Exception:
        time.sleep(0.1)
token = call("POST", "/auth/signup", {"email": "schemathesis@example.com",
                                      "password": "correct horse battery staple"})["access_token"]
url = call("POST", "/billing/checkout", {"plan": "pro"}, token)["url"]
call("POST", url[len(base):])  # "pay" on the stand-in's checkout page
for _ in range(100):
    if call("GET", "/billing/subscription", token=token)["plan"] == "pro":
        break
    time.sleep(0.1)
else:
    sys.exit("the subscription did not become active")
print(token)
PY
)

TOLLGATE_SCHEMATHESIS_BASE="$base" TOLLGATE_SCHEMATHESIS_TOKEN="$token" \
PYTHONPATH=infra SCHEMATHESIS_HOOKS=schemathesis_hooks \
"$venv/bin/st" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --workers 2 \
  --suppress-health-check too_slow \
  --no-color
