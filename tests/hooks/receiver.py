"""An endpoint of "the customer's app" for tests/tests/notices.rs: verifies every POST with the
Python `standardwebhooks` library (the Standard Webhooks reference implementation) and records
what it accepted as JSON lines.

    python3 tests/hooks/receiver.py <secret> <log file> <fail first n>

Prints the port it listens on (loopback) on its first line. The first `n` requests are answered
500 without being verified (an endpoint that is down); then a request that verifies is recorded
and answered 204, one that does not gets 400.
"""

import http.server
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret, log_path, fail_first = sys.argv[1], sys.argv[2], int(sys.argv[3])
webhook = Webhook(secret)
state = {"seen": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        state["seen"] += 1
        if state["seen"] <= fail_first:
            self.send_response(500)
            self.end_headers()
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
        except WebhookVerificationError as e:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(str(e).encode())
            return
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"id": headers["webhook-id"], "payload": payload}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
