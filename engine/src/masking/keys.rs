//! Which keys are secret: a fast, allocation-free decision on a key name.
//!
//! Every rule is about how a key (or one of its segments) *ends*, so the
//! rules live in one trie of reversed names, walked from the key's last
//! byte backwards. Most keys leave the trie after a byte or two (`_id`,
//! `method`, `route`), which makes the common "not secret" answer cheap.

use super::{SECRET_HEADERS, SECRET_KEYS};

/// A key segment ending with one of these is secret (`db_password`,
/// `accessToken`, `x-auth-token`, `clientSecret`, `stripe_api_key`).
const SECRET_ENDINGS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
];

/// A key segment whose last `_`/`-` part is one of these is secret
/// (`user_session`, `customer-ssn`), but not one that merely ends with the
/// letters (`concession`).
const SECRET_PARTS: &[&str] = &["session", "cookie", "ssn", "pwd", "cvv", "cvc"];

/// The whole segment (or, for configured dotted names, the whole key).
const EXACT: u8 = 1;
/// Any ending of the segment.
const ENDING: u8 = 2;
/// The segment, or its part after a `_` or `-`.
const PART: u8 = 4;

#[derive(Debug, Clone, Default)]
struct Node {
    /// (lowercase byte, node index), a handful at most.
    children: Vec<(u8, u32)>,
    /// What a walk that reaches this node has matched.
    flags: u8,
}

/// The secret-key names of one masker, with the built-in rules.
#[derive(Debug, Clone)]
pub(crate) struct SecretKeys {
    /// Node 0 is the root; names are inserted last byte first.
    trie: Vec<Node>,
    /// Header names redacted to the end of the line in text (`Name: value`).
    headers: Vec<Box<[u8]>>,
}

fn is_segment_separator(c: u8) -> bool {
    matches!(c, b'.' | b'[' | b']')
}

impl SecretKeys {
    /// The built-in names plus `extra` keys and `extra_headers` header names.
    pub(crate) fn new<'a>(
        extra: impl IntoIterator<Item = &'a str>,
        extra_headers: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Self {
        let mut keys = SecretKeys {
            trie: vec![Node::default()],
            headers: Vec::new(),
        };
        for name in SECRET_KEYS
            .iter()
            .copied()
            .chain(extra)
            .chain(extra_headers.clone())
        {
            keys.insert(name, EXACT);
        }
        for ending in SECRET_ENDINGS {
            keys.insert(ending, ENDING);
        }
        for part in SECRET_PARTS {
            keys.insert(part, PART);
        }
        let mut headers: Vec<Box<[u8]>> = SECRET_HEADERS
            .iter()
            .copied()
            .chain(extra_headers)
            .map(|h| h.to_ascii_lowercase().into_bytes().into_boxed_slice())
            .collect();
        headers.sort();
        headers.dedup();
        keys.headers = headers;
        keys
    }

    fn insert(&mut self, name: &str, flag: u8) {
        if name.is_empty() {
            return;
        }
        let mut node = 0;
        for c in name.bytes().rev().map(|c| c.to_ascii_lowercase()) {
            node = match self.trie[node].children.iter().find(|(k, _)| *k == c) {
                Some(&(_, next)) => next as usize,
                None => {
                    self.trie.push(Node::default());
                    let next = self.trie.len() - 1;
                    self.trie[node].children.push((c, next as u32));
                    next
                }
            };
        }
        self.trie[node].flags |= flag;
    }

    /// Walks `bytes[..end]` backwards through the trie: whether a rule
    /// matches the name that ends at `end`. `starts(i)` says whether a name
    /// (a segment) may start at `i`; the walk never goes below `low`.
    #[inline]
    fn matches_back(
        &self,
        bytes: &[u8],
        end: usize,
        low: usize,
        starts: impl Fn(usize) -> bool,
    ) -> bool {
        let mut node = 0;
        let mut i = end;
        while i > low {
            let c = bytes[i - 1].to_ascii_lowercase();
            match self.trie[node].children.iter().find(|(k, _)| *k == c) {
                Some(&(_, next)) => node = next as usize,
                None => return false,
            }
            i -= 1;
            let flags = self.trie[node].flags;
            if flags == 0 {
                continue;
            }
            if flags & ENDING != 0 {
                return true;
            }
            let at_start = i == low || starts(i);
            if flags & EXACT != 0 && at_start {
                return true;
            }
            if flags & PART != 0 && (at_start || matches!(bytes[i - 1], b'_' | b'-')) {
                return true;
            }
        }
        false
    }

    /// Whether the value under `key` is secret: the whole key, or one of its
    /// segments (split at `.`, `[` and `]`: `user.password`,
    /// `user[password]`), is a secret name or ends like one.
    pub(crate) fn is_secret(&self, key: &str) -> bool {
        let key = key.as_bytes();
        if self.matches_back(key, key.len(), 0, |_| false) {
            return true;
        }
        if !key.iter().copied().any(is_segment_separator) {
            return false;
        }
        key.split(|&c| is_segment_separator(c))
            .any(|segment| self.matches_back(segment, segment.len(), 0, |_| false))
    }

    /// The rule for a key found in text (`key=value`, `"key": value`) that
    /// ends at `end`: its last segment is secret (or, for a configured
    /// dotted name, the whole key). The last segment names the value:
    /// `user.password` is secret, `password.reset_url` is not. Reads no
    /// further back than `low`.
    pub(crate) fn is_secret_before(&self, text: &[u8], end: usize, low: usize) -> bool {
        // `user[password]`: the segment ends before the bracket.
        let end = if end > low && text[end - 1] == b']' {
            end - 1
        } else {
            end
        };
        let starts = |i: usize| {
            let c = text[i - 1];
            !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-')) || is_segment_separator(c)
        };
        self.matches_back(text, end, low, starts)
    }

    /// Whether `name` is a secret header name (case-insensitive).
    pub(crate) fn is_header(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}
