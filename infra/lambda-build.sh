#!/usr/bin/env bash
# Builds every function under functions/ as a Lambda binary with `cargo lambda build --release`
# (x86_64 here; add --arm64 where the aarch64 target is installed — `sam build` builds for the
# template's Architecture parameter, arm64 by default), zips each `bootstrap` as SAM does
# (deflate), prints binary and zip sizes, and fails if a zip is 6 MB or more (issue #4's budget;
# Lambda's own limit is 50 MB zipped).
#
# Usage: infra/lambda-build.sh [--fast]
#   --fast  CI's variant: the release profile without LTO and with 16 codegen units
#           (CARGO_PROFILE_RELEASE_* overrides). Fat LTO + 1 codegen unit (the deploy profile,
#           Cargo.toml) takes about 3.5 min per binary on 2 cores; without LTO the eight link in
#           about a minute. LTO only removes code, so a --fast zip under budget bounds the deploy
#           zip from above; BENCHMARKS.md records both.
# Needs python3 with pip: installs cargo-lambda (PyPI; brings zig) at the pinned version if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

CARGO_LAMBDA_VERSION=1.9.2
LIMIT_BYTES=$((6 * 1000 * 1000))

if [[ "${1:-}" == "--fast" ]]; then
  export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi
if ! cargo lambda --version 2>/dev/null | grep -q "cargo-lambda $CARGO_LAMBDA_VERSION"; then
  echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi

functions=()
for dir in functions/*/; do
  functions+=("$(basename "$dir")")
done
# One build per function, as `sam build` does: building them together would unify Cargo features
# across all eight, so every binary would carry the billing code (Stripe, Whop clients) that only
# four of them use.
for f in "${functions[@]}"; do
  cargo lambda build --release --locked -p "$f"
done

python3 - "$LIMIT_BYTES" "${functions[@]}" <<'PY'
import os, sys, zipfile
limit, names = int(sys.argv[1]), sys.argv[2:]
failed = []
print(f"{'function':<22}{'binary (bytes)':>16}{'zip (bytes)':>14}")
for name in names:
    binary = f"target/lambda/{name}/bootstrap"
    archive = f"target/lambda/{name}/bootstrap.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16  # executable, as Lambda requires
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary, "rb") as f:
            z.writestr(info, f.read(), compresslevel=9)
    b, zb = os.path.getsize(binary), os.path.getsize(archive)
    print(f"{name:<22}{b:>16,}{zb:>14,}")
    if zb >= limit:
        failed.append(name)
if failed:
    sys.exit(f"zip of {', '.join(failed)} is not under {limit:,} bytes")
PY
