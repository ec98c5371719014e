#!/usr/bin/env python3
"""Cold start and size of every function's release build (issue #4 item 5, docs/architecture.md §9).

For each function of template.yaml, starts its release binary (target/lambda/<fn>/bootstrap, from
`cargo lambda build --release`) N times against a minimal Lambda Runtime API served here, and
measures, from just before the process is spawned:
  - to its first `GET /2018-06-01/runtime/invocation/next`  ("start -> first poll": the init
    phase: configuration, plan catalog, AWS clients, the signing keys (and, for the four billing
    functions, the provider secrets) read from Secrets Manager, the DynamoDB connection warmed
    with DescribeTable);
  - to its first `POST .../invocation/<id>/response`        ("start -> first response": init plus
    the first request, on a connection init already opened).
Also the binary's size and the size of its deployment zip (the binary as `bootstrap`, deflate
level 9, the way SAM zips a build directory).

The AWS side is moto_server with the template's table, queue and secrets, created and filled by
the same code as the local run (infra/local/local_stack.py), and each process gets exactly the
environment the template gives that function (plus what Lambda sets: AWS_LAMBDA_*, credentials).

What the numbers include, and do not: process spawn (fork/exec from Python) and the runtime's
start; every AWS call of init against moto on loopback (about a millisecond each, where AWS takes
a few); no Firecracker microVM start, no code download or unzip, no memory-size CPU throttling
(AWS_LAMBDA_FUNCTION_MEMORY_SIZE is set but not enforced), a page cache that already holds the
binary (one untimed run per function first). Lambda's own cold start adds its share on top; these
figures are the part the code controls.

Usage:
  infra/bench/coldstart.py [--runs 20] [--functions jwks,login] [--check] [--json out.json]
Exit status: 0; with --check, 1 if a function misses a target (zip < 6 MB, p90 start -> first
poll < 50 ms). Needs Python >= 3.10, boto3 and moto_server (infra/local-lambda.sh installs them).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable

sys.dont_write_bytecode = True  # no __pycache__ next to the sources
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))

import cfn_template  # noqa: E402
import lambda_events  # noqa: E402
import local_stack  # noqa: E402
from processes import LoopbackHTTPServer  # noqa: E402
from stripe_double import StripeDouble, stripe_signature  # noqa: E402

REPO = local_stack.REPO
LOG_DIR = REPO / "target" / "bench-coldstart"
ZIP_TARGET_BYTES = 6_000_000  # "under 6 MB" (decimal megabytes, the stricter reading)
FIRST_POLL_TARGET_MS = 50.0

# ---- the minimal Lambda Runtime API ---------------------------------------------------------------


@dataclass
class Invocation:
    """One event for one cold start, and what the process did with it (perf_counter_ns stamps)."""

    request_id: str
    event: bytes
    function_arn: str
    timeout_s: int
    first_next_ns: int | None = None
    response_ns: int | None = None
    response: bytes | None = None
    error: bytes | None = None
    delivered: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    """The Lambda Runtime API (docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) for one
    process and one invocation: `next` hands out the event once (a later poll waits until the
    process is killed), `response` / `error` / `init/error` complete it.

    One server (and port) per cold start: a request the previous, killed process sent just before
    it died may still be in the accept queue, and must not reach the next process's invocation
    (it would take its event and stamp its "first poll")."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the runtime client keeps its connection alive

            def log_message(self, *_args):
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                now = time.perf_counter_ns()
                inv = api.inv
                if self.path != f"{api.PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound"}')
                if inv.first_next_ns is None:
                    inv.first_next_ns = now
                if inv.delivered:
                    # The process polls for its second event: hold it until it is killed.
                    inv.finished.wait(60)
                    self.close_connection = True
                    return None
                inv.delivered = True
                trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"
                return self._reply(200, inv.event, {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + inv.timeout_s * 1000),
                    "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                    "Lambda-Runtime-Trace-Id": trace,
                })

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.perf_counter_ns()
                inv = api.inv
                if self.path == f"{api.PREFIX}/invocation/{inv.request_id}/response":
                    inv.response_ns, inv.response = now, body
                elif self.path in (f"{api.PREFIX}/invocation/{inv.request_id}/error", f"{api.PREFIX}/init/error"):
                    inv.error = body or b"(no body)"
                else:
                    return self._reply(404, b'{"errorType":"NotFound"}')
                self._reply(202, b'{"status":"OK"}')
                inv.done.set()
                return None

        self.server = LoopbackHTTPServer(Handler)
        self.address = f"127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()


# ---- the events ------------------------------------------------------------------------------------


