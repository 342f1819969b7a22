//! The logs settings: which log exporters (`OTEL_LOGS_EXPORTER`) and the
//! log line format (`FAULTLINE_LOG_FORMAT`). Where an exporter sends them
//! is its plugin's setting (the OTLP plugin's for `otlp`).

use super::{ConfigError, TracingConfig, TracingConfigBuilder};

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
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogsSettings {
    exporters: Vec<String>,
    exporters_set: bool,
    format: LogFormat,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            exporters: vec!["otlp".to_owned()],
            exporters_set: false,
            format: LogFormat::Text,
        }
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

    /// Reads `OTEL_LOGS_EXPORTER` and `FAULTLINE_LOG_FORMAT`.
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
        Ok(())
    }

    fn set_exporters(&mut self, names: Vec<String>) {
        self.exporters = names;
        self.exporters_set = true;
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
}

impl TracingConfig {
    /// The logs settings.
    pub fn logs(&self) -> &LogsSettings {
        &self.logs
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
    }

    #[test]
    fn logs_exporter_names_and_format() {
        let c = from(&[
            ("OTEL_LOGS_EXPORTER", "Console, viewer"),
            ("FAULTLINE_LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(c.logs().exporters(), ["console", "viewer"]);
        assert!(c.logs().exporters_chosen());
        assert_eq!(c.logs().format(), LogFormat::Json);
        let c = from(&[("OTEL_LOGS_EXPORTER", "none")]).unwrap();
        assert!(c.logs().exporters().is_empty());
        assert!(c.logs().exporters_chosen());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("FAULTLINE_LOG_FORMAT", "xml"),
            ("OTEL_LOGS_EXPORTER", "none,otlp"),
            ("OTEL_LOGS_EXPORTER", "ot lp"),
        ] {
            let e = from(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(var), "{e}");
        }
    }
}
