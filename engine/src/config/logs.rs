//! The logs settings: which log exporters (`OTEL_LOGS_EXPORTER`), the log
//! line format (`FAULTLINE_LOG_FORMAT`), and the OTLP settings of the logs
//! signal (`OTEL_EXPORTER_OTLP_LOGS_*`, each over its `OTEL_EXPORTER_OTLP_*`
//! counterpart).

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use url::Url;

use super::validate as v;
use super::{Compression, ConfigError, OtlpProtocol, TracingConfig, TracingConfigBuilder};

/// How faultline's `tracing` subscriber writes log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable (`FAULTLINE_LOG_FORMAT=text`, the default): the level
    /// coloured only on a terminal, then `trace_id=… span_id=…`.
    #[default]
    Text,
    /// One JSON object per line (`FAULTLINE_LOG_FORMAT=json`) with
    /// top-level `trace_id` and `span_id`.
    Json,
}

/// The logs settings, inside [`TracingConfig`] ([`TracingConfig::logs`]).
#[derive(Clone, PartialEq)]
pub struct LogsSettings {
    exporters: Vec<String>,
    exporters_set: bool,
    format: LogFormat,
    endpoint: Option<String>,
    protocol: Option<OtlpProtocol>,
    headers: Vec<(HeaderName, String)>,
    compression: Option<Compression>,
    timeout: Option<Duration>,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            exporters: vec!["otlp".to_owned()],
            exporters_set: false,
            format: LogFormat::Text,
            endpoint: None,
            protocol: None,
            headers: Vec::new(),
            compression: None,
            timeout: None,
        }
    }
}

impl fmt::Debug for LogsSettings {
    /// Never prints header values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogsSettings")
            .field("exporters", &self.exporters)
            .field("format", &self.format)
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| format!("{k}: [REDACTED]"))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl LogsSettings {
    /// The log exporters by name, in order (default `otlp`, as the
    /// OpenTelemetry specification says; empty: `none`).
    pub fn exporters(&self) -> &[String] {
        &self.exporters
    }
    /// Whether the exporters were chosen (in code or by
    /// `OTEL_LOGS_EXPORTER`) rather than left at the default: a default
    /// `otlp` whose plugin is not registered exports no logs, a chosen one
    /// is an error.
    pub fn exporters_chosen(&self) -> bool {
        self.exporters_set
    }
    /// The log line format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Reads `OTEL_LOGS_EXPORTER`, `OTEL_EXPORTER_OTLP_LOGS_*` and
    /// `FAULTLINE_LOG_FORMAT`.
    pub(super) fn read_env(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(list) = get("OTEL_LOGS_EXPORTER") {
            let names = parse_names("OTEL_LOGS_EXPORTER", &list)?;
            self.set_exporters(names);
        }
        if let Some(f) = get("FAULTLINE_LOG_FORMAT") {
            self.format = match f.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::invalid(
                        "FAULTLINE_LOG_FORMAT",
                        &f,
                        "must be text or json",
                    ));
                }
            };
        }
        if let Some(url) = get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") {
            v::endpoint_url("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &url)?;
            self.endpoint = Some(url.trim().to_owned());
        }
        if let Some(p) = get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL") {
            self.protocol = Some(super::env::otlp_protocol(
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                &p,
            )?);
        }
        if let Some(h) = get("OTEL_EXPORTER_OTLP_LOGS_HEADERS") {
            let var = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
            for (name, value) in super::env::parse_key_values(var, &h, true)? {
                self.headers.push(v::export_header(var, &name, &value)?);
            }
        }
        if let Some(c) = get("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION") {
            self.compression = Some(super::env::compression(
                "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
                &c,
            )?);
        }
        if let Some(t) = get("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT") {
            self.timeout = Some(super::env::millis("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", &t)?);
        }
        Ok(())
    }

    fn set_exporters(&mut self, names: Vec<String>) {
        self.exporters = names;
        self.exporters_set = true;
    }

    /// Checks what the builder's setters left unchecked.
    pub(super) fn checked(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint {
            v::endpoint_url("otlp_logs_endpoint", url)?;
        }
        Ok(())
    }
}

/// A comma list of exporter names, lowercased; `none` alone means none.
fn parse_names(var: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = item.to_ascii_lowercase();
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::invalid(var, item, "not an exporter name"));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.iter().any(|n| n == "none") {
        if names.len() > 1 {
            return Err(ConfigError::invalid(
                var,
                text,
                "none cannot be combined with other exporters",
            ));
        }
        names.clear();
    }
    Ok(names)
}

