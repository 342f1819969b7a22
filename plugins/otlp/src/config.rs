//! The plugin's settings: from code (builder-style setters) or from the
//! environment ([`OtlpConfig::with_env_from`]), for traces and for logs.
//!
//! Each setting has a general form (`OTEL_EXPORTER_OTLP_ENDPOINT`, set by
//! [`OtlpConfig::endpoint`]) and one per signal
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`,
//! set through [`OtlpConfig::traces`] and [`OtlpConfig::logs`]); a signal's
//! own value wins, as the OpenTelemetry specification says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_engine::config::{ConfigError, TlsConfig, rules};
use url::Url;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, path `/v1/traces`
    /// or `/v1/logs`).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name used in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The protocol named by `text` (`grpc`, `http/protobuf`), an error
    /// naming `setting` otherwise.
    pub fn parse(setting: &str, text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Err(ConfigError::invalid(
                setting,
                text,
                "http/json is not supported; use grpc or http/protobuf",
            )),
            _ => Err(ConfigError::invalid(
                setting,
                text,
                "must be grpc or http/protobuf",
            )),
        }
    }
}

/// Compression of export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
}

impl Compression {
    /// The compression named by `text` (`gzip`, `none`), an error naming
    /// `setting` otherwise.
    pub fn parse(setting: &str, text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip),
            "none" => Ok(Compression::None),
            _ => Err(ConfigError::invalid(setting, text, "must be gzip or none")),
        }
    }
}

/// An OpenTelemetry signal the plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
}

impl Signal {
    /// The path OTLP/HTTP appends to the general endpoint.
    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Logs => "v1/logs",
        }
    }

    /// The signal's part of setting and variable names.
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

/// Every environment variable [`OtlpConfig::with_env_from`] reads.
pub const ENV_VARIABLES: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
];

/// The longest an export attempt may be given.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The settings of one level: every signal's (`OTEL_EXPORTER_OTLP_*`) or
/// one signal's own (`OTEL_EXPORTER_OTLP_TRACES_*`, `..._LOGS_*`). Unset
/// values fall back to the general level, then to the defaults.
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OtlpTarget {
    endpoint: Option<String>,
    protocol: Option<OtlpProtocol>,
    headers: Vec<(String, String)>,
    compression: Option<Compression>,
    timeout: Option<Duration>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl std::fmt::Debug for OtlpTarget {
    /// Never prints header values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTarget")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &redacted(&self.headers))
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

fn redacted(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .map(|(k, _)| format!("{k}: [REDACTED]"))
        .collect()
}

impl OtlpTarget {
    /// The endpoint (`http(s)://host:port`). On the general level, OTLP/HTTP
    /// appends `/v1/traces` or `/v1/logs`; a signal's own is used as it is.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }
    /// The transport (default gRPC).
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }
    /// Adds a header sent with every export (replacing one of the same
    /// name; a signal's header replaces the general one of its name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().trim().to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.into()));
        self
    }
    /// Compression of export requests (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }
    /// The longest one export request may take (default: the engine's
    /// export timeout; 1 ms to 600 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// The certificate authority (PEM) that verifies the backend (default:
    /// the system roots).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    /// Client certificate and private key (PEM) for mutual TLS.
    pub fn client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Reads the variables `{prefix}ENDPOINT`, `{prefix}PROTOCOL`, ... over
    /// this level's values, each checked as it is read (the error names
    /// the variable).
    fn read_env(
        &mut self,
        prefix: &str,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let var = |name: &str| format!("{prefix}{name}");
        let read = |name: &str| {
            let var = var(name);
            get(&var).map(|value| (var, value))
        };
        if let Some((var, url)) = read("ENDPOINT") {
            rules::endpoint_url(&var, &url)?;
            self.endpoint = Some(url.trim().to_owned());
        }
        if let Some((var, text)) = read("PROTOCOL") {
            self.protocol = Some(OtlpProtocol::parse(&var, &text)?);
        }
        if let Some((var, text)) = read("HEADERS") {
            for (name, value) in rules::key_values(&var, &text, true)? {
                rules::export_header(&var, &name, &value)?;
                *self = std::mem::take(self).header(name, value);
            }
        }
        if let Some((var, text)) = read("COMPRESSION") {
            self.compression = Some(Compression::parse(&var, &text)?);
        }
        if let Some((var, text)) = read("TIMEOUT") {
            let timeout = rules::millis(&var, &text)?;
            rules::duration_within(&var, timeout, Duration::from_millis(1), MAX_TIMEOUT)?;
            self.timeout = Some(timeout);
        }
        let file = |name: &str, key: bool| -> Result<Option<PathBuf>, ConfigError> {
            let Some((var, text)) = read(name) else {
                return Ok(None);
            };
            let path = PathBuf::from(text.trim());
            if !path.is_file() {
                return Err(ConfigError::invalid(
                    &var,
                    &path.display().to_string(),
                    "no such file",
                ));
            }
            rules::tls_file(&var, &path, key)?;
            Ok(Some(path))
        };
        if let Some(path) = file("CERTIFICATE", false)? {
            self.ca_file = Some(path);
        }
        if let Some(path) = file("CLIENT_CERTIFICATE", false)? {
            self.client_cert = Some(path);
        }
        if let Some(path) = file("CLIENT_KEY", true)? {
            self.client_key = Some(path);
        }
        Ok(())
    }
}

