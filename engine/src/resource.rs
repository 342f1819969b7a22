//! The resource every span, log record and metric carries: what the
//! detectors find about the host, the process, the OS and the container,
//! faultline's own `telemetry.*`, then the configuration (which wins).
//!
//! Built once per engine ([`Engine::resource`](crate::Engine::resource) is
//! the one place to read it), in this order, a later source replacing an
//! attribute of the same key:
//!
//! 1. the detectors that [`ResourceDetectors`] leaves on (all by default;
//!    `FAULTLINE_RESOURCE_DETECTORS`): `host` (`host.name`, `host.arch`,
//!    `host.id`), `process` (`process.pid`, `process.executable.name`,
//!    `process.runtime.name`, `process.runtime.version`,
//!    `process.runtime.description`), `os` (`os.type`), `container`
//!    (`container.id`, from `/proc/self/cgroup` or `/proc/self/mountinfo`
//!    when the process runs in a container), `service_instance`
//!    (`service.instance.id`: a random UUID made once per process);
//! 2. `telemetry.sdk.name`, `.language`, `.version` (the OpenTelemetry SDK)
//!    and `telemetry.distro.name` = `faultline`, `telemetry.distro.version`;
//! 3. the configuration: `OTEL_RESOURCE_ATTRIBUTES` and the builder's
//!    `resource_attribute`, `service.version`, `deployment.environment.name`
//!    and `service.name`.
//!
//! The process's command line (`process.command_args`, which the process
//! detector of `opentelemetry-resource-detectors` also reports) is left out:
//! arguments often hold secrets, and the resource is not masked.

use opentelemetry::KeyValue;
use opentelemetry_resource_detectors::{
    ContainerResourceDetector, HostResourceDetector, OsResourceDetector, ProcessResourceDetector,
    ServiceInstanceIdResourceDetector,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector as Detect, TelemetryResourceDetector};

use crate::config::{ResourceDetector, ResourceDetectors, TracingConfig};

/// `telemetry.distro.name`.
pub const DISTRO_NAME: &str = "faultline";

/// Attributes a detector reports that are left out (see the module
/// documentation).
const LEFT_OUT: &[&str] = &["process.command_args"];

/// The resource of an engine with `config`.
pub(crate) fn build(config: &TracingConfig) -> Resource {
    let detected = detect(config.resource_detectors());
    let mut configured = Vec::with_capacity(4 + config.resource_attributes().len());
    for (k, v) in config.resource_attributes() {
        configured.push(KeyValue::new(k.clone(), v.clone()));
    }
    if let Some(version) = config.service_version() {
        configured.push(KeyValue::new("service.version", version.to_owned()));
    }
    if let Some(env) = config.deployment_environment() {
        configured.push(KeyValue::new("deployment.environment.name", env.to_owned()));
    }
    Resource::builder_empty()
        .with_attributes(detected)
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes([
            KeyValue::new("telemetry.distro.name", DISTRO_NAME),
            KeyValue::new("telemetry.distro.version", env!("CARGO_PKG_VERSION")),
        ])
        .with_attributes(configured)
        .with_service_name(config.service_name().to_owned())
        .build()
}

