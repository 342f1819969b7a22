//! Validated, immutable configuration.
//!
//! A [`TracingConfig`] is made in one of three ways, and all three run the same
//! validation ([`TracingConfigBuilder::build`]):
//!
//! * in code, with [`TracingConfig::builder`];
//! * from the environment, with [`TracingConfig::from_env`] (the standard
//!   `OTEL_*` variables plus faultline's own `FAULTLINE_*` ones, see
//!   [`TracingConfigBuilder::with_env`]);
//! * from a TOML or JSON file, with [`TracingConfig::from_file`], or from any
//!   serde format, since `TracingConfig` implements `Deserialize`.
//!
//! ```
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//!
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .service_version("1.4.2")
//!     .sample_rate(0.25)
//!     .exporters([ExporterKind::CONSOLE])
//!     .build()
//!     .expect("valid configuration");
//! assert_eq!(config.service_name(), "checkout");
//!
//! let err = TracingConfig::builder().service_name("check out").build().unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "service_name: invalid value \"check out\": only ASCII letters, digits and hyphens are allowed"
//! );
//! ```

mod env;
mod file;
mod logs;
mod operations;
mod routes;
pub mod rules;
mod table;
mod validate;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use regex::Regex;

pub use env::ENV_VARIABLES;
pub use logs::{LogFormat, LogsSettings};
pub use operations::{ResourceDetector, ResourceDetectors, STANDARD_SAMPLERS};
pub use routes::ExcludedRoutes;
pub use table::{BatchSettings, ExportRetry, KeepErrors, Limits};

/// The value used for `service.name` when nothing else names the service.
///
/// OpenTelemetry's own default, `unknown_service`, holds an underscore, which
/// faultline's service-name rule does not allow; this is its closest valid form.
pub const DEFAULT_SERVICE_NAME: &str = "unknown-service";

