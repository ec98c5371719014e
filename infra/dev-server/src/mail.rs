//! The dev server's mail: an outbox directory in the data directory (`<data dir>/mail/`, one
//! JSON file per mail, named by its cause id, so sending the same mail twice writes the same
//! file: exactly once), listed newest first at `GET /dev/mail` (HTML a person can click through;
//! `?format=json` for scripts), each mail's HTML at `GET /dev/mail/{id}`; and optionally SMTP
//! through `lettre` (`TOLLGATE_SMTP_URL`, e.g. `smtp://127.0.0.1:1025` for a local mail catcher;
//! `smtps://` and `?tls=required` work too).
//!
//! The in-process worker ([`spawn_worker`]) drains the outbox when it starts — what a crash
//! left behind — and then every 200 ms.

use async_trait::async_trait;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tollgate::error::Chain;
use tollgate::mail::Dispatcher;
use tollgate::mailer::{Mailer, MailerError, OutgoingMail};

/// A mail as the outbox directory keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredMail {
    /// The cause id (the outbox item's key).
    pub id: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// When it was written, Unix milliseconds.
    pub sent_at_ms: i64,
    /// Every `http(s)://` link in the text body, for scripts.
    pub links: Vec<String>,
    /// The first 6-digit word of the text body (a sign-in code), for scripts.
    pub code: Option<String>,
}

/// Links and a 6-digit code found in a text body.
fn scan(text: &str) -> (Vec<String>, Option<String>) {
    let words = text.split_whitespace();
    let links = words
        .clone()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['.', ',', ')']).to_owned())
        .collect();
    let code = words
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()))
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    (links, code)
}

/// The dev server's [`Mailer`]: the outbox directory, plus SMTP when configured.
pub struct DevMailer {
    dir: PathBuf,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl std::fmt::Debug for DevMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevMailer")
            .field("dir", &self.dir)
            .field("smtp", &self.smtp.is_some())
            .finish()
    }
}

