//! The plugin's settings: from code (builder-style setters) or from the
//! environment ([`SentryConfig::from_env`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use faultline_engine::config::ConfigError;
use faultline_engine::error::Severity;
use sentry::TransportFactory;
use sentry::types::{Dsn, ParseDsnError};

/// The variable holding the DSN (`https://<public key>@<host>/<project id>`).
pub const SENTRY_DSN: &str = "SENTRY_DSN";
/// The variable holding the environment name (`production`, `staging`, ...).
pub const SENTRY_ENVIRONMENT: &str = "SENTRY_ENVIRONMENT";
/// The variable holding the release name (`checkout@1.4.2`).
pub const SENTRY_RELEASE: &str = "SENTRY_RELEASE";
/// The variable holding the share of events sent, `0.0` to `1.0`.
pub const SENTRY_SAMPLE_RATE: &str = "SENTRY_SAMPLE_RATE";
/// The variable holding the lowest severity of application errors that
/// become events: `debug`, `info`, `warning`, `error` (the default) or
/// `critical`.
pub const FAULTLINE_SENTRY_MIN_SEVERITY: &str = "FAULTLINE_SENTRY_MIN_SEVERITY";

/// Every environment variable [`SentryConfig::from_env`] reads.
pub const ENV_VARIABLES: &[&str] = &[
    SENTRY_DSN,
    SENTRY_ENVIRONMENT,
    SENTRY_RELEASE,
    SENTRY_SAMPLE_RATE,
    FAULTLINE_SENTRY_MIN_SEVERITY,
];

/// The Sentry plugin's settings.
///
/// ```
/// use faultline_sentry::SentryConfig;
/// use faultline_sentry::engine::error::Severity;
///
/// let config = SentryConfig::new()
///     .dsn("https://0123456789abcdef@o1.ingest.example.com/42")
///     .environment("staging")
///     .release("checkout@1.4.2")
///     .min_severity(Severity::Warning)
///     .sample_rate(0.5);
/// config.validate()?;
/// // Debug output never shows the DSN's key.
/// assert!(!format!("{config:?}").contains("0123456789abcdef"));
/// # Ok::<(), faultline_sentry::engine::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SentryConfig {
    pub(crate) dsn: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) min_severity: Severity,
    pub(crate) sample_rate: f32,
    pub(crate) max_breadcrumbs: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) transport: Option<Arc<dyn TransportFactory>>,
}

impl Default for SentryConfig {
    fn default() -> Self {
        SentryConfig {
            dsn: None,
            environment: None,
            release: None,
            server_name: None,
            min_severity: Severity::Error,
            sample_rate: 1.0,
            max_breadcrumbs: 100,
            shutdown_timeout: Duration::from_secs(2),
            transport: None,
        }
    }
}

impl SentryConfig {
    /// Settings with no DSN yet, `min_severity` `Error`, every event sent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the DSN. It is checked by [`validate`](SentryConfig::validate)
    /// and by [`Sentry::new`](crate::Sentry::new); an error about it never
    /// shows it.
    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// Sets the environment events are tagged with (none by default).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the release events are tagged with (none by default).
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// Sets the server name events carry (the host name by default).
    pub fn server_name(mut self, server_name: impl Into<String>) -> Self {
        self.server_name = Some(server_name.into());
        self
    }

