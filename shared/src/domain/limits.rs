//! Rate limits (docs/architecture.md §5c): fixed-window request counters per rule and key, and
//! the progressive throttle of failed logins. Pure rules; the counters live in the store
//! (`store::RateLimiter`), so every Lambda instance counts against the same numbers.

use std::collections::BTreeMap;

/// One rate rule: at most `limit` requests per `window` seconds for one key (an IP, an account,
/// a user). Windows are fixed and aligned to multiples of `window` since the Unix epoch, so every
/// instance computes the same window for the same instant; a burst across a window boundary can
/// reach twice the limit, which the outer API Gateway throttle bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateRule {
    /// Requests allowed per window (at least 1).
    pub limit: u32,
    /// The window, seconds (at least 1).
    pub window: u32,
}

impl RateRule {
    /// The start (Unix seconds) of the window holding `now`.
    pub fn window_start(&self, now: i64) -> i64 {
        let w = i64::from(self.window.max(1));
        now.div_euclid(w) * w
    }

    /// The end (Unix seconds, exclusive) of the window holding `now`.
    pub fn window_end(&self, now: i64) -> i64 {
        self.window_start(now) + i64::from(self.window.max(1))
    }
}

/// What a counter said about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is within the limit (it was counted); a refused request is not
    /// counted.
    pub allowed: bool,
    /// The rule's limit (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in this window after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When the window ends, Unix seconds (`RateLimit-Reset` is the delta from now).
    pub reset_at: i64,
}

impl RateDecision {
    /// The decision for a window whose count after this request is `count` (`None`: the
    /// request was refused, the count is at the limit).
    pub fn from_count(rule: &RateRule, now: i64, count: Option<u64>) -> Self {
        let reset_at = rule.window_end(now);
        match count {
            Some(n) => Self {
                allowed: n <= u64::from(rule.limit),
                limit: rule.limit,
                remaining: u32::try_from(u64::from(rule.limit).saturating_sub(n))
                    .unwrap_or(u32::MAX),
                reset_at,
            },
            None => Self {
                allowed: false,
                limit: rule.limit,
                remaining: 0,
                reset_at,
            },
        }
    }

    /// Seconds until the window ends (at least 1), for `Retry-After` and `RateLimit-Reset`.
    pub fn reset_after(&self, now: i64) -> i64 {
        (self.reset_at - now).max(1)
    }
}

/// A refusal: retry after `retry_after` seconds. `limit` is the rule's limit when a counted rule
/// refused (the login throttle has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds to wait (`Retry-After`, RFC 9110 §10.2.3), at least 1.
    pub retry_after: i64,
    /// The refusing rule's limit, for `RateLimit-Limit`.
    pub limit: Option<u32>,
}

/// Failed logins recorded for one account key (`RATE#login_failures#<key>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginFailures {
    /// Consecutive failures since the last successful login (or since the record expired).
    pub count: u32,
    /// The last failure, Unix seconds.
    pub last_failed_at: i64,
}

/// Failures before any delay: NIST SP 800-63B §5.2.2 allows throttling after a small number of
/// attempts and requires at most 100 consecutive failures; OWASP's Authentication Cheat Sheet
/// ("Login Throttling") suggests delays growing from the fifth.
pub const LOGIN_FAILURES_FREE: u32 = 5;

/// The first delay after [`LOGIN_FAILURES_FREE`] failures, seconds; each later failure doubles
/// it.
pub const LOGIN_FIRST_DELAY_SECONDS: i64 = 30;

/// The longest delay, seconds (15 min): never a permanent lock (NIST SP 800-63B §5.2.2: a
/// throttle must not let an attacker lock the subscriber out for good). At most about 96 failures
/// fit in a day, within NIST's limit of 100 consecutive failures.
pub const LOGIN_MAX_DELAY_SECONDS: i64 = 900;

/// How long failures are remembered after the last one, seconds (24 h): the record's TTL.
pub const LOGIN_FAILURES_TTL_SECONDS: i64 = 86_400;

impl LoginFailures {
    /// The delay owed after `count` consecutive failures, seconds: none up to
    /// [`LOGIN_FAILURES_FREE`], then 30 s doubling per failure up to 15 min.
    pub fn delay(count: u32) -> i64 {
        if count < LOGIN_FAILURES_FREE {
            return 0;
        }
        let doublings = (count - LOGIN_FAILURES_FREE).min(10);
        (LOGIN_FIRST_DELAY_SECONDS << doublings).min(LOGIN_MAX_DELAY_SECONDS)
    }

    /// Whether a login attempt at `now` must wait, and how long (seconds).
    pub fn wait(&self, now: i64) -> Option<i64> {
        let until = self.last_failed_at + Self::delay(self.count);
        (until > now).then_some(until - now)
    }
}

/// Names of the rate rules (the keys of [`RateLimits`] and of `TOLLGATE_RATE_LIMITS`).
pub mod rules {
    /// Password logins per client IP.
    pub const LOGIN_IP: &str = "login.ip";
    /// Password logins per account (normalized email).
    pub const LOGIN_ACCOUNT: &str = "login.account";
    /// Sign-ups per client IP.
    pub const SIGNUP_IP: &str = "signup.ip";
    /// Mails asked for (sign-in codes, magic links, verification resends) per client IP.
    pub const CODE_IP: &str = "code.ip";
    /// Mails asked for per email address.
    pub const CODE_ACCOUNT: &str = "code.account";
    /// Password-reset requests per client IP.
    pub const FORGOT_IP: &str = "forgot.ip";
    /// Password-reset requests per email address.
    pub const FORGOT_ACCOUNT: &str = "forgot.account";
    /// Submitted codes and link tokens (sign-in codes, magic links, verification and reset
    /// links, OAuth exchange codes) per client IP.
    pub const VERIFY_IP: &str = "verify.ip";
    /// Refreshes per client IP.
    pub const REFRESH_IP: &str = "refresh.ip";
    /// Refreshes per user.
    pub const REFRESH_ACCOUNT: &str = "refresh.account";
    /// Billing mutations (checkout, cancel, resume, change plan, portal, sync) per user.
    pub const BILLING_USER: &str = "billing.user";
    /// OAuth sign-ins started per client IP.
    pub const OAUTH_IP: &str = "oauth.ip";
    /// API keys created per user.
    pub const API_KEYS_USER: &str = "api_keys.user";
}

