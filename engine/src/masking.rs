//! Turning sensitive values into safe ones before they leave the process.
//!
//! The engine calls its [`Masker`] once per string of every finished span,
//! off the request path, in the export pipeline, and at the other places
//! where data leaves without passing there (error bodies, correlators).

use std::borrow::Cow;
use std::fmt::Debug;

use regex::{Regex, RegexSet};

use crate::config::TracingConfig;

/// What a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Key names whose values are always redacted, whatever they look like.
/// Matched case-insensitively against the whole key and against each
/// `.`-separated segment (`http.request.header.authorization`, `user.password`).
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "api-key",
    "apikey",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "session",
    "session_id",
    "sessionid",
    "ssn",
    "credit_card",
    "private_key",
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
}

/// Redacts secret keys and headers, and applies the configured custom
/// patterns. The detectors of personal data in free text (emails, phone
/// numbers, card numbers, SSNs) are the job of the PII masker built on it.
#[derive(Debug, Clone)]
pub struct BasicMasker {
    secret_keys: Vec<String>,
    patterns: Vec<(Regex, String)>,
    prefilter: Option<RegexSet>,
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
        BasicMasker {
            secret_keys,
            patterns,
            prefilter,
        }
    }
}

impl Masker for BasicMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(prefilter) = &self.prefilter else {
            return Cow::Borrowed(text);
        };
        let hits = prefilter.matches(text);
        if !hits.matched_any() {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        for index in hits.iter() {
            let (regex, replacement) = &self.patterns[index];
            if let Cow::Owned(changed) = regex.replace_all(&out, replacement.as_str()) {
                out = Cow::Owned(changed);
            }
        }
        out
    }

    fn is_secret_key(&self, key: &str) -> bool {
        is_secret_key_in(&self.secret_keys, key)
    }
}

/// Whether `key`, or one of its `.`-separated segments, equals one of
/// `secret_keys` (lowercase), ignoring ASCII case.
pub fn is_secret_key_in(secret_keys: &[String], key: &str) -> bool {
    let matches = |part: &str| secret_keys.iter().any(|s| s.eq_ignore_ascii_case(part));
    matches(key) || (key.contains('.') && key.split('.').any(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> BasicMasker {
        let config = TracingConfig::builder()
            .secret_key("x-tenant-token")
            .redact_header("x-internal-auth")
            .pii_pattern_with("order", r"ORD-(\d{2})\d{6}", "ORD-$1******")
            .pii_pattern("badge", r"BADGE-[A-Z]{4}")
            .build()
            .unwrap();
        BasicMasker::from_config(&config)
    }

    #[test]
    fn secret_keys_match_whole_and_dotted_case_insensitive() {
        let m = masker();
        for key in [
            "password",
            "PASSWORD",
            "user.password",
            "http.request.header.authorization",
            "http.request.header.cookie",
            "http.response.header.set-cookie",
            "http.request.header.x-api-key",
            "http.request.header.proxy-authorization",
            "x-tenant-token",
            "http.request.header.x-internal-auth",
        ] {
            assert!(m.is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "passwords_changed",
            "user.email",
            "tokenizer.kind",
            "http.route",
        ] {
            assert!(!m.is_secret_key(key), "{key} should not be secret");
        }
        assert_eq!(m.mask_value("user.password", "hunter2"), REDACTED);
    }

    #[test]
    fn custom_patterns_replace_and_borrow_when_clean() {
        let m = masker();
        assert_eq!(
            m.mask("order ORD-12345678 shipped"),
            "order ORD-12****** shipped"
        );
        assert_eq!(
            m.mask("BADGE-ABCD and ORD-99000000"),
            "[REDACTED] and ORD-99******"
        );
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
        // Stable: masking twice changes nothing more.
        let once = m.mask("ORD-12345678").into_owned();
        assert_eq!(m.mask(&once), once);
    }

    #[test]
    fn no_masker_is_identity() {
        assert_eq!(NoMasker.mask("a@b.c"), "a@b.c");
        assert!(!NoMasker.is_secret_key("password"));
    }
}
