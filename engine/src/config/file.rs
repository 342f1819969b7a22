//! Reading the configuration from TOML or JSON (or any serde format).
//!
//! Every key is optional; unknown keys are errors. Durations are whole
//! milliseconds in keys ending `_ms`.
//!
//! ```toml
//! service_name = "checkout"
//! service_version = "1.4.2"
//! sample_rate = 0.1
//! exporters = ["otlp", "console"]
//! custom_pii_patterns = { order_id = "ORD-[0-9]{8}" }
//! pii_hash_key = "a key of at least 16 bytes"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{
    ConfigError, ExporterKind, HashKey, PropagatorKind, TracingConfig, TracingConfigBuilder,
};

/// Defines the file's keys: those read here, then the table's.
macro_rules! define_config_file {
    ({ $( $(#[$fmeta:meta])* $field:ident: $field_ty:ty, )* } $(
        [$(#[$meta:meta])* $vis:vis struct $group:ident in $gfield:ident ($kind:ident)]
        $(($name:ident, $sname:tt, $ty:ty, $default:expr, $vars:tt, $parse:expr, $key:ident, $file:tt, $check:tt, $doc:tt, $get:tt, $set:tt))+
    )+) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct ConfigFile {
            $( $(#[$fmeta])* $field: $field_ty, )*
            $($( $key: Option<super::table::file_type!($ty, $file)>, )+)+
        }

        impl ConfigFile {
            /// The table's settings the file holds.
            fn apply_table(&mut self, b: &mut TracingConfigBuilder) {
                $($(
                    if let Some(value) = self.$key.take() {
                        b.$gfield.$name = super::table::from_file!($ty, $file, value);
                    }
                )+)+
            }
        }
    };
}

super::table::settings!(define_config_file {
    #[serde(default)]
    resource_attributes: BTreeMap<String, String>,
    sample_rate: Option<f64>,
    parent_based: Option<bool>,
    exporters: Option<Vec<ExporterKind>>,
    propagators: Option<Vec<PropagatorKind>>,
    #[serde(default)]
    custom_pii_patterns: BTreeMap<String, PatternEntry>,
    pii_hash_key: Option<HashKey>,
    secret_keys: Option<Vec<String>>,
    capture_request_headers: Option<Vec<String>>,
    capture_response_headers: Option<Vec<String>>,
    redact_headers: Option<Vec<String>>,
    excluded_routes: Option<Vec<String>>,
    trusted_peers: Option<Vec<String>>,
    /// `0` turns slow keeping off.
    keep_slow_ms: Option<u64>,
    metrics_addr: Option<std::net::SocketAddr>,
    resource_detectors: Option<Vec<DetectorName>>,
});

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PatternEntry {
    Regex(String),
    Full {
        regex: String,
        #[serde(default)]
        replacement: Option<String>,
    },
}

macro_rules! name_enum {
    ($name:ident => $target:ty { $($text:literal => $value:expr),+ $(,)? }) => {
        #[derive(Debug)]
        struct $name($target);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                match s.as_str() {
                    $($text => Ok($name($value)),)+
                    _ => Err(serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&s),
                        &concat!("one of:" $(, " ", $text)+),
                    )),
                }
            }
        }
    };
}

name_enum!(DetectorName => super::ResourceDetector {
    "host" => super::ResourceDetector::Host,
    "process" => super::ResourceDetector::Process,
    "os" => super::ResourceDetector::Os,
    "container" => super::ResourceDetector::Container,
    "service_instance" => super::ResourceDetector::ServiceInstance,
});
impl ConfigFile {
    fn apply(mut self, mut b: TracingConfigBuilder) -> TracingConfigBuilder {
        let ms = Duration::from_millis;
        self.apply_table(&mut b);
        for (k, v) in self.resource_attributes {
            b = b.resource_attribute(k, v);
        }
        if let Some(x) = self.sample_rate {
            b.sample_rate = x;
        }
        if let Some(x) = self.parent_based {
            b.parent_based = x;
        }
        if let Some(x) = self.exporters {
            b.exporters = x;
        }
        if let Some(x) = self.propagators {
            b = b.propagators(x);
        }
        for (name, entry) in self.custom_pii_patterns {
            let (regex, replacement) = match entry {
                PatternEntry::Regex(r) => (r, None),
                PatternEntry::Full { regex, replacement } => (regex, replacement),
            };
            b.pii_patterns.insert(name, (regex, replacement));
        }
        if let Some(x) = self.pii_hash_key {
            b.pii_hash_key = Some(x);
        }
        if let Some(x) = self.secret_keys {
            b.secret_keys = x;
        }
        if let Some(x) = self.capture_request_headers {
            b.capture_request_headers = x;
        }
        if let Some(x) = self.capture_response_headers {
            b.capture_response_headers = x;
        }
        if let Some(x) = self.redact_headers {
            b.redact_headers = x;
        }
        if let Some(x) = self.excluded_routes {
            b.excluded_routes = x;
        }
        if let Some(x) = self.trusted_peers {
            b.trusted_peers = x.iter().filter_map(|n| super::PeerNet::parse(n)).collect();
            // An entry that is not a network fails the build (below).
            b.invalid_trusted_peer = x.into_iter().find(|n| super::PeerNet::parse(n).is_none());
        }
        if let Some(x) = self.keep_slow_ms {
            b = b.keep_slow((x > 0).then(|| ms(x)));
        }
        if let Some(x) = self.metrics_addr {
            b = b.metrics_addr(Some(x));
        }
        if let Some(x) = self.resource_detectors {
            b = b.resource_detectors(x.into_iter().map(|d| d.0).collect());
        }
        b
    }
}

impl TracingConfigBuilder {
    /// A builder holding the defaults overridden by a TOML file (`.toml`) or a
    /// JSON file (any other extension).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: shown.clone(),
            reason: e.to_string(),
            source: std::sync::Arc::new(e),
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let file: ConfigFile = if is_toml {
            toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                reason: one_line(&e.to_string()),
            })?
        } else {
            serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                reason: one_line(&e.to_string()),
            })?
        };
        Ok(file.apply(TracingConfigBuilder::default()))
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('^'))
        // The quoted source line (`12 | key = "value"`) may hold a secret.
        .filter(|l| {
            !l.split_once(" |")
                .is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl<'de> Deserialize<'de> for TracingConfig {
    /// Deserializes the configuration-file keys (see `TracingConfig::from_file`) over the defaults and
    /// validates the result; a broken rule is a deserialization error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = ConfigFile::deserialize(deserializer)?;
        file.apply(TracingConfigBuilder::default())
            .build()
            .map_err(serde::de::Error::custom)
    }
}
