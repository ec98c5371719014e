"""A Stripe API double for the local run: the requests shared/src/payments/stripe.rs sends
(async-stripe, form-encoded), answered with Stripe-shaped objects, plus what Stripe itself does
when a customer pays (`complete_checkout`) and Stripe's webhook signing.

Objects are built from the vendored fixtures (tests/fixtures/stripe, like the Rust tests):
Stripe's own sample objects (openapi-fixtures3.json) and the derived events, so async-stripe's typed
parse gets every field it requires. The double keeps state: a customer, a checkout session and the
subscription created on payment are what later GETs return (the processor refetches the
subscription; subscription-lookup may fetch the session).

Served:
  POST /v1/customers                      (Idempotency-Key honoured, as Stripe does for 24 h)
  POST /v1/checkout/sessions              (mode=subscription; line_items[0][price], trial days)
  GET  /v1/checkout/sessions/{id}
  GET  /v1/subscriptions/{id}
  POST /v1/subscriptions/{id}             (cancel_at_period_end, items[0][price])
  DELETE /v1/subscriptions/{id}           (cancel at once)
  POST /v1/billing_portal/sessions
  GET  /v1/events                         (the events `event()` made, newest first; created[gte])
Every request must carry `Authorization: Bearer <the secret key>` (401 otherwise), which proves the
functions read the key from Secrets Manager. Requests are recorded for assertions.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from local_stack import REPO
from processes import LoopbackHTTPServer

#: The vendored fixtures (tests/fixtures; TOLLGATE_FIXTURES overrides).
FIXTURES = Path(os.environ.get("TOLLGATE_FIXTURES", REPO / "tests" / "fixtures")) / "stripe"


def stripe_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `body`: `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`,
    keyed with the whole `whsec_...` string (Stripe's scheme; shared/src/webhooks/signature.rs)."""
    t = int(timestamp if timestamp is not None else time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Recorded:
    """One request the double received (the Authorization header is not kept)."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


def _load(name: str) -> dict:
    path = FIXTURES / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the local run uses the Stripe fixtures in tests/fixtures "
            "(or set TOLLGATE_FIXTURES)")
    return json.loads(path.read_text())


@dataclass
class StripeState:
    customers: dict[str, dict] = field(default_factory=dict)
    sessions: dict[str, dict] = field(default_factory=dict)
    subscriptions: dict[str, dict] = field(default_factory=dict)
    #: Idempotency-Key -> (status, response), like Stripe's replay of a keyed POST.
    idempotent: dict[str, tuple[int, dict]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    #: Every event `event()` made, oldest first (what GET /v1/events lists).
    events: list[dict] = field(default_factory=list)


def _new_id(prefix: str) -> str:
    return f"{prefix}_local{secrets.token_hex(8)}"


class StripeDouble:
    """The double's state and objects; `start()` serves it on 127.0.0.1 in a background thread."""

    def __init__(self, secret_key: str):
        self.secret_key = secret_key
        self.state = StripeState()
        self.lock = threading.Lock()
        resources = _load("openapi-fixtures3.json")["resources"]
        self._customer = resources["customer"]
        self._portal = resources["billing_portal.session"]
        self._session_event = _load("events/checkout.session.completed.subscription.json")
        self._subscription_event = _load("events/customer.subscription.created.json")
        #: Per session: what it was asked for, applied when it is paid (not in Stripe's object).
        self._requested: dict[str, dict] = {}
        self._server: LoopbackHTTPServer | None = None
        self.base_url = ""

    # -- serving -----------------------------------------------------------------------------------

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as async-stripe's pooled client expects

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                form = dict(urllib.parse.parse_qsl(raw.decode() or url.query, keep_blank_values=True))
                status, body = double.handle(method, url.path, self.headers, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", _new_id("req"))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_DELETE(self):  # noqa: N802
                self._handle("DELETE")

            def log_message(self, *_args):  # quiet; requests are recorded instead
                pass

        self._server = LoopbackHTTPServer(Handler)
        self.base_url = f"http://127.0.0.1:{self._server.port}"
        return self.base_url

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def handle(self, method: str, path: str, headers, form: dict[str, str]) -> tuple[int, dict]:
        if headers.get("authorization") != f"Bearer {self.secret_key}":
            return 401, _error("Invalid API Key provided.", "invalid_request_error")
        key = headers.get("idempotency-key")
        with self.lock:
            self.state.requests.append(Recorded(
                method, path, {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}, form))
            if method == "POST" and key and key in self.state.idempotent:
                return self.state.idempotent[key]
            result = self._route(method, path.rstrip("/").split("/")[1:], form)
            if method == "POST" and key and result[0] == 200:
                self.state.idempotent[key] = result
            return result

    def _route(self, method: str, parts: list[str], form: dict[str, str]) -> tuple[int, dict]:
        match (method, parts):
            case ("POST", ["v1", "customers"]):
                return 200, self._create_customer(form)
            case ("POST", ["v1", "checkout", "sessions"]):
                return self._create_session(form)
            case ("GET", ["v1", "checkout", "sessions", sid]):
                return _found(self.state.sessions.get(sid), "checkout session", sid)
            case ("GET", ["v1", "subscriptions", sid]):
                return _found(self.state.subscriptions.get(sid), "subscription", sid)
            case ("POST", ["v1", "subscriptions", sid]):
                return self._update_subscription(sid, form)
            case ("DELETE", ["v1", "subscriptions", sid]):
                sub = self.state.subscriptions.get(sid)
                if sub is None:
                    return _found(None, "subscription", sid)
                sub.update(status="canceled", canceled_at=int(time.time()), cancel_at_period_end=False)
                return 200, sub
            case ("GET", ["v1", "events"]):
                since = int(form.get("created[gte]") or 0)
                listed = [e for e in reversed(self.state.events) if e["created"] >= since]
                return 200, {"object": "list", "url": "/v1/events", "has_more": False, "data": listed}
            case ("POST", ["v1", "billing_portal", "sessions"]):
                portal = copy.deepcopy(self._portal)
                pid = _new_id("bps")
                portal.update(id=pid, customer=form.get("customer"), return_url=form.get("return_url"),
                              url=f"{self.base_url}/p/session/{pid}", created=int(time.time()))
                return 200, portal
        return 404, _error(f"Unrecognized request URL ({method}: /{'/'.join(parts)}).", "invalid_request_error")

    # -- objects -----------------------------------------------------------------------------------

    def _create_customer(self, form: dict[str, str]) -> dict:
        customer = copy.deepcopy(self._customer)
        customer.update(id=_new_id("cus"), email=form.get("email"), created=int(time.time()),
                        metadata=_nested(form, "metadata"))
        self.state.customers[customer["id"]] = customer
        return customer

    def _create_session(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("mode") != "subscription" or not form.get("line_items[0][price]"):
            return 400, _error("This double only creates subscription-mode sessions with a price.",
                               "invalid_request_error")
        now = int(time.time())
        session = copy.deepcopy(self._session_event["data"]["object"])
        sid = "cs_test_" + secrets.token_hex(16)
        session.update(
            id=sid, created=now, expires_at=now + 86400, status="open", payment_status="unpaid",
            mode="subscription", customer=form.get("customer"), customer_email=form.get("customer_email"),
            client_reference_id=form.get("client_reference_id"), metadata=_nested(form, "metadata"),
            subscription=None, invoice=None, success_url=form.get("success_url"),
            cancel_url=form.get("cancel_url"), url=f"{self.base_url}/c/pay/{sid}",
        )
        self.state.sessions[sid] = session
        self._requested[sid] = {
            "price": form["line_items[0][price]"],
            "trial_days": int(form.get("subscription_data[trial_period_days]") or 0),
            "metadata": _nested(form, "subscription_data[metadata]"),
        }
        return 200, session

    def _update_subscription(self, sid: str, form: dict[str, str]) -> tuple[int, dict]:
        sub = self.state.subscriptions.get(sid)
        if sub is None:
            return _found(None, "subscription", sid)
        if "cancel_at_period_end" in form:
            sub["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        if "items[0][price]" in form:
            _set_price(sub, form["items[0][price]"])
        return 200, sub

    def complete_checkout(self, session_id: str) -> dict:
        """What Stripe does when the customer pays: creates the subscription the session asked for
        (trialing with a trial, else active; metadata from subscription_data) and completes the
        session. Returns the subscription."""
        with self.lock:
            session = self.state.sessions[session_id]
            asked = self._requested[session_id]
            now = int(time.time())
            customer = session["customer"] or self._create_customer({"email": session["customer_email"] or ""})["id"]
            sub = copy.deepcopy(self._subscription_event["data"]["object"])
            sid = _new_id("sub")
            trial_end = now + asked["trial_days"] * 86400 if asked["trial_days"] else None
            period_end = trial_end or now + 30 * 86400
            sub.update(
                id=sid, customer=customer, metadata=asked["metadata"], created=now, start_date=now,
                billing_cycle_anchor=period_end, status="trialing" if trial_end else "active",
                trial_start=now if trial_end else None, trial_end=trial_end, latest_invoice=None,
                cancel_at_period_end=False, cancel_at=None, canceled_at=None, ended_at=None,
                default_payment_method=None,
            )
            item = sub["items"]["data"][0]
            item.update(id=_new_id("si"), subscription=sid, created=now,
                        current_period_start=now, current_period_end=period_end)
            sub["items"]["url"] = f"/v1/subscription_items?subscription={sid}"
            _set_price(sub, asked["price"])
            self.state.subscriptions[sid] = sub
            session.update(status="complete", customer=customer, subscription=sid, url=None,
                           payment_status="no_payment_required" if trial_end else "paid")
            return copy.deepcopy(sub)

    def event(self, event_type: str, data_object: dict) -> dict:
        """A v1 Event envelope (as the fixtures have it) of `event_type` around `data_object`."""
        template = self._subscription_event if data_object.get("object") == "subscription" else self._session_event
        event = copy.deepcopy(template)
        event.update(id=_new_id("evt"), type=event_type, created=int(time.time()),
                     data={"object": copy.deepcopy(data_object)})
        event["request"] = {"id": _new_id("req"), "idempotency_key": None}
        with self.lock:
            self.state.events.append(copy.deepcopy(event))
        return event

    def requests(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.state.requests if r.method == method and r.path == path]


def _set_price(sub: dict, price_id: str) -> None:
    item = sub["items"]["data"][0]
    item["price"]["id"] = price_id
    item["plan"]["id"] = price_id


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """`prefix[key]=value` form fields as {key: value} (Stripe's form encoding of a hash)."""
    head = prefix + "["
    return {k[len(head):-1]: v for k, v in form.items()
            if k.startswith(head) and k.endswith("]") and "[" not in k[len(head):-1]}


def _found(obj: dict | None, what: str, oid: str) -> tuple[int, dict]:
    if obj is None:
        return 404, _error(f"No such {what}: '{oid}'", "invalid_request_error", code="resource_missing")
    return 200, obj


def _error(message: str, kind: str, code: str | None = None) -> dict:
    """Stripe's error body."""
    return {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}