@dataclass
class BenchEvent:
    description: str
    payload: dict
    expect_status: int | None  # HTTP status for API Gateway events; None for event consumers
    # The whole answer of a consumer (default: no partial batch failure), or a check of it.
    expect_answer: dict | Callable[[dict], bool] | None = None


def _sample(path: str) -> BenchEvent:
    status = int(re.search(r"\.(\d{3})\.json$", path).group(1))
    return BenchEvent(path, lambda_events.load_event(REPO / path), status)


def bench_events(stack: local_stack.LocalStack, webhook_secret: str) -> dict[str, BenchEvent]:
    """One event per function, answered without prior state. Samples from events/ where they
    exist; crafted API Gateway v2 requests for checkout and webhook-ingest; for the processor an
    SQS event of a message really sent to and received from the template's queue."""
    body = json.dumps({"plan": "pro"})
    wrong_signature = stripe_signature(webhook_secret + "x", b"{}")
    trigger = stack.sqs_triggers()[0]
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=trigger["queue_url"],
                     MessageBody=json.dumps({"provider": "stripe", "event_id": "evt_bench_unknown"}),
                     MessageGroupId="sub_bench", MessageDeduplicationId="stripe:evt_bench_unknown")
    messages = lambda_events.receive_batch(sqs, trigger["queue_url"], trigger["batch_size"])
    if len(messages) != 1:
        raise SystemExit(f"expected the one bench message from the queue, got {len(messages)}")
    return {
        # 422: validation fails before any hashing or write.
        "signup": _sample("events/signup/invalid-fields.422.json"),
        # 401: email-claim GetItem, then the dummy argon2id verify (unknown emails cost as much as known).
        "login": _sample("events/login/unknown-email.401.json"),
        # 401: session GetItem finds nothing.
        "token-refresh": _sample("events/token-refresh/refresh-unknown.401.json"),
        "jwks": _sample("events/jwks/jwks.200.json"),
        # 401: the token's RS256 signature does not verify.
        "subscription-lookup": _sample("events/subscription-lookup/me-bad-token.401.json"),
        "checkout": BenchEvent("POST /billing/checkout without a bearer token",
                               lambda_events.http_event("POST", "/billing/checkout",
                                                        {"content-type": "application/json"}, body), 401),
        "web": _sample("events/web/openapi.200.json"),
        "webhook-ingest": BenchEvent("POST /webhooks/stripe signed with the wrong secret",
                                     lambda_events.http_event("POST", "/webhooks/stripe",
                                                              {"content-type": "application/json",
                                                               "stripe-signature": wrong_signature}, "{}"), 400),
        # 422: the email does not parse, before any write.
        "account": _sample("events/account/forgot-invalid-email.422.json"),
        # 400: the exchange code's GetItem finds nothing.
        "oauth": _sample("events/oauth/exchange-unknown-code.400.json"),
        # A stream record of an outbox item that does not exist: one UpdateItem (the claim)
        # refused, one GetItem, nothing to send, no failure.
        "mailer": BenchEvent("DynamoDB stream event: 1 INSERT of an outbox item that does not exist",
                             lambda_events.dynamodb_event([{
                                 "eventID": "bench", "eventName": "INSERT", "eventVersion": "1.1",
                                 "eventSource": "aws:dynamodb", "awsRegion": local_stack.REGION,
                                 "dynamodb": {"Keys": {"PK": {"S": "MAIL#bench-missing"}, "SK": {"S": "MAIL"}},
                                              "SequenceNumber": "1", "SizeBytes": 40,
                                              "StreamViewType": "KEYS_ONLY",
                                              "ApproximateCreationDateTime": int(time.time())},
                                 "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/bench/stream/x",
                             }]), None),
        # An authorizer request with an API key that does not exist: the key's owner lookup
        # (GetItem) finds nothing, isAuthorized false.
        "authorizer": BenchEvent("events/authorizer/api-key.allow.json with an unknown key (deny)",
                                 json.loads((REPO / "events/authorizer/api-key.allow.json").read_text()
                                            .replace("${API_KEY}", "tg_0123456789abcdef_bench")), None,
                                 {"isAuthorized": False, "context": None}),
        # 401: no authorizer context (API Gateway would not have called it).
        "whoami": _sample("events/whoami/whoami-no-authorizer.401.json"),
        # 401: no bearer token, before any read.
        "usage": _sample("events/usage/track-no-token.401.json"),
        "admin": _sample("events/admin/users-no-token.401.json"),
        # The schedule's event: Stripe (the local double) lists no event; the checkpoint is read
        # and written (GetItem, PutItem).
        "reconciler": BenchEvent("events/reconciler/scheduled.json (Stripe lists nothing)",
                                 lambda_events.load_event(REPO / "events/reconciler/scheduled.json"), None,
                                 lambda a: [r.get("provider") for r in a.get("reports", [])] == ["stripe"]),
        # A pointer to an event not in the ledger: GetItem, logged and dropped, no failure.
        "webhook-processor": BenchEvent("SQS event: 1 received message (pointer to an unknown event)",
                                        lambda_events.sqs_event(messages, trigger["queue_arn"]), None),
    }