/// A client certificate without its key (or the other way round) for
/// `signal`, the error naming the variable of the half that is there.
fn lone_half(general: &OtlpTarget, own: &OtlpTarget, signal: Signal) -> Result<(), ConfigError> {
    let cert = own.client_cert.is_some() || general.client_cert.is_some();
    let key = own.client_key.is_some() || general.client_key.is_some();
    let (name, set_on_own, which) = match (cert, key) {
        (true, false) => (
            "CLIENT_CERTIFICATE",
            own.client_cert.is_some(),
            "client_cert only",
        ),
        (false, true) => ("CLIENT_KEY", own.client_key.is_some(), "client_key only"),
        _ => return Ok(()),
    };
    let var = if set_on_own {
        format!(
            "OTEL_EXPORTER_OTLP_{}_{name}",
            signal.name().to_ascii_uppercase()
        )
    } else {
        format!("OTEL_EXPORTER_OTLP_{name}")
    };
    Err(ConfigError::invalid(
        var,
        which,
        "a client certificate and its key go together",
    ))
}

/// The OTLP plugin's settings, for traces and logs.
///
/// ```
/// use faultline_otlp::{Compression, OtlpConfig, OtlpProtocol, Signal};
///
/// let config = OtlpConfig::new()
///     .protocol(OtlpProtocol::HttpProtobuf)
///     .endpoint("https://collector.internal:4318")
///     .header("authorization", "Bearer s3cr3t")
///     .logs(|logs| logs.compression(Compression::Gzip));
/// let traces = config.resolve(Signal::Traces)?;
/// assert_eq!(traces.endpoint().as_str(), "https://collector.internal:4318/v1/traces");
/// assert_eq!(config.resolve(Signal::Logs)?.compression(), Compression::Gzip);
/// // Debug output never shows a header's value.
/// assert!(!format!("{config:?}").contains("s3cr3t"));
/// # Ok::<(), faultline_otlp::engine::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    general: OtlpTarget,
    traces: OtlpTarget,
    logs: OtlpTarget,
}

