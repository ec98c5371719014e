#!/usr/bin/env bash
# Checks template.yaml offline (docs/architecture.md §8: `sam validate` misses most mistakes offline, and
# `sam local` needs Docker): translates the SAM template to plain CloudFormation with
# samtranslator (infra/template/translate.py: no AWS call, no credentials) and lints the result
# with cfn-lint (runtimes, architectures, property types and values, refs, circular dependencies,
# IAM policy syntax). Needs python3 with pip; installs the two pinned tools from PyPI when the
# installed versions differ. About 2 s once they are installed.
#
# Usage: infra/check-template.sh [TEMPLATE]   (default template.yaml)
#
# What fails: any cfn-lint error or warning. Informational findings (I-rules, opt-in in cfn-lint)
# are printed but do not fail. No rule is ignored.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
template=$(realpath "${1:-$root/template.yaml}")
cd "$root"

# Pinned: a new cfn-lint release adds rules and can turn a passing template red by itself.
SAM_TRANSLATOR_VERSION=1.115.0
CFN_LINT_VERSION=1.58.0

if ! python3 - "$SAM_TRANSLATOR_VERSION" "$CFN_LINT_VERSION" <<'PY'
import importlib.metadata as md, sys
try:
    ok = md.version("aws-sam-translator") == sys.argv[1] and md.version("cfn-lint") == sys.argv[2]
except md.PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
then
  echo "installing aws-sam-translator==$SAM_TRANSLATOR_VERSION cfn-lint==$CFN_LINT_VERSION (PyPI)"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    "aws-sam-translator==$SAM_TRANSLATOR_VERSION" "cfn-lint==$CFN_LINT_VERSION"
fi

out=target/template
mkdir -p "$out"
python3 infra/template/translate.py "$template" "$out/template.json"
echo "$template translated to $out/template.json"

# cfn-lint's console script may not be on PATH (pip --user); call its entry point instead.
python3 -c 'import sys; from cfnlint.runner import main; sys.exit(main())' \
  --include-checks I --non-zero-exit-code warning -- "$out/template.json"
echo "cfn-lint: no errors or warnings"
