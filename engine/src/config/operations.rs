//! The settings an operator reaches for once a service runs: a sampler of
//! the application's own chosen by name, slow requests kept like errors,
//! the resource detectors, and a private address for the metrics.

use std::net::SocketAddr;
use std::time::Duration;

use super::validate as v;
use super::{ConfigError, TracingConfig, TracingConfigBuilder};

/// The standard `OTEL_TRACES_SAMPLER` names, in the specification's order.
pub const STANDARD_SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// The longest accepted slow-request threshold (one hour).
const MAX_KEEP_SLOW: Duration = Duration::from_secs(3600);

/// One resource detector (see [`ResourceDetectors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ResourceDetector {
    /// `host.name`, `host.arch` (and `host.id` where the system has one).
    Host,
    /// `process.pid`, `process.executable.name`, `process.runtime.name`,
    /// `process.runtime.version`, `process.runtime.description`.
    Process,
    /// `os.type`.
    Os,
    /// `container.id`, read from the cgroup files when the process runs in
    /// a container.
    Container,
    /// `service.instance.id`: a random UUID made once per process.
    ServiceInstance,
}

impl ResourceDetector {
    /// Every detector, in the order they are listed.
    pub const ALL: [ResourceDetector; 5] = [
        ResourceDetector::Host,
        ResourceDetector::Process,
        ResourceDetector::Os,
        ResourceDetector::Container,
        ResourceDetector::ServiceInstance,
    ];

