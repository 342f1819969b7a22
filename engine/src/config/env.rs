//! Reading the configuration from environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use super::routes::ExcludedRoutes;
use super::validate as v;
use super::{ConfigError, ExporterKind, HashKey, PropagatorKind, TracingConfigBuilder};

/// Defines [`ENV_VARIABLES`]: the variables read here, then the table's.
macro_rules! define_env_list {
    ({ $($other:literal),* $(,)? } $(
        [$(#[$meta:meta])* $vis:vis struct $group:ident in $field:ident ($kind:ident)]
        $(($name:ident, $sname:tt, $ty:ty, $default:expr, [$($var:literal),+], $parse:expr, $key:ident, $file:tt, $check:tt, $doc:tt, $get:tt, $set:tt))+
    )+) => {
        /// Every environment variable [`TracingConfigBuilder::with_env`] reads.
        pub const ENV_VARIABLES: &[&str] = &[$($other,)* $($($($var,)+)+)+];
    };
}

super::table::settings!(define_env_list {
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
    "OTEL_PROPAGATORS",
    "FAULTLINE_PII_PATTERNS",
    "FAULTLINE_PII_HASH_KEY",
    "FAULTLINE_SECRET_KEYS",
    "FAULTLINE_CAPTURE_REQUEST_HEADERS",
    "FAULTLINE_CAPTURE_RESPONSE_HEADERS",
    "FAULTLINE_REDACT_HEADERS",
    "FAULTLINE_EXCLUDED_ROUTES",
    "FAULTLINE_KEEP_SLOW_MS",
    "FAULTLINE_METRICS_ADDR",
    "FAULTLINE_RESOURCE_DETECTORS",
    "FAULTLINE_TRUSTED_PEERS",
    "OTEL_LOGS_EXPORTER",
    "FAULTLINE_LOG_FORMAT",
});

impl TracingConfigBuilder {
    /// Overrides this builder's values with the process environment.
    ///
    /// Reads the standard OpenTelemetry variables (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `_ARG`,
    /// `OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER`, `OTEL_PROPAGATORS`,
    /// `OTEL_BSP_*`, `OTEL_SDK_DISABLED`, the span limits) and faultline's
    /// `FAULTLINE_*` ones; [`ENV_VARIABLES`] lists them all. An exporter's
    /// own variables (its endpoint, headers, TLS files) are read by its plugin.
    /// As the OpenTelemetry specification says, an empty variable counts as
    /// unset. A malformed value is an error naming the variable.
    pub fn with_env(self) -> Result<Self, ConfigError> {
        self.with_env_from(super::rules::process_env)
    }

    /// Like [`with_env`](Self::with_env), with variables looked up through
    /// `lookup` instead of the process environment (for tests and for
    /// programs that keep their settings elsewhere).
    pub fn with_env_from<F>(mut self, lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        if let Some(value) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, val) in parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &value, false)? {
                match key.as_str() {
                    // OTEL_SERVICE_NAME, when set, wins (the table reads it below).
                    "service.name" if get("OTEL_SERVICE_NAME").is_none() => {
                        v::service_name("OTEL_RESOURCE_ATTRIBUTES service.name", &val)?;
                        self.scalars.service_name = val;
                    }
                    "service.name" => {}
                    "service.version" => self.scalars.service_version = Some(val),
                    "deployment.environment.name" | "deployment.environment" => {
                        self.scalars.deployment_environment = Some(val)
                    }
                    _ => {
                        v::resource_attribute("OTEL_RESOURCE_ATTRIBUTES", &key, &val)?;
                        self = self.resource_attribute(key, val);
                    }
                }
            }
        }
        // After the resource attributes: the variables of the table win.
        self.read_table_env(&get)?;
        self.env_relations();

        self.apply_sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?;

        if let Some(list) = get("OTEL_TRACES_EXPORTER") {
            self.exporters = parse_exporters("OTEL_TRACES_EXPORTER", &list)?;
        }
        self.logs.read_env(&get)?;
        if let Some(list) = get("OTEL_PROPAGATORS") {
            self.propagators = parse_propagators("OTEL_PROPAGATORS", &list)?;
        }

        if let Some(p) = get("FAULTLINE_PII_PATTERNS") {
            self.pii_patterns = parse_patterns("FAULTLINE_PII_PATTERNS", &p)?;
        }
        if let Some(key) = get("FAULTLINE_PII_HASH_KEY") {
            let key = HashKey::new(key);
            key.check("FAULTLINE_PII_HASH_KEY")?;
            self.pii_hash_key = Some(key);
        }
        if let Some(list) = get("FAULTLINE_SECRET_KEYS") {
            self.secret_keys = list_items(&list)
                .map(|k| v::secret_key("FAULTLINE_SECRET_KEYS", k))
                .collect::<Result<_, _>>()?;
        }
        for (var, which) in [
            ("FAULTLINE_CAPTURE_REQUEST_HEADERS", 0),
            ("FAULTLINE_CAPTURE_RESPONSE_HEADERS", 1),
            ("FAULTLINE_REDACT_HEADERS", 2),
        ] {
            if let Some(list) = get(var) {
                let items: Vec<String> = list_items(&list).map(str::to_owned).collect();
                v::header_names(var, &items)?;
                match which {
                    0 => self.capture_request_headers = items,
                    1 => self.capture_response_headers = items,
                    _ => self.redact_headers = items,
                }
            }
        }
        if let Some(list) = get("FAULTLINE_TRUSTED_PEERS") {
            let mut nets = Vec::new();
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                nets.push(super::PeerNet::parse(item).ok_or_else(|| {
                    ConfigError::invalid(
                        "FAULTLINE_TRUSTED_PEERS",
                        item,
                        "must be a comma-separated list of IP addresses or networks (10.0.0.0/8)",
                    )
                })?);
            }
            self.trusted_peers = nets;
        }
        if let Some(list) = get("FAULTLINE_EXCLUDED_ROUTES") {
            let routes: Vec<String> = list.split(',').map(|r| r.trim().to_owned()).collect();
            ExcludedRoutes::parse(&routes)
                .map_err(|why| ConfigError::invalid("FAULTLINE_EXCLUDED_ROUTES", &list, why))?;
            self.excluded_routes = routes;
        }
        self.operations_from_env(&get)?;
        Ok(self)
    }

    fn apply_sampler(
        &mut self,
        sampler: Option<String>,
        arg: Option<String>,
    ) -> Result<(), ConfigError> {
        let Some(sampler) = sampler else {
            return Ok(());
        };
        let ratio = || -> Result<f64, ConfigError> {
            match &arg {
                Some(a) => v::parse_sample_rate("OTEL_TRACES_SAMPLER_ARG", a),
                None => Ok(1.0),
            }
        };
        let (parent_based, rate) = match sampler.trim().to_ascii_lowercase().as_str() {
            "always_on" => (false, 1.0),
            "always_off" => (false, 0.0),
            "traceidratio" => (false, ratio()?),
            "parentbased_always_on" => (true, 1.0),
            "parentbased_always_off" => (true, 0.0),
            "parentbased_traceidratio" => (true, ratio()?),
            // A registered sampler's name, checked when the engine is built.
            name => return self.set_custom_sampler(name, arg),
        };
        self.clear_custom_sampler();
        self.parent_based = parent_based;
        self.sample_rate = rate;
        Ok(())
    }
}

