//! The plugin's settings: defaults, builder setters and `FAULTLINE_METRICS_*`
//! environment variables.

use std::time::Duration;

use faultline_engine::config::ConfigError;

/// Default bound on live per-trace error series
/// ([`PrometheusConfig::trace_id_series`]).
pub const DEFAULT_TRACE_ID_SERIES: usize = 100;
/// Default idle expiry of a per-trace error series
/// ([`PrometheusConfig::trace_id_ttl`]): 5 minutes.
pub const DEFAULT_TRACE_ID_TTL: Duration = Duration::from_secs(300);
/// Default latency histogram buckets, in seconds: the OpenTelemetry HTTP
/// semantic conventions' advice for `http.server.request.duration`.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Most live per-trace error series that can be configured.
pub const MAX_TRACE_ID_SERIES: usize = 100_000;
/// Longest idle expiry that can be configured: one day.
pub const MAX_TRACE_ID_TTL: Duration = Duration::from_secs(86_400);
/// Most histogram buckets that can be configured.
pub const MAX_BUCKETS: usize = 64;

/// Bound on live per-trace error series; `0` turns the `trace_id`-labelled
/// series off (exemplars still carry trace ids).
pub const ENV_TRACE_ID_SERIES: &str = "FAULTLINE_METRICS_TRACE_ID_SERIES";
/// Seconds after which an idle per-trace error series is dropped.
pub const ENV_TRACE_ID_TTL_SECS: &str = "FAULTLINE_METRICS_TRACE_ID_TTL_SECS";
/// Whether OpenMetrics exemplars carry trace and span ids (`true`/`false`).
pub const ENV_EXEMPLARS: &str = "FAULTLINE_METRICS_EXEMPLARS";
/// Latency histogram bucket bounds in seconds, comma separated, increasing.
pub const ENV_BUCKETS: &str = "FAULTLINE_METRICS_BUCKETS";

/// Every environment variable [`PrometheusConfig::from_env`] reads.
pub const ENV_VARIABLES: &[&str] = &[
    ENV_TRACE_ID_SERIES,
    ENV_TRACE_ID_TTL_SECS,
    ENV_EXEMPLARS,
    ENV_BUCKETS,
];

/// The Prometheus plugin's settings.
///
/// Defaults ([`Default`]): at most [`DEFAULT_TRACE_ID_SERIES`] (100) live
/// per-trace error series, each dropped after [`DEFAULT_TRACE_ID_TTL`]
/// (5 minutes) without a new error; exemplars on; latency buckets
/// [`DEFAULT_BUCKETS`].
///
/// ```
/// use std::time::Duration;
/// use faultline_prometheus::PrometheusConfig;
///
/// let config = PrometheusConfig::default()
///     .trace_id_series(50)
///     .trace_id_ttl(Duration::from_secs(120))
///     .validate()?;
/// assert_eq!(config.trace_id_series_limit(), 50);
///
/// // The same from the environment (any lookup function works).
/// let from_env = PrometheusConfig::with_env_from(|name| match name {
///     "FAULTLINE_METRICS_TRACE_ID_SERIES" => Some("50".into()),
///     "FAULTLINE_METRICS_TRACE_ID_TTL_SECS" => Some("120".into()),
///     _ => None,
/// })?;
/// assert_eq!(from_env.trace_id_ttl_duration(), Duration::from_secs(120));
///
/// let err = PrometheusConfig::with_env_from(|name| {
///     (name == "FAULTLINE_METRICS_TRACE_ID_SERIES").then(|| "many".into())
/// })
/// .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"FAULTLINE_METRICS_TRACE_ID_SERIES: invalid value "many": must be a whole number"#
/// );
/// # Ok::<(), faultline_engine::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    trace_id_series: usize,
    trace_id_ttl: Duration,
    exemplars: bool,
    buckets: Vec<f64>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            trace_id_series: DEFAULT_TRACE_ID_SERIES,
            trace_id_ttl: DEFAULT_TRACE_ID_TTL,
            exemplars: true,
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }
}

