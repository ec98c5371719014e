#!/usr/bin/env python3
"""Translate the SAM template to plain CloudFormation JSON, offline.

Usage: translate.py TEMPLATE.yaml OUT.json

This is what the SAM CLI and CloudFormation's AWS::Serverless transform do, minus every AWS call:
- The managed-policy loader (which lists IAM's AWS-managed policies through the IAM API) is
  replaced by one that knows none. Tollgate's functions bring their own roles (`Role:`), so SAM
  never has a managed policy name to resolve; if one ever appears, translation fails loudly here
  instead of silently calling AWS.
- The region comes from AWS_DEFAULT_REGION (us-east-1 if unset); boto3 only reads it, no request.
- `CodeUri: ./` (the Cargo workspace root, for `sam build`) is not something the transform takes:
  it wants an S3 URI, which `sam package` would have substituted. The in-memory copy gets a
  placeholder S3 URI; template.yaml itself is not touched.
"""

import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

PLACEHOLDER_CODE_URI = "s3://tollgate-template-check/placeholder.zip"


class NoManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader (which calls iam:ListPolicies)."""

    def load(self):
        return {}


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())

    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = PLACEHOLDER_CODE_URI
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = PLACEHOLDER_CODE_URI

    translated = transform(template, {}, NoManagedPolicies())

    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=2, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as e:  # samtranslator's InvalidDocumentException lists every cause
        causes = getattr(e, "causes", None)
        detail = "\n".join(f"  - {getattr(c, 'message', c)}" for c in causes) if causes else f"  {e}"
        sys.exit(f"SAM translation of {sys.argv[1]} failed:\n{detail}")
