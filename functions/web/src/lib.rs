//! `web`: Tollgate's public documents and pages, embedded in the binary. This function reaches
//! no AWS service and reads no secret.
//!
//! - `GET /openapi.json`: the API contract (OpenAPI 3.1) — `docs/openapi.json`, generated from
//!   the function crates' route descriptions (`cargo run -p dev-server --bin openapi`). A test
//!   keeps the committed file equal to what the code generates, and its paths and methods equal
//!   to every function's `ROUTES`.
//! - The pages mail links open (`TOLLGATE_APP_URL` points here by default):
//!   `GET /verify-email?token=…`, `GET /reset-password?token=…`, `GET /magic-link?token=…`. Each
//!   takes the token out of the address bar and posts it to the API only when the person presses
//!   the button, so a mail scanner that fetches the link spends nothing. Strict
//!   Content-Security-Policy (no inline script or style), no referrer, no framing.
//! - `GET /assets/tollgate.js`, `GET /assets/tollgate.css`: the pages' script and style.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tollgate::{AppState, Needs};
use utoipa::OpenApi as _;

/// The API document's path.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The page of an email-verification link.
pub const VERIFY_EMAIL_PAGE: &str = "/verify-email";
/// The page of a password-reset link.
pub const RESET_PASSWORD_PAGE: &str = "/reset-password";
/// The page of a magic link.
pub const MAGIC_LINK_PAGE: &str = "/magic-link";
/// The pages' script.
pub const SCRIPT_PATH: &str = "/assets/tollgate.js";
/// The pages' style sheet.
pub const STYLE_PATH: &str = "/assets/tollgate.css";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", OPENAPI_PATH),
    ("GET", VERIFY_EMAIL_PAGE),
    ("GET", RESET_PASSWORD_PAGE),
    ("GET", MAGIC_LINK_PAGE),
    ("GET", SCRIPT_PATH),
    ("GET", STYLE_PATH),
];

/// The Content-Security-Policy of every page: nothing but this origin's script, style and API,
/// no inline code, no framing, no plugins, forms post nowhere else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What this function builds at start-up: nothing.
pub const NEEDS: Needs = Needs::NOTHING;

/// The committed API document.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(OPENAPI_PATH, get(openapi_json))
        .route(VERIFY_EMAIL_PAGE, get(verify_email_page))
        .route(RESET_PASSWORD_PAGE, get(reset_password_page))
        .route(MAGIC_LINK_PAGE, get(magic_link_page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLE_PATH, get(style))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    openapi_json,
    verify_email_page,
    reset_password_page,
    magic_link_page,
    script,
    style
))]
struct Doc;

/// The API contract: this document.
#[utoipa::path(
    get,
    path = OPENAPI_PATH,
    tag = "documents",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every route.", content_type = "application/json", body = Object,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
    ),
)]
async fn openapi_json() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
        .into_response()
}

/// What a link page shows and posts.
struct Page {
    title: &'static str,
    intro: &'static str,
    /// The API route the button posts `{token}` (and `password`) to.
    action: &'static str,
    button: &'static str,
    /// What the page says after the API answered 2xx.
    done: &'static str,
    /// Whether the page asks for a new password.
    password: bool,
}

impl Page {
    fn render(&self) -> Response {
        let password = if self.password {
            r#"<label for="password">New password (8 to 128 characters)</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="128" required>
"#
        } else {
            ""
        };
        let html = format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="{STYLE_PATH}">
<script src="{SCRIPT_PATH}" defer></script>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{intro}</p>
<form data-action="{action}" data-done="{done}">
{password}<button type="submit">{button}</button>
</form>
<p class="status" role="status" aria-live="polite"></p>
</main>
</body>
</html>
"#,
            title = self.title,
            intro = self.intro,
            action = self.action,
            done = self.done,
            button = self.button,
        );
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            html,
        )
            .into_response()
    }
}

/// The page an email-verification link opens: a button that posts the link's token to
/// `POST /auth/verify-email`.
#[utoipa::path(
    get,
    path = VERIFY_EMAIL_PAGE,
    tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token; read by the page's script, never by the server.")),
    responses((status = 200, description = "The page (HTML).", content_type = "text/html", body = String)),
)]
async fn verify_email_page() -> Response {
    Page {
        title: "Verify your email",
        intro: "Press the button to confirm this email address.",
        action: "/auth/verify-email",
        button: "Verify email",
        done: "Your email is verified. You can close this page.",
        password: false,
    }
    .render()
}

/// The page a password-reset link opens: a new-password field and a button that post to
/// `POST /auth/password/reset`.
#[utoipa::path(
    get,
    path = RESET_PASSWORD_PAGE,
    tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token; read by the page's script, never by the server.")),
    responses((status = 200, description = "The page (HTML).", content_type = "text/html", body = String)),
)]
async fn reset_password_page() -> Response {
    Page {
        title: "Choose a new password",
        intro: "Setting a new password signs you out everywhere.",
        action: "/auth/password/reset",
        button: "Set password",
        done: "Your password is set. Log in with it now.",
        password: true,
    }
    .render()
}

/// The page a magic link opens: a button that posts the link's token to
/// `POST /auth/magic-link/verify` (the link is spent only then, not by a mail scanner's fetch).
#[utoipa::path(
    get,
    path = MAGIC_LINK_PAGE,
    tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token; read by the page's script, never by the server.")),
    responses((status = 200, description = "The page (HTML).", content_type = "text/html", body = String)),
)]
async fn magic_link_page() -> Response {
    Page {
        title: "Sign in",
        intro: "Press the button to sign in on this device.",
        action: "/auth/magic-link/verify",
        button: "Sign in",
        done: "You are signed in.",
        password: false,
    }
    .render()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The link pages' script.
#[utoipa::path(
    get,
    path = SCRIPT_PATH,
    tag = "pages",
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)),
)]
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/tollgate.js"),
    )
}

/// The link pages' style sheet.
#[utoipa::path(
    get,
    path = STYLE_PATH,
    tag = "pages",
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String)),
)]
async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/tollgate.css"),
    )
}
