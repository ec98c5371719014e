#!/usr/bin/env python3
"""The local Lambda run (issue #4, item 4): every function as its own Lambda process under
`cargo lambda watch`, against DynamoDB, SQS and Secrets Manager in moto_server, driven through a
whole account-and-billing flow over HTTP. Started by infra/local-lambda.sh (which installs the
pinned tools first); see that script for usage.

What happens, in order:
 1. `cargo build` (debug) of every function binary the template names, so `cargo lambda watch`
    starts each one without compiling on the first request (--no-build skips it).
 2. moto_server on a free port; the table, the FIFO queue and its DLQ, and the five secrets
    created from template.yaml's resource properties (local_stack.py); the secrets filled by the
    bootstrap command (new signing key and its JWKS; Stripe key pointing at the Stripe double;
    Stripe webhook secret; Google's client secret), Google sign-in turned on through the
    template's GoogleClientId parameter.
 3. A Stripe API double (stripe_double.py) on a free port.
 4. `cargo lambda watch` on a free port: its router (Cargo.toml [workspace.metadata.lambda.watch
    .router]) sends each route to its function, started from its binary with the environment the
    template gives the functions, resolved against the local resources.
 5. The flow, each step asserting status codes and bodies: discovery and JWKS, the API document,
    signup, login,
    refresh, /auth/me, checkout (asserting what reached Stripe), the customer paying, a forged and
    two signed webhooks into ingest (and a redelivery that the FIFO queue deduplicates), the
    event source mapping played by hand — ReceiveMessage on the template's trigger queue, the
    received messages as a real SQS event into `cargo lambda invoke webhook-processor`, no
    batchItemFailures, DeleteMessage — then the same batch again (an event takes effect once), the
    subscription through subscription-lookup, and a refreshed access token carrying the plan.
 6. The account lifecycle with real mail: the template's DynamoDB stream trigger played by hand —
    the table's stream read from where it left off, filtered as the event source mapping's filter
    criteria say, the records as a real stream event into `cargo lambda invoke mailer`, which sends
    through SES in moto (moto records what it was asked to send) — verification, password reset
    and change, sign-in codes (the 6th try refused), a magic link used once, sessions, log out
    everywhere, and account deletion (the subscription cancelled at the Stripe double, login
    refused, the email free again); a stream batch delivered twice sends nothing twice.
 7. Sign-in with Google, turned on by the template's GoogleClientId parameter, Google played by a
    real OpenID Connect server (tests/oidc-mock): the oauth function's 302 to the provider (PKCE,
    state, nonce), the provider's signed ID token, the callback's 302 to the app with a one-time
    code, the exchange (once), a replayed callback refused, the identity listed and — as the only
    way in — not unlinkable.
 8. Everything started is stopped, also on failure or Ctrl-C. Logs: target/local-lambda/.

Exit status 0 when every step passed; 1 with the failed step named otherwise.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager

sys.dont_write_bytecode = True  # no __pycache__ next to the sources

import cfn_template  # noqa: E402
import lambda_events  # noqa: E402
import local_stack  # noqa: E402
from processes import ManagedProcess, WaitTimeout, free_port, port_open, terminate_on_sigterm, wait_until  # noqa: E402
from stripe_double import StripeDouble, stripe_signature  # noqa: E402

REPO = local_stack.REPO
LOG_DIR = REPO / "target" / "local-lambda"
PASSWORD = "correct horse battery staple"
GOOGLE_CLIENT_ID = "tollgate-local.apps.googleusercontent.com"
APP_CALLBACK = "http://app.local.test/auth/done"


class StepFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    """An assertion that survives `python -O` and explains itself."""
    if not condition:
        raise StepFailed(message)


# ---- HTTP ------------------------------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.text = body.decode(errors="replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except json.JSONDecodeError:
            self.json = None

    def expect(self, status: int, what: str) -> dict:
        check(self.status == status, f"{what}: expected HTTP {status}, got {self.status}: {self.text[:500]}")
        return self.json if isinstance(self.json, dict) else {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None  # the 3xx comes back as the answer


_NO_REDIRECT = urllib.request.build_opener(_NoRedirect)


def request(method: str, url: str, body: dict | bytes | None = None, headers: dict | None = None,
            timeout: float = 120.0, follow: bool = True) -> Response:
    """One HTTP request; any status is returned (not raised). The generous default timeout covers
    a function's first request, which starts its process (`cargo run` of a built binary). With
    `follow=False` a redirect is the answer, as a browser's network log shows it."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and "content-type" not in {k.lower() for k in req.headers}:
        req.add_header("content-type", "application/json")
    opener = urllib.request.urlopen if follow else _NO_REDIRECT.open
    try:
        with opener(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


# ---- tokens ----------------------------------------------------------------------------------------


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_access_token(token: str, jwks: dict, issuer: str, audience: str) -> dict:
    """Verifies an RS256 access token against the JWKS the jwks function served (as any other
    service would) and returns its claims."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(_b64url(header_b64))
    check(header.get("alg") == "RS256", f"token alg {header.get('alg')}")
    keys = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    check(len(keys) == 1, f"token kid {header.get('kid')} is not in the JWKS")
    n = int.from_bytes(_b64url(keys[0]["n"]), "big")
    e = int.from_bytes(_b64url(keys[0]["e"]), "big")
    RSAPublicNumbers(e, n).public_key().verify(
        _b64url(signature_b64), f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    claims = json.loads(_b64url(payload_b64))
    now = time.time()
    check(claims.get("iss") == issuer, f"iss {claims.get('iss')} != {issuer}")
    aud = claims.get("aud")
    check(aud == audience or (isinstance(aud, list) and audience in aud), f"aud {aud} != {audience}")
    check(claims.get("nbf", 0) <= now + 5 and claims.get("exp", 0) > now, "token not currently valid")
    return claims


# ---- the run ---------------------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.processes: list[ManagedProcess] = []
        self.double: StripeDouble | None = None
        self.step_no = 0
        self.step_name = "setup"
        self.started = time.monotonic()

    @contextmanager
    def step(self, name: str):
        self.step_no += 1
        self.step_name = name
        t0 = time.monotonic()
        print(f"[{self.step_no:2d}] {name} ...", flush=True)
        try:
            yield
        except StepFailed:
            raise
        except Exception as e:  # an unexpected error is a failure of this step too
            raise StepFailed(f"{type(e).__name__}: {e}") from e
        print(f"     ok ({(time.monotonic() - t0) * 1000:.0f} ms)", flush=True)

    def stop_all(self) -> None:
        for proc in reversed(self.processes):  # the functions (watch) before moto
            proc.stop()
        if self.double:
            self.double.stop()

    # -- setup -------------------------------------------------------------------------------------

    def build(self, binaries: list[str]) -> None:
        # The same package selection as the `cargo run --bin <name>` that `cargo lambda watch` runs
        # (no -p: the whole workspace's features), so that run finds the binary fresh.
        # tollgate-admin: the bootstrap command that fills the secrets (local_stack.bootstrap_secrets).
        argv = ["cargo", "build", "--locked"] + [a for b in binaries + ["tollgate-admin"]
                                                 for a in ("--bin", b)]
        print("     $ " + " ".join(argv), flush=True)
        subprocess.run(argv, cwd=REPO, check=True)

    def start(self) -> None:
        template = cfn_template.load_template(local_stack.TEMPLATE)
        self.binaries = [f.binary for f in cfn_template.functions(template)]
        if not self.args.no_build:
            with self.step(f"cargo build (debug) of {len(self.binaries)} functions"):
                self.build(self.binaries)

        with self.step("moto_server + the template's table, queues and secrets"):
            moto, endpoint = local_stack.start_moto(LOG_DIR / "moto.log")
            self.processes.append(moto)
            # Google sign-in on, as an operator turns it on: the template's parameters.
            self.stack = local_stack.create_stack(endpoint, parameters={
                "GoogleClientId": GOOGLE_CLIENT_ID, "OAuthRedirectAllowlist": APP_CALLBACK})
            print("     created: " + ", ".join(self.stack.created))

        with self.step("OpenID Connect server (tests/oidc-mock) as Google's stand-in"):
            oidc = ManagedProcess("oidc-mock", ["node", str(REPO / "tests" / "oidc-mock" / "server.mjs")],
                                  LOG_DIR / "oidc.log", cwd=REPO)
            self.processes.append(oidc)
            self.oidc_issuer = wait_until("the OIDC server's issuer line",
                                          lambda: self.read_issuer(oidc.log_path), 30, interval=0.1, alive=oidc)
            print(f"     {self.oidc_issuer}")

        with self.step("Stripe double + bootstrap the secrets (signing key, provider keys, Google's client secret)"):
            provider = local_stack.local_provider_secrets(stripe_api_base="")
            self.double = StripeDouble(provider["STRIPE_SECRET_KEY"])
            provider["STRIPE_API_BASE"] = self.double.start()
            self.webhook_secret = provider["STRIPE_WEBHOOK_SECRET"]
            provider["GOOGLE_CLIENT_SECRET"] = "local-google-secret"
            local_stack.bootstrap_secrets(self.stack, provider)

        with self.step("cargo lambda watch (router from Cargo.toml metadata)"):
            self.watch_port = free_port()
            self.base = f"http://127.0.0.1:{self.watch_port}"
            env = local_stack.function_process_env(self.stack, issuer=self.base)
            # Google's issuer is the local OpenID Connect server (as STRIPE_API_BASE is the double).
            env["TOLLGATE_GOOGLE_ISSUER"] = self.oidc_issuer
            self.audience = env["TOLLGATE_AUDIENCE"]
            watch = ManagedProcess(
                "cargo lambda watch",
                ["cargo", "lambda", "watch", "--ignore-changes",
                 "--invoke-address", "127.0.0.1", "--invoke-port", str(self.watch_port)],
                LOG_DIR / "watch.log", env=env, cwd=REPO)
            self.processes.append(watch)
            wait_until("cargo lambda watch", lambda: port_open(self.watch_port), 120, interval=0.2, alive=watch)
            print(f"     {self.base} (log: {watch.log_path.relative_to(REPO)})")

    # -- the flow ----------------------------------------------------------------------------------

    def flow(self) -> None:
        base, double = self.base, self.double
        plans = tomllib.loads((REPO / "infra" / "plans.toml").read_text())["plans"]
        pro = next(p for p in plans if p["id"] == "pro")

        with self.step("jwks: GET /.well-known/openid-configuration and /.well-known/jwks.json"):
            discovery = request("GET", f"{base}/.well-known/openid-configuration").expect(200, "discovery")
            check(discovery.get("issuer") == base, f"issuer {discovery.get('issuer')} != {base}")
            check(discovery.get("jwks_uri") == f"{base}/.well-known/jwks.json", f"jwks_uri {discovery.get('jwks_uri')}")
            self.jwks = request("GET", f"{base}/.well-known/jwks.json").expect(200, "jwks")
            keys = self.jwks.get("keys", [])
            check(len(keys) == 1 and keys[0].get("kty") == "RSA" and keys[0].get("kid"), f"JWKS {self.jwks}")
            check("d" not in keys[0], "the JWKS must not carry private key material")

        with self.step("web: GET /openapi.json lists every route"):
            first = request("GET", f"{base}/openapi.json")
            if first.status == 500 and "httpstatuses.com" in first.text:
                # cargo lambda watch's own 500 (not Tollgate's problem+json): seen once when the
                # function's process was spawned right after the build; asked again once.
                print("     cargo lambda watch answered its own 500; asking again", flush=True)
                time.sleep(1)
                first = request("GET", f"{base}/openapi.json")
            doc = first.expect(200, "openapi")
            check(doc.get("openapi") == "3.1.0", f"openapi {doc.get('openapi')}")
            for path in ("/auth/signup", "/webhooks/stripe", "/openapi.json"):
                check(path in doc.get("paths", {}), f"{path} missing from /openapi.json")

        email = f"ada-{uuid.uuid4().hex[:12]}@example.com"
        self.paying_email = email
        with self.step("signup: POST /auth/signup"):
            body = request("POST", f"{base}/auth/signup", {"email": email, "password": PASSWORD}).expect(201, "signup")
            self.user_id = body["user"]["id"]
            check(body["user"]["email"] == email, f"user {body['user']}")
            claims = self.verify(body["access_token"])
            check(claims["sub"] == self.user_id and claims.get("plan") == "free", f"claims {claims}")
            check(request("POST", f"{base}/auth/signup", {"email": email.upper(), "password": PASSWORD})
                  .expect(409, "second signup").get("code") == "email_taken", "second signup: code email_taken")

        with self.step("login: POST /auth/login (wrong password 401, then right one)"):
            bad = request("POST", f"{base}/auth/login", {"email": email, "password": "incorrect horse"})
            check(bad.expect(401, "wrong password").get("code") == "invalid_credentials", f"code {bad.json}")
            body = request("POST", f"{base}/auth/login", {"email": email.upper(), "password": PASSWORD}).expect(200, "login")
            self.verify(body["access_token"])
            login_refresh = body["refresh_token"]

        with self.step("refresh: POST /auth/refresh rotates the refresh token"):
            body = request("POST", f"{base}/auth/refresh", {"refresh_token": login_refresh}).expect(200, "refresh")
            check(body["refresh_token"] != login_refresh, "refresh token was not rotated")
            self.access, self.refresh = body["access_token"], body["refresh_token"]
            self.verify(self.access)

        with self.step("subscription-lookup: GET /auth/me and /billing/subscription (free)"):
            me = request("GET", f"{base}/auth/me", headers=bearer(self.access)).expect(200, "me")
            check(me.get("id") == self.user_id and me.get("plan") == "free", f"me {me}")
            sub = request("GET", f"{base}/billing/subscription", headers=bearer(self.access)).expect(200, "subscription")
            check(sub.get("plan") == "free" and sub.get("access") is False, f"subscription before paying {sub}")
            check(request("GET", f"{base}/auth/me").expect(401, "me without token").get("code") == "invalid_token",
                  "me without token: code invalid_token")

        with self.step("checkout: POST /billing/checkout {plan: pro} against the Stripe double"):
            body = request("POST", f"{base}/billing/checkout", {"plan": "pro", "interval": "month"},
                           headers=bearer(self.access)).expect(200, "checkout")
            check(body.get("provider") == "stripe", f"checkout {body}")
            customers = double.requests("POST", "/v1/customers")
            check(len(customers) == 1, f"{len(customers)} customer creations")
            check(customers[0].form.get("metadata[user_id]") == self.user_id, f"customer form {customers[0].form}")
            check(customers[0].headers.get("idempotency-key") == f"customer-{self.user_id}",
                  f"customer idempotency key {customers[0].headers.get('idempotency-key')}")
            sessions = double.requests("POST", "/v1/checkout/sessions")
            check(len(sessions) == 1, f"{len(sessions)} checkout sessions")
            form = sessions[0].form
            expected = {
                "mode": "subscription",
                "line_items[0][price]": pro["stripe"]["prices"]["month"],
                "client_reference_id": self.user_id,
                "metadata[user_id]": self.user_id,
                "subscription_data[metadata][user_id]": self.user_id,
                "subscription_data[trial_period_days]": str(pro.get("trial_days", 0)),
            }
            wrong = {k: (form.get(k), v) for k, v in expected.items() if form.get(k) != v}
            check(not wrong, f"checkout session form (got, expected): {wrong}")
            session = next(iter(double.state.sessions.values()))
            check(body.get("url") == session["url"], f"checkout url {body.get('url')} != {session['url']}")
            self.session_id = session["id"]

        with self.step("Stripe: the customer pays (subscription created, session complete)"):
            self.subscription = double.complete_checkout(self.session_id)
            check(self.subscription["status"] == "trialing", f"status {self.subscription['status']}")

        with self.step("webhook-ingest: a forged Stripe-Signature is refused (400 invalid_signature)"):
            event = double.event("customer.subscription.updated", self.subscription)
            raw = json.dumps(event).encode()
            forged = request("POST", f"{base}/webhooks/stripe", raw,
                             {"stripe-signature": stripe_signature("whsec_forged", raw)})
            check(forged.expect(400, "forged webhook").get("code") == "invalid_signature", f"code {forged.json}")

        session_event = double.event("checkout.session.completed", double.state.sessions[self.session_id])
        subscription_event = double.event("customer.subscription.created", self.subscription)
        self.event_ids = [session_event["id"], subscription_event["id"]]
        with self.step("webhook-ingest: two signed events (and a redelivery) into POST /webhooks/stripe"):
            for event in (session_event, subscription_event, subscription_event):
                raw = json.dumps(event).encode()
                body = request("POST", f"{base}/webhooks/stripe", raw,
                               {"stripe-signature": stripe_signature(self.webhook_secret, raw)}).expect(200, event["type"])
                check(body == {"received": True, "duplicate": False}, f"ingest answer {body}")

        trigger = self.stack.sqs_triggers()
        with self.step("the processor's event source: the template's SQS trigger"):
            check(len(trigger) == 1, f"SQS triggers in the template: {trigger}")
            trigger = trigger[0]
            check(trigger["report_batch_item_failures"], "the SQS trigger lacks ReportBatchItemFailures")
            sqs = self.stack.client("sqs")
            depth = wait_until("two messages in the queue", lambda: self.depth(sqs, trigger["queue_url"]) or None, 10)
            check(depth == 2, f"{depth} messages queued; the redelivery should be deduplicated to 2")

        with self.step("webhook-processor: ReceiveMessage, then `cargo lambda invoke` with that SQS event"):
            messages: list[dict] = []

            def received() -> bool:
                messages.extend(lambda_events.receive_batch(sqs, trigger["queue_url"], trigger["batch_size"]))
                return len(messages) >= 2

            wait_until("receiving the queued events", received, 20)
            check([json.loads(m["Body"]) for m in messages]
                  == [{"provider": "stripe", "event_id": i} for i in self.event_ids],
                  f"queued pointers {[m['Body'] for m in messages]}")
            for m in messages:
                attrs = m["Attributes"]
                check(attrs.get("MessageGroupId") == self.subscription["id"], f"group {attrs.get('MessageGroupId')}")
                check(attrs.get("MessageDeduplicationId", "").startswith("stripe:"), f"dedup {attrs}")
            self.batch_file = LOG_DIR / "sqs-event.json"
            self.batch_file.write_text(json.dumps(lambda_events.sqs_event(messages, trigger["queue_arn"]), indent=2))
            self.invoke_processor(trigger["function"])
            sqs.delete_message_batch(QueueUrl=trigger["queue_url"], Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            check(self.depth(sqs, trigger["queue_url"], in_flight=True) == 0, "messages left in the queue")
            dlq = json.loads(sqs.get_queue_attributes(QueueUrl=trigger["queue_url"], AttributeNames=["RedrivePolicy"])
                             ["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
            dlq_url = sqs.get_queue_url(QueueName=dlq.rsplit(":", 1)[1])["QueueUrl"]
            check(self.depth(sqs, dlq_url, in_flight=True) == 0, "messages in the DLQ")
            fetched = double.requests("GET", f"/v1/subscriptions/{self.subscription['id']}")
            check(len(fetched) >= 1, "the processor did not refetch the subscription from Stripe")

        with self.step("webhook-processor: the same batch again (redelivery) changes nothing"):
            before = request("GET", f"{base}/billing/subscription", headers=bearer(self.access)).expect(200, "subscription")
            self.invoke_processor(trigger["function"])
            after = request("GET", f"{base}/billing/subscription", headers=bearer(self.access)).expect(200, "subscription")
            check(before == after, f"redelivery changed the subscription: {before} -> {after}")

        with self.step("reconciler: `cargo lambda invoke` with the scheduled sample repairs the one event never accepted"):
            scheduled = json.loads((REPO / "events" / "reconciler" / "scheduled.json").read_text())
            answer = self.lambda_invoke("reconciler", scheduled)
            (report,) = answer["reports"]
            # The double made three events: the two delivered (processed) and the one whose
            # delivery was forged and refused — missed, as far as Tollgate knows.
            check((report["provider"], report["listed"], report["recorded"], report["already_done"])
                  == ("stripe", 3, 1, 2), f"reconciler report {report}")
            listed = double.requests("GET", "/v1/events")
            check(len(listed) == 1 and "created[gte]" in listed[0].form, f"listing requests {listed}")
            repaired: list[dict] = []
            wait_until("the repaired event in the queue",
                       lambda: repaired.extend(lambda_events.receive_batch(sqs, trigger["queue_url"], 10)) or repaired, 20)
            repair_file = LOG_DIR / "sqs-repaired.json"
            repair_file.write_text(json.dumps(lambda_events.sqs_event(repaired, trigger["queue_arn"]), indent=2))
            self.invoke(trigger["function"], repair_file)
            sqs.delete_message_batch(QueueUrl=trigger["queue_url"], Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(repaired)])
            again = self.lambda_invoke("reconciler", scheduled)["reports"][0]
            check((again["recorded"], again["requeued"], again["already_done"]) == (0, 0, 3),
                  f"a second run repairs nothing: {again}")

        with self.step("subscription-lookup: GET /billing/subscription shows pro"):
            sub = request("GET", f"{base}/billing/subscription", headers=bearer(self.access)).expect(200, "subscription")
            wanted = {"plan": "pro", "access": True, "status": "trialing", "provider": "stripe", "tier": pro["tier"]}
            wrong = {k: (sub.get(k), v) for k, v in wanted.items() if sub.get(k) != v}
            check(not wrong, f"subscription (got, expected): {wrong} in {sub}")
            check(sub.get("trial_end") and sub.get("current_period_end"), f"times missing in {sub}")
            check(sub.get("entitlements") == pro["entitlements"], f"entitlements {sub.get('entitlements')}")

        with self.step("token-refresh: the next access token carries the plan"):
            body = request("POST", f"{base}/auth/refresh", {"refresh_token": self.refresh}).expect(200, "refresh")
            claims = self.verify(body["access_token"])
            check(claims.get("plan") == "pro" and claims.get("tier") == pro["tier"], f"claims {claims}")
            check(claims.get("entitlements") == pro["entitlements"], f"entitlements claim {claims.get('entitlements')}")
            me = request("GET", f"{base}/auth/me", headers=bearer(body["access_token"])).expect(200, "me")
            check(me.get("plan") == "pro", f"me {me}")

    # -- the account lifecycle with mail ------------------------------------------------------------

    def deliver_mail(self) -> int:
        """Plays the stream's event source mapping once: the new, filtered records of the table's
        stream as one event into `cargo lambda invoke mailer`; returns how many records went in."""
        records = self.stream.poll()
        if not records:
            return 0
        self.stream_file = LOG_DIR / "stream-event.json"
        self.stream_file.write_text(json.dumps(lambda_events.dynamodb_event(records), indent=2))
        self.invoke(self.mail_trigger["function"], self.stream_file)
        return len(records)

    def mail(self, to: str, subject: str, count: int = 1) -> dict:
        """The newest of exactly `count` mails to `to` whose subject contains `subject`, after
        delivering what the stream holds; the body HTML-unescaped."""
        self.deliver_mail()
        found = [m for m in self.stack.sent_mail(to) if subject in m["subject"]]
        check(len(found) == count, f"{len(found)} mails {subject!r} to {to}, expected {count}: "
                                   f"{[m['subject'] for m in self.stack.sent_mail(to)]}")
        newest = dict(found[-1])
        newest["body"] = html.unescape(newest["body"])
        return newest

    @staticmethod
    def link_token(mail: dict, page: str) -> str:
        found = re.search(rf"{re.escape(page)}\?token=([A-Za-z0-9_-]{{43}})", mail["body"])
        check(found is not None, f"no {page} link in {mail['body'][:300]}")
        return found.group(1)

    def signup_user(self, email: str) -> dict:
        return request("POST", f"{self.base}/auth/signup", {"email": email, "password": PASSWORD}).expect(201, "signup")

    def login(self, email: str, password: str = PASSWORD) -> Response:
        return request("POST", f"{self.base}/auth/login", {"email": email, "password": password})

    def refresh_status(self, token: str) -> int:
        return request("POST", f"{self.base}/auth/refresh", {"refresh_token": token}).status

    def account_flow(self) -> None:
        base, double = self.base, self.double
        new_password = "a much newer passphrase"

        with self.step("mailer: the template's DynamoDB stream trigger, SES identity verified"):
            triggers = self.stack.dynamodb_triggers()
            check(len(triggers) == 1, f"stream triggers in the template: {triggers}")
            self.mail_trigger = triggers[0]
            check(self.mail_trigger["report_batch_item_failures"], "the stream trigger lacks ReportBatchItemFailures")
            check(self.mail_trigger["patterns"], "the stream trigger has no filter")
            self.stream = lambda_events.StreamReader(
                self.stack.client("dynamodbstreams"), self.mail_trigger["stream_arn"], self.mail_trigger["patterns"])
            identity = self.stack.verify_ses_identity()
            table = self.mail_trigger['stream_arn'].split(':table/')[1].split('/')[0]
            print(f"     the stream of {table}, SES identity {identity}")

        email = f"grace-{uuid.uuid4().hex[:12]}@example.com"
        with self.step("account: signup -> verification mail (stream, mailer, SES) -> verify -> email_verified"):
            body = self.signup_user(email)
            mail = self.mail(email, "Verify your email")
            token = self.link_token(mail, "/verify-email")
            user = request("POST", f"{base}/auth/verify-email", {"token": token}).expect(200, "verify")
            check(user.get("email_verified") is True, f"verify answered {user}")
            check(request("POST", f"{base}/auth/verify-email", {"token": token})
                  .expect(400, "verify twice").get("code") == "invalid_link", "a link works once")
            me = request("GET", f"{base}/auth/me", headers=bearer(body["access_token"])).expect(200, "me")
            check(me.get("email_verified") is True, f"me {me}")
            fresh = request("POST", f"{base}/auth/refresh", {"refresh_token": body["refresh_token"]}).expect(200, "refresh")
            check(self.verify(fresh["access_token"]).get("email_verified") is True, "the next token says verified")

        with self.step("account: forgot -> reset mail -> reset -> earlier refresh tokens refused -> new password"):
            other = self.login(email).expect(200, "second login")
            request("POST", f"{base}/auth/password/forgot", {"email": email}).expect(202, "forgot")
            request("POST", f"{base}/auth/password/forgot", {"email": "nobody-" + email}).expect(202, "forgot unknown")
            token = self.link_token(self.mail(email, "Reset your"), "/reset-password")
            check(not self.stack.sent_mail("nobody-" + email), "an unknown email got mail")
            request("POST", f"{base}/auth/password/reset", {"token": token, "password": new_password}).expect(204, "reset")
            for old in (fresh["refresh_token"], other["refresh_token"]):
                check(self.refresh_status(old) == 401, "a refresh token from before the reset still works")
            check(self.login(email).status == 401, "the old password still works")
            self.login(email, new_password).expect(200, "login with the new password")
            self.mail(email, "password was changed")

        with self.step("account: change password ends the other sessions, keeps this one, mails a notice"):
            a = self.login(email, new_password).expect(200, "login a")
            b = self.login(email, new_password).expect(200, "login b")
            request("POST", f"{base}/auth/password/change",
                    {"current_password": new_password, "new_password": PASSWORD},
                    headers=bearer(a["access_token"])).expect(204, "change")
            check(self.refresh_status(b["refresh_token"]) == 401, "the other session survived the change")
            check(self.refresh_status(a["refresh_token"]) == 200, "the changing session was ended")
            self.mail(email, "password was changed", count=2)

        with self.step("account: sign-in code from the mail signs in; the 6th try is refused even when right"):
            request("POST", f"{base}/auth/otp/request", {"email": email}).expect(202, "code request")
            mail = self.mail(email, "sign-in code")
            code = re.match(r"(\d{6}) is your", mail["subject"]).group(1)
            tokens = request("POST", f"{base}/auth/otp/verify", {"email": email, "code": code}).expect(200, "code")
            self.verify(tokens["access_token"])
            request("POST", f"{base}/auth/otp/request", {"email": email}).expect(202, "code request")
            mail = self.mail(email, "sign-in code", count=2)
            code = re.match(r"(\d{6}) is your", mail["subject"]).group(1)
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(5):
                request("POST", f"{base}/auth/otp/verify", {"email": email, "code": wrong}).expect(401, "wrong code")
            check(request("POST", f"{base}/auth/otp/verify", {"email": email, "code": code})
                  .expect(401, "6th try").get("code") == "invalid_code", "the right code after 5 wrong ones")

        with self.step("account: a magic link signs in once"):
            request("POST", f"{base}/auth/otp/request", {"email": email}).expect(202, "link request")
            link = self.link_token(self.mail(email, "sign-in code", count=3), "/magic-link")
            request("POST", f"{base}/auth/magic-link/verify", {"token": link}).expect(200, "magic link")
            request("POST", f"{base}/auth/magic-link/verify", {"token": link}).expect(400, "magic link again")

        with self.step("account: two logins listed, one revoked (its refresh refused), then log out everywhere"):
            one = self.login(email).expect(200, "login one")
            two = self.login(email).expect(200, "login two")
            listed = request("GET", f"{base}/auth/sessions", headers=bearer(one["access_token"])).expect(200, "sessions")
            sids = {s["id"] for s in listed["sessions"]}
            two_sid = self.verify(two["access_token"])["sid"]
            check(two_sid in sids and sum(s["current"] for s in listed["sessions"]) == 1, f"sessions {listed}")
            request("DELETE", f"{base}/auth/sessions/{two_sid}", headers=bearer(one["access_token"])).expect(204, "revoke")
            check(self.refresh_status(two["refresh_token"]) == 401, "the revoked session still refreshes")
            request("POST", f"{base}/auth/logout-all", headers=bearer(one["access_token"])).expect(204, "logout-all")
            check(self.refresh_status(one["refresh_token"]) == 401, "logout-all left a session")
            audit = request("GET", f"{base}/auth/audit?limit=100",
                            headers=bearer(self.login(email).expect(200, "login")["access_token"])).expect(200, "audit")
            actions = {i["action"] for i in audit["items"]}
            wanted = {"signed_up", "email_verified", "password_reset", "password_changed", "code_used",
                      "magic_link_used", "session_revoked", "logged_out_everywhere", "login_succeeded"}
            check(wanted <= actions, f"audit lacks {wanted - actions}")

        with self.step("account: delete (subscription cancelled at Stripe at once) -> login refused -> email free"):
            paying = self.paying_email
            tokens = self.login(paying).expect(200, "recent login")
            request("DELETE", f"{base}/auth/me", headers=bearer(tokens["access_token"])).expect(204, "delete")
            cancels = double.requests("DELETE", f"/v1/subscriptions/{self.subscription['id']}")
            check(len(cancels) == 1, f"{len(cancels)} cancellations at Stripe")
            check(self.login(paying).status == 401, "the deleted account still logs in")
            self.mail(paying, "account was deleted")
            self.signup_user(paying)

        with self.step("mailer: the same stream batch again sends nothing twice"):
            before = {to: len(self.stack.sent_mail(to)) for to in (email, self.paying_email)}
            self.invoke(self.mail_trigger["function"], self.stream_file)
            after = {to: len(self.stack.sent_mail(to)) for to in (email, self.paying_email)}
            check(before == after, f"a redelivered batch sent again: {before} -> {after}")

    # -- helpers -----------------------------------------------------------------------------------

    def verify(self, token: str) -> dict:
        return verify_access_token(token, self.jwks, issuer=self.base, audience=self.audience)

    @staticmethod
    def depth(sqs, queue_url: str, in_flight: bool = False) -> int:
        names = ["ApproximateNumberOfMessages"] + (["ApproximateNumberOfMessagesNotVisible"] if in_flight else [])
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attrs[n]) for n in names)

    @staticmethod
    def read_issuer(log_path) -> str | None:
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                return json.loads(line)["issuer"]
        return None

    def oauth_flow(self) -> None:
        base, issuer = self.base, self.oidc_issuer
        email = f"ada-{uuid.uuid4().hex[:12]}@example.com"

        def query(url: str) -> dict:
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))

        with self.step("oauth: GET /auth/providers lists google (the template's GoogleClientId)"):
            body = request("GET", f"{base}/auth/providers").expect(200, "providers")
            check(body.get("providers") == ["google"], f"providers: {body}")

        with self.step("oauth: GET /auth/oauth/google -> 302 to the provider (PKCE S256, state, nonce)"):
            check(request("GET", f"{base}/auth/oauth/google?redirect_to=https%3A%2F%2Fevil.test%2F",
                          follow=False).status == 400, "an unlisted redirect_to is refused")
            start = request("GET", f"{base}/auth/oauth/google?redirect_to={urllib.parse.quote(APP_CALLBACK, safe='')}",
                            follow=False)
            check(start.status == 302, f"start: {start.status} {start.text[:300]}")
            authorize = start.headers["location"]
            q = query(authorize)
            check(authorize.startswith(f"{issuer}/authorize"), f"to the provider: {authorize}")
            check(q.get("code_challenge_method") == "S256" and len(q.get("code_challenge", "")) == 43, f"PKCE: {q}")
            check(q.get("client_id") == GOOGLE_CLIENT_ID and q.get("nonce"), f"client and nonce: {q}")
            check(q.get("redirect_uri") == f"{base}/auth/oauth/google/callback", f"callback: {q}")

        with self.step("oauth: the provider signs an ID token; callback -> 302 to the app with a one-time code"):
            request("POST", f"{issuer}/_control/claims", {
                "state": q["state"],
                "claims": {"sub": f"google-{uuid.uuid4().hex}", "email": email, "email_verified": True,
                           "name": "Ada Lovelace"}}).expect(200, "shape the ID token")
            back = request("GET", authorize, follow=False)
            check(back.status == 302, f"the provider's answer: {back.status}")
            callback = back.headers["location"]
            landing = request("GET", callback, follow=False)
            check(landing.status == 302, f"callback: {landing.status} {landing.text[:300]}")
            app = landing.headers["location"]
            check(app.startswith(APP_CALLBACK + "?code="), f"landing: {app}")
            check("token" not in app, f"no token in the URL: {app}")
            code = query(app)["code"]
            check(request("GET", f"{issuer}/_control/token?state={q['state']}").json == {"status": 200},
                  "the provider exchanged the code (with the PKCE verifier)")

        with self.step("oauth: POST /auth/oauth/exchange -> a login's tokens; the code works once"):
            tokens = request("POST", f"{base}/auth/oauth/exchange", {"code": code}).expect(200, "exchange")
            check(tokens["user"]["email"] == email and tokens["user"]["email_verified"], f"user: {tokens['user']}")
            claims = self.verify(tokens["access_token"])
            check(claims["sub"] == tokens["user"]["id"], "the access token is the new user's")
            again = request("POST", f"{base}/auth/oauth/exchange", {"code": code})
            check(again.status == 400 and again.json["code"] == "invalid_exchange_code", f"again: {again.text}")
            replay = request("GET", callback, follow=False)
            check(query(replay.headers["location"]).get("error") == "invalid_state", "the state was spent")

        with self.step("oauth: GET /auth/identities; the last sign-in method cannot be unlinked"):
            listed = request("GET", f"{base}/auth/identities", headers=bearer(tokens["access_token"])).expect(200, "identities")
            check([i["provider"] for i in listed["identities"]] == ["google"] and not listed["has_password"], f"{listed}")
            refused = request("DELETE", f"{base}/auth/identities/google", headers=bearer(tokens["access_token"]))
            check(refused.status == 409 and refused.json["code"] == "last_sign_in_method", f"unlink: {refused.text}")

    def lambda_invoke(self, function: str, event: dict) -> dict:
        """One event into `function` through the Lambda Invoke API `cargo lambda watch` serves
        (what `cargo lambda invoke` calls); returns the function's JSON answer."""
        url = f"{self.base}/2015-03-31/functions/{function}/invocations"
        answer = request("POST", url, json.dumps(event).encode())
        check(answer.status == 200, f"invoke {function}: {answer.status} {answer.text[:300]}")
        return answer.json

    def authorizer_flow(self) -> None:
        base = self.base
        sample = json.loads((REPO / "events" / "authorizer" / "access-token.allow.json").read_text())
        whoami_sample = json.loads((REPO / "events" / "whoami" / "whoami.200.json").read_text())

        def authorize(credential: str | None) -> dict:
            event = json.loads(json.dumps(sample))
            event["headers"].pop("authorization", None)
            event["identitySource"] = []
            if credential:
                event["headers"]["authorization"] = f"Bearer {credential}"
                event["identitySource"] = [f"Bearer {credential}"]
            return self.lambda_invoke("authorizer", event)

        with self.step("account: POST /auth/api-keys -> a key shown once; GET /auth/me with the key"):
            user = self.signup_user(f"kay-{uuid.uuid4().hex[:12]}@example.com")
            at = user["access_token"]
            created = request("POST", f"{base}/auth/api-keys", {"name": "local"}, headers=bearer(at)).expect(201, "create key")
            key = created["key"]
            check(key.startswith(f"tg_{created['id']}_"), f"key shape: {created['prefix']}")
            me = request("GET", f"{base}/auth/me", headers=bearer(key)).expect(200, "me with the key")
            check(me["id"] == user["user"]["id"] and me["plan"] == "free", f"me: {me}")
            listed = request("GET", f"{base}/auth/api-keys", headers=bearer(at)).expect(200, "list keys")
            check(key not in json.dumps(listed), "the list never shows the key")

        with self.step("authorizer: an access token and an API key are authorized, with the plan in the context"):
            by_token = authorize(at)
            check(by_token.get("isAuthorized") is True, f"token: {by_token}")
            context = by_token["context"]
            check(context["user_id"] == user["user"]["id"] and context["plan"] == "free", f"context: {context}")
            check(json.loads(context["entitlements"]).get("requests_per_minute") == 60, f"entitlements: {context}")
            by_key = authorize(key)
            check(by_key.get("isAuthorized") is True and by_key["context"].get("key_id") == created["id"], f"key: {by_key}")
            check(authorize(None).get("isAuthorized") is False, "no credential")
            check(authorize(at[:-4] + "AAAA").get("isAuthorized") is False, "a forged token")

        with self.step("whoami: the example route gets the authorizer's context (as API Gateway passes it)"):
            event = json.loads(json.dumps(whoami_sample))
            event["requestContext"]["authorizer"] = {"lambda": by_key["context"]}
            answer = self.lambda_invoke("whoami", event)
            check(answer.get("statusCode") == 200, f"whoami: {answer}")
            body = json.loads(answer["body"])
            check(body["user_id"] == user["user"]["id"] and body["key_id"] == created["id"], f"whoami: {body}")

        with self.step("authorizer: a revoked key is refused at once; the free plan's 60 requests a minute hold"):
            request("DELETE", f"{base}/auth/api-keys/{created['id']}", headers=bearer(at)).expect(204, "revoke")
            check(authorize(key).get("isAuthorized") is False, "the revoked key")
            other = self.signup_user(f"rate-{uuid.uuid4().hex[:12]}@example.com")["access_token"]
            # The 61 requests within one minute window (windows are aligned to the minute).
            if time.time() % 60 > 45:
                time.sleep(61 - time.time() % 60)
            answers = [authorize(other).get("isAuthorized") for _ in range(61)]
            check(answers[:60] == [True] * 60 and answers[60] is False, f"rate: {answers.count(True)} allowed")

    def usage_flow(self) -> None:
        base = self.base
        with self.step("usage: five exports on the free plan count, a retried key counts once, the sixth is 402"):
            at = self.signup_user(f"meter-{uuid.uuid4().hex[:12]}@example.com")["access_token"]
            for i in range(1, 6):
                body = request("POST", f"{base}/usage/track", {"feature": "exports", "idempotency_key": f"x{i}"},
                               headers=bearer(at)).expect(200, f"track {i}")
                check(body["used"] == i and body["limit"] == 5 and not body["replayed"], f"track {i}: {body}")
            again = request("POST", f"{base}/usage/track", {"feature": "exports", "idempotency_key": "x5"},
                            headers=bearer(at)).expect(200, "retry")
            check(again["replayed"] and again["used"] == 5, f"retry: {again}")
            over = request("POST", f"{base}/usage/track", {"feature": "exports", "idempotency_key": "x6"},
                           headers=bearer(at))
            check(over.status == 402 and over.json["code"] == "usage_limit_reached"
                  and over.json["usage"]["used"] == 5, f"sixth: {over.status} {over.text[:300]}")
            listed = request("GET", f"{base}/usage", headers=bearer(at)).expect(200, "usage")
            check(listed["usage"][0]["remaining"] == 0, f"usage: {listed}")

    def invoke_processor(self, function: str) -> None:
        """`cargo lambda invoke` of the SQS consumer with the batch file."""
        self.invoke(function, self.batch_file)

    def invoke(self, function: str, event_file) -> None:
        """`cargo lambda invoke` of an event consumer through watch's Lambda invoke API, asserting
        the partial-batch-failure answer lists no failure."""
        argv = ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1",
                "--invoke-port", str(self.watch_port), "--data-file", str(event_file),
                "--output-format", "json"]
        out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180)
        check(out.returncode == 0, f"cargo lambda invoke exited {out.returncode}: {out.stderr.strip()[-1000:]}")
        try:
            answer = json.loads(out.stdout)
        except json.JSONDecodeError:
            raise StepFailed(f"cargo lambda invoke printed no JSON: {out.stdout[-500:]!r}") from None
        check(answer == {"batchItemFailures": []}, f"processor answered {answer}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="skip the debug build of the functions")
    args = parser.parse_args()
    terminate_on_sigterm()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    try:
        run.start()
        run.flow()
        run.account_flow()
        run.oauth_flow()
        run.authorizer_flow()
        run.usage_flow()
    except (StepFailed, WaitTimeout, subprocess.CalledProcessError) as e:
        for proc in run.processes:
            print(f"\n--- last lines of {proc.log_path.relative_to(REPO)} ---\n{proc.log_tail(25)}", file=sys.stderr)
        print(f"\nFAILED at step {run.step_no} ({run.step_name}): {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}) at step {run.step_no}; stopping", file=sys.stderr)
        return 130
    finally:
        run.stop_all()
    print(f"\nlocal Lambda flow passed: {run.step_no} steps in {time.monotonic() - run.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
