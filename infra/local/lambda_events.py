"""Lambda event payloads, in the shapes AWS sends them.

- `sqs_event`: what the SQS event source mapping invokes a function with, built from messages
  received from a queue (docs.aws.amazon.com/lambda/latest/dg/with-sqs.html, "Example standard
  queue message event" / FIFO). The webhook processor reads `messageId`, `body` and
  `attributes.MessageGroupId` (shared/src/webhooks/process.rs batch_from_sqs).
- `http_event`: an API Gateway HTTP API payload v2.0 request, shaped like the samples in events/.
- `StreamReader` and `dynamodb_event`: the DynamoDB stream event source mapping — reading a
  table's stream shard by shard from where it left off, keeping the records the mapping's filter
  criteria match (docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html: lists of
  values, `{"prefix": …}`), and the event a stream-triggered function gets
  (docs.aws.amazon.com/lambda/latest/dg/with-ddb.html, "Example event").
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from local_stack import REGION, REPO

EVENTS = REPO / "events"
#: An API Gateway v2 sample whose envelope (requestContext, headers) the crafted events reuse.
_HTTP_SAMPLE = EVENTS / "jwks" / "jwks.200.json"


def receive_batch(sqs, queue_url: str, max_messages: int, wait_seconds: int = 1) -> list[dict]:
    """One ReceiveMessage as the event source mapping does it: up to `max_messages` (the
    function's BatchSize), with every system attribute (MessageGroupId, SequenceNumber, ...) and
    message attribute."""
    out = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return out.get("Messages", [])


def _message_attribute(value: dict) -> dict:
    """boto3's MessageAttributeValue -> the Lambda event's camelCase form."""
    out = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def sqs_event(messages: list[dict], queue_arn: str, region: str = REGION) -> dict:
    """The SQS event for `messages` (as ReceiveMessage returned them, with attributes)."""
    records = []
    for m in messages:
        record = {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": dict(m.get("Attributes", {})),
            "messageAttributes": {k: _message_attribute(v) for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in m:
            record["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def http_event(method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None) -> dict:
    """An API Gateway HTTP API (payload 2.0) request for `method path`, with the envelope of the
    samples in events/ (same host, source IP, stage)."""
    event = json.loads(_HTTP_SAMPLE.read_text())
    route_key = f"{method} {path}"
    event["routeKey"] = route_key
    event["rawPath"] = path
    event["rawQueryString"] = ""
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    ctx = event["requestContext"]
    ctx["routeKey"] = route_key
    ctx["http"]["method"] = method
    ctx["http"]["path"] = path
    ctx["timeEpoch"] = int(time.time() * 1000)
    if body is not None:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    return event


def load_event(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _matches(pattern, value) -> bool:
    """One level of an event filter: a dict descends, a list is "any of" literal values or
    `{"prefix": p}` rules."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _matches(v, value[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        for rule in pattern:
            if isinstance(rule, dict) and "prefix" in rule:
                if isinstance(value, str) and value.startswith(rule["prefix"]):
                    return True
            elif rule == value:
                return True
        return False
    return pattern == value


def _lambda_record(record: dict, stream_arn: str, region: str) -> dict:
    """A GetRecords record in the shape Lambda delivers it (creation time in epoch seconds, the
    stream ARN added)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


class StreamReader:
    """Reads a DynamoDB stream from its start (TRIM_HORIZON), remembering where each shard's
    reading stopped, as the event source mapping does."""

    def __init__(self, streams_client, stream_arn: str, patterns: list[dict], region: str = REGION):
        self.client = streams_client
        self.arn = stream_arn
        self.patterns = patterns
        self.region = region
        self.iterators: dict[str, str] = {}

    def poll(self) -> list[dict]:
        """The new records every shard has, in order, that a filter pattern matches (all records
        when there is no pattern), in the Lambda event's record shape."""
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        records = []
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in self.iterators:
                self.iterators[sid] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            out = self.client.get_records(ShardIterator=self.iterators[sid])
            self.iterators[sid] = out.get("NextShardIterator") or self.iterators[sid]
            for record in out.get("Records", []):
                shaped = _lambda_record(record, self.arn, self.region)
                if not self.patterns or any(_matches(p, shaped) for p in self.patterns):
                    records.append(shaped)
        return records


def dynamodb_event(records: list[dict]) -> dict:
    """The event a DynamoDB-stream-triggered function gets."""
    return {"Records": records}
