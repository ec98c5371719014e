//! `tollgate-admin plans push` against a stateful Stripe double (wiremock): products and prices
//! created by a POST are returned by later GETs, lookup keys move with `transfer_lookup_key`, and
//! archived prices stay archived. Each case pushes a temporary copy of infra/plans.toml.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use tollgate::domain::{Catalog, Interval, Provider};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "sk_test_plans_push_secret";
const PLANS: &str = include_str!("../../plans.toml");

/// What the double holds.
#[derive(Default)]
struct State {
    products: BTreeMap<String, Value>,
    /// In creation order.
    prices: Vec<Value>,
}

/// A small Stripe: the products and prices endpoints `plans push` calls.
#[derive(Clone, Default)]
struct FakeStripe(Arc<Mutex<State>>);

fn form(text: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": "invalid_request_error", "message": message}
    }))
}

impl Respond for FakeStripe {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {SECRET}")) {
            return error(401, "bad key");
        }
        let mut state = self.0.lock().expect("state");
        let path = request.url.path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let body = form(&String::from_utf8_lossy(&request.body));
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["v1", "products", id]) => match state.products.get(*id) {
                Some(p) => ResponseTemplate::new(200).set_body_json(p),
                None => error(404, &format!("No such product: '{id}'")),
            },
            ("POST", ["v1", "products"]) => {
                let (Some(id), Some(name)) = (body.get("id"), body.get("name")) else {
                    return error(400, "id and name are required here");
                };
                if state.products.contains_key(id) {
                    return error(400, "Product already exists.");
                }
                let product = json!({"id": id, "object": "product", "name": name, "active": true});
                state.products.insert(id.clone(), product.clone());
                ResponseTemplate::new(200).set_body_json(product)
            }
            ("POST", ["v1", "products", id]) => {
                let Some(p) = state.products.get_mut(*id) else {
                    return error(404, "No such product");
                };
                if let Some(name) = body.get("name") {
                    p["name"] = json!(name);
                }
                if let Some(active) = body.get("active") {
                    p["active"] = json!(active == "true");
                }
                ResponseTemplate::new(200).set_body_json(p.clone())
            }
            ("GET", ["v1", "prices"]) => {
                let query = form(request.url.query().unwrap_or(""));
                let keys: Vec<&String> = query
                    .iter()
                    .filter(|(k, _)| k.starts_with("lookup_keys"))
                    .map(|(_, v)| v)
                    .collect();
                let data: Vec<&Value> = state
                    .prices
                    .iter()
                    .filter(|p| keys.iter().any(|k| p["lookup_key"] == json!(k)))
                    .filter(|p| match query.get("active") {
                        Some(a) => p["active"] == json!(a == "true"),
                        None => true,
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(
                    json!({"object": "list", "url": "/v1/prices", "has_more": false, "data": data}),
                )
            }
            ("POST", ["v1", "prices"]) => {
                let product = body.get("product").cloned().unwrap_or_default();
                if !state.products.contains_key(&product) {
                    return error(400, "No such product");
                }
                let key = body.get("lookup_key").cloned();
                let transfer = body.get("transfer_lookup_key").map(String::as_str) == Some("true");
                if let Some(key) = &key {
                    let holder = state
                        .prices
                        .iter_mut()
                        .find(|p| p["lookup_key"] == json!(key));
                    match holder {
                        Some(h) if transfer => h["lookup_key"] = Value::Null,
                        Some(_) => return error(400, "A price already uses that lookup key."),
                        None => {}
                    }
                }
                let amount: Option<u64> = body.get("unit_amount").and_then(|a| a.parse().ok());
                let recurring = body
                    .get("recurring[interval]")
                    .map(|i| json!({"interval": i, "interval_count": 1}));
                let price = json!({
                    "id": format!("price_Fake{:04}", state.prices.len() + 1),
                    "object": "price",
                    "active": true,
                    "lookup_key": key,
                    "product": product,
                    "unit_amount": amount,
                    "currency": body.get("currency"),
                    "type": if recurring.is_some() { "recurring" } else { "one_time" },
                    "recurring": recurring,
                });
                state.prices.push(price.clone());
                ResponseTemplate::new(200).set_body_json(price)
            }
            ("POST", ["v1", "prices", id]) => {
                let Some(p) = state.prices.iter_mut().find(|p| p["id"] == json!(id)) else {
                    return error(404, "No such price");
                };
                if let Some(active) = body.get("active") {
                    p["active"] = json!(active == "true");
                }
                ResponseTemplate::new(200).set_body_json(p.clone())
            }
            _ => error(404, &format!("unhandled {} {path}", request.method)),
        }
    }
}

