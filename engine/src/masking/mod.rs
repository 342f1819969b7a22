//! Turning sensitive values into safe ones before they leave the process.
//!
//! The engine calls its [`Masker`] once per string of every finished span,
//! off the request path, in the export pipeline, and at the other places
//! where data leaves without passing there (error bodies, correlators).
//!
//! The default masker is [`PiiMasker`]: emails, phone numbers, card numbers,
//! SSNs and tax ids in free text, secret keys (as attribute keys, and as
//! `key=value` / `"key": "value"` pairs inside text), URL credentials and the
//! configuration's custom patterns, in one pass over the text.
//!
//! ```
//! use faultline_engine::config::TracingConfig;
//! use faultline_engine::masking::{Masker, PiiMasker};
//!
//! let masker = PiiMasker::from_config(&TracingConfig::default());
//! assert_eq!(
//!     masker.mask("refund for jane.doe@example.com, card 4111 1111 1111 1111"),
//!     "refund for j***@example.com, card ****-****-****-1111"
//! );
//! assert_eq!(masker.mask("login password=hunter2 ok"), "login password=[REDACTED] ok");
//! assert_eq!(masker.mask_value("user.password", "hunter2"), "[REDACTED]");
//! // Nothing to mask: the text comes back borrowed, nothing allocated.
//! assert!(matches!(masker.mask("GET /users/42 200 in 3.2 ms"), std::borrow::Cow::Borrowed(_)));
//! ```

mod hash;
mod keys;
mod numbers;
mod pii;
mod query;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt::Debug;

use regex::{Regex, RegexSet};

use crate::config::TracingConfig;

pub use pii::PiiMasker;
pub use query::mask_query;

/// What a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Key names whose values are always redacted, whatever they look like.
/// Matched case-insensitively against the whole key and against each
/// `.`-separated segment (`http.request.header.authorization`, `user.password`).
///
/// [`PiiMasker`] also treats as secret a segment that ends with `password`,
/// `passwd`, `passphrase`, `secret`, `token`, `apikey`, `api_key` or
/// `api-key` (`db_password`, `accessToken`, `x-auth-token`), and one whose
/// last `_`/`-` part is `session`, `cookie`, `ssn`, `pwd`, `cvv` or `cvc`.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "secret_key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "api_key",
    "api-key",
    "apikey",
    "x-api-key",
    "x-auth-token",
    "access_key",
    "private_key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "session",
    "session_id",
    "sessionid",
    "jsessionid",
    "phpsessid",
    "ssn",
    "credit_card",
    "card_number",
    "cvv",
    "cvc",
];

/// Header names whose values are secret as a whole: besides being secret
/// keys, a `Name: value` line naming one of them is redacted to the end of
/// the line wherever it appears in text.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// Decides what is sensitive and how it is made safe.
///
/// An implementation must guarantee:
/// * `mask` returns `Cow::Borrowed` when the text holds nothing to mask (the
///   common case must not allocate), and never panics on any input;
/// * its output holds none of the sensitive items it was given, and is stable
///   (masking a masked text changes nothing more);
/// * `is_secret_key` is a pure function of the key.
pub trait Masker: Send + Sync + Debug {
    /// Masks free text (an attribute value, a message, a span name).
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str>;

    /// Whether the value stored under `key` (an attribute key, a header name,
    /// a query parameter) is secret as a whole.
    fn is_secret_key(&self, key: &str) -> bool;

    /// Masks the value stored under `key`: [`REDACTED`] when the key is
    /// secret, else [`mask`](Masker::mask) of the value.
    fn mask_value<'a>(&self, key: &str, text: &'a str) -> Cow<'a, str> {
        if self.is_secret_key(key) {
            Cow::Borrowed(REDACTED)
        } else {
            self.mask(text)
        }
    }

    /// Whether [`mask`](Masker::mask) depends on the text alone (the same
    /// text, the same result, always). The export pipeline then remembers
    /// texts that came out unchanged (a user agent, a host name, a span
    /// name repeat on every request) instead of scanning them again. `false`
    /// unless overridden.
    fn is_deterministic(&self) -> bool {
        false
    }
}