impl PrometheusConfig {
    /// The defaults, then the `FAULTLINE_METRICS_*` variables of the
    /// process environment ([`ENV_VARIABLES`]). An empty variable counts as
    /// unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::with_env_from(|name| std::env::var(name).ok())
    }

    /// The defaults, then the `FAULTLINE_METRICS_*` variables as `lookup`
    /// answers them (for tests and for configuration read elsewhere). The
    /// error is one line naming the variable and its value.
    pub fn with_env_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = PrometheusConfig::default();
        if let Some(n) = get(ENV_TRACE_ID_SERIES) {
            let limit = parse_u64(ENV_TRACE_ID_SERIES, &n)?;
            config.trace_id_series = usize::try_from(limit).unwrap_or(usize::MAX);
            check_series(ENV_TRACE_ID_SERIES, config.trace_id_series)?;
        }
        if let Some(s) = get(ENV_TRACE_ID_TTL_SECS) {
            let secs = parse_u64(ENV_TRACE_ID_TTL_SECS, &s)?;
            check_ttl_secs(ENV_TRACE_ID_TTL_SECS, &s, secs)?;
            config.trace_id_ttl = Duration::from_secs(secs);
        }
        if let Some(b) = get(ENV_EXEMPLARS) {
            config.exemplars = match b.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::invalid(
                        ENV_EXEMPLARS,
                        &b,
                        "must be true or false",
                    ));
                }
            };
        }
        if let Some(list) = get(ENV_BUCKETS) {
            let mut buckets = Vec::new();
            for item in list.split(',') {
                let item = item.trim();
                let bound: f64 = item.parse().map_err(|_| {
                    ConfigError::invalid(ENV_BUCKETS, &list, format!("{item:?} is not a number"))
                })?;
                buckets.push(bound);
            }
            check_buckets(ENV_BUCKETS, &list, &buckets)?;
            config.buckets = buckets;
        }
        Ok(config)
    }

    /// Sets the bound on live per-trace error series (the series labelled
    /// with `trace_id`); `0` turns them off. At most
    /// [`MAX_TRACE_ID_SERIES`]. When the bound is reached, the least
    /// recently updated series is evicted.
    pub fn trace_id_series(mut self, limit: usize) -> Self {
        self.trace_id_series = limit;
        self
    }

    /// Sets how long a per-trace error series lives without a new error
    /// (at least 1 s, at most [`MAX_TRACE_ID_TTL`]). Choose it longer than
    /// Prometheus's scrape interval, so that every series is scraped.
    pub fn trace_id_ttl(mut self, ttl: Duration) -> Self {
        self.trace_id_ttl = ttl;
        self
    }

    /// Turns OpenMetrics exemplars (`trace_id`, `span_id`) on the latency
    /// histogram and the error counter on or off.
    pub fn exemplars(mut self, on: bool) -> Self {
        self.exemplars = on;
        self
    }

    /// Sets the latency histogram's bucket bounds in seconds: finite,
    /// positive, strictly increasing, 1 to [`MAX_BUCKETS`] of them (`+Inf`
    /// is always added).
    pub fn buckets(mut self, buckets: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = buckets.into_iter().collect();
        self
    }

    /// Checks every setting made with the setters, with the same one-line
    /// errors as [`with_env_from`](Self::with_env_from) (naming the setter).
    pub fn validate(self) -> Result<Self, ConfigError> {
        check_series("trace_id_series", self.trace_id_series)?;
        let ttl_ms = self.trace_id_ttl.as_millis();
        if self.trace_id_ttl < Duration::from_secs(1) || self.trace_id_ttl > MAX_TRACE_ID_TTL {
            return Err(ConfigError::invalid(
                "trace_id_ttl",
                &format!("{ttl_ms} ms"),
                format!("must be within 1 s..={} s", MAX_TRACE_ID_TTL.as_secs()),
            ));
        }
        let shown = self
            .buckets
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        check_buckets("buckets", &shown, &self.buckets)?;
        Ok(self)
    }

    /// The bound on live per-trace error series (`0`: none).
    pub fn trace_id_series_limit(&self) -> usize {
        self.trace_id_series
    }

    /// How long a per-trace error series lives without a new error.
    pub fn trace_id_ttl_duration(&self) -> Duration {
        self.trace_id_ttl
    }

    /// Whether exemplars are on.
    pub fn exemplars_enabled(&self) -> bool {
        self.exemplars
    }

    /// The latency histogram's bucket bounds, in seconds.
    pub fn bucket_bounds(&self) -> &[f64] {
        &self.buckets
    }
}

fn parse_u64(setting: &str, text: &str) -> Result<u64, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| ConfigError::invalid(setting, text, "must be a whole number"))
}

fn check_series(setting: &str, limit: usize) -> Result<(), ConfigError> {
    if limit > MAX_TRACE_ID_SERIES {
        return Err(ConfigError::invalid(
            setting,
            &limit.to_string(),
            format!("must be at most {MAX_TRACE_ID_SERIES} (0 turns the trace_id series off)"),
        ));
    }
    Ok(())
}

fn check_ttl_secs(setting: &str, text: &str, secs: u64) -> Result<(), ConfigError> {
    if secs == 0 || secs > MAX_TRACE_ID_TTL.as_secs() {
        return Err(ConfigError::invalid(
            setting,
            text,
            format!("must be within 1..={} seconds", MAX_TRACE_ID_TTL.as_secs()),
        ));
    }
    Ok(())
}