fn list_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_exporters(var: &str, list: &str) -> Result<Vec<ExporterKind>, ConfigError> {
    let mut out = Vec::new();
    let mut none = false;
    for item in list_items(list) {
        match item.to_ascii_lowercase().as_str() {
            "none" => none = true,
            "stdout" => out.push(ExporterKind::CONSOLE),
            // Any other name: the engine's builder finds it among the registered exporters.
            name => {
                v::exporter_name(var, name)?;
                out.push(ExporterKind::named(name.to_owned()));
            }
        }
    }
    if none && !out.is_empty() {
        return Err(ConfigError::invalid(
            var,
            list,
            "`none` cannot be combined with other exporters",
        ));
    }
    Ok(out)
}

fn parse_propagators(var: &str, list: &str) -> Result<Vec<PropagatorKind>, ConfigError> {
    let mut out = Vec::new();
    let mut none = false;
    for item in list_items(list) {
        match item.to_ascii_lowercase().as_str() {
            "none" => none = true,
            // Any other name: the engine's builder finds it among the
            // registered propagators (the five standard ones built in).
            name => {
                let kind = PropagatorKind::named(name.to_owned());
                kind.check(var)?;
                out.push(kind);
            }
        }
    }
    if none && !out.is_empty() {
        return Err(ConfigError::invalid(
            var,
            list,
            "`none` cannot be combined with other propagators",
        ));
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let first = !seen.contains(p);
        seen.push(p.clone());
        first
    });
    Ok(out)
}

