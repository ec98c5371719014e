#!/usr/bin/env bash
# Runs every check Tollgate has, as CI does: the template check, formatting, clippy (-D warnings),
# the whole test suite — including the DynamoDB, SQS, Secrets Manager and SES cases, for which it
# installs (if missing) and starts moto_server on a free loopback port, the SMTP case (aiosmtpd),
# the Stripe-library signing test, for which it installs the pinned `stripe` npm package, and the
# OAuth cases, for which it installs oauth2-mock-server (a real OpenID Connect server) — then Schemathesis over
# the API document against the dev server (infra/schemathesis.sh), the functions as separate
# Lambda processes against moto (infra/local-lambda.sh) and the release Lambda builds
# (infra/lambda-build.sh), and the hosted pages in headless Chromium (infra/browser.sh, which
# installs Debian's chromium with apt-get when missing). Needs a Rust toolchain, python3 with pip
# and venv, and node with npm.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "infra/check-template.sh (template.yaml: samtranslator + cfn-lint, offline)"
bash infra/check-template.sh

MOTO_VERSION=5.2.1
if ! command -v moto_server >/dev/null 2>&1; then
  log "installing moto[server]==$MOTO_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
# A real SMTP server for the dev server's optional SMTP path (infra/dev-server/tests/smtp.rs).
AIOSMTPD_VERSION=1.4.6
if ! python3 -c "import aiosmtpd" 2>/dev/null; then
  log "installing aiosmtpd==$AIOSMTPD_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi

# The Standard Webhooks reference library: it verifies Tollgate's outbound events in
# tests/tests/notices.rs (through tests/hooks/receiver.py).
STANDARDWEBHOOKS_VERSION=1.1.0
if ! python3 -c "import standardwebhooks" 2>/dev/null; then
  log "installing standardwebhooks==$STANDARDWEBHOOKS_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
log "starting moto_server on 127.0.0.1:$port (infra/local/moto_atomic.py: DynamoDB writes atomic, as in AWS)"
python3 infra/local/moto_atomic.py -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto_server did not start; see target/moto.log")
PY

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
# The DynamoDB conformance cases refuse to skip when CI=true.
export CI="${CI:-true}"

log "npm ci --prefix tests/stripe-node (the Stripe library that signs events in tests/tests/stripe_library.rs)"
npm ci --prefix tests/stripe-node --no-audit --no-fund --loglevel=error
log "npm ci --prefix tests/oidc-mock (the OpenID Connect server of tests/tests/oauth.rs and the local Lambda flow)"
npm ci --prefix tests/oidc-mock --no-audit --no-fund --loglevel=error

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test --workspace"
cargo test --workspace --locked
log "DynamoDB requests served by moto_server: $(grep -c '"POST / HTTP' target/moto.log || true)"

log "infra/schemathesis.sh (the API document against the dev server: no 5xx, every response as documented)"
bash infra/schemathesis.sh

log "infra/browser.sh (the hosted pages in headless Chromium: flows, console, CSP, axe-core, screenshots in target/screenshots)"
bash infra/browser.sh

log "infra/local-lambda.sh (every function as its own Lambda process under cargo lambda watch, against moto)"
bash infra/local-lambda.sh

log "infra/lambda-build.sh --fast (cargo lambda build --release of every function; zip sizes)"
bash infra/lambda-build.sh --fast