impl DevMailer {
    /// Writes mail to `dir` (created if missing); with `smtp_url`, also sends it from `from`.
    ///
    /// # Errors
    /// If the directory cannot be created, the URL is not an SMTP URL, or `from` is not a
    /// mailbox.
    pub fn new(
        dir: PathBuf,
        smtp_url: Option<&str>,
        from: &str,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        std::fs::create_dir_all(&dir)?;
        let smtp = match smtp_url {
            Some(url) => Some((
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build(),
                from.parse::<Mailbox>()?,
            )),
            None => None,
        };
        Ok(Self { dir, smtp })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every mail in the directory, newest first.
    pub fn list(&self) -> Vec<StoredMail> {
        let mut mails: Vec<StoredMail> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        mails.sort_by(|a, b| (b.sent_at_ms, &b.id).cmp(&(a.sent_at_ms, &a.id)));
        mails
    }

    /// One mail by its id.
    pub fn get(&self, id: &str) -> Option<StoredMail> {
        if !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        let bytes = std::fs::read(self.path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[async_trait]
impl Mailer for DevMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailerError> {
        let path = self.path(&mail.id);
        // Written already: this cause's mail went out (exactly once in the outbox directory).
        if path.exists() {
            return Ok(mail.id.clone());
        }
        if let Some((transport, from)) = &self.smtp {
            let to: Mailbox = mail
                .to
                .parse()
                .map_err(|e| MailerError::Rejected(Box::new(e)))?;
            let message = lettre::Message::builder()
                .from(from.clone())
                .to(to)
                .subject(mail.subject.clone())
                .multipart(MultiPart::alternative_plain_html(
                    mail.text.clone(),
                    mail.html.clone(),
                ))
                .map_err(|e| MailerError::Rejected(Box::new(e)))?;
            transport
                .send(message)
                .await
                .map_err(|e| MailerError::Unavailable(Box::new(e)))?;
        }
        let (links, code) = scan(&mail.text);
        let stored = StoredMail {
            id: mail.id.clone(),
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
            sent_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
            links,
            code,
        };
        let bytes =
            serde_json::to_vec_pretty(&stored).map_err(|e| MailerError::Rejected(Box::new(e)))?;
        // Write then rename: a reader never sees half a mail.
        let tmp = self.dir.join(format!(".{}.tmp", mail.id));
        let unavailable = |e: std::io::Error| MailerError::Unavailable(Box::new(e));
        tokio::fs::write(&tmp, bytes).await.map_err(unavailable)?;
        tokio::fs::rename(&tmp, &path).await.map_err(unavailable)?;
        Ok(mail.id.clone())
    }
}

/// `GET /dev/mail` query.
#[derive(Deserialize)]
struct ListQuery {
    format: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn list(
    Extension(mailer): Extension<Arc<DevMailer>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mails = mailer.list();
    if q.format.as_deref() == Some("json") {
        return ([(header::CACHE_CONTROL, "no-store")], Json(mails)).into_response();
    }
    let mut rows = String::new();
    for m in &mails {
        let links: String = m
            .links
            .iter()
            .map(|l| format!(r#"<a href="{0}">{0}</a><br>"#, escape(l)))
            .collect();
        rows.push_str(&format!(
            r#"<tr><td>{time}</td><td>{to}</td><td><a href="/dev/mail/{id}">{subject}</a></td><td>{code}</td><td>{links}</td></tr>"#,
            time = tollgate::domain::rfc3339(m.sent_at_ms / 1000),
            to = escape(&m.to),
            id = escape(&m.id),
            subject = escape(&m.subject),
            code = m.code.as_deref().map(escape).unwrap_or_default(),
        ));
    }
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tollgate dev mail</title></head>
<body style="font-family:system-ui,sans-serif;margin:24px">
<h1>Mail sent by this dev server</h1>
<p>{n} mail(s), newest first. <a href="/dev/mail?format=json">JSON</a></p>
<table cellpadding="6" border="1" style="border-collapse:collapse">
<tr><th>sent (UTC)</th><th>to</th><th>subject</th><th>code</th><th>links</th></tr>
{rows}
</table></body></html>"#,
        n = mails.len(),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

async fn show(Extension(mailer): Extension<Arc<DevMailer>>, Path(id): Path<String>) -> Response {
    match mailer.get(&id) {
        Some(m) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                // The mail's own HTML, shown as a mail client would: no script runs.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
            ],
            Html(m.html),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such mail").into_response(),
    }
}

/// `GET /dev/mail` and `GET /dev/mail/{id}` over `mailer`'s directory.
pub fn routes(mailer: Arc<DevMailer>) -> Router<tollgate::AppState> {
    Router::new()
        .route("/dev/mail", get(list))
        .route("/dev/mail/{id}", get(show))
        .layer(Extension(mailer))
}

/// Runs the dispatcher over the outbox: at once (what a crash left behind), then every 200 ms,
/// or every `delay` when that is longer (`TOLLGATE_DEV_MAIL_DELAY_MS`: a test knob that holds
/// mail back, so a test can kill the server between the commit and the send).
pub fn spawn_worker(
    dispatcher: Arc<Dispatcher>,
    delay: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let period = delay.max(std::time::Duration::from_millis(200));
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        loop {
            match dispatcher.drain(100).await {
                Ok(report) if report != Default::default() => {
                    tracing::info!(?report, "mail outbox drained")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %Chain(&e), "mail outbox unreadable"),
            }
            tokio::time::sleep(period).await;
        }
    })
}

/// Sweeps the outbound events every second (`TOLLGATE_OUTBOUND_ENDPOINTS` names the endpoints;
/// without it each event is marked delivered with nothing sent): what the mailer's stream
/// trigger and schedule do in Lambda.
pub fn spawn_outbound_worker(
    dispatcher: Arc<tollgate::webhooks::outbound::OutboundDispatcher>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match dispatcher.sweep(100).await {
                Ok(report) if report != Default::default() => {
                    tracing::info!(?report, "outbound events swept")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %Chain(&e), "outbound events unreadable"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_codes_are_found_in_text() {
        let (links, code) = scan(
            "Your code is:\n\n    042917\n\nOr open https://app.example.com/magic-link?token=abc.\n",
        );
        assert_eq!(links, ["https://app.example.com/magic-link?token=abc"]);
        assert_eq!(code.as_deref(), Some("042917"));
    }
}
