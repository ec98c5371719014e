//! `tollgate-admin plans push [--dry-run] [--file infra/plans.toml]`: makes Stripe's products
//! and prices match the catalog and writes the price ids back into the file. The decisions are
//! `tollgate::billing::plans_push`'s; the Stripe calls `tollgate::payments::stripe::catalog_api`'s;
//! this module reads the key, prints, and edits the TOML (with `toml_edit`, so comments and
//! layout stay).

use secrecy::SecretString;
use std::path::{Path, PathBuf};
use tollgate::billing::plans_push::{self, Slot};
use tollgate::domain::{Catalog, PriceId};
use tollgate::payments::stripe::catalog_api::CatalogApi;
use tollgate::secrets::providers::ProviderKeys;
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// `plans push` arguments.
#[derive(clap::Args)]
pub struct PushArgs {
    /// List what would be done (create/update product, create/archive price, write back) and
    /// change nothing, neither at Stripe nor in the file.
    #[arg(long)]
    dry_run: bool,
    /// The catalog file: read, and rewritten with the resulting price ids.
    #[arg(long, env = "TOLLGATE_PLANS_FILE", default_value = "infra/plans.toml")]
    file: PathBuf,
}

type Failure = Box<dyn std::error::Error>;

/// The Stripe key and API base: `STRIPE_SECRET_KEY` / `STRIPE_API_BASE` from the environment,
/// else the deployed provider secret (`TOLLGATE_PROVIDER_SECRETS_ID`) in Secrets Manager.
async fn stripe_keys() -> Result<(SecretString, Option<String>), Failure> {
    let mut keys = ProviderKeys::from_env();
    if keys.stripe_secret_key.is_none() {
        if let Ok(id) = std::env::var("TOLLGATE_PROVIDER_SECRETS_ID") {
            use tollgate::secrets::SecretSource;
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let source = tollgate::secrets::aws::AwsSecretSource::new(
                aws_sdk_secretsmanager::Client::new(&aws),
            );
            let json = source.get_secret(&id).await?;
            keys =
                ProviderKeys::from_json(&json).map_err(|e| format!("provider secret {id}: {e}"))?;
        }
    }
    let key = keys.stripe_secret_key.ok_or(
        "no Stripe key: set STRIPE_SECRET_KEY, or TOLLGATE_PROVIDER_SECRETS_ID to the deployed provider secret",
    )?;
    Ok((key, keys.stripe_api_base))
}

/// Runs `plans push`.
pub async fn push(args: PushArgs) -> Result<(), Failure> {
    let PushArgs { dry_run, file } = args;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let catalog = Catalog::from_toml(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let desired = plans_push::desired(&catalog)?;
    let (key, base) = stripe_keys().await?;
    let api = CatalogApi::new(tollgate::payments::http_client()?, &key, base.as_deref())?;
    let state = plans_push::fetch_state(&api, &desired).await?;
    let actions = plans_push::decide(&desired, &state);

    println!(
        "plans push {}{}",
        file.display(),
        if dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    );
    for skipped in &desired.skipped {
        println!("  no price: {} — {}", skipped.what, skipped.reason);
    }
    if actions.is_empty() {
        println!(
            "nothing to do: Stripe and {} match the catalog",
            file.display()
        );
        return Ok(());
    }
    if dry_run {
        for action in &actions {
            println!("  would {action}");
        }
        println!("{} action(s) planned; nothing changed", actions.len());
        return Ok(());
    }
    let writes = plans_push::apply(&api, &actions, |done| println!("  done: {done}")).await?;
    if !writes.is_empty() {
        let updated = write_back(&text, &writes)?;
        // Never leave a file the functions would refuse at cold start.
        Catalog::from_toml(&updated)
            .map_err(|e| format!("the rewritten catalog is invalid, not written: {e}"))?;
        replace_file(&file, &updated)?;
        for (slot, from, to) in &writes {
            let from = from.as_ref().map_or("(none)", PriceId::as_str);
            println!("  wrote back {slot}: {from} -> {to}");
        }
    }
    let stripe_calls = actions.iter().filter(|a| a.calls_stripe()).count();
    println!(
        "{stripe_calls} change(s) at Stripe; {} price id(s) written back into {}",
        writes.len(),
        file.display()
    );
    Ok(())
}

/// Writes `text` to a sibling temporary file, then renames it over `file`.
fn replace_file(file: &Path, text: &str) -> Result<(), Failure> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .map_err(|e| format!("cannot replace {}: {e}", file.display()).into())
}

