#!/usr/bin/env bash
# The hosted pages in a real browser (tests/browser/run.py): Debian's Chromium (installed with
# apt-get when missing), Playwright for Python (pinned, PyPI, into target/venv-browser; it drives
# the system Chromium through `executable_path`, so no browser download), axe-core (pinned, npm,
# tests/browser/package-lock.json), against the real dev-server binary on a fresh data directory.
# Screenshots of every page at phone and desktop width land in target/screenshots/.
#
# Usage: infra/browser.sh   (builds the dev-server binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if ! [ -x "$CHROMIUM" ]; then
  echo "installing chromium (Debian)"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd=sudo; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
venv=target/venv-browser
if ! "$venv/bin/python" -c "import playwright" 2>/dev/null; then
  echo "installing playwright==$PLAYWRIGHT_VERSION into $venv (PyPI; the system Chromium is used)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
fi
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

cargo build --locked --quiet -p dev-server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
base="http://127.0.0.1:$port"
# No Stripe key: the offline stand-in takes the checkout. Rate rules as deployed. GitHub sign-in
# configured (at an address nothing answers; the run only checks its button).
env -u STRIPE_SECRET_KEY -u WHOP_API_KEY \
  TOLLGATE_GITHUB_CLIENT_ID=Iv1.browser GITHUB_CLIENT_SECRET=browser \
  TOLLGATE_GITHUB_WEB_BASE=http://127.0.0.1:9 TOLLGATE_GITHUB_API_BASE=http://127.0.0.1:9 \
  target/debug/dev-server --addr "127.0.0.1:$port" --data-dir "$data" >target/browser-dev-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/openapi.json" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

rm -rf target/screenshots
mkdir -p target/screenshots
CHROMIUM="$CHROMIUM" "$venv/bin/python" tests/browser/run.py "$base" tests/browser/node_modules/axe-core/axe.min.js target/screenshots