/// Shared maskers work too (the caller keeps a handle).
impl<T: Masker + ?Sized> Masker for std::sync::Arc<T> {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        (**self).mask(text)
    }
    fn is_secret_key(&self, key: &str) -> bool {
        (**self).is_secret_key(key)
    }
    fn mask_value<'a>(&self, key: &str, text: &'a str) -> Cow<'a, str> {
        (**self).mask_value(key, text)
    }
    fn is_deterministic(&self) -> bool {
        (**self).is_deterministic()
    }
}

/// A masker that changes nothing (masking turned off).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMasker;

impl Masker for NoMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(text)
    }
    fn is_secret_key(&self, _key: &str) -> bool {
        false
    }
    fn is_deterministic(&self) -> bool {
        true
    }
}

/// Redacts secret keys and headers (exact names only), and applies the
/// configured custom patterns; nothing else. The engine's default is
/// [`PiiMasker`], which adds the detectors of personal data in free text
/// (emails, phone numbers, card numbers, SSNs), secret `key=value` pairs
/// inside text and keyed hashing.
#[derive(Debug, Clone)]
pub struct BasicMasker {
    secret_keys: Vec<String>,
    patterns: CustomPatterns,
}

impl BasicMasker {
    /// The built-in secret keys plus the configuration's secret keys,
    /// redacted headers and custom patterns.
    pub fn from_config(config: &TracingConfig) -> Self {
        let mut secret_keys: Vec<String> = SECRET_KEYS.iter().map(|k| (*k).to_owned()).collect();
        secret_keys.extend(config.secret_keys().iter().cloned());
        secret_keys.extend(
            config
                .redact_headers()
                .iter()
                .map(|h| h.as_str().to_owned()),
        );
        secret_keys.sort();
        secret_keys.dedup();
        BasicMasker {
            secret_keys,
            patterns: CustomPatterns::from_config(config),
        }
    }
}

impl Masker for BasicMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.patterns.apply(text)
    }

    fn is_secret_key(&self, key: &str) -> bool {
        is_secret_key_in(&self.secret_keys, key)
    }
    fn is_deterministic(&self) -> bool {
        true
    }
}

/// The configuration's custom patterns, compiled once, with a [`RegexSet`]
/// that tells in one pass which of them (if any) match a text.
#[derive(Debug, Clone, Default)]
pub(crate) struct CustomPatterns {
    patterns: Vec<(Regex, String)>,
    prefilter: Option<RegexSet>,
}

impl CustomPatterns {
    pub(crate) fn from_config(config: &TracingConfig) -> Self {
        let patterns: Vec<(Regex, String)> = config
            .pii_patterns()
            .iter()
            .map(|p| (p.regex().clone(), p.replacement().to_owned()))
            .collect();
        let prefilter = if patterns.is_empty() {
            None
        } else {
            RegexSet::new(patterns.iter().map(|(r, _)| r.as_str())).ok()
        };
        CustomPatterns {
            patterns,
            prefilter,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Every match of every pattern replaced; borrowed when none matches.
    pub(crate) fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        match &self.prefilter {
            Some(prefilter) => {
                let hits = prefilter.matches(text);
                for index in hits.iter() {
                    let (regex, replacement) = &self.patterns[index];
                    if let Cow::Owned(changed) = regex.replace_all(&out, replacement.as_str()) {
                        out = Cow::Owned(changed);
                    }
                }
            }
            // The set could not be built (its size limit): try each pattern.
            None => {
                for (regex, replacement) in &self.patterns {
                    if let Cow::Owned(changed) = regex.replace_all(&out, replacement.as_str()) {
                        out = Cow::Owned(changed);
                    }
                }
            }
        }
        out
    }
}

/// Whether `key`, or one of its `.`-separated segments, equals one of
/// `secret_keys` (lowercase), ignoring ASCII case.
pub fn is_secret_key_in(secret_keys: &[String], key: &str) -> bool {
    let matches = |part: &str| secret_keys.iter().any(|s| s.eq_ignore_ascii_case(part));
    matches(key) || (key.contains('.') && key.split('.').any(matches))
}

/// The masker an engine built from `config` uses when none is registered:
/// the [`PiiMasker`] of the configuration, or [`NoMasker`] with masking
/// off. Plugins that send data out of the process on their own (Sentry)
/// take the same one, so that everything leaving is masked alike.
pub fn from_config(config: &TracingConfig) -> std::sync::Arc<dyn Masker> {
    if config.pii_masking() {
        std::sync::Arc::new(PiiMasker::from_config(config))
    } else {
        std::sync::Arc::new(NoMasker)
    }
}
