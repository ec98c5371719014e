#!/usr/bin/env bash
# The local Lambda run (issue #4): every function as a separate Lambda process under
# `cargo lambda watch`, against DynamoDB, SQS FIFO (+ DLQ) and Secrets Manager in moto_server,
# created from template.yaml's own resource definitions, and a full flow driven over HTTP:
# signup, login, refresh, checkout against a Stripe double, signed webhooks into ingest, the
# processor invoked (`cargo lambda invoke`) with the SQS messages received from the queue, the
# subscription visible through subscription-lookup and in a refreshed token; then the account
# lifecycle with real mail: the table's stream read and filtered as the mailer's event source
# mapping would, the records invoked into the mailer, which sends through SES in moto; then
# sign-in with Google through the oauth function, Google played by a real OpenID Connect server
# (tests/oidc-mock, oauth2-mock-server from npm); then an API key, the authorizer invoked with API
# Gateway authorizer events (token, key, revoked key, the free plan's per-minute rate) and the
# example route `whoami` with the authorizer's context.
# The steps are described in infra/local/flow.py.
#
# Usage: infra/local-lambda.sh [--no-build]
#   --no-build   skip `cargo build` of the function binaries (they must be built already)
#
# Needs: a Rust toolchain, node with npm, and Python >= 3.11 with pip (the Stripe double reads tests/fixtures, like
# the Rust tests; TOLLGATE_FIXTURES overrides). Installs the pinned moto[server] and
# cargo-lambda (which brings zig) from PyPI when missing or of another version. No Docker, no AWS
# account, no network beyond those installs.
# Takes about a minute once the debug build exists (the first build: several minutes).
# Logs: target/local-lambda/{moto,watch}.log and the events sent: target/local-lambda/{sqs,stream}-event.json.
# Exit status: 0 when every step passed; 1 naming the failed step (with the logs' last lines).
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.1
CARGO_LAMBDA_VERSION=1.9.2

python3 - <<'PY' || { echo "infra/local-lambda.sh needs Python >= 3.11 (tomllib)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

pip_install() {
  echo "installing $* (PyPI)"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check "$@"
}
if ! command -v moto_server >/dev/null 2>&1; then
  pip_install "moto[server]==$MOTO_VERSION"
fi
if [ "$(cargo lambda --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LAMBDA_VERSION" ]; then
  pip_install "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
if [ ! -d tests/oidc-mock/node_modules/oauth2-mock-server ]; then
  echo "npm ci --prefix tests/oidc-mock (the OpenID Connect server standing in for Google)"
  npm ci --prefix tests/oidc-mock --no-audit --no-fund --loglevel=error
fi

# Python runs in the background so that a TERM/INT to this script reaches it: it then stops
# moto_server, cargo lambda watch and the function processes before exiting.
python3 infra/local/flow.py "$@" &
flow=$!
trap 'kill -TERM "$flow" 2>/dev/null || true' INT TERM
status=0
wait "$flow" || status=$?
# `wait` returns early when a trapped signal arrives: wait for the cleanup to finish.
while kill -0 "$flow" 2>/dev/null; do
  wait "$flow" || status=$?
done
exit "$status"