/// The name of a span exporter, as `OTEL_TRACES_EXPORTER` and configuration
/// files write it. Several may be active at once.
///
/// The configuration only names exporters; the engine's builder finds each
/// name among the exporters registered with
/// [`EngineBuilder::exporter_factory`](crate::EngineBuilder::exporter_factory)
/// (`console` is built in; the facade's `setup::engine_builder` registers the
/// plugins of the enabled features: `otlp`, `jaeger`, `viewer`), so an
/// application's own exporter is chosen by name like the others:
///
/// ```
/// use faultline_engine::config::{ExporterKind, TracingConfig};
///
/// let config = TracingConfig::builder()
///     .exporters([ExporterKind::OTLP, ExporterKind::named("audit-log")])
///     .build()?;
/// assert_eq!(config.exporters()[1].as_str(), "audit-log");
/// # Ok::<(), faultline_engine::config::ConfigError>(())
/// ```
///
/// A name is 1 to 64 bytes of lowercase ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter (checked when the configuration is built).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(transparent)]
pub struct ExporterKind(Cow<'static, str>);

impl ExporterKind {
    /// OTLP over gRPC or HTTP/protobuf (plugin `faultline-otlp`, feature `otlp`).
    pub const OTLP: ExporterKind = ExporterKind(Cow::Borrowed("otlp"));
    /// Jaeger thrift to an agent or a collector (plugin `faultline-jaeger`, feature `jaeger`).
    pub const JAEGER: ExporterKind = ExporterKind(Cow::Borrowed("jaeger"));
    /// One line per span on standard output (built into the engine).
    pub const CONSOLE: ExporterKind = ExporterKind(Cow::Borrowed("console"));
    /// The built-in trace viewer (plugin `faultline-viewer`, feature `viewer`).
    pub const VIEWER: ExporterKind = ExporterKind(Cow::Borrowed("viewer"));

    /// The exporter registered under `name` (an application's own, or a
    /// plugin's). The name is checked when the configuration is built.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        ExporterKind(name.into())
    }

    /// The name used in `OTEL_TRACES_EXPORTER` and in configuration files.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The name of a propagation format, as `OTEL_PROPAGATORS` and
/// configuration files write it. Several may be active at once.
///
/// The configuration only names propagators; the engine's builder finds
/// each name among the registered ones: `tracecontext`, `baggage`, `b3`,
/// `b3multi` and `jaeger` are built in, and an application registers its own
/// with [`EngineBuilder::register_propagator`](crate::EngineBuilder::register_propagator):
///
/// ```
/// use faultline_engine::config::{PropagatorKind, TracingConfig};
///
/// let config = TracingConfig::builder()
///     .propagators([PropagatorKind::TRACE_CONTEXT, PropagatorKind::named("mine")])
///     .build()?;
/// assert_eq!(config.propagators()[1].as_str(), "mine");
/// # Ok::<(), faultline_engine::config::ConfigError>(())
/// ```
///
/// A name is 1 to 64 bytes of lowercase ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter (checked when the configuration is built).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(transparent)]
pub struct PropagatorKind(Cow<'static, str>);

impl PropagatorKind {
    /// W3C Trace Context (`traceparent`, `tracestate`).
    pub const TRACE_CONTEXT: PropagatorKind = PropagatorKind(Cow::Borrowed("tracecontext"));
    /// W3C Baggage (`baggage`).
    pub const BAGGAGE: PropagatorKind = PropagatorKind(Cow::Borrowed("baggage"));
    /// Zipkin B3, single header (`b3`).
    pub const B3: PropagatorKind = PropagatorKind(Cow::Borrowed("b3"));
    /// Zipkin B3, multiple headers (`X-B3-*`).
    pub const B3_MULTI: PropagatorKind = PropagatorKind(Cow::Borrowed("b3multi"));
    /// Jaeger (`uber-trace-id`).
    pub const JAEGER: PropagatorKind = PropagatorKind(Cow::Borrowed("jaeger"));

    /// The propagator registered under `name` (an application's own, or a
    /// built-in one). The name is checked when the configuration is built.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        PropagatorKind(name.into())
    }

    /// The name used in `OTEL_PROPAGATORS` and in configuration files.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the name rule (the exporters' one); `setting` names the
    /// setting in the error.
    pub(crate) fn check(&self, setting: &str) -> Result<(), ConfigError> {
        validate::plugin_name(setting, self.as_str(), "propagator")
    }
}

impl fmt::Display for PropagatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PropagatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Output format of the console exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConsoleFormat {
    /// One human-readable line per span.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// TLS settings for an exporter connection.
///
/// Paths are checked to exist when the configuration is built. The private
/// key's path is shown by `Debug`, never its content (faultline never reads it
/// into the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl TlsConfig {
    /// PEM file of the certificate authority that signed the backend's
    /// certificate; `None` means the system roots.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }
    /// PEM file of the client certificate for mutual TLS.
    pub fn client_cert(&self) -> Option<&Path> {
        self.client_cert.as_deref()
    }
    /// PEM file of the client private key for mutual TLS.
    pub fn client_key(&self) -> Option<&Path> {
        self.client_key.as_deref()
    }
    /// True when nothing is set (plain system-root TLS for `https` endpoints).
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }
}

/// A user-defined PII pattern: every match of `regex` is replaced by `replacement`.
#[derive(Clone)]
pub struct PiiPattern {
    name: String,
    regex: Regex,
    replacement: String,
}

impl PiiPattern {
    /// The pattern's name (ASCII letters, digits, `_` and `-`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The compiled expression.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }
    /// What each match becomes (`$1`-style group references are expanded).
    pub fn replacement(&self) -> &str {
        &self.replacement
    }
}

impl fmt::Debug for PiiPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiiPattern")
            .field("name", &self.name)
            .field("regex", &self.regex.as_str())
            .field("replacement", &self.replacement)
            .finish()
    }
}

impl PartialEq for PiiPattern {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.regex.as_str() == other.regex.as_str()
            && self.replacement == other.replacement
    }
}

/// The replacement a custom PII pattern gets when none is given.
pub const DEFAULT_PATTERN_REPLACEMENT: &str = "[REDACTED]";

/// The shortest accepted [`TracingConfig::pii_hash_key`], in bytes.
pub const MIN_PII_HASH_KEY_BYTES: usize = 16;