/// The default rules: `(name, limit, window seconds)`. Generous for people, tight for scripts;
/// the mail-sending rules are per address so nobody can flood one inbox.
pub const DEFAULT_RULES: &[(&str, u32, u32)] = &[
    (rules::LOGIN_IP, 30, 60),
    (rules::LOGIN_ACCOUNT, 10, 60),
    (rules::SIGNUP_IP, 20, 3_600),
    (rules::CODE_IP, 30, 3_600),
    (rules::CODE_ACCOUNT, 5, 900),
    (rules::FORGOT_IP, 20, 3_600),
    (rules::FORGOT_ACCOUNT, 5, 900),
    (rules::VERIFY_IP, 60, 60),
    (rules::REFRESH_IP, 120, 60),
    (rules::REFRESH_ACCOUNT, 60, 60),
    (rules::BILLING_USER, 20, 60),
    (rules::OAUTH_IP, 30, 60),
    (rules::API_KEYS_USER, 20, 3_600),
];

/// The rule table: every rule name with its rule, or `None` when switched off. The login
/// throttle is not a rule here: it is always on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits(BTreeMap<&'static str, Option<RateRule>>);

impl Default for RateLimits {
    fn default() -> Self {
        Self(
            DEFAULT_RULES
                .iter()
                .map(|&(name, limit, window)| (name, Some(RateRule { limit, window })))
                .collect(),
        )
    }
}

impl RateLimits {
    /// The rule called `name`, if it is on.
    pub fn get(&self, name: &str) -> Option<RateRule> {
        self.0.get(name).copied().flatten()
    }

    /// Every rule name with its rule (`None`: off).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Option<RateRule>)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    /// The defaults changed by `spec` (`TOLLGATE_RATE_LIMITS`): `off` turns every rule off;
    /// otherwise comma-separated `name=limit/window` (seconds) or `name=off`.
    ///
    /// # Errors
    /// Every entry that does not parse or names no rule, listed.
    pub fn parse(spec: &str) -> Result<Self, Vec<String>> {
        let mut limits = Self::default();
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("off") {
            for rule in limits.0.values_mut() {
                *rule = None;
            }
            return Ok(limits);
        }
        let mut problems = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, value)) = entry.split_once('=') else {
                problems.push(format!("{entry:?}: expected name=limit/window or name=off"));
                continue;
            };
            let Some(slot) = limits.0.get_mut(name.trim()) else {
                problems.push(format!("{:?}: no such rule", name.trim()));
                continue;
            };
            let value = value.trim();
            if value.eq_ignore_ascii_case("off") {
                *slot = None;
                continue;
            }
            let parsed = value.split_once('/').and_then(|(l, w)| {
                Some((l.trim().parse::<u32>().ok()?, w.trim().parse::<u32>().ok()?))
            });
            match parsed {
                Some((limit, window)) if limit > 0 && window > 0 => {
                    *slot = Some(RateRule { limit, window });
                }
                _ => problems.push(format!(
                    "{entry:?}: expected limit/window with both positive whole numbers"
                )),
            }
        }
        if problems.is_empty() {
            Ok(limits)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_so_every_instance_agrees() {
        let rule = RateRule {
            limit: 3,
            window: 60,
        };
        assert_eq!(rule.window_start(1_000_059), 1_000_020);
        assert_eq!(rule.window_end(1_000_059), 1_000_080);
        let d = RateDecision::from_count(&rule, 1_000_059, Some(3));
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_after(1_000_059)), (0, 21));
        assert!(!RateDecision::from_count(&rule, 1_000_059, None).allowed);
    }

    #[test]
    fn login_delays_start_after_five_failures_double_and_stop_at_fifteen_minutes() {
        let delays: Vec<i64> = (0..12).map(LoginFailures::delay).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900],
            "no delay before the fifth failure; never more than 15 min"
        );
        assert_eq!(LoginFailures::delay(u32::MAX), 900);
        let f = LoginFailures {
            count: 5,
            last_failed_at: 100,
        };
        assert_eq!(f.wait(110), Some(20));
        assert_eq!(f.wait(130), None);
    }

    #[test]
    fn rules_are_overridden_by_name_and_unknown_names_are_refused() {
        let l = RateLimits::parse("login.ip=5/10, refresh.ip=off").expect("parses");
        assert_eq!(
            l.get(rules::LOGIN_IP),
            Some(RateRule {
                limit: 5,
                window: 10
            })
        );
        assert_eq!(l.get(rules::REFRESH_IP), None);
        assert_eq!(
            l.get(rules::LOGIN_ACCOUNT),
            RateLimits::default().get(rules::LOGIN_ACCOUNT)
        );
        assert!(RateLimits::parse("off")
            .expect("off")
            .get(rules::LOGIN_IP)
            .is_none());
        let problems = RateLimits::parse("nope=1/1,login.ip=0/5,login.account=x")
            .expect_err("three bad entries");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
