//! The checks and parsers behind the engine's own settings, for plugins
//! that own settings of theirs (the OTLP and Jaeger exporters): each error
//! is one line naming `setting` (a setting's name, or the environment
//! variable the value came from), with the value quoted, or hidden where it
//! may be a secret.
//!
//! ```
//! use faultline_engine::config::rules;
//!
//! let url = rules::endpoint_url("MY_ENDPOINT", "https://collector:4318")?;
//! assert_eq!(url.port(), Some(4318));
//! let err = rules::endpoint_url("MY_ENDPOINT", "ftp://x").unwrap_err();
//! assert!(err.to_string().starts_with("MY_ENDPOINT: "));
//! # Ok::<(), faultline_engine::config::ConfigError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use url::Url;

use super::{ConfigError, TlsConfig, validate as v};

/// An export endpoint: an `http` or `https` URL with a host and no
/// credentials (which would end up in logs; they belong in headers).
pub fn endpoint_url(setting: &str, text: &str) -> Result<Url, ConfigError> {
    v::endpoint_url(setting, text)
}

/// A header sent with every export: a valid name, and a valid value that
/// an error never shows.
pub fn export_header(
    setting: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, String), ConfigError> {
    v::export_header(setting, name, value)
}

/// A `key=value,key2=value2` list (the form of `OTEL_RESOURCE_ATTRIBUTES`),
/// values percent-decoded. With `secret`, an error never repeats the value.
pub fn key_values(
    setting: &str,
    text: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    super::env::parse_key_values(setting, text, secret)
}

/// TLS files: each a readable PEM file holding a certificate (or, for the
/// key, a private key); a client certificate and its key go together. A
/// file's error names `setting.ca_file`, `setting.client_cert` or
/// `setting.client_key`.
pub fn tls(
    setting: &str,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> Result<TlsConfig, ConfigError> {
    v::tls(setting, ca_file, client_cert, client_key)
}

/// One TLS file, checked as [`tls`] checks it, its error naming `setting`
/// as it is: `key` says whether it should hold a private key rather than
/// a certificate.
pub fn tls_file(setting: &str, path: &Path, key: bool) -> Result<(), ConfigError> {
    v::tls_file(setting, path, if key { "client_key" } else { "ca_file" })
}

/// A host name or IP address.
pub fn host(setting: &str, host: &str) -> Result<(), ConfigError> {
    v::host(setting, host)
}

/// A port number, 1 to 65535, from text.
pub fn parse_port(setting: &str, text: &str) -> Result<u16, ConfigError> {
    v::parse_port(setting, text)
}

/// A port number, 1 to 65535.
pub fn port(setting: &str, port: u32) -> Result<u16, ConfigError> {
    v::port(setting, port)
}

/// A whole number of milliseconds, from text.
pub fn millis(setting: &str, text: &str) -> Result<Duration, ConfigError> {
    super::env::millis(setting, text)
}

/// A duration within `min..=max`.
pub fn duration_within(
    setting: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    v::duration_within(setting, value, min, max)
}

/// Reads a variable from the process environment: `None` when unset or
/// empty (an empty variable counts as unset, as the OpenTelemetry
/// specification says); a value that is not Unicode is read lossily.
pub fn process_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(raw)) => Some(raw.to_string_lossy().into_owned()),
    }
    .filter(|v| !v.trim().is_empty())
}