/// The keyed-hash key: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct HashKey(String);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl HashKey {
    pub(crate) fn new(key: String) -> Self {
        HashKey(key)
    }

    /// At least [`MIN_PII_HASH_KEY_BYTES`]; the error never shows the key.
    pub(crate) fn check(&self, setting: &str) -> Result<(), ConfigError> {
        if self.0.len() < MIN_PII_HASH_KEY_BYTES {
            return Err(ConfigError::invalid_secret(
                setting,
                format!("a hash key must be at least {MIN_PII_HASH_KEY_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// The validated, immutable configuration of a faultline engine.
///
/// Made by [`TracingConfig::builder`], [`TracingConfig::from_env`] or
/// [`TracingConfig::from_file`]; read through its getters. `Debug` never
/// prints the values of export headers (they usually hold credentials).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct TracingConfig {
    scalars: table::Scalars,
    resource_attributes: Vec<(String, String)>,
    sample_rate: f64,
    parent_based: bool,
    exporters: Vec<ExporterKind>,
    propagators: Vec<PropagatorKind>,
    pii_patterns: Vec<PiiPattern>,
    pii_hash_key: Option<HashKey>,
    secret_keys: Vec<String>,
    capture_request_headers: Vec<HeaderName>,
    capture_response_headers: Vec<HeaderName>,
    redact_headers: Vec<HeaderName>,
    export_retry: ExportRetry,
    batch: BatchSettings,
    keep_errors: KeepErrors,
    ops: operations::Operations,
    limits: Limits,
    trusted_peers: Vec<PeerNet>,
    excluded_routes: ExcludedRoutes,
    logs: LogsSettings,
}

/// A network whose requests' trace context is trusted: an IP address with
/// a prefix length (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl PeerNet {
    /// Parses `addr` or `addr/prefix`; `None` when invalid.
    pub fn parse(text: &str) -> Option<PeerNet> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(PeerNet { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count
    /// as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for TracingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TracingConfig");
        self.scalars.debug_fields(&mut d);
        d.field("resource_attributes", &self.resource_attributes)
            .field("sample_rate", &self.sample_rate)
            .field("parent_based", &self.parent_based)
            .field("exporters", &self.exporters)
            .field("propagators", &self.propagators)
            .field("pii_patterns", &self.pii_patterns)
            .field("pii_hash_key", &self.pii_hash_key)
            .field("secret_keys", &self.secret_keys)
            .field("capture_request_headers", &self.capture_request_headers)
            .field("capture_response_headers", &self.capture_response_headers)
            .field("redact_headers", &self.redact_headers)
            .field("export_retry", &self.export_retry)
            .field("batch", &self.batch)
            .field("excluded_routes", &self.excluded_routes)
            .field("keep_errors", &self.keep_errors)
            .field("operations", &self.ops)
            .field("limits", &self.limits)
            .field("trusted_peers", &self.trusted_peers)
            .finish()
    }
}

impl Default for TracingConfig {
    /// The defaults of the OpenTelemetry specification (OTLP over gRPC to
    /// `http://localhost:4317`, `parentbased_always_on`), service
    /// [`DEFAULT_SERVICE_NAME`].
    fn default() -> Self {
        TracingConfigBuilder::default()
            .build()
            .expect("the default configuration is valid")
    }
}

impl TracingConfig {
    /// A builder holding the defaults.
    pub fn builder() -> TracingConfigBuilder {
        TracingConfigBuilder::default()
    }

    /// The defaults, overridden by the process environment
    /// (see [`TracingConfigBuilder::with_env`]).
    pub fn from_env() -> Result<TracingConfig, ConfigError> {
        TracingConfigBuilder::default().with_env()?.build()
    }

    /// Reads a TOML file (`.toml`) or a JSON file (any other extension).
    /// Unknown keys are errors. The environment is not consulted; chain
    /// [`TracingConfigBuilder::with_env`] on [`TracingConfigBuilder::from_file`]
    /// for file-then-environment layering.
    pub fn from_file(path: impl AsRef<Path>) -> Result<TracingConfig, ConfigError> {
        TracingConfigBuilder::from_file(path)?.build()
    }

    /// A builder holding this configuration's values, to derive a changed copy.
    pub fn to_builder(&self) -> TracingConfigBuilder {
        TracingConfigBuilder::from_config(self)
    }

    /// Further resource attributes (from `OTEL_RESOURCE_ATTRIBUTES` or set in code).
    pub fn resource_attributes(&self) -> &[(String, String)] {
        &self.resource_attributes
    }
    /// Fraction of new traces that are sampled, within `0.0..=1.0`.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }
    /// Whether a span follows its parent's sampling decision (the default).
    pub fn parent_based(&self) -> bool {
        self.parent_based
    }
    /// Where spans go; empty means nowhere (`OTEL_TRACES_EXPORTER=none`).
    pub fn exporters(&self) -> &[ExporterKind] {
        &self.exporters
    }
    /// The propagation formats, in order (default: `tracecontext`, `baggage`;
    /// empty means none, `OTEL_PROPAGATORS=none`).
    pub fn propagators(&self) -> &[PropagatorKind] {
        &self.propagators
    }
    /// Custom PII patterns.
    pub fn pii_patterns(&self) -> &[PiiPattern] {
        &self.pii_patterns
    }
    /// The key of the keyed-hash mode, if set: personal data is then
    /// replaced by a short HMAC-SHA256 of it (`email:hmac:3f9a2c1b7d4e`)
    /// rather than masked, so that equal values still correlate. At least
    /// 16 bytes; never shown by `Debug`.
    pub fn pii_hash_key(&self) -> Option<&[u8]> {
        self.pii_hash_key.as_ref().map(|k| k.0.as_bytes())
    }
    /// Extra key names (lowercase) whose values are always redacted.
    pub fn secret_keys(&self) -> &[String] {
        &self.secret_keys
    }
    /// Request headers recorded on server spans (masked).
    pub fn capture_request_headers(&self) -> &[HeaderName] {
        &self.capture_request_headers
    }
    /// Response headers recorded on server spans (masked).
    pub fn capture_response_headers(&self) -> &[HeaderName] {
        &self.capture_response_headers
    }
    /// Extra headers whose values are always redacted (beyond the built-in list).
    pub fn redact_headers(&self) -> &[HeaderName] {
        &self.redact_headers
    }
    /// Retry and buffering of failed exports.
    pub fn export_retry(&self) -> &ExportRetry {
        &self.export_retry
    }
    /// Batch span processor settings.
    pub fn batch(&self) -> &BatchSettings {
        &self.batch
    }
    /// The routes whose requests are not traced: no span, no
    /// `traceresponse`, no metric series; their incoming trace context
    /// still reaches the calls made while serving them (default none;
    /// `FAULTLINE_EXCLUDED_ROUTES`).
    pub fn excluded_routes(&self) -> &ExcludedRoutes {
        &self.excluded_routes
    }
    /// Error-keeping sampling: a request the sampler did not sample is
    /// still recorded locally, and exported after all when it ends in an
    /// error response or a panic, so that every trace id faultline hands
    /// out with an error leads to an exported trace (default on, with its
    /// caps).
    pub fn keep_errors(&self) -> &KeepErrors {
        &self.keep_errors
    }
    /// What one span may hold (`OTEL_*_LIMIT` variables).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// The networks whose requests' trace context is trusted (empty: every
    /// peer, while [`trust_incoming_context`](Self::trust_incoming_context)
    /// holds).
    pub fn trusted_peers(&self) -> &[PeerNet] {
        &self.trusted_peers
    }
    /// Whether the trace context of a request from `client` is used as its
    /// parent: never when `trust_incoming_context` is off; from every peer
    /// when no trusted peers are configured; otherwise only from a peer in
    /// one of them (a request whose peer is unknown is not trusted).
    pub fn trusts(&self, client: Option<std::net::IpAddr>) -> bool {
        if !self.scalars.trust_incoming_context {
            return false;
        }
        if self.trusted_peers.is_empty() {
            return true;
        }
        client.is_some_and(|ip| self.trusted_peers.iter().any(|n| n.contains(ip)))
    }
}

/// An error in a configuration value. The message is one line that names the
/// setting (or environment variable) and the bad value.
///
/// A file that cannot be read keeps the I/O error as its source. A file
/// that cannot be parsed does not keep the parser's error: its message
/// quotes the offending line, which may hold a secret (`reason` is that
/// message without the quoted lines).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value broke a rule.
    #[error("{setting}: invalid value {value}: {reason}")]
    Invalid {
        /// The setting or environment variable.
        setting: String,
        /// The offending value, quoted (or a placeholder when it may hold a secret).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration file could not be read.
    #[error("{path}: cannot read configuration file: {reason}")]
    File {
        /// The file.
        path: String,
        /// The I/O error's message.
        reason: String,
        /// The I/O error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// A configuration file could not be parsed.
    #[error("{path}: invalid configuration file: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, on one line.
        reason: String,
    },
}

impl PartialEq for ConfigError {
    /// Equal when of the same kind with the same message (an I/O error
    /// source is compared by its kind).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                ConfigError::File {
                    path,
                    reason,
                    source,
                },
                ConfigError::File {
                    path: p,
                    reason: r,
                    source: s,
                },
            ) => path == p && reason == r && source.kind() == s.kind(),
            (
                ConfigError::Invalid {
                    setting,
                    value,
                    reason,
                },
                ConfigError::Invalid {
                    setting: s,
                    value: v,
                    reason: r,
                },
            ) => setting == s && value == v && reason == r,
            (ConfigError::Parse { path, reason }, ConfigError::Parse { path: p, reason: r }) => {
                path == p && reason == r
            }
            _ => false,
        }
    }
}