    /// Sets the lowest severity of application errors that become events
    /// (`Error` by default). Panics are always reported.
    pub fn min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = severity;
        self
    }

    /// Sets the share of events sent, from `0.0` to `1.0` (`1.0` by
    /// default); checked by [`validate`](SentryConfig::validate).
    pub fn sample_rate(mut self, rate: f32) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Sets how many breadcrumbs the hub keeps (100 by default).
    pub fn max_breadcrumbs(mut self, max: usize) -> Self {
        self.max_breadcrumbs = max;
        self
    }

    /// Sets how long dropping the last handle waits for queued events, and
    /// how long the panic hook waits for its event to leave (2 s by default).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Replaces the HTTP transport (sentry's reqwest transport by default),
    /// for example with `sentry::test::TestTransport` in tests.
    pub fn transport(mut self, transport: Arc<dyn TransportFactory>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The lowest severity of application errors that become events.
    pub fn min_severity_level(&self) -> Severity {
        self.min_severity
    }

    /// Whether a DSN is set.
    pub fn has_dsn(&self) -> bool {
        self.dsn.is_some()
    }

    /// Checks every setting: the DSN is present and well-formed, the sample
    /// rate lies in `0.0..=1.0`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parsed_dsn()?;
        check_sample_rate(self.sample_rate, &self.sample_rate.to_string())?;
        Ok(())
    }

    pub(crate) fn parsed_dsn(&self) -> Result<Dsn, ConfigError> {
        match &self.dsn {
            None => Err(ConfigError::invalid_secret(SENTRY_DSN, "no DSN is set")),
            Some(dsn) => parse_dsn(dsn),
        }
    }

    /// Settings from the process environment (see [`ENV_VARIABLES`]):
    /// `None` when `SENTRY_DSN` is unset or empty (Sentry is off), an error
    /// naming the variable when a value is invalid.
    pub fn from_env() -> Result<Option<SentryConfig>, ConfigError> {
        Self::with_env_from(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](SentryConfig::from_env), reading variables through
    /// `lookup` instead of the process environment. Empty values count as
    /// unset.
    ///
    /// ```
    /// use faultline_sentry::SentryConfig;
    ///
    /// let env = |name: &str| match name {
    ///     "SENTRY_DSN" => Some("https://0123456789abcdef@sentry.example.com/7".to_owned()),
    ///     "FAULTLINE_SENTRY_MIN_SEVERITY" => Some("warning".to_owned()),
    ///     _ => None,
    /// };
    /// let config = SentryConfig::with_env_from(env)?.expect("a DSN is set");
    /// assert_eq!(config.min_severity_level().as_str(), "warning");
    /// assert!(SentryConfig::with_env_from(|_| None)?.is_none());
    /// # Ok::<(), faultline_sentry::engine::config::ConfigError>(())
    /// ```
    pub fn with_env_from(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SentryConfig>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(dsn) = get(SENTRY_DSN) else {
            return Ok(None);
        };
        parse_dsn(&dsn)?;
        let mut config = SentryConfig::new().dsn(dsn);
        if let Some(environment) = get(SENTRY_ENVIRONMENT) {
            config = config.environment(environment);
        }
        if let Some(release) = get(SENTRY_RELEASE) {
            config = config.release(release);
        }
        if let Some(rate) = get(SENTRY_SAMPLE_RATE) {
            let parsed: f32 = rate.parse().map_err(|_| {
                ConfigError::invalid(
                    SENTRY_SAMPLE_RATE,
                    &rate,
                    "expected a number from 0.0 to 1.0",
                )
            })?;
            check_sample_rate(parsed, &rate)?;
            config = config.sample_rate(parsed);
        }
        if let Some(severity) = get(FAULTLINE_SENTRY_MIN_SEVERITY) {
            config = config.min_severity(parse_severity(&severity)?);
        }
        Ok(Some(config))
    }
}

/// A DSN for display: scheme, host, port and project, the key replaced.
pub(crate) fn redacted_dsn(dsn: &str) -> String {
    match dsn.parse::<Dsn>() {
        Ok(d) => format!(
            "{}://***@{}:{}/{}",
            d.scheme(),
            d.host(),
            d.port(),
            d.project_id()
        ),
        Err(_) => "(invalid, hidden)".to_owned(),
    }
}

impl fmt::Debug for SentryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryConfig")
            .field("dsn", &self.dsn.as_deref().map(redacted_dsn))
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("server_name", &self.server_name)
            .field("min_severity", &self.min_severity)
            .field("sample_rate", &self.sample_rate)
            .field("max_breadcrumbs", &self.max_breadcrumbs)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("custom_transport", &self.transport.is_some())
            .finish()
    }
}

fn parse_dsn(dsn: &str) -> Result<Dsn, ConfigError> {
    // The reasons are fixed texts: nothing of the value (its key) is echoed.
    dsn.parse::<Dsn>().map_err(|e| {
        let reason: Cow<'static, str> = match e {
            ParseDsnError::InvalidUrl => "not a URL".into(),
            ParseDsnError::NoUsername => "no public key before the host".into(),
            ParseDsnError::NoProjectId => "no project id at the end of the path".into(),
            ParseDsnError::InvalidScheme => "the scheme must be http or https".into(),
            ParseDsnError::InvalidProjectId(_) => "the project id is not valid".into(),
        };
        ConfigError::invalid_secret(
            SENTRY_DSN,
            format!("{reason} (expected https://<public key>@<host>/<project id>)"),
        )
    })
}

fn check_sample_rate(rate: f32, shown: &str) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            SENTRY_SAMPLE_RATE,
            shown,
            "expected a number from 0.0 to 1.0",
        ))
    }
}

