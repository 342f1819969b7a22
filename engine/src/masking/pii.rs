//! [`PiiMasker`], the engine's default masker.

use std::borrow::Cow;
use std::fmt;

use super::hash::{Hasher, MIN_KEY_BYTES};
use super::keys::SecretKeys;
use super::scan::Rules;
use super::{CustomPatterns, Masker};
use crate::config::{ConfigError, TracingConfig};

/// The built-in PII masker: what the engine uses when masking is on and no
/// other masker is registered.
///
/// In free text (attribute values, messages, span names, status
/// descriptions) it masks, in one pass:
///
/// | what | example | becomes |
/// |---|---|---|
/// | email | `jane.doe@example.com`, `jane%40example.com` | `j***@example.com` |
/// | phone, North American | `(555) 123-4567`, `555.123.4567`, `1-800-555-1234` | `***-***-4567` |
/// | phone, international | `+4915112345678`, `+44 20 7946 0958` | `***-***-5678` |
/// | card (Luhn-valid, real issuer prefix and length) | `4111 1111 1111 1111`, `378282246310005` | `****-****-****-1111` |
/// | SSN, ITIN, EIN | `123-45-6789`, `123 45 6789`, `12-3456789` | `***-**-****` |
/// | labelled bare numbers | `"phone": "5551234567"`, `SSN 123456789` | `***-***-4567`, `***-**-****` |
/// | secret `key=value` pairs | `password=hunter2`, `{"token":"abc"}` | `password=[REDACTED]`, `{"token":"[REDACTED]"}` |
/// | secret header lines | `Authorization: Bearer abc` | `Authorization: [REDACTED]` |
/// | URL passwords | `postgres://app:s3cret@db/x` | `postgres://app:[REDACTED]@db/x` |
/// | custom patterns | (configured) | (their replacement) |
///
/// Numbers joined to letters (UUIDs, hashes, `v2`), after a decimal point,
/// with thousands separators, or of the wrong shape (timestamps, epoch
/// milliseconds, versions, IP addresses, ports, durations, byte counts,
/// Luhn-invalid runs) are left alone. A text with nothing to mask comes back
/// borrowed, and masking a masked text changes nothing more.
///
/// With a hash key ([`TracingConfig::pii_hash_key`]), emails, phone numbers,
/// cards and SSNs become a keyed hash instead (`email:hmac:3f9a2c1b7d4e`):
/// the same value gives the same tag, so spans still correlate, while the
/// value cannot be read back without the key.
///
/// See `docs/PII_MASKING.md` for the rules in full.
#[derive(Clone)]
pub struct PiiMasker {
    rules: Rules,
    custom: CustomPatterns,
}

impl fmt::Debug for PiiMasker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiiMasker")
            .field("custom_patterns", &self.custom.len())
            .field("hashing", &self.rules.hasher.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for PiiMasker {
    /// The built-in rules only: no extra secret keys, no custom patterns, no hashing.
    fn default() -> Self {
        PiiMasker {
            rules: Rules {
                keys: SecretKeys::new([], []),
                hasher: None,
            },
            custom: CustomPatterns::default(),
        }
    }
}

impl PiiMasker {
    /// The built-in rules only, as [`Default`]: no extra secret keys, no
    /// custom patterns, no hashing.
    pub fn new() -> Self {
        PiiMasker::default()
    }

    /// The built-in rules plus the configuration's secret keys, redacted
    /// headers, custom patterns and hash key.
    pub fn from_config(config: &TracingConfig) -> Self {
        let keys = SecretKeys::new(
            config.secret_keys().iter().map(String::as_str),
            config.redact_headers().iter().map(|h| h.as_str()),
        );
        PiiMasker {
            rules: Rules {
                keys,
                // The configuration checked the key's length.
                hasher: config.pii_hash_key().and_then(Hasher::new),
            },
            custom: CustomPatterns::from_config(config),
        }
    }

    /// This masker, writing keyed hashes (HMAC-SHA256 with `key`) instead of
    /// masks. The key must be at least 16 bytes.
    pub fn with_hash_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        let hasher = Hasher::new(key).ok_or_else(|| {
            ConfigError::invalid_secret(
                "pii_hash_key",
                format!("must be at least {MIN_KEY_BYTES} bytes"),
            )
        })?;
        self.rules.hasher = Some(hasher);
        Ok(self)
    }

    /// Whether values are replaced by keyed hashes rather than masks.
    pub fn is_hashing(&self) -> bool {
        self.rules.hasher.is_some()
    }

    /// Masks a URL query string (`a=1&b=2`, without the `?`) parameter by
    /// parameter, as [`mask_query`](super::mask_query) does: the value of a
    /// secret key becomes `[REDACTED]`; every other key and value is
    /// percent-decoded (`%40` is `@`), masked, and encoded again when that
    /// changed it. Borrowed when nothing changes.
    ///
    /// ```
    /// use faultline_engine::masking::PiiMasker;
    ///
    /// let m = PiiMasker::default();
    /// assert_eq!(
    ///     m.mask_query("q=shoes&email=jane%40example.com&token=abc"),
    ///     "q=shoes&email=j***@example.com&token=[REDACTED]"
    /// );
    /// ```
    pub fn mask_query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        super::mask_query(self, query)
    }
}

/// Passes over a text that changed, at most: the first masks, the next
/// confirm (masking a masked text changes nothing more).
const MAX_PASSES: usize = 4;

impl PiiMasker {
    /// The built-in rules until nothing changes. A text the first pass
    /// leaves alone is returned at once, borrowed; one that changed is
    /// scanned again, since what was masked can change what its neighbours
    /// look like (`trace_id="4111…` once the header before it is redacted).
    fn scan_stable<'a>(&self, text: Cow<'a, str>) -> Cow<'a, str> {
        let mut current = match text {
            Cow::Borrowed(text) => match self.rules.scan(text) {
                Cow::Borrowed(_) => return Cow::Borrowed(text),
                Cow::Owned(masked) => masked,
            },
            Cow::Owned(text) => match self.rules.scan(&text) {
                Cow::Borrowed(_) => return Cow::Owned(text),
                Cow::Owned(masked) => masked,
            },
        };
        for _ in 1..MAX_PASSES {
            match self.rules.scan(&current) {
                Cow::Borrowed(_) => break,
                Cow::Owned(masked) => current = masked,
            }
        }
        Cow::Owned(current)
    }
}

impl Masker for PiiMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.custom.len() == 0 {
            return self.scan_stable(Cow::Borrowed(text));
        }
        self.scan_stable(self.custom.apply(text))
    }

    fn is_secret_key(&self, key: &str) -> bool {
        self.rules.keys.is_secret(key)
    }
    fn is_deterministic(&self) -> bool {
        true
    }
}
