//! `template.yaml` (the SAM template) agrees with the code it deploys: its HTTP API events are
//! exactly the functions' `ROUTES`, it builds one function per crate under `functions/`, its table
//! has the keys and TTL attribute of `tollgate::store::keys`, no IAM statement in it grants a
//! `*` action or resource, each function's role may read exactly the secrets (and the table only
//! if) its `NEEDS` says, and the webhook pipeline is wired as docs/architecture.md §7 needs it: the processor
//! is triggered by an SQS FIFO queue with partial batch failures, that queue redrives to a FIFO
//! dead-letter queue after 5 receives, its visibility timeout is at least 6x the processor's
//! timeout, and ingest sends to that same queue. infra/check-template.sh checks the rest
//! (CloudFormation validity).
//!
//! Each check is a function over the parsed template returning its problems, so the last test can
//! show that every check fails on a template that breaks it.

use saphyr::{LoadableYamlNode, Yaml};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tollgate::store::keys;
use tollgate::{KeyAccess, Needs};

type Route = (String, String);

/// The SQS consumer: it has no HTTP routes, and its event source is checked instead.
const PROCESSOR: &str = "webhook-processor";
const MAILER: &str = "mailer";
/// The API Gateway authorizer (no route of its own).
const AUTHORIZER: &str = "authorizer";
/// The sender of the processor's queue (`TOLLGATE_QUEUE_URL`, shared/src/config.rs).
const INGEST: &str = "webhook-ingest";
/// The scheduled reconciler: no route; it sends to the same queue as ingest.
const RECONCILER: &str = "reconciler";

/// Every function crate: binary (= package = folder) name and its declared routes — the HTTP
/// functions of `tollgate_tests::functions()` and the processor.
fn crates() -> Vec<(&'static str, &'static [(&'static str, &'static str)])> {
    let mut all: Vec<_> = tollgate_tests::functions()
        .into_iter()
        .map(|f| (f.name, f.routes))
        .collect();
    all.push((PROCESSOR, &[]));
    all.push((MAILER, &[]));
    all.push((AUTHORIZER, &[]));
    all.push((RECONCILER, &[]));
    all
}

/// What each function crate builds at start-up; the processor reads the provider API keys and
/// the table (`tollgate::state::processor_from_env`).
fn needs_of(binary: &str) -> Option<Needs> {
    // The reconciler reads the provider API keys and the table
    // (`tollgate::state::reconciler_from_env`), as the processor does.
    if binary == PROCESSOR || binary == RECONCILER {
        return Some(Needs {
            keys: KeyAccess::None,
            accounts: false,
            billing: true,
            ingest: false,
            mail: false,
            oauth: false,
            outbound: false,
        });
    }
    if binary == MAILER {
        return Some(mailer::NEEDS);
    }
    if binary == AUTHORIZER {
        return Some(authorizer::NEEDS);
    }
    tollgate_tests::functions()
        .into_iter()
        .find(|f| f.name == binary)
        .map(|f| f.needs)
}

/// Whether a function with these `Needs` reads a secret.
type Reads = fn(&Needs) -> bool;

/// The template's secrets by the variable that names them and the part of `Needs` that reads
/// them.
const SECRETS: [(&str, &str, Reads); 6] = [
    ("JwtKeysSecret", "TOLLGATE_JWT_KEYS_SECRET_ID", |n| {
        n.keys == KeyAccess::Signing
    }),
    ("JwksSecret", "TOLLGATE_JWKS_SECRET_ID", |n| {
        n.keys == KeyAccess::Public
    }),
    ("ProviderSecrets", "TOLLGATE_PROVIDER_SECRETS_ID", |n| {
        n.billing
    }),
    ("WebhookSecrets", "TOLLGATE_WEBHOOK_SECRETS_ID", |n| {
        n.ingest
    }),
    ("OAuthSecrets", "TOLLGATE_OAUTH_SECRETS_ID", |n| n.oauth),
    (
        "OutboundEndpoints",
        "TOLLGATE_OUTBOUND_ENDPOINTS_SECRET_ID",
        |n| n.outbound,
    ),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn template_text() -> String {
    let path = workspace_root().join("template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses one YAML document. CloudFormation short tags (`!Ref X`) come back as `Yaml::Tagged`.
fn parse(text: &str) -> Yaml<'_> {
    let mut docs = Yaml::load_from_str(text).expect("template.yaml is valid YAML");
    assert_eq!(docs.len(), 1, "template.yaml holds one YAML document");
    docs.remove(0)
}

// ---- small accessors over saphyr's tree ---------------------------------------------------------

/// The node under a CloudFormation short tag (`!Sub "…"` → `"…"`); other nodes as they are.
fn untag<'a, 'i>(node: &'a Yaml<'i>) -> &'a Yaml<'i> {
    match node {
        Yaml::Tagged(_, inner) => untag(inner),
        other => other,
    }
}

fn get<'a, 'i>(node: &'a Yaml<'i>, key: &str) -> Option<&'a Yaml<'i>> {
    untag(node).as_mapping_get(key)
}

fn text<'a>(node: &'a Yaml<'_>) -> Option<&'a str> {
    untag(node).as_str()
}

fn text_at<'a>(node: &'a Yaml<'_>, key: &str) -> Option<&'a str> {
    get(node, key).and_then(text)
}

/// A sequence's items, or a lone scalar as a one-item list (IAM's `Action: x` = `Action: [x]`).
fn items<'a, 'i>(node: &'a Yaml<'i>) -> Vec<&'a Yaml<'i>> {
    match untag(node).as_sequence() {
        Some(seq) => seq.iter().collect(),
        None => vec![node],
    }
}

/// The target of `!Ref X` or `{Ref: X}`.
fn ref_target<'a>(node: &'a Yaml<'_>) -> Option<&'a str> {
    match node {
        Yaml::Tagged(tag, inner) if tag.suffix == "Ref" => inner.as_str(),
        other => other.as_mapping_get("Ref").and_then(|r| r.as_str()),
    }
}

/// `(resource, attribute)` of `!GetAtt X.Attr`, `!GetAtt [X, Attr]` or `{Fn::GetAtt: [X, Attr]}`.
fn getatt_target<'a>(node: &'a Yaml<'_>) -> Option<(&'a str, &'a str)> {
    let args = match node {
        Yaml::Tagged(tag, inner) if tag.suffix == "GetAtt" => inner.as_ref(),
        other => other.as_mapping_get("Fn::GetAtt")?,
    };
    if let Some(dotted) = args.as_str() {
        return dotted.split_once('.');
    }
    match args.as_sequence()?.as_slice() {
        [resource, attribute] => Some((resource.as_str()?, attribute.as_str()?)),
        _ => None,
    }
}

/// A whole number written as a YAML integer or a string (CloudFormation takes both).
fn integer(node: &Yaml<'_>) -> Option<i64> {
    let node = untag(node);
    node.as_integer()
        .or_else(|| node.as_str()?.trim().parse().ok())
}

/// `true` written as a YAML boolean or the string `"true"` (CloudFormation takes both).
fn is_true(node: Option<&Yaml<'_>>) -> bool {
    node.map(untag)
        .is_some_and(|n| n.as_bool() == Some(true) || n.as_str() == Some("true"))
}

/// The one resource called `id`, if it has type `resource_type`.
fn resource<'a, 'i>(doc: &'a Yaml<'i>, id: &str, resource_type: &str) -> Option<&'a Yaml<'i>> {
    resources(doc, resource_type)
        .into_iter()
        .find(|(rid, _)| *rid == id)
        .map(|(_, r)| r)
}

/// `(logical id, resource)` for every resource of `resource_type`.
fn resources<'a, 'i>(doc: &'a Yaml<'i>, resource_type: &str) -> Vec<(&'a str, &'a Yaml<'i>)> {
    get(doc, "Resources")
        .and_then(|r| untag(r).as_mapping())
        .map(|m| {
            m.iter()
                .filter(|(_, r)| text_at(r, "Type") == Some(resource_type))
                .filter_map(|(id, r)| Some((text(id)?, r)))
                .collect()
        })
        .unwrap_or_default()
}

/// Each `AWS::Serverless::Function` with its build binary (`Metadata.BuildProperties.Binary`).
fn functions<'a, 'i>(doc: &'a Yaml<'i>) -> Vec<(&'a str, Option<&'a str>, &'a Yaml<'i>)> {
    resources(doc, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let binary = get(f, "Metadata")
                .and_then(|m| get(m, "BuildProperties"))
                .and_then(|b| text_at(b, "Binary"));
            (id, binary, f)
        })
        .collect()
}