/// `text` with each slot's price id set: `[plans.stripe.prices] <interval>` of the plan, or
/// `stripe.price` of the credit pack; tables are added when missing, and everything else
/// (comments, order, formatting) is kept.
///
/// # Errors
/// The file is not TOML, or a plan or pack is missing, or `stripe`/`prices` is not a table.
fn write_back(text: &str, writes: &[(Slot, Option<PriceId>, PriceId)]) -> Result<String, Failure> {
    let mut doc: DocumentMut = text.parse()?;
    for (slot, _, id) in writes {
        match slot {
            Slot::Plan { plan, interval } => {
                let entry = element(&mut doc, "plans", plan)?;
                let stripe = child(entry, "stripe", || {
                    let mut t = Table::new();
                    t.set_implicit(true);
                    t
                })?;
                let prices = child(stripe, "prices", Table::new)?;
                set_string(prices, interval.as_str(), id.as_str());
            }
            Slot::Pack { pack } => {
                let entry = element(&mut doc, "credit_packs", pack)?;
                let stripe = child(entry, "stripe", || {
                    let mut t = Table::new();
                    t.set_dotted(true);
                    t
                })?;
                set_string(stripe, "price", id.as_str());
            }
        }
    }
    Ok(doc.to_string())
}

/// The element of the array of tables `array` whose `id` is `id`.
fn element<'a>(doc: &'a mut DocumentMut, array: &str, id: &str) -> Result<&'a mut Table, Failure> {
    doc.get_mut(array)
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
        })
        .ok_or_else(|| format!("no [[{array}]] with id {id:?} in the file").into())
}

/// The sub-table `key` of `parent`, created with `new` when absent.
fn child<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    new: impl FnOnce() -> Table,
) -> Result<&'a mut dyn TableLike, Failure> {
    parent
        .entry(key)
        .or_insert_with(|| Item::Table(new()))
        .as_table_like_mut()
        .ok_or_else(|| format!("{key} is not a table").into())
}

/// Sets `key` to the string `value`, keeping the old value's surrounding whitespace and comment.
fn set_string(table: &mut dyn TableLike, key: &str, value: &str) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = Value::from(value);
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, toml_edit::value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_back_keeps_the_layout_and_adds_missing_tables() {
        let text = "# head\n[[plans]]\nid = \"free\"\nname = \"Free\"\ntier = 0\n\n[[plans]]\nid = \"pro\" # the pro plan\nname = \"Pro\"\ntier = 1\n[plans.stripe.prices]\nmonth = \"price_old\" # keep me\n[plans.whop]\nplan_id = \"plan_x\"\n\n[[credit_packs]]\nid = \"p\"\nname = \"P\"\ncredits = 1\nprice = { amount = 1, currency = \"usd\" }\nwhop.plan_id = \"plan_p\"\n";
        let out = write_back(
            text,
            &[
                (
                    Slot::Plan {
                        plan: "pro".into(),
                        interval: tollgate::domain::Interval::Month,
                    },
                    None,
                    PriceId::new("price_new"),
                ),
                (
                    Slot::Plan {
                        plan: "pro".into(),
                        interval: tollgate::domain::Interval::Year,
                    },
                    None,
                    PriceId::new("price_year"),
                ),
                (
                    Slot::Pack { pack: "p".into() },
                    None,
                    PriceId::new("price_p"),
                ),
            ],
        )
        .expect("write back");
        assert!(out.contains("month = \"price_new\" # keep me\n"), "{out}");
        assert!(out.contains("year = \"price_year\""), "{out}");
        assert!(out.contains("stripe.price = \"price_p\""), "{out}");
        assert!(out.starts_with("# head\n") && out.contains("id = \"pro\" # the pro plan\n"));
        let c = Catalog::from_toml(&out).expect("still valid");
        let pack = c.pack("p").and_then(|p| p.stripe.as_ref());
        assert_eq!(pack.map(|s| s.price.as_str()), Some("price_p"));
    }
}
