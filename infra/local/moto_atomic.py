#!/usr/bin/env python3
"""`moto_server`, with DynamoDB's item operations made atomic with respect to each other.

Real DynamoDB applies a conditional write (and each `TransactWriteItems`) atomically: of two
conditional writes racing on one item, exactly one passes its condition. moto_server serves
requests on several threads and checks a condition and applies the write as separate Python
steps, so two racing writes can both pass — which made the store conformance cases about
concurrent writers (one winner among concurrent rotations, applies, token spends, claims) fail
now and then against moto while they hold on DynamoDB. This launcher serialises moto's DynamoDB
item operations behind one lock, then starts moto_server with the given arguments. Everything
else (SQS long polls, Secrets Manager, SES) stays concurrent.

Usage: python3 infra/local/moto_atomic.py -H 127.0.0.1 -p 5000   (moto_server's own arguments)

With `MOTO_EXIT_WITH_PARENT=<pid>` in the environment the server exits when that process is gone
(a test binary that starts its own moto leaves nothing running behind it).
"""

import functools
import os
import sys
import threading
import time

from moto.dynamodb.models import DynamoDBBackend

_LOCK = threading.RLock()
_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def _serialised(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _LOCK:
            return method(self, *args, **kwargs)

    return wrapper


for _name in _ITEM_OPERATIONS:
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

def _exit_with(parent: int) -> None:
    while True:
        try:
            os.kill(parent, 0)
        except OSError:
            os._exit(0)
        time.sleep(0.5)


if __name__ == "__main__":
    from moto.server import main

    parent = os.environ.get("MOTO_EXIT_WITH_PARENT")
    if parent:
        threading.Thread(target=_exit_with, args=(int(parent),), daemon=True).start()

    sys.exit(main(sys.argv[1:]))