impl Eq for ConfigError {}

impl ConfigError {
    /// A value that broke a rule: `setting` (a field name or an environment
    /// variable), the value (quoted in the message) and what is wrong.
    /// Plugins use it for their own settings, so that every configuration
    /// error reads the same.
    pub fn invalid(setting: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.into(),
            value: quote(value),
            reason: reason.into(),
        }
    }

    /// An error whose value is not shown because it may hold a secret.
    pub fn invalid_secret(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.into(),
            value: "(hidden: it may hold a secret)".to_owned(),
            reason: reason.into(),
        }
    }

    /// The setting or variable the error is about, where there is one.
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { setting, .. } => Some(setting),
            _ => None,
        }
    }
}

/// `error` under the environment variable its setting came from, if it
/// came from one (`from_env`: setting, variable). A relation broken between
/// a setting the user set and one left at its default is reported under the
/// one the user set: `FAULTLINE_EXPORT_BACKOFF_BASE_MS` above the default
/// maximum names the base, not the maximum.
fn name_the_variable(
    error: ConfigError,
    from_env: &[(&'static str, &'static str)],
    backoff_base: Duration,
) -> ConfigError {
    let var_of = |setting: &str| {
        from_env
            .iter()
            .find(|(s, _)| *s == setting)
            .map(|(_, var)| *var)
    };
    let ConfigError::Invalid {
        setting,
        value,
        reason,
    } = error
    else {
        return error;
    };
    // A maximum below the base, where only the base was set.
    if setting == "backoff_max"
        && var_of("backoff_max").is_none()
        && let Some(var) = var_of("backoff_base")
    {
        return ConfigError::invalid(
            var,
            &format!("{} ms", backoff_base.as_millis()),
            format!(
                "must be at most the maximum back-off, {} (FAULTLINE_EXPORT_BACKOFF_MAX_MS)",
                value.trim_matches('"')
            ),
        );
    }
    let var = var_of(&setting);
    match var {
        Some(var) => ConfigError::Invalid {
            setting: var.to_owned(),
            value,
            reason,
        },
        None => ConfigError::Invalid {
            setting,
            value,
            reason,
        },
    }
}

