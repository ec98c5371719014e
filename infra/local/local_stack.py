"""The emulated AWS side of a Tollgate stack: `moto_server`, and in it the DynamoDB table, the SQS
FIFO queue and its DLQ, and the five Secrets Manager secrets, created with boto3 from the resource
properties in template.yaml; the secrets filled as the bootstrap command would; and the
environment each function gets, resolved from the template's Environment sections.

Used by infra/local/flow.py (infra/local-lambda.sh) and infra/bench/coldstart.py.

What is and is not emulated: moto implements the data-plane APIs the functions call (GetItem,
TransactWriteItems, SendMessage, GetSecretValue, ...) but not IAM enforcement, KMS, or latency.
Resource types other than the three above (functions, roles, log groups, alarms, the HTTP API)
are not created: `cargo lambda watch` plays the functions and the HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import secrets as random_secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3

import cfn_template
from cfn_template import Resolver, Unresolvable
from processes import ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
REGION = "us-east-1"
#: moto's default account id (ARNs and queue URLs carry it).
ACCOUNT_ID = "123456789012"
#: Stands in for the CloudFormation stack name (resource names are derived from it).
STACK_NAME = "tollgate-local"
#: moto accepts any credentials; these are not secrets.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


# ---- moto_server -----------------------------------------------------------------------------------


def start_moto(log_path: Path, timeout: float = 60.0) -> tuple[ManagedProcess, str]:
    """Starts `moto_server` on a free loopback port; returns it and its endpoint URL once it
    answers (moto's first start imports a lot: allow a minute on a cold machine)."""
    port = free_port()
    # moto_atomic.py: moto_server with DynamoDB's conditional writes atomic, as in AWS.
    launcher = str(Path(__file__).resolve().parent / "moto_atomic.py")
    proc = ManagedProcess(
        "moto_server", [sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)], log_path
    )
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as r:
            return r.status == 200

    try:
        wait_until("moto_server", answers, timeout, interval=0.1, alive=proc)
    except BaseException:
        proc.stop()
        raise
    return proc, endpoint


def aws_env(endpoint: str) -> dict[str, str]:
    """What the AWS SDKs (Rust and boto3) need to talk to moto instead of AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance metadata service
        **DUMMY_CREDENTIALS,
    }


# ---- creating resources from their template properties ---------------------------------------------


def _bool(value: Any) -> bool:
    """CloudFormation's reading of a Boolean property ("true"/"false" strings included)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"not a boolean: {value!r}")


def _check_known(logical_id: str, props: dict, known: set[str]) -> None:
    unknown = sorted(set(props) - known)
    if unknown:
        raise Unresolvable(
            f"{logical_id}: properties {unknown} are not translated for the local stack; "
            "extend infra/local/local_stack.py"
        )


def _tags(props: dict) -> list[dict]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


def _create_table(stack: "LocalStack", logical_id: str, props: dict) -> None:
    """AWS::DynamoDB::Table -> CreateTable, UpdateTimeToLive, UpdateContinuousBackups."""
    _check_known(logical_id, props, {
        "TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes", "ProvisionedThroughput", "SSESpecification", "StreamSpecification",
        "TimeToLiveSpecification", "PointInTimeRecoverySpecification", "DeletionProtectionEnabled",
        "Tags",
    })
    ddb = stack.client("dynamodb")
    name = props.get("TableName") or f"{STACK_NAME}-{logical_id}"
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for same in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if same in props:
            args[same] = props[same]
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        args["SSESpecification"] = {"Enabled": _bool(sse.get("SSEEnabled", False)),
                                    **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse}}
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True,
                                       "StreamViewType": props["StreamSpecification"]["StreamViewType"]}
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = _bool(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        args["Tags"] = _tags(props)
    table = ddb.create_table(**args)["TableDescription"]
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if "TimeToLiveSpecification" in props:
        ttl = props["TimeToLiveSpecification"]
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl["Enabled"])})
    if "PointInTimeRecoverySpecification" in props:
        pitr = props["PointInTimeRecoverySpecification"]
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": _bool(pitr["PointInTimeRecoveryEnabled"])})
    stack.resolver.refs[logical_id] = name
    stack.resolver.attributes[logical_id] = {"Arn": table["TableArn"],
                                             "StreamArn": table.get("LatestStreamArn")}


#: AWS::SQS::Queue properties that are SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES = {
    "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue",
    "FifoThroughputLimit", "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize",
    "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy", "RedrivePolicy",
    "SqsManagedSseEnabled", "VisibilityTimeout",
}