fn check_buckets(setting: &str, shown: &str, buckets: &[f64]) -> Result<(), ConfigError> {
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        return Err(ConfigError::invalid(
            setting,
            shown,
            format!("must list 1 to {MAX_BUCKETS} bucket bounds"),
        ));
    }
    if let Some(bad) = buckets.iter().find(|b| !b.is_finite() || **b <= 0.0) {
        return Err(ConfigError::invalid(
            setting,
            shown,
            format!("bucket bound {bad} is not a finite number above 0"),
        ));
    }
    if let Some(w) = buckets.windows(2).find(|w| w[0] >= w[1]) {
        return Err(ConfigError::invalid(
            setting,
            shown,
            format!(
                "bucket bounds must increase ({} is not below {})",
                w[0], w[1]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<PrometheusConfig, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PrometheusConfig::with_env_from(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = PrometheusConfig::default();
        assert_eq!(c.trace_id_series_limit(), 100);
        assert_eq!(c.trace_id_ttl_duration(), Duration::from_secs(300));
        assert!(c.exemplars_enabled());
        assert_eq!(c.bucket_bounds(), DEFAULT_BUCKETS);
        assert_eq!(env(&[]).unwrap(), c);
        assert_eq!(c.clone().validate().unwrap(), c);
    }

    #[test]
    fn every_variable_is_read() {
        let c = env(&[
            ("FAULTLINE_METRICS_TRACE_ID_SERIES", "0"),
            ("FAULTLINE_METRICS_TRACE_ID_TTL_SECS", " 60 "),
            ("FAULTLINE_METRICS_EXEMPLARS", "off"),
            ("FAULTLINE_METRICS_BUCKETS", "0.1, 0.5,1,2.5"),
        ])
        .unwrap();
        assert_eq!(c.trace_id_series_limit(), 0);
        assert_eq!(c.trace_id_ttl_duration(), Duration::from_secs(60));
        assert!(!c.exemplars_enabled());
        assert_eq!(c.bucket_bounds(), &[0.1, 0.5, 1.0, 2.5]);
        assert_eq!(ENV_VARIABLES.len(), 4);
        // Empty means unset.
        assert_eq!(
            env(&[("FAULTLINE_METRICS_TRACE_ID_SERIES", " ")]).unwrap(),
            PrometheusConfig::default()
        );
    }

    #[test]
    fn bad_values_give_one_line_naming_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "FAULTLINE_METRICS_TRACE_ID_SERIES",
                "-1",
                r#"FAULTLINE_METRICS_TRACE_ID_SERIES: invalid value "-1": must be a whole number"#,
            ),
            (
                "FAULTLINE_METRICS_TRACE_ID_SERIES",
                "100001",
                r#"FAULTLINE_METRICS_TRACE_ID_SERIES: invalid value "100001": must be at most 100000 (0 turns the trace_id series off)"#,
            ),
            (
                "FAULTLINE_METRICS_TRACE_ID_TTL_SECS",
                "0",
                r#"FAULTLINE_METRICS_TRACE_ID_TTL_SECS: invalid value "0": must be within 1..=86400 seconds"#,
            ),
            (
                "FAULTLINE_METRICS_TRACE_ID_TTL_SECS",
                "5m",
                r#"FAULTLINE_METRICS_TRACE_ID_TTL_SECS: invalid value "5m": must be a whole number"#,
            ),
            (
                "FAULTLINE_METRICS_EXEMPLARS",
                "maybe",
                r#"FAULTLINE_METRICS_EXEMPLARS: invalid value "maybe": must be true or false"#,
            ),
            (
                "FAULTLINE_METRICS_BUCKETS",
                "0.1,x",
                r#"FAULTLINE_METRICS_BUCKETS: invalid value "0.1,x": "x" is not a number"#,
            ),
            (
                "FAULTLINE_METRICS_BUCKETS",
                "1,0.5",
                r#"FAULTLINE_METRICS_BUCKETS: invalid value "1,0.5": bucket bounds must increase (1 is not below 0.5)"#,
            ),
            (
                "FAULTLINE_METRICS_BUCKETS",
                "0,1",
                r#"FAULTLINE_METRICS_BUCKETS: invalid value "0,1": bucket bound 0 is not a finite number above 0"#,
            ),
            (
                "FAULTLINE_METRICS_BUCKETS",
                "1,inf",
                r#"FAULTLINE_METRICS_BUCKETS: invalid value "1,inf": bucket bound inf is not a finite number above 0"#,
            ),
        ];
        for (var, value, expected) in cases {
            let e = env(&[(var, value)]).unwrap_err();
            assert_eq!(e.to_string(), *expected);
            assert_eq!(e.setting(), Some(*var));
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn setters_are_validated() {
        let e = PrometheusConfig::default()
            .trace_id_ttl(Duration::from_millis(500))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"trace_id_ttl: invalid value "500 ms": must be within 1 s..=86400 s"#
        );
        let e = PrometheusConfig::default()
            .buckets([])
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"buckets: invalid value "": must list 1 to 64 bucket bounds"#
        );
        let e = PrometheusConfig::default()
            .trace_id_series(MAX_TRACE_ID_SERIES + 1)
            .validate()
            .unwrap_err();
        assert_eq!(e.setting(), Some("trace_id_series"));
        let ok = PrometheusConfig::default()
            .trace_id_series(7)
            .exemplars(false)
            .buckets([0.5, 1.0])
            .validate()
            .unwrap();
        assert_eq!(ok.trace_id_series_limit(), 7);
        assert!(!ok.exemplars_enabled());
    }
}