/// Quotes a value for an error message: escaped, on one line, at most 120 characters.
fn quote(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() > MAX {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}... ({} bytes)", value.len())
    } else {
        format!("{value:?}")
    }
}

/// Builds a [`TracingConfig`]. Every setter takes the raw value; nothing is
/// checked until [`build`](TracingConfigBuilder::build), which reports the
/// first broken rule.
#[derive(Clone)]
pub struct TracingConfigBuilder {
    scalars: table::Scalars,
    resource_attributes: Vec<(String, String)>,
    sample_rate: f64,
    parent_based: bool,
    exporters: Vec<ExporterKind>,
    propagators: Vec<PropagatorKind>,
    pii_patterns: BTreeMap<String, (String, Option<String>)>,
    pii_hash_key: Option<HashKey>,
    secret_keys: Vec<String>,
    capture_request_headers: Vec<String>,
    capture_response_headers: Vec<String>,
    redact_headers: Vec<String>,
    export_retry: ExportRetry,
    batch: BatchSettings,
    keep_errors: KeepErrors,
    ops: operations::Operations,
    limits: Limits,
    trusted_peers: Vec<PeerNet>,
    excluded_routes: Vec<String>,
    logs: LogsSettings,
    /// A `trusted_peers` entry of a file that is not a network.
    invalid_trusted_peer: Option<String>,
    /// Settings whose value came from an environment variable, with the
    /// variable: a value that breaks a rule checked in `build` (a range,
    /// a relation to another setting, a file's contents) is reported under
    /// the variable the user set, not the setting's name.
    from_env: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for TracingConfigBuilder {
    /// Like the configuration's, never prints export header values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingConfigBuilder")
            .field("service_name", &self.scalars.service_name)
            .field("service_version", &self.scalars.service_version)
            .field("sample_rate", &self.sample_rate)
            .field("exporters", &self.exporters)
            .field("propagators", &self.propagators)
            .finish_non_exhaustive()
    }
}