impl FakeStripe {
    /// The id of the price holding `key`, if any.
    fn price_of(&self, key: &str) -> Option<String> {
        let state = self.0.lock().expect("state");
        state
            .prices
            .iter()
            .find(|p| p["lookup_key"] == json!(key))
            .and_then(|p| p["id"].as_str().map(str::to_owned))
    }

    fn price(&self, id: &str) -> Option<Value> {
        let state = self.0.lock().expect("state");
        state.prices.iter().find(|p| p["id"] == json!(id)).cloned()
    }
}

async fn stripe() -> (MockServer, FakeStripe) {
    let server = MockServer::start().await;
    let fake = FakeStripe::default();
    Mock::given(any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

/// A fresh copy of infra/plans.toml in its own directory.
fn temp_plans() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-plans-push-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("plans.toml");
    std::fs::write(&file, PLANS).expect("copy plans.toml");
    file
}

/// Removes the directory of a [`temp_plans`] file.
fn cleanup(file: &Path) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn push(server: &MockServer, file: &Path, dry_run: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-admin"));
    cmd.args(["plans", "push", "--file"]).arg(file);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out: Output = cmd
        .env("STRIPE_SECRET_KEY", SECRET)
        .env("STRIPE_API_BASE", server.uri())
        .env_remove("TOLLGATE_PROVIDER_SECRETS_ID")
        .env_remove("TOLLGATE_PLANS_FILE")
        .output()
        .expect("run tollgate-admin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the secret key is never printed"
    );
    stdout
}

/// `(method, path, form body)` of the requests since the `from`-th.
async fn requests(
    server: &MockServer,
    from: usize,
) -> Vec<(String, String, BTreeMap<String, String>)> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .into_iter()
        .skip(from)
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_owned(),
                form(&String::from_utf8_lossy(&r.body)),
            )
        })
        .collect()
}

async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .len()
}

fn posts(reqs: &[(String, String, BTreeMap<String, String>)], path: &str) -> usize {
    reqs.iter()
        .filter(|(m, p, _)| m == "POST" && p == path)
        .count()
}