fn parse_severity(value: &str) -> Result<Severity, ConfigError> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "debug" => Severity::Debug,
        "info" => Severity::Info,
        "warning" | "warn" => Severity::Warning,
        "error" => Severity::Error,
        "critical" => Severity::Critical,
        _ => {
            return Err(ConfigError::invalid(
                FAULTLINE_SENTRY_MIN_SEVERITY,
                value,
                "expected debug, info, warning, error or critical",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "5f3c9a1be7d24c6f8e0a1b2c3d4e5f60";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn dsn() -> String {
        format!("https://{KEY}@o17.ingest.example.com/4242")
    }

    #[test]
    fn unset_or_empty_dsn_means_off() {
        assert!(SentryConfig::with_env_from(env(&[])).unwrap().is_none());
        assert!(
            SentryConfig::with_env_from(env(&[(SENTRY_DSN, "  "), (SENTRY_SAMPLE_RATE, "7")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_variable_is_read() {
        let d = dsn();
        let c = SentryConfig::with_env_from(env(&[
            (SENTRY_DSN, &d),
            (SENTRY_ENVIRONMENT, "staging"),
            (SENTRY_RELEASE, "checkout@1.4.2"),
            (SENTRY_SAMPLE_RATE, "0.25"),
            (FAULTLINE_SENTRY_MIN_SEVERITY, "Critical"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.dsn.as_deref(), Some(d.as_str()));
        assert_eq!(c.environment.as_deref(), Some("staging"));
        assert_eq!(c.release.as_deref(), Some("checkout@1.4.2"));
        assert_eq!(c.sample_rate, 0.25);
        assert_eq!(c.min_severity, Severity::Critical);
        c.validate().unwrap();
        assert_eq!(ENV_VARIABLES.len(), 5);
    }

    #[test]
    fn defaults() {
        let c = SentryConfig::with_env_from(env(&[(SENTRY_DSN, &dsn())]))
            .unwrap()
            .unwrap();
        assert_eq!(c.min_severity, Severity::Error);
        assert_eq!(c.sample_rate, 1.0);
        assert!(c.environment.is_none() && c.release.is_none());
    }

    #[test]
    fn invalid_dsns_are_one_line_errors_naming_the_variable_without_the_key() {
        for bad in [
            KEY.to_owned(),
            format!("ftp://{KEY}@sentry.example.com/1"),
            "https://sentry.example.com/1".to_owned(),
            format!("https://{KEY}@sentry.example.com/"),
            format!("https://{KEY}:{KEY}x@sentry example.com/1"),
        ] {
            let err = SentryConfig::with_env_from(env(&[(SENTRY_DSN, &bad)]))
                .expect_err(&format!("accepted {bad:?}"));
            let text = err.to_string();
            assert!(text.starts_with("SENTRY_DSN: "), "{text}");
            assert!(!text.contains('\n'), "{text}");
            assert!(!text.contains(KEY), "{text}");
            assert!(!format!("{err:?}").contains(KEY));
            assert_eq!(err.setting(), Some(SENTRY_DSN));
            // The builder path says the same.
            let err = SentryConfig::new().dsn(bad.clone()).validate().unwrap_err();
            assert!(!err.to_string().contains(KEY));
            assert_eq!(err.setting(), Some(SENTRY_DSN));
        }
        let missing = SentryConfig::new().validate().unwrap_err();
        assert_eq!(missing.setting(), Some(SENTRY_DSN));
    }

    #[test]
    fn invalid_rate_and_severity_name_their_variable() {
        let d = dsn();
        for rate in ["1.5", "-0.1", "half", "NaN"] {
            let err =
                SentryConfig::with_env_from(env(&[(SENTRY_DSN, &d), (SENTRY_SAMPLE_RATE, rate)]))
                    .unwrap_err();
            assert_eq!(err.setting(), Some(SENTRY_SAMPLE_RATE), "{rate}");
        }
        let err = SentryConfig::with_env_from(env(&[
            (SENTRY_DSN, &d),
            (FAULTLINE_SENTRY_MIN_SEVERITY, "loud"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), Some(FAULTLINE_SENTRY_MIN_SEVERITY));
        assert!(err.to_string().contains("\"loud\""));
        let err = SentryConfig::new()
            .dsn(d)
            .sample_rate(f32::NAN)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting(), Some(SENTRY_SAMPLE_RATE));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret_form = format!("https://{KEY}:legacysecret99@sentry.example.com:9000/3");
        for dsn in [dsn(), secret_form, format!("not a dsn {KEY}")] {
            let text = format!("{:?}", SentryConfig::new().dsn(dsn));
            assert!(!text.contains(KEY), "{text}");
            assert!(!text.contains("legacysecret99"), "{text}");
        }
        let text = format!("{:?}", SentryConfig::new().dsn(dsn()));
        assert!(
            text.contains("https://***@o17.ingest.example.com:443/4242"),
            "{text}"
        );
    }
}