def check_answer(event: BenchEvent, response: bytes) -> str | None:
    """None if the function answered as expected, else what is wrong."""
    try:
        answer = json.loads(response)
    except json.JSONDecodeError:
        return f"not JSON: {response[:200]!r}"
    if event.expect_status is None:
        if callable(event.expect_answer):
            return None if event.expect_answer(answer) else f"answered {answer}"
        expected = event.expect_answer or {"batchItemFailures": []}
        return None if answer == expected else f"answered {answer}"
    status = answer.get("statusCode")
    return None if status == event.expect_status else f"status {status}, expected {event.expect_status}: {answer.get('body', '')[:200]}"


# ---- measuring -------------------------------------------------------------------------------------


@dataclass
class Result:
    function: str
    event: str
    binary_bytes: int
    zip_bytes: int
    first_poll_ms: list[float] = field(default_factory=list)
    first_response_ms: list[float] = field(default_factory=list)


def zip_size(binary: Path) -> int:
    """Size of the deployment zip: the binary as `bootstrap` (mode 0755), deflate level 9."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, binary.read_bytes(), compresslevel=9)
    return len(buf.getvalue())


def lambda_env(fn: cfn_template.Function, function_env: dict[str, str], endpoint: str) -> dict[str, str]:
    """The environment Lambda gives a provided.al2023 function (the parts the runtime reads),
    the template's variables for this function, and credentials/endpoint for moto. Nothing is
    inherited from this process."""
    name = f"{local_stack.STACK_NAME}-{fn.binary}"
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": "bootstrap",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/21/[$LATEST]{secrets.token_hex(16)}",
        **local_stack.aws_env(endpoint),
        **function_env,
    }


def cold_start(binary: Path, env: dict[str, str], inv: Invocation, log) -> tuple[float, float]:
    """Starts the binary once, serves it `inv`, kills it. Returns (ms to first poll, ms to first
    response); raises RuntimeError if it failed or did not answer within 15 s."""
    api = RuntimeApi(inv)
    env = {**env, "AWS_LAMBDA_RUNTIME_API": api.address}
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not inv.done.wait(0.01):
            if proc.poll() is not None:
                raise RuntimeError(f"exited with status {proc.returncode} before answering")
            if time.monotonic() > deadline:
                raise RuntimeError("no answer within 15 s")
        if inv.error is not None:
            raise RuntimeError(f"reported an error: {inv.error[:500].decode(errors='replace')}")
        return (inv.first_next_ns - t0) / 1e6, (inv.response_ns - t0) / 1e6
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        inv.finished.set()
        api.stop()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ---- report ----------------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model or platform.processor()}, Linux {platform.release()}, Python {platform.python_version()}"


def table(results: list[Result]) -> str:
    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731 - decimal MB, like the 6 MB target
    stats = lambda v: f"{statistics.median(v):.1f} / {percentile(v, 90):.1f} / {max(v):.1f}"  # noqa: E731
    lines = [
        "| function | binary MB | zip MB | start → first poll ms (median / p90 / max) | start → first response ms (median / p90 / max) | event |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(f"| {r.function} | {mb(r.binary_bytes)} | {mb(r.zip_bytes)} | {stats(r.first_poll_ms)} | "
                     f"{stats(r.first_response_ms)} | {r.event} |")
    return "\n".join(lines)


def misses(results: list[Result]) -> list[str]:
    found = []
    for r in results:
        if r.zip_bytes >= ZIP_TARGET_BYTES:
            found.append(f"{r.function}: zip {r.zip_bytes / 1e6:.2f} MB >= 6 MB")
        p90 = percentile(r.first_poll_ms, 90)
        if p90 >= FIRST_POLL_TARGET_MS:
            found.append(f"{r.function}: p90 start -> first poll {p90:.1f} ms >= {FIRST_POLL_TARGET_MS:.0f} ms")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="cold starts per function (default 20)")
    parser.add_argument("--functions", help="comma-separated subset (default: every function of the template)")
    parser.add_argument("--bin-dir", type=Path, default=REPO / "target" / "lambda",
                        help="where <function>/bootstrap are (default target/lambda)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a function misses a target")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()

    fns = cfn_template.functions(cfn_template.load_template(local_stack.TEMPLATE))
    if args.functions:
        wanted = set(args.functions.split(","))
        unknown = wanted - {f.binary for f in fns}
        if unknown:
            parser.error(f"not functions of template.yaml: {sorted(unknown)}")
        fns = [f for f in fns if f.binary in wanted]
    missing = [f.binary for f in fns if not (args.bin_dir / f.binary / "bootstrap").is_file()]
    if missing:
        raise SystemExit(f"no release build for {missing} under {args.bin_dir}; run "
                         "`cargo lambda build --release " + " ".join(f"-p {m}" for m in missing) + "`")

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    moto, endpoint = local_stack.start_moto(LOG_DIR / "moto.log")
    results: list[Result] = []
    try:
        stack = local_stack.create_stack(endpoint)
        # Only the reconciler calls Stripe (GET /v1/events): the local double, with no events.
        provider = local_stack.local_provider_secrets(stripe_api_base="")
        double = StripeDouble(provider["STRIPE_SECRET_KEY"])
        provider["STRIPE_API_BASE"] = double.start()
        local_stack.bootstrap_secrets(stack, provider)
        events = bench_events(stack, provider["STRIPE_WEBHOOK_SECRET"])
        envs = stack.function_environments({"TOLLGATE_ISSUER": "http://127.0.0.1:3000"})
        for fn in fns:
            binary = args.bin_dir / fn.binary / "bootstrap"
            event = events[fn.binary]
            env = lambda_env(fn, envs[fn.binary], endpoint)
            result = Result(fn.binary, event.description, binary.stat().st_size, zip_size(binary))
            print(f"{fn.binary}: 1 untimed + {args.runs} cold starts ...", file=sys.stderr, flush=True)
            with open(LOG_DIR / f"{fn.binary}.log", "wb") as log:
                for i in range(args.runs + 1):
                    payload = event.payload
                    if "http" in payload.get("requestContext", {}):
                        # Each start from its own client IP: the per-IP rate rules count every
                        # request, and 21 from one address would pass signup's 20 an hour.
                        payload = json.loads(json.dumps(payload))
                        payload["requestContext"]["http"]["sourceIp"] = f"198.51.100.{i + 1}"
                        # And for its own email: five failed logins of one would throttle it.
                        if '"email"' in (payload.get("body") or ""):
                            body = json.loads(payload["body"])
                            body["email"] = f"bench-{i}-{body['email']}"
                            payload["body"] = json.dumps(body)
                    inv = Invocation(request_id=secrets.token_hex(16), event=json.dumps(payload).encode(),
                                     function_arn=f"arn:aws:lambda:{local_stack.REGION}:{local_stack.ACCOUNT_ID}:"
                                                  f"function:{env['AWS_LAMBDA_FUNCTION_NAME']}",
                                     timeout_s=int(fn.timeout or 3))
                    try:
                        poll_ms, response_ms = cold_start(binary, env, inv, log)
                    except RuntimeError as e:
                        raise SystemExit(f"{fn.binary}: {e} (log: {LOG_DIR / (fn.binary + '.log')})") from None
                    wrong = check_answer(event, inv.response)
                    if wrong:
                        raise SystemExit(f"{fn.binary}: unexpected answer to {event.description}: {wrong}")
                    if i > 0:  # the first run only brings the binary into the page cache
                        result.first_poll_ms.append(poll_ms)
                        result.first_response_ms.append(response_ms)
            results.append(result)
    finally:
        moto.stop()
        if "double" in locals():
            double.stop()

    where = args.bin_dir.relative_to(REPO) if args.bin_dir.is_relative_to(REPO) else args.bin_dir
    print(f"\nCold start, {args.runs} runs per function, binaries in {where}; "
          f"{machine()}; AWS = moto_server {local_stack.REGION} on loopback.\n")
    print(table(results))
    print("\nMeasured from just before the process is spawned to its first `GET /runtime/invocation/next`"
          " and to its first response POST, against a local Runtime API. Init includes reading the"
          " secrets its template environment names (signing keys for the HTTP functions; provider keys for the four billing"
          " functions) from, and warming DynamoDB against, moto_server on loopback; not included: microVM"
          " start, code download and unzip, memory-size CPU limits. One untimed start per function"
          " first (binary in the page cache). Zip = `bootstrap` alone, deflate level 9.")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    found = misses(results)
    print("\nTargets (zip < 6 MB, p90 start → first poll < 50 ms): " + ("all met" if not found else "MISSED: " + "; ".join(found)))
    return 1 if (found and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
