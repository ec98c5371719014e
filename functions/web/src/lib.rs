//! `web`: Tollgate's hosted pages and public documents, embedded in the binary. This function
//! reaches no AWS service and reads no secret; the pages call the API of the same origin.
//!
//! - `GET /openapi.json`: the API contract (OpenAPI 3.1) — `docs/openapi.json`, generated from
//!   the function crates' route descriptions (`cargo run -p dev-server --bin openapi`). A test
//!   keeps the committed file equal to what the code generates, and its paths and methods equal
//!   to every function's `ROUTES`.
//! - The pages (docs/architecture.md §16): `/` (landing), `/signup`, `/login` (password, a code
//!   by email, the configured identity providers), `/forgot-password`, the pages mail links open
//!   (`/verify-email`, `/reset-password`, `/magic-link`: each takes the token out of the address
//!   bar and posts it only when the person presses the button, so a mail scanner's fetch spends
//!   nothing), `/pricing` (from `GET /billing/plans`), `/billing/success` (runs the
//!   `checkout_session` sync) and `/billing/canceled` — the default checkout redirects —,
//!   `/account` and `/admin`. Each is a static shell (`pages/*.html` in one layout) that
//!   `tollgate.js` fills from the API. Headers: a strict Content-Security-Policy (this origin
//!   only, no inline script or style), no framing, no referrer, `nosniff`, `no-store`.
//! - `GET /assets/tollgate.js`, `GET /assets/tollgate.css`: the pages' script and style;
//!   `GET /assets/theme.css`: the accent colour (`TOLLGATE_ACCENT_COLOR`).
//!
//! The app name (`TOLLGATE_APP_NAME`) and accent colour come from the configuration, read once
//! per cold start.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tollgate::{AppState, Needs};
use utoipa::OpenApi as _;

/// The API document's path.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The landing page.
pub const HOME_PAGE: &str = "/";
/// The sign-up page.
pub const SIGNUP_PAGE: &str = "/signup";
/// The log-in page.
pub const LOGIN_PAGE: &str = "/login";
/// The page that asks for a password-reset link.
pub const FORGOT_PASSWORD_PAGE: &str = "/forgot-password";
/// The page of an email-verification link.
pub const VERIFY_EMAIL_PAGE: &str = "/verify-email";
/// The page of a password-reset link.
pub const RESET_PASSWORD_PAGE: &str = "/reset-password";
/// The page of a magic link.
pub const MAGIC_LINK_PAGE: &str = "/magic-link";
/// The pricing page.
pub const PRICING_PAGE: &str = "/pricing";
/// Where a completed checkout returns (the default `TOLLGATE_SUCCESS_URL`).
pub const BILLING_SUCCESS_PAGE: &str = "/billing/success";
/// Where a canceled checkout returns (the default `TOLLGATE_CANCEL_URL`).
pub const BILLING_CANCELED_PAGE: &str = "/billing/canceled";
/// The account dashboard (the default `TOLLGATE_PORTAL_RETURN_URL`).
pub const ACCOUNT_PAGE: &str = "/account";
/// The admin page.
pub const ADMIN_PAGE: &str = "/admin";
/// The pages' script.
pub const SCRIPT_PATH: &str = "/assets/tollgate.js";
/// The pages' style sheet.
pub const STYLE_PATH: &str = "/assets/tollgate.css";
/// The accent colour's style sheet.
pub const THEME_PATH: &str = "/assets/theme.css";
/// The pages' icon (the app name's first letter on the accent colour).
pub const ICON_PATH: &str = "/assets/icon.svg";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", OPENAPI_PATH),
    ("GET", HOME_PAGE),
    ("GET", SIGNUP_PAGE),
    ("GET", LOGIN_PAGE),
    ("GET", FORGOT_PASSWORD_PAGE),
    ("GET", VERIFY_EMAIL_PAGE),
    ("GET", RESET_PASSWORD_PAGE),
    ("GET", MAGIC_LINK_PAGE),
    ("GET", PRICING_PAGE),
    ("GET", BILLING_SUCCESS_PAGE),
    ("GET", BILLING_CANCELED_PAGE),
    ("GET", ACCOUNT_PAGE),
    ("GET", ADMIN_PAGE),
    ("GET", SCRIPT_PATH),
    ("GET", STYLE_PATH),
    ("GET", THEME_PATH),
    ("GET", ICON_PATH),
];