def _create_queue(stack: "LocalStack", logical_id: str, props: dict) -> None:
    """AWS::SQS::Queue -> CreateQueue with every property as a queue attribute (FIFO, dedup,
    visibility, retention, SSE, redrive policy to the DLQ, ...)."""
    _check_known(logical_id, props, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"})
    fifo = _bool(props.get("FifoQueue", False))
    name = props.get("QueueName") or f"{STACK_NAME}-{logical_id}" + (".fifo" if fifo else "")
    attributes = {}
    for key in _QUEUE_ATTRIBUTES & set(props):
        value = props[key]
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict):
            value = json.dumps(value)
        attributes[key] = str(value)
    sqs = stack.client("sqs")
    args: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        args["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
    url = sqs.create_queue(**args)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.resolver.refs[logical_id] = url  # Ref of a queue is its URL
    stack.resolver.attributes[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}


def _create_secret(stack: "LocalStack", logical_id: str, props: dict) -> None:
    """AWS::SecretsManager::Secret -> CreateSecret, with the template's SecretString when it has one
    (the provider and webhook secrets start as `{}`; the key set and the JWKS are created empty):
    the bootstrap fills them (bootstrap_secrets below)."""
    _check_known(logical_id, props, {"Name", "Description", "SecretString", "KmsKeyId", "Tags"})
    name = props.get("Name") or f"{STACK_NAME}/{logical_id}"
    args: dict[str, Any] = {"Name": name}
    for key in ("Description", "SecretString", "KmsKeyId"):
        if key in props:
            args[key] = props[key]
    if props.get("Tags"):
        args["Tags"] = _tags(props)
    arn = stack.client("secretsmanager").create_secret(**args)["ARN"]
    stack.resolver.refs[logical_id] = arn  # Ref of a secret is its ARN
    stack.resolver.attributes[logical_id] = {"Id": arn}


#: The resource types the local stack creates, and how.
CREATORS: dict[str, Callable[["LocalStack", str, dict], None]] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SQS::Queue": _create_queue,
    "AWS::SecretsManager::Secret": _create_secret,
}


