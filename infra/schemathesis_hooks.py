"""Schemathesis authentication for Tollgate's API (loaded by infra/schemathesis.sh through
SCHEMATHESIS_HOOKS).

Two bearer tokens:
- every operation but two gets the token of one subscribed user (TOLLGATE_SCHEMATHESIS_TOKEN),
  so billing and account routes reach their logic;
- `DELETE /auth/me` and `POST /auth/logout-all` end the caller's account or sessions, so each of
  their cases gets the token of a user signed up for that case alone (the subscribed user's token
  would be gone after the first such case, and every later case would only see 401).
"""

import json
import os
import urllib.request
import uuid

import schemathesis

BASE = os.environ["TOLLGATE_SCHEMATHESIS_BASE"]
TOKEN = os.environ["TOLLGATE_SCHEMATHESIS_TOKEN"]
DESTRUCTIVE = [("DELETE", "/auth/me"), ("POST", "/auth/logout-all")]


def _signup() -> str:
    body = json.dumps(
        {
            "email": f"fresh-{uuid.uuid4().hex}@example.com",
            "password": "a schemathesis passphrase",
        }
    ).encode()
    request = urllib.request.Request(
        BASE + "/auth/signup", data=body, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def _bearer(case, token: str) -> None:
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"


fresh = schemathesis.auth(refresh_interval=None)
for method, path in DESTRUCTIVE:
    fresh = fresh.apply_to(method=method, path=path)


@fresh
class FreshUser:
    def get(self, case, ctx):
        return _signup()

    def set(self, case, data, ctx):
        _bearer(case, data)


shared = schemathesis.auth()
for method, path in DESTRUCTIVE:
    shared = shared.skip_for(method=method, path=path)


@shared
class SubscribedUser:
    def get(self, case, ctx):
        return TOKEN

    def set(self, case, data, ctx):
        _bearer(case, data)
