#!/usr/bin/env python3
"""Writes N Stripe-signed webhook deliveries for infra/bench/ingest.lua: one line per delivery,
`<Stripe-Signature header>\t<body>`. Each body is an event of a type Tollgate ignores
(`charge.refunded`) with a unique id, so ingest stores and enqueues every one and the processor
only records it as ignored. Signed now: run the load within Stripe's 300 s tolerance.

usage: presign.py <secret> <count> <out-file>
"""
import hashlib, hmac, json, sys, time, uuid

secret, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = int(time.time())
with open(out, "w") as f:
    for i in range(count):
        body = json.dumps({"id": f"evt_bench_{uuid.uuid4().hex}", "object": "event", "type": "charge.refunded",
                           "created": now, "data": {"object": {"object": "charge", "id": f"ch_{i}", "customer": f"cus_bench_{i % 50}"}}},
                          separators=(",", ":"))
        sig = hmac.new(secret.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
        f.write(f"t={now},v1={sig}\t{body}\n")