impl OtlpConfig {
    /// The defaults: OTLP/gRPC to `http://localhost:4317`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults overridden by the process environment (see
    /// [`with_env_from`](OtlpConfig::with_env_from)).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::default().with_env_from(rules::process_env)
    }

    /// Overrides these settings with the variables of [`ENV_VARIABLES`]
    /// looked up through `lookup`; an empty value counts as unset. A
    /// malformed value, a TLS file that is missing or holds no PEM block,
    /// or a client certificate without its key, is an error naming the
    /// variable.
    ///
    /// ```
    /// use faultline_otlp::{OtlpConfig, OtlpProtocol, Signal};
    ///
    /// let env = |name: &str| match name {
    ///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
    ///     "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
    ///     _ => None,
    /// };
    /// let config = OtlpConfig::new().with_env_from(env)?;
    /// let logs = config.resolve(Signal::Logs)?;
    /// assert_eq!(logs.endpoint().as_str(), "http://collector:4318/v1/logs");
    /// assert_eq!(logs.protocol(), OtlpProtocol::HttpProtobuf);
    ///
    /// let bad = |name: &str| (name == "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL").then(|| "http/json".to_owned());
    /// let err = OtlpConfig::new().with_env_from(bad).unwrap_err();
    /// assert!(err.to_string().starts_with("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "));
    /// # Ok::<(), faultline_otlp::engine::config::ConfigError>(())
    /// ```
    pub fn with_env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        self.general.read_env("OTEL_EXPORTER_OTLP_", &get)?;
        self.traces.read_env("OTEL_EXPORTER_OTLP_TRACES_", &get)?;
        self.logs.read_env("OTEL_EXPORTER_OTLP_LOGS_", &get)?;
        lone_half(&self.general, &self.traces, Signal::Traces)?;
        lone_half(&self.general, &self.logs, Signal::Logs)?;
        Ok(self)
    }

    /// The general endpoint (`http(s)://host:port`); OTLP/HTTP appends
    /// `/v1/traces` or `/v1/logs`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.general = self.general.endpoint(url);
        self
    }
    /// The traces endpoint, used as it is.
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.traces = self.traces.endpoint(url);
        self
    }
    /// The logs endpoint, used as it is.
    pub fn logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.logs = self.logs.endpoint(url);
        self
    }
    /// The transport of both signals (default gRPC).
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.general = self.general.protocol(protocol);
        self
    }
    /// Adds a header sent with every export of both signals.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.general = self.general.header(name, value);
        self
    }
    /// Compression of both signals' exports.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.general = self.general.compression(compression);
        self
    }
    /// The longest one export request may take (default: the engine's
    /// export timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.general = self.general.timeout(timeout);
        self
    }
    /// The certificate authority (PEM) that verifies the backend.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.general = self.general.ca_file(path);
        self
    }
    /// Client certificate and private key (PEM) for mutual TLS.
    pub fn client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.general = self.general.client_identity(cert, key);
        self
    }
    /// The traces' own settings, over the general ones.
    pub fn traces(mut self, f: impl FnOnce(OtlpTarget) -> OtlpTarget) -> Self {
        self.traces = f(self.traces);
        self
    }
    /// The logs' own settings, over the general ones.
    pub fn logs(mut self, f: impl FnOnce(OtlpTarget) -> OtlpTarget) -> Self {
        self.logs = f(self.logs);
        self
    }

    /// Checks every setting of both signals; the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resolve(Signal::Traces)?;
        self.resolve(Signal::Logs)?;
        Ok(())
    }

    /// What `signal`'s exports use: its own values over the general ones
    /// over the defaults, checked (an error names the setting, as
    /// `otlp_logs_endpoint` or `otlp_tls.ca_file`).
    pub fn resolve(&self, signal: Signal) -> Result<SignalSettings, ConfigError> {
        let (own, general) = (self.own(signal), &self.general);
        let name = signal.name();
        let protocol = own.protocol.or(general.protocol).unwrap_or_default();
        let endpoint = match (&own.endpoint, &general.endpoint) {
            (Some(url), _) => rules::endpoint_url(&format!("otlp_{name}_endpoint"), url)?,
            (None, Some(url)) => {
                let url = rules::endpoint_url("otlp_endpoint", url)?;
                with_signal_path(url, protocol, signal)
            }
            (None, None) => {
                let default = match protocol {
                    OtlpProtocol::Grpc => "http://localhost:4317",
                    OtlpProtocol::HttpProtobuf => "http://localhost:4318",
                };
                let url = Url::parse(default).expect("a valid default endpoint");
                with_signal_path(url, protocol, signal)
            }
        };
        let mut headers = Vec::new();
        for (level, setting) in [
            (general, "otlp_headers".to_owned()),
            (own, format!("otlp_{name}_headers")),
        ] {
            for (k, v) in &level.headers {
                let (header, value) = rules::export_header(&setting, k, v)?;
                headers.retain(|(h, _): &(String, String)| *h != header.as_str());
                headers.push((header.as_str().to_owned(), value));
            }
        }
        let timeout = own.timeout.or(general.timeout);
        if let Some(timeout) = timeout {
            rules::duration_within(
                "otlp_timeout",
                timeout,
                Duration::from_millis(1),
                MAX_TIMEOUT,
            )?;
        }
        let either =
            |f: fn(&OtlpTarget) -> &Option<PathBuf>| f(own).clone().or_else(|| f(general).clone());
        let tls = rules::tls(
            "otlp_tls",
            either(|t| &t.ca_file),
            either(|t| &t.client_cert),
            either(|t| &t.client_key),
        )?;
        Ok(SignalSettings {
            endpoint,
            protocol,
            headers,
            compression: own.compression.or(general.compression).unwrap_or_default(),
            timeout,
            tls,
        })
    }

    fn own(&self, signal: Signal) -> &OtlpTarget {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
        }
    }
}

/// The general endpoint of `signal`: as it is for gRPC, with `/v1/traces`
/// or `/v1/logs` appended for OTLP/HTTP.
fn with_signal_path(mut url: Url, protocol: OtlpProtocol, signal: Signal) -> Url {
    if protocol == OtlpProtocol::HttpProtobuf {
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/{}", signal.http_path()));
    }
    url
}

/// One signal's checked export settings ([`OtlpConfig::resolve`]).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SignalSettings {
    endpoint: Url,
    protocol: OtlpProtocol,
    headers: Vec<(String, String)>,
    compression: Compression,
    timeout: Option<Duration>,
    tls: TlsConfig,
}

impl std::fmt::Debug for SignalSettings {
    /// Never prints header values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("protocol", &self.protocol)
            .field("headers", &redacted(&self.headers))
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SignalSettings {
    /// The URL exports go to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
    /// The transport.
    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }
    /// Headers sent with every export, names lowercase (often
    /// credentials: never logged).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// Compression of export requests.
    pub fn compression(&self) -> Compression {
        self.compression
    }
    /// The time limit of one export request, when set (else the engine's
    /// export timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The TLS files.
    pub fn tls(&self) -> &TlsConfig {
        &self.tls
    }
}

/// Reads a TLS file now (a missing file is an error at start).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, crate::OtlpError> {
    std::fs::read(path).map_err(|source| crate::OtlpError::Tls {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