/// The Stripe price id the file holds for a plan's interval or for a pack.
fn file_price(file: &Path, plan: Option<(&str, Interval)>, pack: Option<&str>) -> String {
    let text = std::fs::read_to_string(file).expect("read plans");
    let catalog = Catalog::from_toml(&text).expect("the rewritten catalog is valid");
    let id = match (plan, pack) {
        (Some((plan, interval)), _) => {
            let plan = catalog.plan(plan).expect("plan");
            catalog.price_for(plan, Provider::Stripe, Some(interval))
        }
        (None, Some(pack)) => {
            let pack = catalog.pack(pack).expect("pack");
            catalog.pack_price(pack, Provider::Stripe)
        }
        (None, None) => None,
    };
    id.expect("a price id").as_str().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_stripe_gets_the_catalog_and_a_second_push_creates_nothing() {
    let (server, fake) = stripe().await;
    let file = temp_plans();

    let out = push(&server, &file, false);
    let reqs = requests(&server, 0).await;
    assert_eq!(posts(&reqs, "/v1/products"), 4, "{out}");
    assert_eq!(posts(&reqs, "/v1/prices"), 5, "{out}");
    assert!(
        !reqs
            .iter()
            .any(|(m, p, _)| m == "POST" && p.starts_with("/v1/prices/")),
        "nothing to archive"
    );
    assert!(
        !reqs
            .iter()
            .any(|(_, _, f)| f.contains_key("transfer_lookup_key")),
        "no key to transfer"
    );
    assert!(out.contains("no price: plan free"), "{out}");
    assert!(out.contains("no price: plan team (year)"), "{out}");

    // The created prices are what the catalog says, and their ids are in the file.
    let pro_month = fake.price_of("tollgate_pro_month").expect("pro month");
    let price = fake.price(&pro_month).expect("price");
    assert_eq!(price["unit_amount"], json!(1900));
    assert_eq!(price["currency"], json!("usd"));
    assert_eq!(price["recurring"]["interval"], json!("month"));
    assert_eq!(price["product"], json!("tollgate_plan_pro"));
    let pack = fake
        .price_of("tollgate_pack_credits_1000")
        .expect("pack price");
    let pack_price = fake.price(&pack).expect("price");
    assert_eq!(
        (
            pack_price["unit_amount"].clone(),
            pack_price["recurring"].clone()
        ),
        (json!(1500), Value::Null)
    );
    assert_eq!(
        file_price(&file, Some(("pro", Interval::Month)), None),
        pro_month
    );
    assert_eq!(file_price(&file, None, Some("credits_1000")), pack);
    let written = std::fs::read_to_string(&file).expect("read");
    // Only the ids changed: restoring the old ones gives back the original file byte for byte.
    let mut restored = written.clone();
    for (key, old) in [
        ("tollgate_pro_month", "price_1TestProMonthly01"),
        ("tollgate_pro_year", "price_1TestProYearly001"),
        ("tollgate_team_month", "price_1TestTeamMonthly1"),
        ("tollgate_pack_credits_1000", "price_1TestCredits1000"),
        ("tollgate_pack_credits_5000", "price_1TestCredits5000"),
    ] {
        let new = fake.price_of(key).expect(key);
        assert!(written.contains(&format!("\"{new}\"")), "{key} written");
        restored = restored.replace(&format!("\"{new}\""), &format!("\"{old}\""));
    }
    assert_eq!(restored, PLANS, "comments and layout are kept");

    // Second run: nothing is created, nothing written.
    let before = request_count(&server).await;
    let out = push(&server, &file, false);
    let reqs = requests(&server, before).await;
    assert!(!reqs.is_empty(), "the second run reads Stripe");
    assert!(
        reqs.iter().all(|(m, _, _)| m == "GET"),
        "no POST on the second run: {reqs:?}\n{out}"
    );
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), written);
    cleanup(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_amount_replaces_the_price_and_archives_the_old_one() {
    let (server, fake) = stripe().await;
    let file = temp_plans();
    push(&server, &file, false);
    let old = file_price(&file, Some(("pro", Interval::Month)), None);
    let pro_year = file_price(&file, Some(("pro", Interval::Year)), None);
    let text = std::fs::read_to_string(&file).expect("read");
    let changed = text.replacen(
        "month = { amount = 1900, currency = \"usd\" }",
        "month = { amount = 2900, currency = \"usd\" }",
        1,
    );
    assert_ne!(
        changed, text,
        "the fixture has pro's monthly display amount"
    );
    std::fs::write(&file, &changed).expect("write");

    // A dry run first: it lists the replacement and changes nothing.
    let before = request_count(&server).await;
    let out = push(&server, &file, true);
    let reqs = requests(&server, before).await;
    assert!(reqs.iter().all(|(m, _, _)| m == "GET"), "{reqs:?}");
    assert!(
        out.contains("would create price tollgate_pro_month"),
        "{out}"
    );
    assert!(out.contains(&format!("would archive price {old}")), "{out}");
    assert!(out.contains("would write back plan pro (month)"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), changed);

    let before = request_count(&server).await;
    let out = push(&server, &file, false);
    let reqs = requests(&server, before).await;
    let created: Vec<_> = reqs
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/v1/prices")
        .collect();
    assert_eq!(created.len(), 1, "exactly one new price: {reqs:?}\n{out}");
    let form = &created[0].2;
    assert_eq!(
        form.get("lookup_key").map(String::as_str),
        Some("tollgate_pro_month")
    );
    assert_eq!(form.get("unit_amount").map(String::as_str), Some("2900"));
    assert_eq!(
        form.get("transfer_lookup_key").map(String::as_str),
        Some("true")
    );
    let archived: Vec<_> = reqs
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.starts_with("/v1/prices/"))
        .collect();
    assert_eq!(archived.len(), 1, "exactly one archive: {reqs:?}");
    assert_eq!(archived[0].1, format!("/v1/prices/{old}"));
    assert_eq!(
        archived[0].2.get("active").map(String::as_str),
        Some("false")
    );
    assert_eq!(posts(&reqs, "/v1/products"), 0);

    let new = fake.price_of("tollgate_pro_month").expect("the key moved");
    assert_ne!(new, old);
    assert_eq!(fake.price(&old).expect("old")["active"], json!(false));
    assert_eq!(file_price(&file, Some(("pro", Interval::Month)), None), new);
    assert_eq!(
        file_price(&file, Some(("pro", Interval::Year)), None),
        pro_year
    );
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("month = { amount = 2900, currency = \"usd\" }"));

    // And again: nothing left to do.
    let before = request_count(&server).await;
    let out = push(&server, &file, false);
    assert!(out.contains("nothing to do"), "{out}");
    let reqs = requests(&server, before).await;
    assert!(reqs.iter().all(|(m, _, _)| m == "GET"), "{reqs:?}");
    cleanup(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing() {
    let (server, fake) = stripe().await;
    let file = temp_plans();
    let out = push(&server, &file, true);
    let reqs = requests(&server, 0).await;
    assert!(!reqs.is_empty(), "a dry run reads Stripe");
    assert_eq!(
        reqs.iter().filter(|(m, _, _)| m != "GET").count(),
        0,
        "no POST: {reqs:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), PLANS);
    assert!(fake.price_of("tollgate_pro_month").is_none());
    for line in [
        "would create product tollgate_plan_pro",
        "would create product tollgate_pack_credits_1000",
        "would create price tollgate_pro_month",
        "would create price tollgate_pack_credits_5000",
        "would write back plan pro (month): price_1TestProMonthly01",
        "nothing changed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    cleanup(&file);
}