    /// The name used in `FAULTLINE_RESOURCE_DETECTORS`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceDetector::Host => "host",
            ResourceDetector::Process => "process",
            ResourceDetector::Os => "os",
            ResourceDetector::Container => "container",
            ResourceDetector::ServiceInstance => "service_instance",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which resource detectors run (default: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceDetectors(u8);

impl Default for ResourceDetectors {
    fn default() -> Self {
        ResourceDetectors::all()
    }
}

impl ResourceDetectors {
    /// Every detector.
    pub fn all() -> Self {
        ResourceDetector::ALL.into_iter().collect()
    }
    /// No detector: the resource holds only `service.*`, `telemetry.*` and
    /// the configured attributes.
    pub fn none() -> Self {
        ResourceDetectors(0)
    }
    /// Whether `detector` runs.
    pub fn contains(self, detector: ResourceDetector) -> bool {
        self.0 & detector.bit() != 0
    }
    /// These detectors without `detector`.
    pub fn without(self, detector: ResourceDetector) -> Self {
        ResourceDetectors(self.0 & !detector.bit())
    }
    /// Parses a comma list of detector names (`host`, `process`, `os`,
    /// `container`, `service_instance`), `all` or `none`.
    pub fn parse(setting: &str, list: &str) -> Result<Self, ConfigError> {
        let mut set = ResourceDetectors::none();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let item = item.to_ascii_lowercase();
            match item.as_str() {
                "all" => set = ResourceDetectors::all(),
                "none" => {}
                name => match ResourceDetector::ALL.into_iter().find(|d| d.name() == name) {
                    Some(d) => set.0 |= d.bit(),
                    None => {
                        return Err(ConfigError::invalid(
                            setting,
                            name,
                            "unknown resource detector (known: host, process, os, container, \
                             service_instance; or all, none)",
                        ));
                    }
                },
            }
        }
        Ok(set)
    }
}

impl FromIterator<ResourceDetector> for ResourceDetectors {
    fn from_iter<I: IntoIterator<Item = ResourceDetector>>(iter: I) -> Self {
        ResourceDetectors(iter.into_iter().fold(0, |bits, d| bits | d.bit()))
    }
}

/// The operations settings, held together in the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Operations {
    /// A registered sampler's name (`OTEL_TRACES_SAMPLER` naming none of
    /// the standard ones), lowercase.
    custom_sampler: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`, as given, for a registered sampler.
    sampler_arg: Option<String>,
    keep_slow: Option<Duration>,
    metrics_addr: Option<SocketAddr>,
    resource_detectors: ResourceDetectors,
}

impl Operations {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.custom_sampler {
            sampler_name("sampler", name)?;
        }
        if let Some(slow) = self.keep_slow {
            v::duration_within("keep_slow", slow, Duration::from_millis(1), MAX_KEEP_SLOW)?;
        }
        Ok(())
    }
}

/// A registered sampler's name: lowercase ASCII letters, digits and `_`
/// (the shape of the standard names), at most 64 bytes.
pub(crate) fn sampler_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if name.is_empty() || name.len() > 64 || !plain {
        return Err(ConfigError::invalid(
            setting,
            name,
            format!(
                "must be one of {}, or the name of a sampler registered with \
                 EngineBuilder::register_sampler (lowercase letters, digits and _)",
                STANDARD_SAMPLERS.join(", ")
            ),
        ));
    }
    Ok(())
}

impl TracingConfig {
    /// The name of a sampler registered with
    /// [`EngineBuilder::register_sampler`](crate::EngineBuilder::register_sampler)
    /// that `OTEL_TRACES_SAMPLER` (or [`TracingConfigBuilder::sampler_name`])
    /// chose; `None` when a standard sampler is configured.
    pub fn custom_sampler(&self) -> Option<&str> {
        self.ops.custom_sampler.as_deref()
    }
    /// `OTEL_TRACES_SAMPLER_ARG` as given, handed to a registered sampler.
    pub fn sampler_arg(&self) -> Option<&str> {
        self.ops.sampler_arg.as_deref()
    }
    /// Requests whose server span lasts longer than this are exported even
    /// when the sampler left them out, their root marked
    /// `faultline.sampling.kept = "slow"`, under the caps of error keeping
    /// (`FAULTLINE_KEEP_SLOW_MS`; default `None`: off).
    pub fn keep_slow(&self) -> Option<Duration> {
        self.ops.keep_slow
    }
    /// The private address on which `/metrics` is served by faultline's own
    /// listener instead of the application's port (`FAULTLINE_METRICS_ADDR`;
    /// default `None`: the adapters serve it on the metrics path).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.ops.metrics_addr
    }
    /// The resource detectors that run (`FAULTLINE_RESOURCE_DETECTORS`;
    /// default all).
    pub fn resource_detectors(&self) -> ResourceDetectors {
        self.ops.resource_detectors
    }
}

impl TracingConfigBuilder {
    /// Samples with the sampler registered under `name`
    /// ([`EngineBuilder::register_sampler`](crate::EngineBuilder::register_sampler)),
    /// handing it `arg`; what `OTEL_TRACES_SAMPLER=name` does.
    pub fn sampler_name(mut self, name: impl Into<String>, arg: Option<&str>) -> Self {
        self.ops.custom_sampler = Some(name.into());
        self.ops.sampler_arg = arg.map(str::to_owned);
        self
    }
    /// Keeps requests slower than `threshold` like errors (1 ms..=1 h;
    /// `None`, the default, turns it off). See [`TracingConfig::keep_slow`].
    pub fn keep_slow(mut self, threshold: Option<Duration>) -> Self {
        self.ops.keep_slow = threshold;
        self
    }
    /// Serves `/metrics` on `addr`, on a listener of its own (see
    /// [`TracingConfig::metrics_addr`]).
    pub fn metrics_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.ops.metrics_addr = addr;
        self
    }
    /// The resource detectors that run (default all).
    pub fn resource_detectors(mut self, detectors: ResourceDetectors) -> Self {
        self.ops.resource_detectors = detectors;
        self
    }

    /// A sampler name `OTEL_TRACES_SAMPLER` gave that is none of the
    /// standard ones: a registered sampler's, checked when the engine is
    /// built.
    pub(crate) fn set_custom_sampler(
        &mut self,
        name: &str,
        arg: Option<String>,
    ) -> Result<(), ConfigError> {
        sampler_name("OTEL_TRACES_SAMPLER", name)?;
        self.ops.custom_sampler = Some(name.to_owned());
        self.ops.sampler_arg = arg;
        Ok(())
    }

    /// A standard sampler was chosen.
    pub(crate) fn clear_custom_sampler(&mut self) {
        self.ops.custom_sampler = None;
        self.ops.sampler_arg = None;
    }

    /// Reads `FAULTLINE_KEEP_SLOW_MS`, `FAULTLINE_METRICS_ADDR` and
    /// `FAULTLINE_RESOURCE_DETECTORS`.
    pub(crate) fn operations_from_env(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(ms) = get("FAULTLINE_KEEP_SLOW_MS") {
            let ms = ms.trim();
            self.ops.keep_slow = if ms.eq_ignore_ascii_case("off") || ms == "0" {
                None
            } else {
                let n = v::parse_u64("FAULTLINE_KEEP_SLOW_MS", ms).map_err(|_| {
                    ConfigError::invalid(
                        "FAULTLINE_KEEP_SLOW_MS",
                        ms,
                        "must be a whole number of milliseconds (0 or off: off)",
                    )
                })?;
                let d = Duration::from_millis(n);
                v::duration_within(
                    "FAULTLINE_KEEP_SLOW_MS",
                    d,
                    Duration::from_millis(1),
                    MAX_KEEP_SLOW,
                )?;
                Some(d)
            };
        }
        if let Some(addr) = get("FAULTLINE_METRICS_ADDR") {
            let addr = addr.trim();
            self.ops.metrics_addr = if addr.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(addr.parse().map_err(|_| {
                    ConfigError::invalid(
                        "FAULTLINE_METRICS_ADDR",
                        addr,
                        "must be an IP address and port (127.0.0.1:9464, [::1]:9464), or off",
                    )
                })?)
            };
        }
        if let Some(list) = get("FAULTLINE_RESOURCE_DETECTORS") {
            self.ops.resource_detectors =
                ResourceDetectors::parse("FAULTLINE_RESOURCE_DETECTORS", &list)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TracingConfig::builder()
            .with_env_from(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?
            .build()
    }

    #[test]
    fn defaults_are_off_and_all_detectors() {
        let c = env(&[]).unwrap();
        assert_eq!(c.keep_slow(), None);
        assert_eq!(c.metrics_addr(), None);
        assert_eq!(c.custom_sampler(), None);
        assert_eq!(c.resource_detectors(), ResourceDetectors::all());
        for d in ResourceDetector::ALL {
            assert!(c.resource_detectors().contains(d), "{d:?}");
        }
    }

    #[test]
    fn keep_slow_from_env_and_builder() {
        let c = env(&[("FAULTLINE_KEEP_SLOW_MS", "500")]).unwrap();
        assert_eq!(c.keep_slow(), Some(Duration::from_millis(500)));
        for off in ["0", "off", "OFF"] {
            assert_eq!(
                env(&[("FAULTLINE_KEEP_SLOW_MS", off)]).unwrap().keep_slow(),
                None
            );
        }
        for bad in ["soon", "-1", "1.5", "3600001"] {
            let e = env(&[("FAULTLINE_KEEP_SLOW_MS", bad)]).unwrap_err();
            assert_eq!(e.setting(), Some("FAULTLINE_KEEP_SLOW_MS"), "{bad}: {e}");
        }
        let e = TracingConfig::builder()
            .keep_slow(Some(Duration::ZERO))
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), Some("keep_slow"), "{e}");
    }

    #[test]
    fn metrics_addr_from_env() {
        let c = env(&[("FAULTLINE_METRICS_ADDR", "127.0.0.1:9464")]).unwrap();
        assert_eq!(c.metrics_addr(), Some("127.0.0.1:9464".parse().unwrap()));
        let c = env(&[("FAULTLINE_METRICS_ADDR", "[::1]:9")]).unwrap();
        assert_eq!(c.metrics_addr(), Some("[::1]:9".parse().unwrap()));
        assert_eq!(
            env(&[("FAULTLINE_METRICS_ADDR", "off")])
                .unwrap()
                .metrics_addr(),
            None
        );
        for bad in ["localhost:9464", "9464", "127.0.0.1", "1.2.3.4:99999"] {
            let e = env(&[("FAULTLINE_METRICS_ADDR", bad)]).unwrap_err();
            assert_eq!(e.setting(), Some("FAULTLINE_METRICS_ADDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn resource_detectors_from_env() {
        let c = env(&[("FAULTLINE_RESOURCE_DETECTORS", "host, OS")]).unwrap();
        let d = c.resource_detectors();
        assert!(d.contains(ResourceDetector::Host) && d.contains(ResourceDetector::Os));
        assert!(!d.contains(ResourceDetector::Process));
        assert!(!d.contains(ResourceDetector::Container));
        assert!(!d.contains(ResourceDetector::ServiceInstance));
        let none = env(&[("FAULTLINE_RESOURCE_DETECTORS", "none")]).unwrap();
        assert_eq!(none.resource_detectors(), ResourceDetectors::none());
        let e = env(&[("FAULTLINE_RESOURCE_DETECTORS", "host,k8s")]).unwrap_err();
        assert_eq!(e.setting(), Some("FAULTLINE_RESOURCE_DETECTORS"));
        assert!(e.to_string().contains("service_instance"), "{e}");
        assert_eq!(
            ResourceDetectors::all().without(ResourceDetector::Host),
            ResourceDetectors::parse("x", "process,os,container,service_instance").unwrap()
        );
    }

    #[test]
    fn the_file_keys() {
        let path =
            std::env::temp_dir().join(format!("faultline-operations-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "keep_slow_ms = 750\nmetrics_addr = \"127.0.0.1:9464\"\nresource_detectors = [\"host\", \"service_instance\"]\n",
        )
        .unwrap();
        let c = TracingConfigBuilder::from_file(&path)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.keep_slow(), Some(Duration::from_millis(750)));
        assert_eq!(c.metrics_addr(), Some("127.0.0.1:9464".parse().unwrap()));
        let d = c.resource_detectors();
        assert!(
            d.contains(ResourceDetector::Host) && d.contains(ResourceDetector::ServiceInstance)
        );
        assert!(!d.contains(ResourceDetector::Os));
        std::fs::write(&path, "resource_detectors = [\"k8s\"]\n").unwrap();
        assert!(TracingConfigBuilder::from_file(&path).is_err());
        std::fs::write(&path, "metrics_addr = \"localhost:1\"\n").unwrap();
        assert!(TracingConfigBuilder::from_file(&path).is_err());
        std::fs::write(&path, "keep_slow_ms = 0\n").unwrap();
        let c = TracingConfigBuilder::from_file(&path)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.keep_slow(), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_sampler_name_that_is_not_standard_is_kept_for_the_engine() {
        let c = env(&[
            ("OTEL_TRACES_SAMPLER", "per_route"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ])
        .unwrap();
        assert_eq!(c.custom_sampler(), Some("per_route"));
        assert_eq!(c.sampler_arg(), Some("0.01"));
        // A standard name clears it.
        let c = TracingConfig::builder()
            .sampler_name("per_route", None)
            .with_env_from(|name| (name == "OTEL_TRACES_SAMPLER").then(|| "always_off".to_owned()))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.custom_sampler(), None);
        assert_eq!(c.sample_rate(), 0.0);
        for bad in ["always-on", "per route", "x".repeat(65).as_str()] {
            let e = env(&[("OTEL_TRACES_SAMPLER", bad)]).unwrap_err();
            assert_eq!(e.setting(), Some("OTEL_TRACES_SAMPLER"), "{bad}: {e}");
            assert!(e.to_string().contains("parentbased_traceidratio"), "{e}");
        }
    }
}