impl TracingConfigBuilder {
    /// The log exporters by name (`otlp`, `console`, or any registered with
    /// [`EngineBuilder::log_exporter_factory`](crate::EngineBuilder::log_exporter_factory));
    /// none for no log export. Default: `otlp`.
    pub fn logs_exporters<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = names
            .into_iter()
            .map(|n| n.as_ref().trim().to_ascii_lowercase())
            .filter(|n| n != "none")
            .collect();
        self.logs.set_exporters(names);
        self
    }

    /// The format of the log lines faultline's `tracing` subscriber writes.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.logs.format = format;
        self
    }

    /// The URL OTLP log exports go to, used as it is
    /// (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`).
    pub fn otlp_logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.logs.endpoint = Some(url.into());
        self
    }
}

impl TracingConfig {
    /// The logs settings.
    pub fn logs(&self) -> &LogsSettings {
        &self.logs
    }

    /// The OTLP protocol of log exports (`OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`,
    /// else the traces').
    pub fn otlp_logs_protocol(&self) -> OtlpProtocol {
        self.logs.protocol.unwrap_or(self.otlp_protocol)
    }

    /// The URL log exports go to: the logs endpoint as it is; else the base
    /// endpoint (with `/v1/logs` appended for HTTP); else the protocol's
    /// default.
    pub fn otlp_logs_endpoint(&self) -> Url {
        if let Some(url) = self
            .logs
            .endpoint
            .as_deref()
            .and_then(|u| Url::parse(u.trim()).ok())
        {
            return url;
        }
        let default = match self.otlp_logs_protocol() {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        };
        let mut url = self
            .otlp_endpoint
            .clone()
            .unwrap_or_else(|| Url::parse(default).expect("valid default"));
        if self.otlp_logs_protocol() == OtlpProtocol::HttpProtobuf {
            let path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{path}/v1/logs"));
        }
        url
    }

    /// Headers of log exports: the OTLP headers, with the logs' own
    /// (`OTEL_EXPORTER_OTLP_LOGS_HEADERS`) over them.
    pub fn otlp_logs_headers(&self) -> Vec<(HeaderName, String)> {
        let mut headers: Vec<(HeaderName, String)> = self
            .otlp_headers
            .iter()
            .filter(|(k, _)| !self.logs.headers.iter().any(|(l, _)| l == k))
            .cloned()
            .collect();
        headers.extend(self.logs.headers.iter().cloned());
        headers
    }

    /// Compression of log exports.
    pub fn otlp_logs_compression(&self) -> Compression {
        self.logs.compression.unwrap_or(self.otlp_compression)
    }

    /// The time limit of one log export.
    pub fn otlp_logs_timeout(&self) -> Duration {
        self.logs.timeout.unwrap_or(self.export_retry.timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TracingConfig::builder()
            .with_env_from(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })?
            .build()
    }

    #[test]
    fn defaults_follow_the_specification() {
        let c = from(&[]).unwrap();
        assert_eq!(c.logs().exporters(), ["otlp"]);
        assert!(!c.logs().exporters_chosen());
        assert_eq!(c.logs().format(), LogFormat::Text);
        assert_eq!(c.otlp_logs_endpoint().as_str(), "http://localhost:4317/");
    }

    #[test]
    fn logs_endpoints_and_names() {
        let c = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_LOGS_EXPORTER", "Console, viewer"),
            ("FAULTLINE_LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(
            c.otlp_logs_endpoint().as_str(),
            "http://collector:4318/base/v1/logs"
        );
        assert_eq!(c.logs().exporters(), ["console", "viewer"]);
        assert!(c.logs().exporters_chosen());
        assert_eq!(c.logs().format(), LogFormat::Json);
        let c = from(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999/x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "b=3"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .unwrap();
        assert_eq!(c.otlp_logs_endpoint().as_str(), "http://logs:9999/x");
        let headers: Vec<_> = c
            .otlp_logs_headers()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(headers, ["a=1", "b=3"]);
        assert!(c.logs().exporters().is_empty());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("FAULTLINE_LOG_FORMAT", "xml"),
            ("OTEL_LOGS_EXPORTER", "none,otlp"),
            ("OTEL_LOGS_EXPORTER", "ot lp"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://x"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ] {
            let e = from(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(var), "{e}");
        }
    }
}