/// A whole number of milliseconds.
pub(super) fn millis(var: &str, text: &str) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(v::parse_u64(var, text).map_err(
        |_| ConfigError::invalid(var, text, "must be a whole number of milliseconds"),
    )?))
}

pub(super) fn count(var: &str, text: &str, min: usize) -> Result<usize, ConfigError> {
    let n = v::parse_u64(var, text)?;
    let n = usize::try_from(n).map_err(|_| ConfigError::invalid(var, text, "too large"))?;
    if n < min {
        return Err(ConfigError::invalid(
            var,
            text,
            format!("must be at least {min}"),
        ));
    }
    Ok(n)
}

/// Parses the `key=value,key2=value2` lists of `OTEL_RESOURCE_ATTRIBUTES` and
/// the exporters' header variables (values percent-decoded). With `secret`, an
/// error never repeats the value.
pub(super) fn parse_key_values(
    var: &str,
    text: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let fail = |item: &str, reason: String| {
        if secret {
            ConfigError::invalid_secret(var, reason)
        } else {
            ConfigError::invalid(var, item, reason)
        }
    };
    let mut out = Vec::new();
    for (index, item) in list_items(text).enumerate() {
        let Some((key, value)) = item.split_once('=') else {
            return Err(fail(item, format!("entry {} is not key=value", index + 1)));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(fail(item, format!("entry {} has an empty key", index + 1)));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            fail(
                item,
                format!("entry {} has a bad percent-encoding", index + 1),
            )
        })?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Option<String> {
    crate::percent::decode(text).map(std::borrow::Cow::into_owned)
}

/// `FAULTLINE_PII_PATTERNS` is a JSON object: `{"name": "regex"}` or
/// `{"name": {"regex": "...", "replacement": "..."}}`.
fn parse_patterns(
    var: &str,
    text: &str,
) -> Result<BTreeMap<String, (String, Option<String>)>, ConfigError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Regex(String),
        Full {
            regex: String,
            #[serde(default)]
            replacement: Option<String>,
        },
    }
    let map: BTreeMap<String, Entry> = serde_json::from_str(text).map_err(|e| {
        ConfigError::invalid(
            var,
            text,
            format!(
                "must be a JSON object of name -> regex or {{\"regex\", \"replacement\"}} ({e})"
            ),
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, entry) in map {
        let (regex, replacement) = match entry {
            Entry::Regex(r) => (r, None),
            Entry::Full { regex, replacement } => (regex, replacement),
        };
        v::pii_pattern(var, &name, &regex)?;
        if let Some(replacement) = &replacement {
            v::pii_replacement(var, &name, replacement)?;
        }
        out.insert(name, (regex, replacement));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) fn decode_for_test(text: &str) -> Option<String> {
    percent_decode(text)
}
