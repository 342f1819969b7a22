//! Which keys are secret: a fast, allocation-free decision on a key name.

use super::{SECRET_HEADERS, SECRET_KEYS};

/// A key segment ending with one of these is secret (`db_password`,
/// `accessToken`, `x-auth-token`, `clientSecret`, `stripe_api_key`).
const SECRET_ENDINGS: &[&[u8]] = &[
    b"password",
    b"passwd",
    b"passphrase",
    b"secret",
    b"token",
    b"apikey",
    b"api_key",
    b"api-key",
];

/// A key segment whose last `_`/`-` part is one of these is secret
/// (`user_session`, `customer-ssn`), but not one that merely ends with the
/// letters (`concession`).
const SECRET_PARTS: &[&[u8]] = &[b"session", b"cookie", b"ssn", b"pwd", b"cvv", b"cvc"];

/// The longest key segment compared without allocating.
const MAX_SEGMENT: usize = 64;

/// The secret-key names of one masker, lowercase, with the built-in rules.
#[derive(Debug, Clone)]
pub(crate) struct SecretKeys {
    /// Whole names, lowercase and sorted (built-in plus configured).
    exact: Vec<Box<[u8]>>,
    /// Bit `n` set when some exact name is `n` bytes long (`n < 64`).
    lengths: u64,
    /// Header names redacted to the end of the line in text (`Name: value`).
    headers: Vec<Box<[u8]>>,
}

impl SecretKeys {
    /// The built-in names plus `extra` keys and `extra_headers` header names.
    pub(crate) fn new<'a>(
        extra: impl IntoIterator<Item = &'a str>,
        extra_headers: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Self {
        let lower =
            |s: &str| -> Box<[u8]> { s.to_ascii_lowercase().into_bytes().into_boxed_slice() };
        let mut exact: Vec<Box<[u8]>> = SECRET_KEYS
            .iter()
            .copied()
            .chain(extra)
            .chain(extra_headers.clone())
            .map(lower)
            .collect();
        exact.sort();
        exact.dedup();
        let mut lengths = 0u64;
        for name in &exact {
            if name.len() < 64 {
                lengths |= 1 << name.len();
            }
        }
        let mut headers: Vec<Box<[u8]>> = SECRET_HEADERS
            .iter()
            .copied()
            .chain(extra_headers)
            .map(lower)
            .collect();
        headers.sort();
        headers.dedup();
        SecretKeys {
            exact,
            lengths,
            headers,
        }
    }

    /// Whether the value under `key` is secret: the whole key, or one of its
    /// segments (split at `.`, `[` and `]`: `user.password`,
    /// `user[password]`), is a secret name or ends like one.
    pub(crate) fn is_secret(&self, key: &str) -> bool {
        let key = key.as_bytes();
        if !key.iter().any(|&c| matches!(c, b'.' | b'[' | b']')) {
            return self.segment_is_secret(key);
        }
        if self.is_exact(key) {
            return true;
        }
        key.split(|&c| matches!(c, b'.' | b'[' | b']'))
            .any(|segment| !segment.is_empty() && self.segment_is_secret(segment))
    }

    /// Whether `name` is a secret header name (case-insensitive).
    pub(crate) fn is_header(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    fn is_exact(&self, key: &[u8]) -> bool {
        let len = key.len();
        if len < 64 && self.lengths & (1 << len) == 0 {
            return false;
        }
        with_lowercase(key, |lower| {
            self.exact.binary_search_by(|k| (**k).cmp(lower)).is_ok()
        })
    }

    fn segment_is_secret(&self, segment: &[u8]) -> bool {
        if segment.len() < 3 {
            return false;
        }
        with_lowercase(segment, |lower| {
            let len = lower.len();
            if (len >= 64 || self.lengths & (1 << len) != 0)
                && self.exact.binary_search_by(|k| (**k).cmp(lower)).is_ok()
            {
                return true;
            }
            if SECRET_ENDINGS.iter().any(|end| lower.ends_with(end)) {
                return true;
            }
            match lower.iter().rposition(|&c| c == b'_' || c == b'-') {
                Some(cut) => SECRET_PARTS.contains(&&lower[cut + 1..]),
                None => false,
            }
        })
    }
}

/// Calls `f` with `text` in ASCII lowercase, on the stack when it is short.
fn with_lowercase<R>(text: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if text.len() <= MAX_SEGMENT {
        let mut buf = [0u8; MAX_SEGMENT];
        let lower = &mut buf[..text.len()];
        lower.copy_from_slice(text);
        lower.make_ascii_lowercase();
        f(lower)
    } else {
        f(&text.to_ascii_lowercase())
    }
}