/// The Content-Security-Policy of every page: nothing but this origin's script, style and API,
/// no inline code, no framing, no plugins, forms post nowhere else (OWASP CSP cheat sheet).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What this function builds at start-up: nothing but the configuration.
pub const NEEDS: Needs = Needs::NOTHING;

/// The committed API document.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(OPENAPI_PATH, get(openapi_json))
        .route(HOME_PAGE, get(home_page))
        .route(SIGNUP_PAGE, get(signup_page))
        .route(LOGIN_PAGE, get(login_page))
        .route(FORGOT_PASSWORD_PAGE, get(forgot_password_page))
        .route(VERIFY_EMAIL_PAGE, get(verify_email_page))
        .route(RESET_PASSWORD_PAGE, get(reset_password_page))
        .route(MAGIC_LINK_PAGE, get(magic_link_page))
        .route(PRICING_PAGE, get(pricing_page))
        .route(BILLING_SUCCESS_PAGE, get(billing_success_page))
        .route(BILLING_CANCELED_PAGE, get(billing_canceled_page))
        .route(ACCOUNT_PAGE, get(account_page))
        .route(ADMIN_PAGE, get(admin_page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLE_PATH, get(style))
        .route(THEME_PATH, get(theme))
        .route(ICON_PATH, get(icon))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    openapi_json,
    home_page,
    signup_page,
    login_page,
    forgot_password_page,
    verify_email_page,
    reset_password_page,
    magic_link_page,
    pricing_page,
    billing_success_page,
    billing_canceled_page,
    account_page,
    admin_page,
    script,
    style,
    theme,
    icon
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

/// HTML-escapes text for an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One page: the `data-page` the script dispatches on, its title, its width and its content
/// (`pages/<name>.html`; `{{app_name}}` is replaced, escaped).
struct Page {
    id: &'static str,
    path: &'static str,
    title: &'static str,
    narrow: bool,
    content: std::borrow::Cow<'static, str>,
}

impl Page {
    fn new(
        id: &'static str,
        path: &'static str,
        title: &'static str,
        narrow: bool,
        content: &'static str,
    ) -> Self {
        Self {
            id,
            path,
            title,
            narrow,
            content: content.into(),
        }
    }

    fn render(&self, state: &AppState) -> Response {
        let app = escape(&state.config().mail.app_name);
        let nav = [
            (PRICING_PAGE, "Pricing", "", ""),
            (
                ACCOUNT_PAGE,
                "Account",
                r#" data-when="signed-in" class="hidden""#,
                "",
            ),
            (ADMIN_PAGE, "Admin", r#" id="nav-admin" class="hidden""#, ""),
            (
                LOGIN_PAGE,
                "Log in",
                r#" data-when="signed-out" class="hidden""#,
                "",
            ),
            (
                SIGNUP_PAGE,
                "Sign up",
                r#" data-when="signed-out" class="hidden button""#,
                "",
            ),
        ]
        .iter()
        .map(|(path, label, attrs, _)| {
            let current = if *path == self.path {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{path}"{attrs}{current}>{label}</a>"#)
        })
        .collect::<Vec<_>>()
        .join("\n");
        let html = format!(
            r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · {app}</title>
<link rel="stylesheet" href="{STYLE_PATH}">
<link rel="stylesheet" href="{THEME_PATH}">
<link rel="icon" href="{ICON_PATH}" type="image/svg+xml">
<script src="{SCRIPT_PATH}" defer></script>
</head>
<body data-page="{id}">
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/"><img src="{ICON_PATH}" alt="" width="24" height="24">{app}</a>
<nav aria-label="Main">
{nav}
</nav>
</header>
<main id="main" tabindex="-1"{narrow}>
{content}
<noscript><p class="notice">This page needs JavaScript.</p></noscript>
</main>
</body>
</html>
"##,
            title = self.title,
            id = self.id,
            narrow = if self.narrow {
                r#" class="narrow""#
            } else {
                ""
            },
            content = self.content.replace("{{app_name}}", &app),
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

/// A page a mail link opens: a button (and a new-password field) that posts the link's token to
/// `action`.
struct LinkPage {
    title: &'static str,
    intro: &'static str,
    action: &'static str,
    button: &'static str,
    done: &'static str,
    /// Where the script goes after a 2xx that signed the person in (`""`: stay).
    next: &'static str,
    password: bool,
}

impl LinkPage {
    fn page(&self, path: &'static str) -> Page {
        let password = if self.password {
            r#"<label for="password">New password (8 to 128 characters)</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="128" required>
"#
        } else {
            ""
        };
        let content = include_str!("../pages/link.html")
            .replace("{{title}}", self.title)
            .replace("{{intro}}", self.intro)
            .replace("{{action}}", self.action)
            .replace("{{done}}", self.done)
            .replace("{{next}}", self.next)
            .replace("{{button}}", self.button)
            .replace("{{password}}", password);
        Page {
            id: "link",
            path,
            title: self.title,
            narrow: true,
            content: content.into(),
        }
    }
}

/// The HTML answer of a page route.
macro_rules! page_route {
    ($(#[$doc:meta])* $name:ident, $path:ident, $page:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            get,
            path = $path,
            tag = "pages",
            responses((status = 200, description = "The page (HTML).", content_type = "text/html", body = String)),
        )]
        async fn $name(State(state): State<AppState>) -> Response {
            $page.render(&state)
        }
    };
}

page_route!(
    /// The landing page: the app name and the ways in.
    home_page, HOME_PAGE,
    Page::new("index", HOME_PAGE, "Welcome", false, include_str!("../pages/index.html"))
);
page_route!(
    /// Sign up with an email and a password, or an identity provider.
    signup_page, SIGNUP_PAGE,
    Page::new("signup", SIGNUP_PAGE, "Sign up", true, include_str!("../pages/signup.html"))
);
page_route!(
    /// Log in with a password, a code by email (its mail also carries a magic link), or an
    /// identity provider; also where an identity provider's sign-in returns (`?code=`).
    login_page, LOGIN_PAGE,
    Page::new("login", LOGIN_PAGE, "Log in", true, include_str!("../pages/login.html"))
);
page_route!(
    /// Asks for a password-reset link (`POST /auth/password/forgot`).
    forgot_password_page, FORGOT_PASSWORD_PAGE,
    Page::new("forgot-password", FORGOT_PASSWORD_PAGE, "Forgot password", true, include_str!("../pages/forgot-password.html"))
);
page_route!(
    /// Plans, intervals and credit packs from `GET /billing/plans`, the current plan marked;
    /// the buttons start a checkout (`POST /billing/checkout`) or change the plan.
    pricing_page, PRICING_PAGE,
    Page::new("pricing", PRICING_PAGE, "Pricing", false, include_str!("../pages/pricing.html"))
);
page_route!(
    /// Where a completed checkout returns (`?checkout_session=…`): applies the checkout session
    /// through `GET /billing/subscription?checkout_session=` and shows the new plan.
    billing_success_page, BILLING_SUCCESS_PAGE,
    Page::new("billing-success", BILLING_SUCCESS_PAGE, "Purchase complete", true, include_str!("../pages/billing-success.html"))
);
page_route!(
    /// Where a canceled checkout returns.
    billing_canceled_page, BILLING_CANCELED_PAGE,
    Page::new("billing-canceled", BILLING_CANCELED_PAGE, "Checkout canceled", true, include_str!("../pages/billing-canceled.html"))
);
page_route!(
    /// The account dashboard: profile, subscription, usage, credits, payments, API keys,
    /// sessions, linked identities, activity, password and account deletion.
    account_page, ACCOUNT_PAGE,
    Page::new("account", ACCOUNT_PAGE, "Your account", false, include_str!("../pages/account.html"))
);
page_route!(
    /// Support for admins (the `admin` role): find a user, view, disable or enable, grant credits.
    admin_page, ADMIN_PAGE,
    Page::new("admin", ADMIN_PAGE, "Admin", false, include_str!("../pages/admin.html"))
);

/// The page an email-verification link opens: a button that posts the link's token to
/// `POST /auth/verify-email`.
#[utoipa::path(
    get,
    path = VERIFY_EMAIL_PAGE,
    tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token; read by the page's script, never by the server.")),
    responses((status = 200, description = "The page (HTML).", content_type = "text/html", body = String)),
)]
async fn verify_email_page(State(state): State<AppState>) -> Response {
    LinkPage {
        title: "Verify your email",
        intro: "Press the button to confirm this email address.",
        action: "/auth/verify-email",
        button: "Verify email",
        done: "Your email is verified. You can close this page.",
        next: "",
        password: false,
    }
    .page(VERIFY_EMAIL_PAGE)
    .render(&state)
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
async fn reset_password_page(State(state): State<AppState>) -> Response {
    LinkPage {
        title: "Choose a new password",
        intro: "Setting a new password signs you out everywhere.",
        action: "/auth/password/reset",
        button: "Set password",
        done: "Your password is set. Log in with it now.",
        next: "",
        password: true,
    }
    .page(RESET_PASSWORD_PAGE)
    .render(&state)
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
async fn magic_link_page(State(state): State<AppState>) -> Response {
    LinkPage {
        title: "Sign in",
        intro: "Press the button to sign in on this device.",
        action: "/auth/magic-link/verify",
        button: "Sign in",
        done: "You are signed in.",
        next: ACCOUNT_PAGE,
        password: false,
    }
    .page(MAGIC_LINK_PAGE)
    .render(&state)
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

/// The pages' script.
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

/// The pages' style sheet.
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

/// The accent colour (`TOLLGATE_ACCENT_COLOR`) as CSS custom properties, with the text colour on
/// it (white or near-black, whichever contrasts more: WCAG 2.1 relative luminance).
#[utoipa::path(
    get,
    path = THEME_PATH,
    tag = "pages",
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String)),
)]
async fn theme(State(state): State<AppState>) -> Response {
    let accent = &state.config().accent_color;
    let css = format!(
        ":root {{ --accent: {accent}; --accent-fg: {}; }}\n",
        text_on(accent)
    );
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        css,
    )
        .into_response()
}

/// The pages' icon: the app name's first letter (escaped) on a rounded square of the accent
/// colour.
#[utoipa::path(
    get,
    path = ICON_PATH,
    tag = "pages",
    responses((status = 200, description = "SVG.", content_type = "image/svg+xml", body = String)),
)]
async fn icon(State(state): State<AppState>) -> Response {
    let config = state.config();
    let letter = config
        .mail
        .app_name
        .chars()
        .find(|c| c.is_alphanumeric())
        .map_or_else(|| "T".to_owned(), |c| c.to_uppercase().collect());
    let accent = &config.accent_color;
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="{accent}"/><text x="32" y="44" font-family="Helvetica, Arial, sans-serif" font-size="36" font-weight="700" text-anchor="middle" fill="{fg}">{letter}</text></svg>"#,
        fg = text_on(accent),
        letter = escape(&letter),
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response()
}

/// `#ffffff` or `#18181b`, whichever has the higher contrast ratio with `accent` (`#rrggbb`;
/// WCAG 2.1 §1.4.3 relative luminance).
pub fn text_on(accent: &str) -> &'static str {
    let channel = |i: usize| {
        let v =
            f64::from(u8::from_str_radix(accent.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
                / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // #18181b's luminance is about 0.0096.
    let on_white = 1.05 / (l + 0.05);
    let on_dark = (l + 0.05) / (0.0096 + 0.05);
    if on_white >= on_dark {
        "#ffffff"
    } else {
        "#18181b"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_on_the_accent_is_the_readable_one() {
        assert_eq!(text_on("#1d4ed8"), "#ffffff");
        assert_eq!(text_on("#facc15"), "#18181b");
        assert_eq!(text_on("#000000"), "#ffffff");
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">O'Neil & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }
}
