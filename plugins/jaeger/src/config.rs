//! The plugin's settings: from code (builder-style setters) or from the
//! environment ([`JaegerConfig::with_env_from`]).

use faultline_engine::config::{ConfigError, ExporterKind, TracingConfig, rules};
use faultline_engine::{EngineBuilder, ExporterContext};

use crate::{JaegerError, JaegerExporter};

/// The variable holding the agent's host (default `localhost`).
pub const OTEL_EXPORTER_JAEGER_AGENT_HOST: &str = "OTEL_EXPORTER_JAEGER_AGENT_HOST";
/// The variable holding the agent's UDP port (default 6831).
pub const OTEL_EXPORTER_JAEGER_AGENT_PORT: &str = "OTEL_EXPORTER_JAEGER_AGENT_PORT";
/// The variable holding the collector's endpoint
/// (`http(s)://host:14268/api/traces`); when set, spans go there.
pub const OTEL_EXPORTER_JAEGER_ENDPOINT: &str = "OTEL_EXPORTER_JAEGER_ENDPOINT";

/// Every environment variable [`JaegerConfig::with_env_from`] reads.
pub const ENV_VARIABLES: &[&str] = &[
    OTEL_EXPORTER_JAEGER_AGENT_HOST,
    OTEL_EXPORTER_JAEGER_AGENT_PORT,
    OTEL_EXPORTER_JAEGER_ENDPOINT,
];

/// The Jaeger plugin's settings: an agent's address, or a collector's
/// endpoint (which wins when set).
///
/// ```
/// use faultline_jaeger::JaegerConfig;
///
/// let config = JaegerConfig::new().agent("127.0.0.1", 6832);
/// config.validate()?;
/// assert_eq!(config.agent_port(), 6832);
/// let env = |name: &str| (name == "OTEL_EXPORTER_JAEGER_AGENT_PORT").then(|| "70000".to_owned());
/// let err = JaegerConfig::new().with_env_from(env).unwrap_err();
/// assert!(err.to_string().starts_with("OTEL_EXPORTER_JAEGER_AGENT_PORT: "));
/// # Ok::<(), faultline_jaeger::engine::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JaegerConfig {
    agent_host: String,
    agent_port: u16,
    endpoint: Option<String>,
}

impl Default for JaegerConfig {
    fn default() -> Self {
        JaegerConfig {
            agent_host: "localhost".to_owned(),
            agent_port: 6831,
            endpoint: None,
        }
    }
}

impl JaegerConfig {
    /// The defaults: the agent at `localhost:6831`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults overridden by the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::default().with_env_from(rules::process_env)
    }

    /// Overrides these settings with the variables of [`ENV_VARIABLES`]
    /// looked up through `lookup` (an empty value counts as unset); a
    /// malformed value is an error naming its variable.
    pub fn with_env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(host) = get(OTEL_EXPORTER_JAEGER_AGENT_HOST) {
            let host = host.trim().to_owned();
            rules::host(OTEL_EXPORTER_JAEGER_AGENT_HOST, &host)?;
            self.agent_host = host;
        }
        if let Some(port) = get(OTEL_EXPORTER_JAEGER_AGENT_PORT) {
            self.agent_port = rules::parse_port(OTEL_EXPORTER_JAEGER_AGENT_PORT, &port)?;
        }
        if let Some(url) = get(OTEL_EXPORTER_JAEGER_ENDPOINT) {
            rules::endpoint_url(OTEL_EXPORTER_JAEGER_ENDPOINT, &url)?;
            self.endpoint = Some(url.trim().to_owned());
        }
        Ok(self)
    }

    /// The agent's address (default `localhost:6831`).
    pub fn agent(mut self, host: impl Into<String>, port: u16) -> Self {
        self.agent_host = host.into();
        self.agent_port = port;
        self
    }
    /// The collector's endpoint (`http(s)://host:14268/api/traces`); when
    /// set, spans go there over HTTP instead of to the agent.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The agent's host.
    pub fn agent_host(&self) -> &str {
        &self.agent_host
    }
    /// The agent's UDP port.
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }
    /// The collector's endpoint, if set.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Checks every setting: the agent's host and port, the collector's
    /// endpoint; the error names the setting (`jaeger_agent_host`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        rules::host("jaeger_agent_host", &self.agent_host)?;
        rules::port("jaeger_agent_port", u32::from(self.agent_port))?;
        if let Some(url) = &self.endpoint {
            rules::endpoint_url("jaeger_endpoint", url)?;
        }
        Ok(())
    }

    /// Registers the Jaeger exporter, under the name `jaeger`, on
    /// `builder`, made with these settings when the engine's configuration
    /// names it (`OTEL_TRACES_EXPORTER=jaeger`).
    pub fn register(self, builder: EngineBuilder) -> EngineBuilder {
        builder.exporter_factory(ExporterKind::JAEGER, move |cx: &ExporterContext<'_>| {
            Ok(Box::new(JaegerExporter::new(&self, cx.config())?))
        })
    }
}

impl JaegerExporter {
    /// The exporter `config` describes: to the collector when its endpoint
    /// is set, otherwise to the agent; with `engine`'s export timeout and
    /// service name.
    pub fn new(config: &JaegerConfig, engine: &TracingConfig) -> Result<Self, JaegerError> {
        config.validate()?;
        let builder = JaegerExporter::builder()
            .timeout(engine.export_retry().timeout())
            .service_name(engine.service_name());
        match &config.endpoint {
            Some(url) => builder.collector(url.trim())?,
            None => builder.agent(config.agent_host.clone(), config.agent_port),
        }
        .build()
    }
}