/// What the detectors in `on` find, without the attributes left out.
fn detect(on: ResourceDetectors) -> Vec<KeyValue> {
    let mut found = Vec::new();
    if on.contains(ResourceDetector::Host) {
        // Detected once per process: the host detector runs a command.
        static HOST: std::sync::OnceLock<Vec<KeyValue>> = std::sync::OnceLock::new();
        found.extend(
            HOST.get_or_init(|| {
                let mut host = Vec::new();
                keep(&HostResourceDetector::default(), &mut host);
                if !host.iter().any(|kv| kv.key.as_str() == "host.name")
                    && let Some(name) = host_name()
                {
                    // `hostname` is missing in slim images.
                    host.push(KeyValue::new("host.name", name));
                }
                host
            })
            .iter()
            .cloned(),
        );
    }
    if on.contains(ResourceDetector::Process) {
        keep(&ProcessResourceDetector, &mut found);
    }
    if on.contains(ResourceDetector::Os) {
        keep(&OsResourceDetector, &mut found);
    }
    if on.contains(ResourceDetector::Container) {
        keep(&ContainerResourceDetector, &mut found);
    }
    if on.contains(ResourceDetector::ServiceInstance) {
        keep(&ServiceInstanceIdResourceDetector, &mut found);
    }
    if on.contains(ResourceDetector::Process)
        && let Some(name) = executable_name()
    {
        found.push(KeyValue::new("process.executable.name", name));
    }
    found
}

/// Adds what `detector` finds to `found`, without the attributes left out.
fn keep(detector: &dyn Detect, found: &mut Vec<KeyValue>) {
    found.extend(
        detector
            .detect()
            .iter()
            .filter(|(k, _)| !LEFT_OUT.contains(&k.as_str()))
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
}

/// The host name from the kernel or the environment, when the `hostname`
/// command is missing.
fn host_name() -> Option<String> {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// The file name of the running executable.
fn executable_name() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    Some(path.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(resource: &Resource, key: &'static str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from_static_str(key))
            .map(|v| v.as_str().into_owned())
    }

    #[test]
    fn every_detector_on_by_default_and_the_configuration_wins() {
        let config = TracingConfig::builder()
            .service_name("shop")
            .resource_attribute("host.name", "given-host")
            .build()
            .unwrap();
        let r = build(&config);
        assert_eq!(value(&r, "host.name").as_deref(), Some("given-host"));
        assert_eq!(
            value(&r, "process.pid"),
            Some(std::process::id().to_string())
        );
        assert_eq!(value(&r, "process.runtime.name").as_deref(), Some("rustc"));
        assert!(value(&r, "process.runtime.version").is_some());
        assert_eq!(value(&r, "process.executable.name"), executable_name());
        assert_eq!(value(&r, "os.type").as_deref(), Some(std::env::consts::OS));
        let id = value(&r, "service.instance.id").unwrap();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(
            build(&config).get(&"service.instance.id".into()),
            r.get(&"service.instance.id".into()),
            "one id per process"
        );
        assert_eq!(value(&r, "telemetry.sdk.language").as_deref(), Some("rust"));
        assert_eq!(
            value(&r, "telemetry.distro.name").as_deref(),
            Some("faultline")
        );
        assert_eq!(value(&r, "service.name").as_deref(), Some("shop"));
        assert_eq!(value(&r, "process.command_args"), None);
    }

    #[test]
    fn each_detector_can_be_turned_off() {
        let config = TracingConfig::builder()
            .resource_detectors(ResourceDetectors::none())
            .build()
            .unwrap();
        let r = build(&config);
        for key in [
            "host.name",
            "host.arch",
            "process.pid",
            "process.executable.name",
            "os.type",
            "container.id",
            "service.instance.id",
        ] {
            assert_eq!(value(&r, key), None, "{key}");
        }
        // Always there: who made the telemetry, and the service.
        assert!(value(&r, "telemetry.sdk.name").is_some());
        assert!(value(&r, "telemetry.distro.version").is_some());
        let only_os = TracingConfig::builder()
            .resource_detectors([ResourceDetector::Os].into_iter().collect())
            .build()
            .unwrap();
        let r = build(&only_os);
        assert!(value(&r, "os.type").is_some());
        assert_eq!(value(&r, "process.pid"), None);
        let without_host = TracingConfig::builder()
            .resource_detectors(ResourceDetectors::all().without(ResourceDetector::Host))
            .build()
            .unwrap();
        let r = build(&without_host);
        assert_eq!(value(&r, "host.name"), None);
        assert!(value(&r, "process.pid").is_some());
    }
}
