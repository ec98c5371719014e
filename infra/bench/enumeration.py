#!/usr/bin/env python3
"""Do forgot-password and sign-in-code requests tell which emails have accounts? Issue #9 asks
that a known and an unknown email get the same status and body, and take the same time: medians
within 5 % over 50 pairs. This script measures it against a running-from-scratch dev server.

For each of `--pairs` rounds it sends the same request for a known email (an account exists) and
an unknown one (none does), twice each in the order known-unknown-unknown-known (even rounds) or
unknown-known-known-unknown (odd ones), so drift and the mail worker's background sends fall on
both; on one keep-alive connection each; and records each answer's status, body and wall time
(time.perf_counter_ns around request and full read). A round's figure per email is the mean of
its two times; the medians are over the rounds. Requests measured:

  - POST /auth/password/forgot {email}                          -> 202, empty body
  - POST /auth/otp/request {email}                              -> 202, empty body
  - POST /auth/otp/verify {email, code: wrong}  (after a request) -> 401 invalid_code
    (a known email has a live code; an unknown one the mailer's decoy code)

Reports per request: medians (µs) of known and unknown, their difference in % of the larger,
and whether every status and body matched. Exit status 1 if any median differs by 5 % or more
or any answer differs.

Usage:
    python3 infra/bench/enumeration.py [--pairs 50] [--binary target/release/dev-server] [--json out.json]
(build first: cargo build --release -p dev-server)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path: str, body: dict) -> tuple[int, bytes, int]:
        data = json.dumps(body).encode()
        t0 = time.perf_counter_ns()
        self.conn.request("POST", path, body=data, headers={"content-type": "application/json"})
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, payload, time.perf_counter_ns() - t0

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path)
        return self.conn.getresponse().read()


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"dev-server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("dev-server did not listen")


def measure(pairs: int, known_client: Client, unknown_client: Client, known: str, unknown: str,
            path: str, body_for, prepare=None) -> dict:
    times = {"known": [], "unknown": []}
    answers = {"known": set(), "unknown": set()}
    for i in range(pairs):
        if prepare:
            prepare(i)
            # After the pause, wake both connections and the server up with an unmeasured
            # request: the first request after idling is slower, whichever email it carries.
            known_client.get("/.well-known/jwks.json")
            unknown_client.get("/.well-known/jwks.json")
        k = ("known", known_client, known)
        u = ("unknown", unknown_client, unknown)
        # ABBA in even rounds, BAAB in odd ones: each side twice per round, in positions that
        # cancel a linear drift; the round's figure per side is the mean of its two.
        order = [k, u, u, k] if i % 2 == 0 else [u, k, k, u]
        round_us = {"known": [], "unknown": []}
        for label, client, email in order:
            status, payload, ns = client.post(path, body_for(email))
            round_us[label].append(ns / 1000)
            answers[label].add((status, payload))
        for label, values in round_us.items():
            times[label].append(statistics.fmean(values))
    med_k = statistics.median(times["known"])
    med_u = statistics.median(times["unknown"])
    diff = abs(med_k - med_u) / max(med_k, med_u) * 100
    return {
        "path": path,
        "pairs": pairs,
        "median_known_us": round(med_k, 1),
        "median_unknown_us": round(med_u, 1),
        "difference_pct": round(diff, 2),
        "same_answers": answers["known"] == answers["unknown"] and len(answers["known"]) == 1,
        "answers": sorted({f"{s} {p.decode(errors='replace')[:80]}" for s, p in answers["known"] | answers["unknown"]}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--binary", default="target/release/dev-server")
    ap.add_argument("--json")
    args = ap.parse_args()
    port = free_port()
    data = tempfile.mkdtemp(prefix="tollgate-enum-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "STRIPE_", "WHOP_"))}
    env["RUST_LOG"] = "warn"
    proc = subprocess.Popen([args.binary, "--addr", f"127.0.0.1:{port}", "--data-dir", data], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        setup = Client(port)
        known, unknown = "known@example.com", "unknown@example.com"
        status, _, _ = setup.post("/auth/signup", {"email": known, "password": PASSWORD})
        assert status == 201, status
        known_client, unknown_client = Client(port), Client(port)
        # Warm both connections and both code paths.
        for _ in range(10):
            for c, e in ((known_client, known), (unknown_client, unknown)):
                c.post("/auth/password/forgot", {"email": e})
                c.post("/auth/otp/request", {"email": e})
        time.sleep(0.5)

        def request_codes(_i: int) -> None:
            # A fresh code for both (the known one's is real, the unknown one's a decoy), and the
            # mail worker given time to mint them, before each pair of wrong tries.
            setup.post("/auth/otp/request", {"email": known})
            setup.post("/auth/otp/request", {"email": unknown})
            time.sleep(float(os.environ.get("ENUM_SETTLE", "0.25")))

        results = [
            measure(args.pairs, known_client, unknown_client, known, unknown, "/auth/password/forgot",
                    lambda e: {"email": e}),
            measure(args.pairs, known_client, unknown_client, known, unknown, "/auth/otp/request",
                    lambda e: {"email": e}),
            measure(args.pairs, known_client, unknown_client, known, unknown, "/auth/otp/verify",
                    lambda e: {"email": e, "code": "000000"}, prepare=request_codes),
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
    cpu = platform.processor() or platform.machine()
    print(f"{args.pairs} pairs per request, dev server {args.binary}, {os.cpu_count()} CPUs ({cpu}), "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")
    print("| request | known median µs | unknown median µs | difference | same status and body |")
    print("|---|---:|---:|---:|---|")
    ok = True
    for r in results:
        print(f"| `POST {r['path']}` | {r['median_known_us']} | {r['median_unknown_us']} | "
              f"{r['difference_pct']} % | {'yes' if r['same_answers'] else 'NO'} ({'; '.join(r['answers'])}) |")
        ok &= r["same_answers"] and r["difference_pct"] < 5.0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