/// Every `(method, path)` of a function's `HttpApi` events.
fn event_routes(function: &Yaml<'_>) -> Result<Vec<Route>, String> {
    let Some(events) = get(function, "Properties")
        .and_then(|p| get(p, "Events"))
        .and_then(|e| untag(e).as_mapping())
    else {
        return Ok(Vec::new());
    };
    let mut routes = Vec::new();
    for (name, event) in events {
        if text_at(event, "Type") != Some("HttpApi") {
            continue;
        }
        let name = text(name).unwrap_or("?");
        let props = get(event, "Properties").ok_or(format!("event {name} has no Properties"))?;
        let method = text_at(props, "Method").ok_or(format!("event {name} has no Method"))?;
        let path = text_at(props, "Path").ok_or(format!("event {name} has no Path"))?;
        routes.push((method.to_ascii_uppercase(), path.to_owned()));
    }
    Ok(routes)
}

fn declared_routes() -> BTreeSet<Route> {
    crates()
        .iter()
        .flat_map(|(_, routes)| routes.iter())
        .map(|(m, p)| (m.to_ascii_uppercase(), (*p).to_owned()))
        .collect()
}

// ---- the checks ---------------------------------------------------------------------------------

/// (a) The set of `(method, path)` over all HttpApi events equals the union of the functions'
/// `ROUTES`, each route appears once, and every event is on the template's one HttpApi.
fn check_routes(doc: &Yaml<'_>) -> Result<(), String> {
    let apis = resources(doc, "AWS::Serverless::HttpApi");
    let [(api_id, _)] = apis.as_slice() else {
        return Err(format!(
            "expected one AWS::Serverless::HttpApi, found {}",
            apis.len()
        ));
    };
    let mut in_template = Vec::new();
    for (id, _, function) in functions(doc) {
        in_template.extend(event_routes(function).map_err(|e| format!("{id}: {e}"))?);
        let events = get(function, "Properties").and_then(|p| get(p, "Events"));
        for event in events
            .and_then(|e| untag(e).as_mapping())
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|e| text_at(e, "Type") == Some("HttpApi"))
        {
            let on = get(event, "Properties")
                .and_then(|p| get(p, "ApiId"))
                .and_then(ref_target);
            if on != Some(*api_id) {
                return Err(format!(
                    "{id}: an event is not on !Ref {api_id} (ApiId = {on:?})"
                ));
            }
        }
    }
    let set: BTreeSet<Route> = in_template.iter().cloned().collect();
    if set.len() != in_template.len() {
        return Err(format!(
            "a route is declared by two events: {in_template:?}"
        ));
    }
    let declared = declared_routes();
    if set != declared {
        return Err(format!(
            "template routes differ from the functions' ROUTES\n  only in template: {:?}\n  only in code: {:?}",
            set.difference(&declared).collect::<Vec<_>>(),
            declared.difference(&set).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// Each route reaches the function that declares it: a function's events are its own crate's
/// `ROUTES`, and the HttpApi's written-out integrations (template.yaml says why they are written
/// out) invoke `<stack>-<binary>` for exactly the routes of that binary's events.
fn check_route_owners(doc: &Yaml<'_>) -> Result<(), String> {
    let mut by_events = BTreeSet::new();
    for (id, binary, function) in functions(doc) {
        let binary = binary.ok_or(format!("{id} has no Metadata.BuildProperties.Binary"))?;
        let routes: BTreeSet<Route> = event_routes(function)?.into_iter().collect();
        let own: BTreeSet<Route> = crates()
            .iter()
            .filter(|(name, _)| *name == binary)
            .flat_map(|(_, r)| r.iter())
            .map(|(m, p)| (m.to_ascii_uppercase(), (*p).to_owned()))
            .collect();
        if routes != own {
            return Err(format!(
                "{id} (binary {binary}) has events {routes:?} but its ROUTES are {own:?}"
            ));
        }
        let name = get(function, "Properties").and_then(|p| text_at(p, "FunctionName"));
        let expected = format!("${{AWS::StackName}}-{binary}");
        if name != Some(expected.as_str()) {
            return Err(format!(
                "{id}: FunctionName is {name:?}, the integrations expect !Sub {expected}"
            ));
        }
        by_events.extend(routes.into_iter().map(|(m, p)| (m, p, binary.to_owned())));
    }

    let mut by_definition = BTreeSet::new();
    for (id, api) in resources(doc, "AWS::Serverless::HttpApi") {
        let paths = get(api, "Properties")
            .and_then(|p| get(p, "DefinitionBody"))
            .and_then(|b| get(b, "paths"))
            .and_then(|p| untag(p).as_mapping())
            .ok_or(format!("{id} has no DefinitionBody.paths"))?;
        for (path, methods) in paths {
            let path = text(path).ok_or(format!("{id}: a path is not a string"))?;
            for (method, op) in untag(methods).as_mapping().into_iter().flatten() {
                let method =
                    text(method).ok_or(format!("{id} {path}: a method is not a string"))?;
                let uri = get(op, "x-amazon-apigateway-integration")
                    .and_then(|i| text_at(i, "uri"))
                    .ok_or(format!("{id}: {method} {path} has no integration uri"))?;
                let binary = uri
                    .split_once(":function:${AWS::StackName}-")
                    .and_then(|(_, rest)| rest.strip_suffix("/invocations"))
                    .ok_or(format!(
                        "{id}: {method} {path}: uri {uri:?} names no function of this stack"
                    ))?;
                by_definition.insert((
                    method.to_ascii_uppercase(),
                    path.to_owned(),
                    binary.to_owned(),
                ));
            }
        }
    }
    if by_definition != by_events {
        return Err(format!(
            "the API definition and the events disagree\n  only in definition: {:?}\n  only in events: {:?}",
            by_definition.difference(&by_events).collect::<Vec<_>>(),
            by_events.difference(&by_definition).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// (b) The set of function binaries equals the set of folders under `functions/`; each is built by
/// cargo lambda.
fn check_binaries(doc: &Yaml<'_>, crates: &BTreeSet<String>) -> Result<(), String> {
    let mut binaries = BTreeSet::new();
    for (id, binary, function) in functions(doc) {
        let binary = binary.ok_or(format!("{id} has no Metadata.BuildProperties.Binary"))?;
        let method = get(function, "Metadata").and_then(|m| text_at(m, "BuildMethod"));
        if method != Some("rust-cargolambda") {
            return Err(format!(
                "{id}: BuildMethod is {method:?}, not rust-cargolambda"
            ));
        }
        if !binaries.insert(binary.to_owned()) {
            return Err(format!("binary {binary} is built by two functions"));
        }
    }
    if &binaries != crates {
        return Err(format!(
            "function binaries {binaries:?} != folders under functions/ {crates:?}"
        ));
    }
    Ok(())
}

/// (c) One table, keyed PK (HASH) / SK (RANGE), both strings and nothing else, TTL on
/// `keys::TTL_ATTRIBUTE`: the names the store code uses (shared/src/store/keys.rs).
fn check_table(doc: &Yaml<'_>) -> Result<(), String> {
    let tables = resources(doc, "AWS::DynamoDB::Table");
    let [(id, table)] = tables.as_slice() else {
        return Err(format!(
            "expected one AWS::DynamoDB::Table, found {}",
            tables.len()
        ));
    };
    let props = get(table, "Properties").ok_or(format!("{id} has no Properties"))?;
    let pairs = |list: &str, a: &str, b: &str| -> BTreeSet<(String, String)> {
        get(props, list)
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                (
                    text_at(e, a).unwrap_or("?").to_owned(),
                    text_at(e, b).unwrap_or("?").to_owned(),
                )
            })
            .collect()
    };
    let owned = |v: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    let key_schema = pairs("KeySchema", "AttributeName", "KeyType");
    if key_schema != owned(&[(keys::PK, "HASH"), (keys::SK, "RANGE")]) {
        return Err(format!(
            "{id}: KeySchema is {key_schema:?}, expected {} HASH / {} RANGE",
            keys::PK,
            keys::SK
        ));
    }
    let attributes = pairs("AttributeDefinitions", "AttributeName", "AttributeType");
    if attributes != owned(&[(keys::PK, "S"), (keys::SK, "S")]) {
        return Err(format!(
            "{id}: AttributeDefinitions are {attributes:?}, expected only {} and {} as S",
            keys::PK,
            keys::SK
        ));
    }
    let ttl = get(props, "TimeToLiveSpecification");
    let ttl_attribute = ttl.and_then(|t| text_at(t, "AttributeName"));
    let ttl_enabled = ttl
        .and_then(|t| get(t, "Enabled"))
        .and_then(|e| untag(e).as_bool());
    if ttl_attribute != Some(keys::TTL_ATTRIBUTE) || ttl_enabled != Some(true) {
        return Err(format!(
            "{id}: TTL is {ttl_attribute:?} (enabled {ttl_enabled:?}), expected {} enabled",
            keys::TTL_ATTRIBUTE
        ));
    }
    Ok(())
}

/// Every IAM statement anywhere in the template (any mapping's `Statement`).
fn statements<'a, 'i>(node: &'a Yaml<'i>, out: &mut Vec<&'a Yaml<'i>>) {
    match untag(node) {
        Yaml::Mapping(m) => {
            for (k, v) in m {
                if text(k) == Some("Statement") {
                    out.extend(items(v));
                } else {
                    statements(v, out);
                }
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|v| statements(v, out)),
        _ => {}
    }
}

/// (d) No IAM statement has a `*` in an action or a resource (nor NotAction/NotResource, which
/// grant everything else), and no permission comes from outside the template where this test
/// cannot see it: no managed policy ARNs on roles, no SAM `Policies` other than inline statements.
fn check_iam(doc: &Yaml<'_>) -> Result<(), String> {
    let mut found = Vec::new();
    statements(doc, &mut found);
    let roles = resources(doc, "AWS::IAM::Role");
    // At least a trust statement and a permission statement per role, or the walk missed them.
    if found.len() < 2 * roles.len().max(1) {
        return Err(format!(
            "found only {} IAM statements for {} roles",
            found.len(),
            roles.len()
        ));
    }
    for statement in found {
        let sid = text_at(statement, "Sid").unwrap_or("(no Sid)");
        for forbidden in ["NotAction", "NotResource"] {
            if get(statement, forbidden).is_some() {
                return Err(format!("statement {sid} uses {forbidden}"));
            }
        }
        for (key, what) in [("Action", "action"), ("Resource", "resource")] {
            for value in get(statement, key).map(items).unwrap_or_default() {
                // Plain strings and !Sub strings; !Ref / !GetAtt name one resource.
                if let Some(s) = text(value).filter(|s| s.contains('*')) {
                    return Err(format!("statement {sid} has the {what} {s:?}"));
                }
            }
        }
    }
    for (id, role) in roles {
        if get(role, "Properties")
            .and_then(|p| get(p, "ManagedPolicyArns"))
            .is_some()
        {
            return Err(format!(
                "{id} attaches managed policies, whose statements this test cannot check"
            ));
        }
    }
    let globals = get(doc, "Globals").and_then(|g| get(g, "Function"));
    let mut functions: Vec<(&str, Option<&Yaml<'_>>)> = vec![("Globals.Function", globals)];
    functions.extend(
        resources(doc, "AWS::Serverless::Function")
            .into_iter()
            .map(|(id, f)| (id, get(f, "Properties"))),
    );
    for (id, props) in functions {
        for policy in props
            .and_then(|p| get(p, "Policies"))
            .map(items)
            .unwrap_or_default()
        {
            if get(policy, "Statement").is_none() {
                return Err(format!("{id}: a Policies entry is a managed policy or SAM policy template, not a statement"));
            }
        }
    }
    Ok(())
}

/// The role's Allow statements.
fn allow_statements<'a, 'i>(role: &'a Yaml<'i>) -> Vec<&'a Yaml<'i>> {
    let mut found = Vec::new();
    if let Some(policies) = get(role, "Properties").and_then(|p| get(p, "Policies")) {
        statements(policies, &mut found);
    }
    found.retain(|s| text_at(s, "Effect") == Some("Allow"));
    found
}

/// The resources `!Ref <id>` of the role's Allow statements that grant `action`.
fn refs_granted<'a>(role: &'a Yaml<'_>, action: &str) -> BTreeSet<&'a str> {
    allow_statements(role)
        .into_iter()
        .filter(|s| {
            get(s, "Action")
                .map(items)
                .unwrap_or_default()
                .into_iter()
                .any(|a| text(a) == Some(action))
        })
        .flat_map(|s| get(s, "Resource").map(items).unwrap_or_default())
        .filter_map(ref_target)
        .collect()
}

/// The `!Ref` targets of the environment variables `names` set on a function (or Globals).
fn env_refs(props: Option<&Yaml<'_>>, names: &[&str]) -> BTreeMap<String, String> {
    let vars = props
        .and_then(|p| get(p, "Environment"))
        .and_then(|e| get(e, "Variables"));
    names
        .iter()
        .filter_map(|n| {
            vars.and_then(|v| get(v, n)).map(|v| {
                (
                    (*n).to_owned(),
                    ref_target(v).unwrap_or("(not a !Ref)").to_owned(),
                )
            })
        })
        .collect()
}

/// (e) Least privilege per function, from its `NEEDS`: its role may `GetSecretValue` exactly the
/// secrets it reads at start-up (and its environment names exactly those, none in Globals), and
/// it has table actions only if it uses the table.
fn check_secrets(doc: &Yaml<'_>) -> Result<(), String> {
    let variables: Vec<&str> = SECRETS.iter().map(|(_, var, _)| *var).collect();
    let globals = get(doc, "Globals").and_then(|g| get(g, "Function"));
    if let Some((var, _)) = env_refs(globals, &variables).into_iter().next() {
        return Err(format!(
            "Globals.Function sets {var}: every function would read it"
        ));
    }
    for (id, binary, function) in functions(doc) {
        let binary = binary.ok_or(format!("{id} builds no binary"))?;
        let needs = needs_of(binary).ok_or(format!("{id}: no crate {binary}"))?;
        let role = role_of(doc, id, function)?;
        let want: BTreeSet<&str> = SECRETS
            .iter()
            .filter(|(_, _, reads)| reads(&needs))
            .map(|(secret, _, _)| *secret)
            .collect();
        let granted = refs_granted(role, "secretsmanager:GetSecretValue");
        if granted != want {
            return Err(format!(
                "{id} ({binary}) may read secrets {granted:?}, its NEEDS reads {want:?}"
            ));
        }
        let named: BTreeMap<String, String> = SECRETS
            .iter()
            .filter(|(secret, _, _)| want.contains(secret))
            .map(|(secret, var, _)| ((*var).to_owned(), (*secret).to_owned()))
            .collect();
        let set = env_refs(get(function, "Properties"), &variables);
        if set != named {
            return Err(format!(
                "{id} ({binary}) names secrets {set:?} in its environment, its NEEDS reads {named:?}"
            ));
        }
        let table = actions_on(role, "Table");
        if needs.table() == table.is_empty() {
            return Err(format!(
                "{id} ({binary}) has table actions {table:?} but uses the table: {}",
                needs.table()
            ));
        }
    }
    Ok(())
}

// ---- the webhook pipeline (docs/architecture.md §7) ----------------------------------------------------------

/// The one function resource that builds `binary`: `(logical id, resource)`.
fn function_building<'a, 'i>(
    doc: &'a Yaml<'i>,
    binary: &str,
) -> Result<(&'a str, &'a Yaml<'i>), String> {
    let found: Vec<_> = functions(doc)
        .into_iter()
        .filter(|(_, b, _)| *b == Some(binary))
        .collect();
    match found.as_slice() {
        [(id, _, function)] => Ok((id, function)),
        other => Err(format!(
            "expected one function building {binary}, found {}",
            other.len()
        )),
    }
}

/// The queue the processor consumes, after checking its trigger: exactly one event, of type SQS,
/// on `!GetAtt <queue>.Arn` of a queue in this template, with `ReportBatchItemFailures` (the
/// handler returns partial batch failures; without it Lambda ignores them and retries or deletes
/// the whole batch) and a batch size within the FIFO limit of 10.
fn processor_queue<'a, 'i>(doc: &'a Yaml<'i>) -> Result<(&'a str, &'a Yaml<'i>), String> {
    let (id, function) = function_building(doc, PROCESSOR)?;
    let events: Vec<_> = get(function, "Properties")
        .and_then(|p| get(p, "Events"))
        .and_then(|e| untag(e).as_mapping())
        .map(|m| m.values().collect())
        .unwrap_or_default();
    let [event] = events.as_slice() else {
        return Err(format!(
            "{id}: expected exactly one event (the SQS trigger), found {}",
            events.len()
        ));
    };
    let kind = text_at(event, "Type");
    if kind != Some("SQS") {
        return Err(format!("{id}: the trigger is {kind:?}, not SQS"));
    }
    let props = get(event, "Properties").ok_or(format!("{id}: the SQS event has no Properties"))?;
    if get(props, "Enabled").map(untag).and_then(Yaml::as_bool) == Some(false) {
        return Err(format!("{id}: the SQS event is disabled"));
    }
    let types: Vec<&str> = get(props, "FunctionResponseTypes")
        .map(items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(text)
        .collect();
    if !types.contains(&"ReportBatchItemFailures") {
        return Err(format!(
            "{id}: FunctionResponseTypes is {types:?}, without ReportBatchItemFailures"
        ));
    }
    let batch = get(props, "BatchSize").and_then(integer);
    if !batch.is_some_and(|b| (1..=10).contains(&b)) {
        return Err(format!(
            "{id}: BatchSize is {batch:?}; a FIFO queue allows 1..=10"
        ));
    }
    let queue = get(props, "Queue")
        .and_then(getatt_target)
        .filter(|(_, attribute)| *attribute == "Arn")
        .map(|(queue, _)| queue)
        .ok_or(format!(
            "{id}: the SQS event's Queue is not !GetAtt <queue>.Arn"
        ))?;
    let resource = resource(doc, queue, "AWS::SQS::Queue").ok_or(format!(
        "{id}: {queue} is not an AWS::SQS::Queue of this template"
    ))?;
    Ok((queue, resource))
}

fn queue_properties<'a, 'i>(id: &str, queue: &'a Yaml<'i>) -> Result<&'a Yaml<'i>, String> {
    get(queue, "Properties").ok_or(format!("{id} has no Properties"))
}

/// (e) The webhook processor is triggered by SQS with partial batch failures.
fn check_processor_trigger(doc: &Yaml<'_>) -> Result<(), String> {
    processor_queue(doc).map(|_| ())
}

/// (f) The processor's queue is FIFO, deduplicated by the id the sender sets (not by content),
/// and moves a message after 5 receives to a FIFO dead-letter queue that keeps it 14 days.
fn check_queue_redrive(doc: &Yaml<'_>) -> Result<(), String> {
    let (id, queue) = processor_queue(doc)?;
    let props = queue_properties(id, queue)?;
    if !is_true(get(props, "FifoQueue")) {
        return Err(format!("{id} is not a FIFO queue (FifoQueue: true)"));
    }
    if is_true(get(props, "ContentBasedDeduplication")) {
        return Err(format!(
            "{id} deduplicates by content; ingest sets MessageDeduplicationId"
        ));
    }
    let redrive = get(props, "RedrivePolicy").ok_or(format!("{id} has no RedrivePolicy"))?;
    let receives = get(redrive, "maxReceiveCount").and_then(integer);
    if receives != Some(5) {
        return Err(format!(
            "{id}: RedrivePolicy.maxReceiveCount is {receives:?}, expected 5"
        ));
    }
    let dlq = get(redrive, "deadLetterTargetArn")
        .and_then(getatt_target)
        .filter(|(_, attribute)| *attribute == "Arn")
        .map(|(dlq, _)| dlq)
        .ok_or(format!(
            "{id}: RedrivePolicy.deadLetterTargetArn is not !GetAtt <queue>.Arn"
        ))?;
    if dlq == id {
        return Err(format!("{id} redrives to itself"));
    }
    let dlq_props = resource(doc, dlq, "AWS::SQS::Queue")
        .ok_or(format!(
            "{id}: DLQ {dlq} is not an AWS::SQS::Queue of this template"
        ))
        .and_then(|q| queue_properties(dlq, q))?;
    if !is_true(get(dlq_props, "FifoQueue")) {
        return Err(format!(
            "DLQ {dlq} is not FIFO (a FIFO queue's DLQ must be FIFO)"
        ));
    }
    if get(dlq_props, "RedrivePolicy").is_some() {
        return Err(format!("DLQ {dlq} redrives further"));
    }
    let retention = get(dlq_props, "MessageRetentionPeriod").and_then(integer);
    if retention != Some(14 * 86_400) {
        return Err(format!(
            "DLQ {dlq}: MessageRetentionPeriod is {retention:?}, expected 14 days (1209600)"
        ));
    }
    Ok(())
}

/// (g) The queue's VisibilityTimeout is at least 6x the processor's Timeout (AWS guidance for SQS
/// event sources): a shorter one hands a batch still being processed to a second invocation.
/// Defaults when unset: Globals.Function.Timeout, else Lambda's 3 s; SQS's 30 s.
fn check_visibility_timeout(doc: &Yaml<'_>) -> Result<(), String> {
    let (id, queue) = processor_queue(doc)?;
    let (function_id, function) = function_building(doc, PROCESSOR)?;
    let timeout_of = |node: Option<&Yaml<'_>>| -> Result<Option<i64>, String> {
        match node.and_then(|n| get(n, "Timeout")) {
            None => Ok(None),
            Some(t) => integer(t)
                .map(Some)
                .ok_or(format!("{function_id}: Timeout {t:?} is not a number")),
        }
    };
    let globals = get(doc, "Globals").and_then(|g| get(g, "Function"));
    let timeout = timeout_of(get(function, "Properties"))?
        .or(timeout_of(globals)?)
        .unwrap_or(3);
    let visibility = match get(queue_properties(id, queue)?, "VisibilityTimeout") {
        None => 30,
        Some(v) => integer(v).ok_or(format!("{id}: VisibilityTimeout {v:?} is not a number"))?,
    };
    if visibility < 6 * timeout {
        return Err(format!(
            "{id}: VisibilityTimeout {visibility} s < 6 x {function_id} Timeout {timeout} s"
        ));
    }
    Ok(())
}

/// The function's role: the resource named by `Role: !GetAtt <role>.Arn`.
fn role_of<'a, 'i>(
    doc: &'a Yaml<'i>,
    id: &str,
    function: &Yaml<'_>,
) -> Result<&'a Yaml<'i>, String> {
    let role = get(function, "Properties")
        .and_then(|p| get(p, "Role"))
        .and_then(getatt_target)
        .filter(|(_, attribute)| *attribute == "Arn")
        .map(|(role, _)| role)
        .ok_or(format!("{id}: Role is not !GetAtt <role>.Arn"))?;
    resource(doc, role, "AWS::IAM::Role").ok_or(format!("{id}: {role} is not an AWS::IAM::Role"))
}

/// The actions the role's Allow statements grant on `!GetAtt <resource>.Arn`.
fn actions_on<'a>(role: &'a Yaml<'_>, target: &str) -> BTreeSet<&'a str> {
    allow_statements(role)
        .into_iter()
        .filter(|s| {
            get(s, "Resource")
                .map(items)
                .unwrap_or_default()
                .into_iter()
                .any(|r| getatt_target(r) == Some((target, "Arn")))
        })
        .flat_map(|s| get(s, "Action").map(items).unwrap_or_default())
        .filter_map(text)
        .collect()
}

/// (h) Ingest and the reconciler send to the queue the processor reads: `TOLLGATE_QUEUE_URL` is
/// `!Ref <queue>` on webhook-ingest and the reconciler and set nowhere else (Globals or another
/// function), their roles may `sqs:SendMessage` to it, and the processor's role has what the
/// event source mapping polls with.
fn check_queue_wiring(doc: &Yaml<'_>) -> Result<(), String> {
    const VAR: &str = "TOLLGATE_QUEUE_URL";
    let (queue, _) = processor_queue(doc)?;
    let variable = |node: Option<&Yaml<'_>>| {
        node.and_then(|n| get(n, "Environment"))
            .and_then(|e| get(e, "Variables"))
            .and_then(|v| get(v, VAR))
            .map(|v| ref_target(v).unwrap_or("(not a !Ref)").to_owned())
    };
    if let Some(v) = variable(get(doc, "Globals").and_then(|g| get(g, "Function"))) {
        return Err(format!(
            "Globals.Function sets {VAR} (= {v}); only {INGEST} and {RECONCILER} send"
        ));
    }
    for (id, binary, function) in functions(doc) {
        let value = variable(get(function, "Properties"));
        if binary == Some(INGEST) || binary == Some(RECONCILER) {
            if value.as_deref() != Some(queue) {
                return Err(format!(
                    "{id}: {VAR} is {value:?}, expected !Ref {queue} (the processor's queue)"
                ));
            }
        } else if let Some(v) = value {
            return Err(format!(
                "{id} sets {VAR} (= {v}); only {INGEST} and {RECONCILER} send"
            ));
        }
    }
    for sender in [INGEST, RECONCILER] {
        let (id, function) = function_building(doc, sender)?;
        if !actions_on(role_of(doc, id, function)?, queue).contains("sqs:SendMessage") {
            return Err(format!("{id}'s role may not sqs:SendMessage to {queue}"));
        }
    }
    let (processor_id, processor) = function_building(doc, PROCESSOR)?;
    let granted = actions_on(role_of(doc, processor_id, processor)?, queue);
    let needed = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ];
    let missing: Vec<_> = needed.iter().filter(|a| !granted.contains(**a)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{processor_id}'s role lacks {missing:?} on {queue}"
        ));
    }
    Ok(())
}

/// (i) The mail path (docs/architecture.md §11): the table has a keys-only stream; the mailer is
/// triggered by exactly that stream, filtered to `INSERT`s of `MAIL#` items, with partial batch
/// failures, bounded retries and an on-failure SQS destination in this template; its timeout
/// covers waiting out a lapsed claim; its role reads that stream, may send to that destination
/// and may `ses:SendEmail`; no role of a function without `NEEDS.mail` may send mail.
fn check_mailer(doc: &Yaml<'_>) -> Result<(), String> {
    let tables = resources(doc, "AWS::DynamoDB::Table");
    let [(table_id, table)] = tables.as_slice() else {
        return Err("expected one table".into());
    };
    let view = get(table, "Properties")
        .and_then(|p| get(p, "StreamSpecification"))
        .and_then(|s| text_at(s, "StreamViewType"));
    if view != Some("KEYS_ONLY") {
        return Err(format!(
            "{table_id}: StreamViewType is {view:?}, expected KEYS_ONLY (the mailer reads items by key)"
        ));
    }
    let (id, function) = function_building(doc, MAILER)?;
    let props = get(function, "Properties").ok_or(format!("{id} has no Properties"))?;
    let timeout = get(props, "Timeout").and_then(integer).unwrap_or(3);
    let needed_timeout = 2 * tollgate::domain::MAIL_LEASE_SECONDS;
    if timeout < needed_timeout {
        return Err(format!(
            "{id}: Timeout {timeout} s < {needed_timeout} s (wait out a 30 s claim, then send)"
        ));
    }
    let events: Vec<_> = get(props, "Events")
        .and_then(|e| untag(e).as_mapping())
        .map(|m| m.values().collect())
        .unwrap_or_default();
    let of_type = |t: &str| -> Vec<&Yaml<'_>> {
        events
            .iter()
            .copied()
            .filter(|e| text_at(e, "Type") == Some(t))
            .collect()
    };
    let (streams, schedules) = (of_type("DynamoDB"), of_type("Schedule"));
    let ([event], [_sweep]) = (streams.as_slice(), schedules.as_slice()) else {
        return Err(format!(
            "{id}: expected one DynamoDB stream trigger and one Schedule (the outbound sweep), found {} events: {} stream(s), {} schedule(s)",
            events.len(),
            streams.len(),
            schedules.len()
        ));
    };
    if events.len() != 2 {
        return Err(format!(
            "{id}: expected exactly two events, found {}",
            events.len()
        ));
    }
    let ep = get(event, "Properties").ok_or(format!("{id}: the event has no Properties"))?;
    if get(ep, "Stream").and_then(getatt_target) != Some((table_id, "StreamArn")) {
        return Err(format!(
            "{id}: the trigger is not !GetAtt {table_id}.StreamArn"
        ));
    }
    let types: Vec<&str> = get(ep, "FunctionResponseTypes")
        .map(items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(text)
        .collect();
    if !types.contains(&"ReportBatchItemFailures") {
        return Err(format!(
            "{id}: the stream trigger is without ReportBatchItemFailures"
        ));
    }
    let retries = get(ep, "MaximumRetryAttempts").and_then(integer);
    if !retries.is_some_and(|r| (0..=10_000).contains(&r)) {
        return Err(format!("{id}: MaximumRetryAttempts is {retries:?}: a poison record would block the shard for a day"));
    }
    let patterns: Vec<serde_json::Value> = get(ep, "FilterCriteria")
        .and_then(|f| get(f, "Filters"))
        .map(items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| text_at(f, "Pattern"))
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect();
    let wanted = [keys::MAIL_PREFIX, keys::HOOK_PREFIX].map(|prefix| {
        serde_json::json!({
            "eventName": ["INSERT"],
            "dynamodb": {"Keys": {"PK": {"S": [{"prefix": prefix}]}}}
        })
    });
    if patterns != wanted {
        return Err(format!(
            "{id}: the stream filter is {patterns:?}, expected {wanted:?}"
        ));
    }
    let dlq = get(ep, "DestinationConfig")
        .and_then(|d| get(d, "OnFailure"))
        .and_then(|o| get(o, "Destination"))
        .and_then(getatt_target)
        .filter(|(_, a)| *a == "Arn")
        .map(|(q, _)| q)
        .ok_or(format!(
            "{id}: no OnFailure destination !GetAtt <queue>.Arn"
        ))?;
    resource(doc, dlq, "AWS::SQS::Queue").ok_or(format!("{id}: {dlq} is not an SQS queue here"))?;
    let role = role_of(doc, id, function)?;
    let stream_actions: BTreeSet<&str> = allow_statements(role)
        .into_iter()
        .filter(|st| {
            get(st, "Resource")
                .map(items)
                .unwrap_or_default()
                .into_iter()
                .any(|r| getatt_target(r) == Some((table_id, "StreamArn")))
        })
        .flat_map(|st| get(st, "Action").map(items).unwrap_or_default())
        .filter_map(text)
        .collect();
    for action in [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    ] {
        if !stream_actions.contains(action) {
            return Err(format!("{id}'s role lacks {action} on the stream"));
        }
    }
    if !actions_on(role, dlq).contains("sqs:SendMessage") {
        return Err(format!("{id}'s role may not send to {dlq}"));
    }
    for (fid, binary, f) in functions(doc) {
        let needs = binary
            .and_then(needs_of)
            .ok_or(format!("{fid}: unknown binary"))?;
        let sends = allow_statements(role_of(doc, fid, f)?)
            .into_iter()
            .flat_map(|st| get(st, "Action").map(items).unwrap_or_default())
            .filter_map(text)
            .any(|a| a == "ses:SendEmail");
        if sends != needs.mail {
            return Err(format!(
                "{fid}: may ses:SendEmail = {sends}, but its NEEDS sends mail = {}",
                needs.mail
            ));
        }
    }
    Ok(())
}

fn function_crates() -> BTreeSet<String> {
    let dir = workspace_root().join("functions");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry"))
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---- tests --------------------------------------------------------------------------------------

#[test]
fn template_routes_are_exactly_the_functions_routes() {
    let text = template_text();
    check_routes(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn each_route_invokes_the_function_that_declares_it() {
    let text = template_text();
    check_route_owners(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn template_builds_one_function_per_crate_under_functions() {
    let text = template_text();
    check_binaries(&parse(&text), &function_crates()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn table_keys_and_ttl_are_the_store_keys() {
    let text = template_text();
    check_table(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn no_iam_statement_grants_a_wildcard_action_or_resource() {
    let text = template_text();
    check_iam(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn each_role_reads_exactly_the_secrets_its_function_needs() {
    check_secrets(&parse(&template_text())).expect("secrets and table access follow NEEDS");
}

#[test]
fn webhook_processor_is_an_sqs_trigger_with_partial_batch_failures() {
    let text = template_text();
    check_processor_trigger(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn webhook_queue_is_fifo_and_redrives_to_a_fifo_dlq_after_5_receives() {
    let text = template_text();
    check_queue_redrive(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn webhook_queue_visibility_timeout_is_at_least_6x_the_processor_timeout() {
    let text = template_text();
    check_visibility_timeout(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn webhook_ingest_sends_to_the_queue_the_processor_reads() {
    let text = template_text();
    check_queue_wiring(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

/// Each check rejects a copy of template.yaml broken in the way it guards against, so none of the
/// tests above can pass vacuously.
#[test]
fn mailer_reads_the_table_stream_with_partial_failures_and_only_it_sends_mail() {
    let text = template_text();
    check_mailer(&parse(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_check_fails_on_a_template_that_breaks_it() {
    type Check = fn(&Yaml<'_>) -> Result<(), String>;
    let binaries: Check = |doc| check_binaries(doc, &function_crates());
    let original = template_text();
    // (name, check, text in template.yaml, its replacement, part of the expected error)
    let cases: &[(&str, Check, &str, &str, &str)] = &[
        ("route path", check_routes, "Method: GET\n            Path: /auth/me", "Method: GET\n            Path: /auth/you", "(\"GET\", \"/auth/you\")"),
        ("route method", check_routes, "Method: POST\n            Path: /auth/logout\n", "Method: DELETE\n            Path: /auth/logout\n", "(\"DELETE\", \"/auth/logout\")"),
        ("route removed", check_routes, "        Logout:\n          Type: HttpApi", "        Logout:\n          Type: Api", "only in code: [(\"POST\", \"/auth/logout\")]"),
        ("event on another API", check_routes, "ApiId: !Ref HttpApi\n            Method: GET\n            Path: /auth/me", "ApiId: !Ref OtherApi\n            Method: GET\n            Path: /auth/me", "not on !Ref HttpApi"),
        ("route on the wrong function", check_route_owners, "Binary: jwks", "Binary: subscription-lookup", "JwksFunction (binary subscription-lookup)"),
        ("integration to the wrong function", check_route_owners, "function:${AWS::StackName}-login/invocations", "function:${AWS::StackName}-signup/invocations", "(\"POST\", \"/auth/login\", \"signup\")"),
        ("function name", check_route_owners, "FunctionName: !Sub ${AWS::StackName}-jwks", "FunctionName: !Sub ${AWS::StackName}-keys", "the integrations expect"),
        ("binary name", binaries, "Binary: token-refresh", "Binary: token_refresh", "\"token_refresh\""),
        ("build method", binaries, "BuildMethod: rust-cargolambda", "BuildMethod: makefile", "not rust-cargolambda"),
        ("range key", check_table, "KeyType: RANGE", "KeyType: HASH", "KeySchema"),
        ("extra attribute", check_table, "- AttributeName: SK\n          AttributeType: S", "- AttributeName: SK\n          AttributeType: S\n        - AttributeName: GSI1PK\n          AttributeType: S", "AttributeDefinitions"),
        ("ttl attribute", check_table, "AttributeName: expires_at", "AttributeName: ttl", "TTL"),
        ("wildcard action", check_iam, "Action: sqs:SendMessage", "Action: sqs:*", "\"sqs:*\""),
        ("wildcard resource", check_iam, "Resource: !Ref JwtKeysSecret", "Resource: \"*\"", "the resource \"*\""),
        ("wildcard in a !Sub resource", check_iam, "Resource: !GetAtt Table.Arn", "Resource: !Sub ${Table.Arn}/*", "\"${Table.Arn}/*\""),
        ("NotAction", check_iam, "Action: sts:AssumeRole", "NotAction: sts:AssumeRole", "uses NotAction"),
        ("managed policy", check_iam, "      Policies:\n        - PolicyName: jwks", "      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n      Policies:\n        - PolicyName: jwks", "attaches managed policies"),
        ("new crate's route missing", check_routes, "Path: /billing/subscription/change", "Path: /billing/subscription/switch", "(\"POST\", \"/billing/subscription/change\")"),
        ("processor function removed", binaries, "  WebhookProcessorFunction:\n    Type: AWS::Serverless::Function", "  WebhookProcessorFunction:\n    Type: AWS::Serverless::LayerVersion", "!= folders under functions/"),
        ("processor gets an HTTP route", check_route_owners, "      Events:\n        WebhookEvents:\n          Type: SQS", "      Events:\n        Poll:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref HttpApi\n            Method: POST\n            Path: /webhooks/poll\n        WebhookEvents:\n          Type: SQS", "WebhookProcessorFunction (binary webhook-processor) has events"),
        ("no ReportBatchItemFailures", check_processor_trigger, "FunctionResponseTypes: [ReportBatchItemFailures]", "FunctionResponseTypes: []", "without ReportBatchItemFailures"),
        ("FunctionResponseTypes removed", check_processor_trigger, "            FunctionResponseTypes: [ReportBatchItemFailures]\n", "", "without ReportBatchItemFailures"),
        ("processor not triggered by SQS", check_processor_trigger, "        WebhookEvents:\n          Type: SQS", "        WebhookEvents:\n          Type: Schedule", "not SQS"),
        ("batch over the FIFO limit", check_processor_trigger, "BatchSize: 10", "BatchSize: 100", "BatchSize"),
        ("trigger on a queue not in the template", check_processor_trigger, "Queue: !GetAtt WebhookQueue.Arn", "Queue: !GetAtt WebhookQueues.Arn", "is not an AWS::SQS::Queue"),
        ("queue not FIFO", check_queue_redrive, "  WebhookQueue:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      FifoQueue: true", "  WebhookQueue:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      FifoQueue: false", "WebhookQueue is not a FIFO queue"),
        ("content-based deduplication", check_queue_redrive, "ContentBasedDeduplication: false", "ContentBasedDeduplication: true", "deduplicates by content"),
        ("maxReceiveCount", check_queue_redrive, "maxReceiveCount: 5", "maxReceiveCount: 10", "maxReceiveCount is Some(10)"),
        ("no redrive policy", check_queue_redrive, "      RedrivePolicy:\n", "      RedrivePolicyX:\n", "has no RedrivePolicy"),
        ("DLQ not FIFO", check_queue_redrive, "  WebhookDeadLetterQueue:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      FifoQueue: true", "  WebhookDeadLetterQueue:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      FifoQueue: false", "DLQ WebhookDeadLetterQueue is not FIFO"),
        ("redrive to itself", check_queue_redrive, "deadLetterTargetArn: !GetAtt WebhookDeadLetterQueue.Arn", "deadLetterTargetArn: !GetAtt WebhookQueue.Arn", "redrives to itself"),
        ("DLQ retention", check_queue_redrive, "MessageRetentionPeriod: 1209600", "MessageRetentionPeriod: 345600", "MessageRetentionPeriod"),
        ("visibility timeout too short", check_visibility_timeout, "VisibilityTimeout: 180", "VisibilityTimeout: 179", "VisibilityTimeout 179 s < 6 x"),
        ("visibility timeout unset (SQS default 30 s)", check_visibility_timeout, "      VisibilityTimeout: 180", "      # VisibilityTimeout: 180", "VisibilityTimeout 30 s < 6 x"),
        ("processor timeout raised", check_visibility_timeout, "      Timeout: 30\n", "      Timeout: 31\n", "Timeout 31 s"),
        ("ingest sends elsewhere", check_queue_wiring, "TOLLGATE_QUEUE_URL: !Ref WebhookQueue", "TOLLGATE_QUEUE_URL: !Ref WebhookDeadLetterQueue", "TOLLGATE_QUEUE_URL is Some(\"WebhookDeadLetterQueue\")"),
        ("queue URL on another function", check_queue_wiring, "          TOLLGATE_PROVIDER_SECRETS_ID: !Ref ProviderSecrets # API keys for the refetch", "          TOLLGATE_PROVIDER_SECRETS_ID: !Ref ProviderSecrets\n          TOLLGATE_QUEUE_URL: !Ref WebhookQueue", "WebhookProcessorFunction sets TOLLGATE_QUEUE_URL"),
        ("jwks reads the private keys", check_secrets, "              - Sid: PublicKeys\n                Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: !Ref JwksSecret\n", "              - Sid: PublicKeys\n                Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: [!Ref JwksSecret, !Ref JwtKeysSecret]\n", "JwksFunction (jwks) may read secrets"),
        ("ingest reads the API keys", check_secrets, "                Resource: !Ref WebhookSecrets\n", "                Resource: [!Ref WebhookSecrets, !Ref ProviderSecrets]\n", "WebhookIngestFunction (webhook-ingest) may read secrets"),
        ("a secret in Globals", check_secrets, "        TOLLGATE_TABLE_NAME: !Ref Table\n", "        TOLLGATE_TABLE_NAME: !Ref Table\n        TOLLGATE_JWT_KEYS_SECRET_ID: !Ref JwtKeysSecret\n", "Globals.Function sets TOLLGATE_JWT_KEYS_SECRET_ID"),
        ("a signer loses its keys", check_secrets, "          TOLLGATE_JWT_KEYS_SECRET_ID: !Ref JwtKeysSecret # the secret's ARN\n", "", "names secrets {}"),
        ("jwks gets the table", check_secrets, "                Resource: !Ref JwksSecret\n\n  SubscriptionLookupRole", "                Resource: !Ref JwksSecret\n              - Sid: Table\n                Effect: Allow\n                Action: dynamodb:GetItem\n                Resource: !GetAtt Table.Arn\n\n  SubscriptionLookupRole", "(jwks) has table actions"),
        ("ingest may not send", check_queue_wiring, "Action: sqs:SendMessage", "Action: sqs:SendMessageBatch", "may not sqs:SendMessage"),
        ("processor may not poll", check_queue_wiring, "sqs:ChangeMessageVisibility]", "sqs:ChangeMessageVisibilityBatch]", "lacks [\"sqs:ChangeMessageVisibility\"]"),
        ("table stream with images", check_mailer, "StreamViewType: KEYS_ONLY", "StreamViewType: NEW_IMAGE", "StreamViewType is Some(\"NEW_IMAGE\")"),
        ("mailer filter on every item", check_mailer, "{\"prefix\": \"MAIL#\"}", "{\"prefix\": \"USER#\"}", "the stream filter is"),
        ("mailer gets modifications", check_mailer, "\"eventName\": [\"INSERT\"]", "\"eventName\": [\"INSERT\", \"MODIFY\"]", "the stream filter is"),
        ("mailer without partial failures", check_mailer, "            FunctionResponseTypes: [ReportBatchItemFailures]\n            FilterCriteria:", "            FilterCriteria:", "without ReportBatchItemFailures"),
        ("mailer retries forever", check_mailer, "MaximumRetryAttempts: 20", "MaximumRetryAttempts: -1", "MaximumRetryAttempts is Some(-1)"),
        ("mailer without a destination", check_mailer, "                Destination: !GetAtt MailDeadLetterQueue.Arn\n", "", "no OnFailure destination"),
        ("mailer timeout too short", check_mailer, "      Timeout: 60\n", "      Timeout: 30\n", "Timeout 30 s"),
        ("another function sends mail", check_mailer, "              - Sid: PublicKeys\n                Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: !Ref JwksSecret\n\n  SubscriptionLookupRole", "              - Sid: PublicKeys\n                Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: !Ref JwksSecret\n              - Sid: Mail\n                Effect: Allow\n                Action: ses:SendEmail\n                Resource: !Sub arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}\n\n  SubscriptionLookupRole", "JwksFunction: may ses:SendEmail = true"),
        ("mailer may not read the stream", check_mailer, "Action: [dynamodb:DescribeStream, dynamodb:GetRecords, dynamodb:GetShardIterator, dynamodb:ListStreams]", "Action: [dynamodb:DescribeStream, dynamodb:GetShardIterator, dynamodb:ListStreams]", "lacks dynamodb:GetRecords"),
    ];
    let mut survived = Vec::new();
    let mut wrong_reason = Vec::new();
    for (name, check, from, to, expected) in cases {
        assert!(
            original.contains(from),
            "case {name}: template.yaml no longer contains {from:?}"
        );
        let broken = original.replacen(from, to, 1);
        let result = check(&parse(&broken));
        match result {
            Ok(()) => survived.push(*name),
            // Failing for another reason would not show that the check catches this breakage.
            Err(e) if !e.contains(expected) => wrong_reason.push(format!("{name}: {e}")),
            Err(_) => {}
        }
    }
    assert!(
        survived.is_empty(),
        "checks passed a broken template: {survived:?}"
    );
    assert!(
        wrong_reason.is_empty(),
        "checks failed for another reason than the breakage:\n{}",
        wrong_reason.join("\n")
    );
    // The function list in this file is the functions' ROUTES; it must cover every crate too.
    let listed: BTreeSet<String> = crates().iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(
        listed,
        function_crates(),
        "tollgate_tests::functions() misses a crate under functions/"
    );
    assert_eq!(
        BTreeMap::from_iter(crates().iter().copied()).len(),
        crates().len()
    );
}

/// `cargo lambda watch`'s router (`[workspace.metadata.lambda.watch.router]` in Cargo.toml, used
/// by infra/local-lambda.sh) sends exactly the functions' `ROUTES`, each to the function that
/// declares it.
#[test]
fn cargo_lambda_watch_router_is_exactly_the_functions_routes() {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml parses");
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router]");
    let mut in_router = BTreeSet::new();
    for (path, entries) in router {
        for entry in entries.as_array().expect("a list of {method, function}") {
            in_router.insert((
                entry["method"]
                    .as_str()
                    .expect("method")
                    .to_ascii_uppercase(),
                path.clone(),
                entry["function"].as_str().expect("function").to_owned(),
            ));
        }
    }
    let in_code: BTreeSet<(String, String, String)> = crates()
        .iter()
        .flat_map(|(function, routes)| {
            routes.iter().map(move |(m, p)| {
                (
                    m.to_ascii_uppercase(),
                    (*p).to_owned(),
                    (*function).to_owned(),
                )
            })
        })
        .collect();
    assert_eq!(in_router, in_code);
}

/// The four secrets carry the tags `tollgate-admin bootstrap --stack` finds them by
/// (`tollgate::secrets::aws`): the stack name and their role.
#[test]
fn secrets_are_tagged_for_the_bootstrap_command() {
    use tollgate::secrets::aws::{
        JWKS_ROLE, JWT_KEYS_ROLE, OAUTH_SECRETS_ROLE, PROVIDER_SECRETS_ROLE, ROLE_TAG, STACK_TAG,
        WEBHOOK_SECRETS_ROLE,
    };
    let source = template_text();
    let doc = parse(&source);
    for (id, role) in [
        ("JwtKeysSecret", JWT_KEYS_ROLE),
        ("JwksSecret", JWKS_ROLE),
        ("ProviderSecrets", PROVIDER_SECRETS_ROLE),
        ("WebhookSecrets", WEBHOOK_SECRETS_ROLE),
        ("OAuthSecrets", OAUTH_SECRETS_ROLE),
    ] {
        let secret = resource(&doc, id, "AWS::SecretsManager::Secret").expect(id);
        let tags = get(secret, "Properties")
            .and_then(|p| get(p, "Tags"))
            .map(items)
            .unwrap_or_default();
        let tag = |key: &str| {
            tags.iter()
                .find(|t| text_at(t, "Key") == Some(key))
                .and_then(|t| get(t, "Value"))
        };
        assert_eq!(tag(ROLE_TAG).and_then(text), Some(role), "{id}");
        assert_eq!(
            tag(STACK_TAG).and_then(ref_target),
            Some("AWS::StackName"),
            "{id}"
        );
    }
}
