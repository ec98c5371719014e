#!/usr/bin/env bash
# Builds every function under functions/ as a Lambda binary with `cargo lambda build --release`
# (x86_64 here; add --arm64 where the aarch64 target is installed — `sam build` builds for the
# template's Architecture parameter, arm64 by default), zips each `bootstrap` as SAM does
# (deflate), prints binary and zip sizes, and fails if a zip is 6 MB or more (issue #4's budget;
# Lambda's own limit is 50 MB zipped).
#
# Usage: infra/lambda-build.sh [--fast]
#   --fast  CI's variant: proves every function compiles and links for Lambda's target with
#           `cargo lambda build --release` (zig linker, glibc of provided.al2023), with the release
#           profile's optimisation, LTO and single codegen unit turned off (CARGO_PROFILE_RELEASE_*
#           overrides; the crypto crates and the signup, login and token-refresh crates keep opt-level 3), and prints the sizes without
#           holding them to the budget: fat LTO with one codegen unit (the deploy profile,
#           Cargo.toml) is what shrinks the binaries to their deployed size, and costs minutes per
#           binary on 2 cores. The budget is checked on the
#           deploy profile (this script without --fast; infra/bench/coldstart.py --check), and
#           BENCHMARKS.md records those figures.
# Needs python3 with pip: installs cargo-lambda (PyPI; brings zig) at the pinned version if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

CARGO_LAMBDA_VERSION=1.9.2
LIMIT_BYTES=$((6 * 1000 * 1000))

enforce=1
if [[ "${1:-}" == "--fast" ]]; then
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256
  enforce=0
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

python3 - "$LIMIT_BYTES" "$enforce" "${functions[@]}" <<'PY'
import os, sys, zipfile
limit, enforce, names = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
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
if not enforce:
    print(f"(--fast: unoptimised, so larger than deployed; the {limit:,}-byte budget applies to the deploy profile)")
elif failed:
    sys.exit(f"zip of {', '.join(failed)} is not under {limit:,} bytes")
else:
    print(f"every zip is under {limit:,} bytes")
PY