def _references(node: Any) -> set[str]:
    """Logical ids a property tree refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for x in node:
            found |= _references(x)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(v, str):
                    found |= _references(v[1])
            else:
                found |= _references(v)
    return found


# ---- the stack -----------------------------------------------------------------------------------


@dataclass
class LocalStack:
    """The template's table, queues and secrets in one moto_server."""

    endpoint: str
    template: dict
    resolver: Resolver
    created: list[str] = field(default_factory=list)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    # -- the functions' view ---------------------------------------------------------------------

    def function_environments(self, overrides: dict[str, str]) -> dict[str, dict[str, str]]:
        """Binary -> the environment variables template.yaml gives that function, resolved against
        the local resources. `overrides` replace variables whose template value names something
        that only exists on AWS (TOLLGATE_ISSUER is the HTTP API's URL)."""
        envs = {}
        for fn in cfn_template.functions(self.template):
            env = {}
            for key, value in fn.environment.items():
                if key in overrides:
                    env[key] = overrides[key]
                    continue
                resolved = self.resolver.resolve(value)
                if resolved is cfn_template.NO_VALUE:
                    continue  # `!Ref AWS::NoValue`: the variable is not set
                env[key] = str(resolved)
            envs[fn.binary] = env
        return envs

    def shared_environment(self, overrides: dict[str, str]) -> dict[str, str]:
        """The union of every function's environment, for `cargo lambda watch` (which gives all
        functions one environment). Fails if two functions would see different values for the
        same variable. The union gives some functions variables the template does not give them
        (e.g. TOLLGATE_QUEUE_URL beyond webhook-ingest); on AWS, IAM is what stops a function from
        using a resource, and moto does not enforce IAM anyway."""
        union: dict[str, str] = {}
        for binary, env in self.function_environments(overrides).items():
            for key, value in env.items():
                if union.setdefault(key, value) != value:
                    raise Unresolvable(f"{key} differs between functions ({binary}); "
                                       "cargo lambda watch cannot give them different values")
        return union

    def value_of(self, variable: str) -> str:
        """The resolved value of a configuration variable some function gets (e.g. the queue URL
        for TOLLGATE_QUEUE_URL)."""
        for fn in cfn_template.functions(self.template):
            if variable in fn.environment:
                return str(self.resolver.resolve(fn.environment[variable]))
        raise KeyError(f"no function of the template sets {variable}")

    def sqs_triggers(self) -> list[dict[str, Any]]:
        """The template's SQS event sources: [{function, queue_arn, queue_url, batch_size,
        report_batch_item_failures}] — what the event source mapping would poll and invoke."""
        triggers = []
        for resource in self.template["Resources"].values():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") != "SQS":
                    continue
                props = self.resolver.resolve(event["Properties"])
                arn = props["Queue"]
                url = next(a["QueueUrl"] for a in self.resolver.attributes.values()
                           if a.get("Arn") == arn and "QueueUrl" in a)
                triggers.append({
                    "function": binary,
                    "queue_arn": arn,
                    "queue_url": url,
                    "batch_size": int(props.get("BatchSize", 10)),
                    "report_batch_item_failures":
                        "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                })
        return triggers


    def dynamodb_triggers(self) -> list[dict[str, Any]]:
        """The template's DynamoDB stream event sources: [{function, stream_arn, batch_size,
        patterns, report_batch_item_failures}] — what the event source mapping would read, filter
        and invoke."""
        triggers = []
        for resource in self.template["Resources"].values():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") != "DynamoDB":
                    continue
                props = self.resolver.resolve(event["Properties"])
                filters = props.get("FilterCriteria", {}).get("Filters", [])
                triggers.append({
                    "function": binary,
                    "stream_arn": props["Stream"],
                    "batch_size": int(props.get("BatchSize", 100)),
                    "patterns": [json.loads(f["Pattern"]) for f in filters],
                    "report_batch_item_failures":
                        "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                })
        return triggers

    def verify_ses_identity(self) -> str:
        """Creates (and so, in moto, verifies) the template's SES sender identity (parameter
        SesIdentity), as an operator does once per account; returns it."""
        identity = str(self.resolver.resolve({"Ref": "SesIdentity"}))
        self.client("sesv2").create_email_identity(EmailIdentity=identity)
        return identity

    def sent_mail(self, to: str) -> list[dict]:
        """What moto's SES recorded as sent to `to`: [{subject, body (HTML), source}], oldest
        first."""
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=30) as r:
            data = json.loads(r.read())
        return [
            {"subject": m.get("subject", ""), "body": m.get("body", ""), "source": m.get("source")}
            for m in data.get("ses", {}).get("Message", [])
            if to in (m.get("destinations", {}).get("ToAddresses") or [])
        ]


def create_stack(endpoint: str, template_path: Path = TEMPLATE,
                 parameters: dict[str, Any] | None = None) -> LocalStack:
    """Creates every DynamoDB table, SQS queue and Secrets Manager secret of the template in moto,
    in dependency order (the DLQ before the queue whose RedrivePolicy names it)."""
    template = cfn_template.load_template(template_path)
    resolver = Resolver(template, region=REGION, account_id=ACCOUNT_ID, stack_name=STACK_NAME,
                        parameters=parameters or {})
    stack = LocalStack(endpoint=endpoint, template=template, resolver=resolver)
    pending = {lid: r for lid, r in template["Resources"].items() if r.get("Type") in CREATORS}
    while pending:
        ready = [lid for lid, r in pending.items()
                 if not (_references(r.get("Properties", {})) & set(pending))]
        if not ready:
            raise Unresolvable(f"circular references between {sorted(pending)}")
        for lid in ready:
            resource = pending.pop(lid)
            props = resolver.resolve(resource.get("Properties", {}))
            CREATORS[resource["Type"]](stack, lid, props)
            stack.created.append(f"{resource['Type']} {lid}")
    return stack


# ---- secrets: the bootstrap ------------------------------------------------------------------------


def moto_env(endpoint: str) -> dict[str, str]:
    """This process's environment for a child process, without a developer's own AWS profile,
    Stripe/Whop keys, identity providers' secrets or Tollgate settings (they must not leak into the run), plus the AWS SDK
    settings for moto."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "TOLLGATE_", "STRIPE_", "WHOP_", "GITHUB_", "GOOGLE_", "OIDC_"))}
    env.update(aws_env(endpoint))
    return env


def local_provider_secrets(stripe_api_base: str) -> dict[str, str]:
    """Provider values for a local run: a random test-mode Stripe API key and webhook signing
    secret, and the Stripe double's base URL (the bootstrap puts the key and base into the
    provider secret, the signing secret into the webhook secret). Whop is left unset (its billing
    answers 503)."""
    return {
        "STRIPE_SECRET_KEY": "sk_test_local_" + random_secrets.token_hex(16),
        "STRIPE_WEBHOOK_SECRET": "whsec_local_" + random_secrets.token_hex(16),
        "STRIPE_API_BASE": stripe_api_base,
    }


ADMIN_BINARY = REPO / "target" / "debug" / "tollgate-admin"


def bootstrap_secrets(stack: LocalStack, provider_secrets: dict[str, str]) -> None:
    """Fills the template's five secrets with the project's own bootstrap command,
    `tollgate-admin bootstrap --stack <name>` (infra/admin; built by the caller, debug profile):
    it finds them by the `tollgate:stack` tags create_stack copied from the template, creates the
    signing key set, publishes its JWKS, and records `provider_secrets` (API key and base URL into
    the provider secret, signing secret into the webhook secret), which it reads from its
    environment only (a GOOGLE_CLIENT_SECRET among them goes into the OAuth secret). Its output
    names keys and secrets, never values."""
    if not ADMIN_BINARY.exists():
        raise RuntimeError(f"{ADMIN_BINARY} is missing: cargo build --locked -p tollgate-admin")
    env = moto_env(stack.endpoint)
    env.update(provider_secrets)
    subprocess.run([str(ADMIN_BINARY), "bootstrap", "--stack", STACK_NAME],
                   cwd=REPO, env=env, check=True)


def function_process_env(stack: LocalStack, issuer: str) -> dict[str, str]:
    """The environment for function processes: this process's environment, the AWS SDK settings
    for moto, and the union of the template's function environments (issuer = the local API)."""
    env = moto_env(stack.endpoint)
    env.update(stack.shared_environment({"TOLLGATE_ISSUER": issuer}))
    return env