impl Default for TracingConfigBuilder {
    fn default() -> Self {
        TracingConfigBuilder {
            scalars: table::Scalars::default(),
            resource_attributes: Vec::new(),
            sample_rate: 1.0,
            parent_based: true,
            exporters: vec![ExporterKind::OTLP],
            propagators: vec![PropagatorKind::TRACE_CONTEXT, PropagatorKind::BAGGAGE],
            pii_patterns: BTreeMap::new(),
            pii_hash_key: None,
            secret_keys: Vec::new(),
            capture_request_headers: Vec::new(),
            capture_response_headers: Vec::new(),
            redact_headers: Vec::new(),
            export_retry: ExportRetry::default(),
            batch: BatchSettings::default(),
            keep_errors: KeepErrors::default(),
            ops: operations::Operations::default(),
            limits: Limits::default(),
            trusted_peers: Vec::new(),
            excluded_routes: Vec::new(),
            logs: LogsSettings::default(),
            invalid_trusted_peer: None,
            from_env: Vec::new(),
        }
    }
}

impl TracingConfigBuilder {
    fn from_config(c: &TracingConfig) -> Self {
        TracingConfigBuilder {
            scalars: c.scalars.clone(),
            resource_attributes: c.resource_attributes.clone(),
            sample_rate: c.sample_rate,
            parent_based: c.parent_based,
            exporters: c.exporters.clone(),
            propagators: c.propagators.clone(),
            pii_patterns: c
                .pii_patterns
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        (p.regex.as_str().to_owned(), Some(p.replacement.clone())),
                    )
                })
                .collect(),
            pii_hash_key: c.pii_hash_key.clone(),
            secret_keys: c.secret_keys.clone(),
            capture_request_headers: names(&c.capture_request_headers),
            capture_response_headers: names(&c.capture_response_headers),
            redact_headers: names(&c.redact_headers),
            export_retry: c.export_retry,
            batch: c.batch,
            keep_errors: c.keep_errors,
            ops: c.ops.clone(),
            limits: c.limits,
            trusted_peers: c.trusted_peers.clone(),
            excluded_routes: c.excluded_routes.to_strings(),
            logs: c.logs.clone(),
            invalid_trusted_peer: None,
            from_env: Vec::new(),
        }
    }

    /// Adds a resource attribute (replacing one of the same key).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.resource_attributes.retain(|(k, _)| *k != key);
        self.resource_attributes.push((key, value.into()));
        self
    }
    /// Fraction of new traces sampled, within `0.0..=1.0`.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self
    }
    /// Whether spans follow their parent's sampling decision (default true).
    pub fn parent_based(mut self, parent_based: bool) -> Self {
        self.parent_based = parent_based;
        self
    }
    /// The exporters, by name, in order (duplicates are ignored; empty means
    /// none). Whether each is registered is checked by the engine's builder.
    pub fn exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.exporters = exporters.into_iter().collect();
        self
    }
    /// The propagation formats, extracted in order and all injected
    /// (duplicates are ignored; empty means none).
    pub fn propagators(mut self, propagators: impl IntoIterator<Item = PropagatorKind>) -> Self {
        self.propagators = Vec::new();
        for p in propagators {
            if !self.propagators.contains(&p) {
                self.propagators.push(p);
            }
        }
        self
    }
    /// Adds a custom PII pattern replaced by [`DEFAULT_PATTERN_REPLACEMENT`].
    pub fn pii_pattern(mut self, name: impl Into<String>, regex: impl Into<String>) -> Self {
        self.pii_patterns.insert(name.into(), (regex.into(), None));
        self
    }
    /// Adds a custom PII pattern with its own replacement (`$1` group references allowed).
    pub fn pii_pattern_with(
        mut self,
        name: impl Into<String>,
        regex: impl Into<String>,
        replacement: impl Into<String>,
    ) -> Self {
        self.pii_patterns
            .insert(name.into(), (regex.into(), Some(replacement.into())));
        self
    }
    /// Turns on the keyed-hash mode with `key` (at least 16 bytes): emails,
    /// phone numbers, cards and SSNs become `kind:hmac:` and 12 hex digits
    /// of an HMAC-SHA256, instead of a mask.
    pub fn pii_hash_key(mut self, key: impl Into<String>) -> Self {
        self.pii_hash_key = Some(HashKey(key.into()));
        self
    }
    /// Adds a key name whose values are always redacted (matched case-insensitively,
    /// also as a segment of a dotted key).
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_keys.push(key.into());
        self
    }
    /// Adds a request header to record on server spans.
    pub fn capture_request_header(mut self, name: impl Into<String>) -> Self {
        self.capture_request_headers.push(name.into());
        self
    }
    /// Adds a response header to record on server spans.
    pub fn capture_response_header(mut self, name: impl Into<String>) -> Self {
        self.capture_response_headers.push(name.into());
        self
    }
    /// Adds a header whose value is always redacted.
    pub fn redact_header(mut self, name: impl Into<String>) -> Self {
        self.redact_headers.push(name.into());
        self
    }
    /// Retries of a failed export (default 3, at most 100).
    pub fn max_export_retries(mut self, retries: u32) -> Self {
        self.export_retry.max_retries = retries;
        self
    }
    /// First and longest back-off between retries.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.export_retry.backoff_base = base;
        self.export_retry.backoff_max = max;
        self
    }
    /// Spans kept in memory while the backend is unreachable.
    pub fn export_buffer_capacity(mut self, spans: usize) -> Self {
        self.export_retry.buffer_capacity = spans;
        self
    }
    /// The most memory, in bytes, the spans kept while the backend is
    /// unreachable may take ([`ExportRetry::buffer_bytes`]).
    pub fn export_buffer_bytes(mut self, bytes: usize) -> Self {
        self.export_retry.buffer_bytes = bytes;
        self
    }
    /// The longest one export attempt may take.
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_retry.timeout = timeout;
        self
    }
    /// Batch span processor: queue size, batch size and delay.
    pub fn batch(
        mut self,
        max_queue_size: usize,
        max_export_batch_size: usize,
        scheduled_delay: Duration,
    ) -> Self {
        self.batch = BatchSettings {
            max_queue_size,
            max_export_batch_size,
            scheduled_delay,
        };
        self
    }
    /// The routes whose requests are not traced (see
    /// [`TracingConfig::excluded_routes`]): route templates (`/health`,
    /// `/users/{id}`) or path prefixes ending in `*` (`/internal/*`).
    pub fn excluded_routes<I, S>(mut self, routes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded_routes = routes.into_iter().map(Into::into).collect();
        self
    }
    /// Turns error-keeping sampling on or off (default on; see
    /// [`TracingConfig::keep_errors`]).
    pub fn keep_errors(mut self, enabled: bool) -> Self {
        self.keep_errors.enabled = enabled;
        self
    }
    /// The caps of error-keeping sampling: unsampled traces waiting at once
    /// (1..=1,000,000, default 4096) and spans per waiting trace
    /// (1..=100,000, default 128).
    pub fn keep_errors_caps(mut self, max_traces: usize, max_spans_per_trace: usize) -> Self {
        self.keep_errors.max_traces = max_traces;
        self.keep_errors.max_spans_per_trace = max_spans_per_trace;
        self
    }
    /// The longest string value exported, in bytes (16..=16 MiB, default
    /// 16384).
    pub fn attribute_value_length_limit(mut self, bytes: usize) -> Self {
        self.limits.attribute_value_length = bytes;
        self
    }
    /// Attributes, events and links per span (each 1..=65536, default 128).
    pub fn span_count_limits(mut self, attributes: u32, events: u32, links: u32) -> Self {
        self.limits.attributes_per_span = attributes;
        self.limits.events_per_span = events;
        self.limits.links_per_span = links;
        self
    }
    /// Trust incoming trace context only from requests whose peer address
    /// is in one of `networks` (say, the load balancer's), keeping it as a
    /// link for everyone else; empty (the default) trusts every peer.
    pub fn trusted_peers(mut self, networks: impl IntoIterator<Item = PeerNet>) -> Self {
        self.trusted_peers = networks.into_iter().collect();
        self
    }
    /// Attributes per event and per link (each 1..=65536, default 128).
    pub fn event_link_attribute_limits(mut self, per_event: u32, per_link: u32) -> Self {
        self.limits.attributes_per_event = per_event;
        self.limits.attributes_per_link = per_link;
        self
    }

    /// Checks every rule and returns the immutable configuration, or the
    /// first broken rule.
    pub fn build(self) -> Result<TracingConfig, ConfigError> {
        let from_env = self.from_env.clone();
        let backoff_base = self.export_retry.backoff_base;
        self.checked()
            .map_err(|e| name_the_variable(e, &from_env, backoff_base))
    }

    /// Records that `setting` took its value from the variable `var` (a
    /// later variable for the same setting replaces an earlier one).
    pub(crate) fn set_from_env(&mut self, setting: &'static str, var: &'static str) {
        self.from_env.retain(|(s, _)| *s != setting);
        self.from_env.push((setting, var));
    }

    fn checked(self) -> Result<TracingConfig, ConfigError> {
        use validate as v;
        self.check_table()?;
        self.relations()?;
        for (key, value) in &self.resource_attributes {
            v::resource_attribute("resource_attributes", key, value)?;
        }
        v::sample_rate("sample_rate", self.sample_rate)?;
        for name in &self.propagators {
            name.check("propagators")?;
        }
        let mut exporters: Vec<ExporterKind> = Vec::with_capacity(self.exporters.len());
        for name in &self.exporters {
            v::exporter_name("exporters", name.as_str())?;
            if !exporters.contains(name) {
                exporters.push(name.clone());
            }
        }
        let pii_patterns = self
            .pii_patterns
            .iter()
            .map(|(name, (regex, replacement))| {
                let compiled = v::pii_pattern("pii_patterns", name, regex)?;
                if let Some(replacement) = replacement {
                    v::pii_replacement("pii_patterns", name, replacement)?;
                }
                Ok(PiiPattern {
                    name: name.clone(),
                    regex: compiled,
                    replacement: replacement
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PATTERN_REPLACEMENT.to_owned()),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if let Some(key) = &self.pii_hash_key {
            key.check("pii_hash_key")?;
        }
        let secret_keys = self
            .secret_keys
            .iter()
            .map(|k| v::secret_key("secret_keys", k))
            .collect::<Result<Vec<_>, _>>()?;
        let capture_request_headers =
            v::header_names("capture_request_headers", &self.capture_request_headers)?;
        let capture_response_headers =
            v::header_names("capture_response_headers", &self.capture_response_headers)?;
        let redact_headers = v::header_names("redact_headers", &self.redact_headers)?;
        let excluded_routes = ExcludedRoutes::parse(&self.excluded_routes).map_err(|why| {
            ConfigError::invalid("excluded_routes", &self.excluded_routes.join(","), why)
        })?;
        self.ops.validate()?;
        if let Some(bad) = &self.invalid_trusted_peer {
            return Err(ConfigError::invalid(
                "trusted_peers",
                bad,
                "must be an IP address or network (10.0.0.0/8)",
            ));
        }

        Ok(TracingConfig {
            scalars: self.scalars,
            resource_attributes: self.resource_attributes,
            sample_rate: self.sample_rate,
            parent_based: self.parent_based,
            exporters,
            propagators: self.propagators,
            pii_patterns,
            pii_hash_key: self.pii_hash_key,
            secret_keys,
            capture_request_headers,
            capture_response_headers,
            redact_headers,
            export_retry: self.export_retry,
            batch: self.batch,
            keep_errors: self.keep_errors,
            ops: self.ops,
            limits: self.limits,
            trusted_peers: self.trusted_peers,
            excluded_routes,
            logs: self.logs,
        })
    }
}

fn names(headers: &[HeaderName]) -> Vec<String> {
    headers.iter().map(|h| h.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests;
