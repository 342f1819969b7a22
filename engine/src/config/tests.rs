//! Unit tests of the configuration: every validation rule, the environment
//! (through `with_env_from`, never the real process environment), files and
//! serde, defaults, `Debug` and the `to_builder` round trip.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A file or directory under the system temp directory, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn unique(tag: &str, ext: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "faultline-config-test-{}-{n}-{tag}{ext}",
            std::process::id()
        ))
    }

    fn file(tag: &str, ext: &str, contents: &str) -> TempPath {
        let path = Self::unique(tag, ext);
        std::fs::write(&path, contents).expect("write temp file");
        TempPath(path)
    }

    fn dir(tag: &str) -> TempPath {
        let path = Self::unique(tag, "");
        std::fs::create_dir(&path).expect("create temp dir");
        TempPath(path)
    }

    /// A path that does not exist (nothing is created).
    fn missing(tag: &str) -> TempPath {
        TempPath(Self::unique(tag, ".pem"))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

/// A stand-in PEM file's text: a certificate block and a key block (the
/// configuration checks the blocks are there; the TLS stack parses them).
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n\
-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n";

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn env_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Applies the given variables over the defaults (without building).
fn with_env(pairs: &[(&str, &str)]) -> Result<TracingConfigBuilder, ConfigError> {
    let map = env_map(pairs);
    TracingConfig::builder().with_env_from(|name| map.get(name).cloned())
}

/// Applies the given variables over the defaults and builds.
fn from_env(pairs: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
    with_env(pairs)?.build()
}

fn env_ok(pairs: &[(&str, &str)]) -> TracingConfig {
    from_env(pairs).unwrap_or_else(|e| panic!("{pairs:?} should be accepted, got: {e}"))
}

fn env_err(pairs: &[(&str, &str)]) -> ConfigError {
    match from_env(pairs) {
        Ok(c) => panic!("{pairs:?} should be rejected, got: {c:?}"),
        Err(e) => {
            assert_one_line(&e);
            e
        }
    }
}

fn build_ok(b: TracingConfigBuilder) -> TracingConfig {
    b.build()
        .unwrap_or_else(|e| panic!("should be accepted, got: {e}"))
}

fn build_err(b: TracingConfigBuilder) -> ConfigError {
    match b.build() {
        Ok(c) => panic!("should be rejected, got: {c:?}"),
        Err(e) => {
            assert_one_line(&e);
            e
        }
    }
}

fn builder() -> TracingConfigBuilder {
    TracingConfig::builder()
}

fn assert_one_line(e: &ConfigError) {
    let text = e.to_string();
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "error message spans several lines: {text:?}"
    );
    assert!(!text.is_empty());
}

/// Asserts an `Invalid` error about `setting` whose message starts with the setting.
fn assert_names(e: &ConfigError, setting: &str) {
    assert_eq!(e.setting(), Some(setting), "wrong setting in: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{setting}: invalid value ")),
        "message: {e}"
    );
    assert_one_line(e);
}

fn headers_of(c: &TracingConfig) -> HashMap<String, String> {
    c.otlp_headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect()
}

fn header_strs(names: &[HeaderName]) -> Vec<&str> {
    names.iter().map(HeaderName::as_str).collect()
}

const HIDDEN: &str = "(hidden: it may hold a secret)";

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

#[test]
fn defaults_follow_the_opentelemetry_specification() {
    let c = TracingConfig::default();
    assert!(c.enabled());
    assert_eq!(c.service_name(), DEFAULT_SERVICE_NAME);
    assert_eq!(c.service_name(), "unknown-service");
    assert_eq!(c.service_version(), None);
    assert_eq!(c.deployment_environment(), None);
    assert!(c.resource_attributes().is_empty());
    assert_eq!(c.exporters(), &[ExporterKind::OTLP]);
    assert_eq!(c.otlp_protocol(), OtlpProtocol::Grpc);
    assert_eq!(c.otlp_endpoint(), None);
    assert_eq!(c.otlp_traces_endpoint().as_str(), "http://localhost:4317/");
    assert!(c.otlp_headers().is_empty());
    assert_eq!(c.otlp_compression(), Compression::None);
    assert!(c.otlp_tls().is_empty());
    // parentbased_always_on
    assert!(c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
    assert_eq!(c.jaeger_agent_host(), "localhost");
    assert_eq!(c.jaeger_agent_port(), 6831);
    assert_eq!(c.jaeger_endpoint(), None);
    assert_eq!(c.console_format(), ConsoleFormat::Pretty);
    assert!(c.pii_masking());
    assert!(c.pii_patterns().is_empty());
    assert!(c.secret_keys().is_empty());
    assert!(c.capture_request_headers().is_empty());
    assert!(c.capture_response_headers().is_empty());
    assert!(c.redact_headers().is_empty());
    let r = c.export_retry();
    assert_eq!(r.max_retries(), 3);
    assert_eq!(r.backoff_base(), Duration::from_millis(100));
    assert_eq!(r.backoff_max(), Duration::from_secs(5));
    assert_eq!(r.buffer_capacity(), 16_384);
    assert_eq!(r.buffer_bytes(), 16 << 20);
    assert_eq!(r.timeout(), Duration::from_secs(10));
    // OTEL_BSP_* defaults.
    let b = c.batch();
    assert_eq!(b.max_queue_size(), 2048);
    assert_eq!(b.max_export_batch_size(), 512);
    assert_eq!(b.scheduled_delay(), Duration::from_millis(5000));
    assert!(c.trust_incoming_context());
    assert_eq!(c.shutdown_timeout(), Duration::from_secs(5));
}

#[test]
fn default_builder_and_empty_environment_give_the_default_config() {
    let default = TracingConfig::default();
    assert_eq!(build_ok(builder()), default);
    assert_eq!(build_ok(TracingConfigBuilder::default()), default);
    assert_eq!(env_ok(&[]), default);
    assert_eq!(ExportRetry::default(), *default.export_retry());
    assert_eq!(BatchSettings::default(), *default.batch());
    assert_eq!(TlsConfig::default(), *default.otlp_tls());
}

#[test]
fn http_protobuf_default_endpoint_is_4318_v1_traces() {
    let c = build_ok(builder().otlp_protocol(OtlpProtocol::HttpProtobuf));
    assert_eq!(
        c.otlp_traces_endpoint().as_str(),
        "http://localhost:4318/v1/traces"
    );
}

#[test]
fn enum_names() {
    assert_eq!(ExporterKind::OTLP.as_str(), "otlp");
    assert_eq!(ExporterKind::JAEGER.as_str(), "jaeger");
    assert_eq!(ExporterKind::CONSOLE.as_str(), "console");
    assert_eq!(ExporterKind::JAEGER.to_string(), "jaeger");
    assert_eq!(ExporterKind::VIEWER.as_str(), "viewer");
    assert_eq!(ExporterKind::named("mine").as_str(), "mine");
    assert_eq!(format!("{:?}", ExporterKind::named("mine")), r#""mine""#);
    assert_eq!(OtlpProtocol::Grpc.as_str(), "grpc");
    assert_eq!(OtlpProtocol::HttpProtobuf.as_str(), "http/protobuf");
    assert_eq!(OtlpProtocol::default(), OtlpProtocol::Grpc);
    assert_eq!(Compression::default(), Compression::None);
    assert_eq!(ConsoleFormat::default(), ConsoleFormat::Pretty);
}

// ---------------------------------------------------------------------------
// Service name and other text
// ---------------------------------------------------------------------------

#[test]
fn service_name_valid() {
    let max = "a".repeat(255);
    for name in [
        "checkout",
        "checkout-api",
        "api-v2",
        "svc-2024-01",
        "A1",
        "x",
        "123",
        "Checkout-API",
        max.as_str(),
    ] {
        let c = build_ok(builder().service_name(name));
        assert_eq!(c.service_name(), name);
    }
}

#[test]
fn service_name_invalid() {
    let too_long = "a".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("", "must not be empty"),
        (&too_long, "longer than 255 bytes"),
        (
            "check out",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            " checkout",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "check_out",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "unknown_service",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        ("café", "only ASCII letters, digits and hyphens are allowed"),
        ("服务", "only ASCII letters, digits and hyphens are allowed"),
        (
            "svc.name",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "svc/name",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "svc\nname",
            "only ASCII letters, digits and hyphens are allowed",
        ),
    ];
    for (name, reason) in cases {
        let e = build_err(builder().service_name(*name));
        assert_names(&e, "service_name");
        assert!(e.to_string().ends_with(reason), "{name:?}: {e}");
    }
}

#[test]
fn service_name_error_messages() {
    assert_eq!(
        build_err(builder().service_name("")).to_string(),
        r#"service_name: invalid value "": must not be empty"#
    );
    assert_eq!(
        build_err(builder().service_name("check_out")).to_string(),
        r#"service_name: invalid value "check_out": only ASCII letters, digits and hyphens are allowed"#
    );
    assert_eq!(
        build_err(builder().service_name("svc\nname")).to_string(),
        r#"service_name: invalid value "svc\nname": only ASCII letters, digits and hyphens are allowed"#
    );
    // Long values are cut to 120 characters, with the full length given.
    let long = "a".repeat(256);
    assert_eq!(
        build_err(builder().service_name(long)).to_string(),
        format!(
            r#"service_name: invalid value "{}"... (256 bytes): longer than 255 bytes"#,
            "a".repeat(120)
        )
    );
    // A multi-byte name longer than 255 bytes.
    let e = build_err(builder().service_name("é".repeat(128)));
    assert!(
        e.to_string().contains("(256 bytes): longer than 255 bytes"),
        "{e}"
    );
}

#[test]
fn service_version_and_environment() {
    let c = build_ok(
        builder()
            .service_version("1.4.2+build.7")
            .deployment_environment("production"),
    );
    assert_eq!(c.service_version(), Some("1.4.2+build.7"));
    assert_eq!(c.deployment_environment(), Some("production"));

    for (value, reason) in [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("1.0\n", "must not hold control characters"),
        ("1.0\u{7}", "must not hold control characters"),
    ] {
        let e = build_err(builder().service_version(value));
        assert_names(&e, "service_version");
        assert!(e.to_string().ends_with(reason), "{e}");
        let e = build_err(builder().deployment_environment(value));
        assert_names(&e, "deployment_environment");
        assert!(e.to_string().ends_with(reason), "{e}");
    }
    assert_eq!(
        build_err(builder().deployment_environment("prod\t")).to_string(),
        r#"deployment_environment: invalid value "prod\t": must not hold control characters"#
    );
}

#[test]
fn resource_attributes_rules() {
    let c = build_ok(
        builder()
            .resource_attribute("team", "payments")
            .resource_attribute("k8s.pod.name", "checkout-7d9f")
            .resource_attribute("team", "billing"),
    );
    assert_eq!(
        c.resource_attributes(),
        &[
            ("k8s.pod.name".to_owned(), "checkout-7d9f".to_owned()),
            ("team".to_owned(), "billing".to_owned())
        ]
    );
    // Values may hold spaces and unicode.
    build_ok(builder().resource_attribute("owner", "Zoë Müller"));

    for key in ["", "has space", "tab\there", "é"] {
        let e = build_err(builder().resource_attribute(key, "v"));
        assert_names(&e, "resource_attributes");
        assert!(
            e.to_string()
                .ends_with("an attribute key must be printable ASCII without spaces"),
            "{e}"
        );
    }
    assert_eq!(
        build_err(builder().resource_attribute("team", "a\nb")).to_string(),
        r#"resource_attributes: invalid value "a\nb": the value of `team` must not hold control characters"#
    );
}

// ---------------------------------------------------------------------------
// Sample rate
// ---------------------------------------------------------------------------

#[test]
fn sample_rate_valid() {
    for rate in [0.0, -0.0, 0.25, 0.5, 1.0, f64::MIN_POSITIVE] {
        let c = build_ok(builder().sample_rate(rate));
        assert_eq!(c.sample_rate(), rate);
    }
}

#[test]
fn sample_rate_invalid() {
    let cases = [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (-0.1, "-0.1"),
        (1.1, "1.1"),
        (1.000_000_1, "1.0000001"),
        (-1.0, "-1"),
        (2.0, "2"),
    ];
    for (rate, shown) in cases {
        let e = build_err(builder().sample_rate(rate));
        assert_eq!(
            e.to_string(),
            format!(r#"sample_rate: invalid value "{shown}": must be a number within 0.0..=1.0"#)
        );
        assert_eq!(e.setting(), Some("sample_rate"));
    }
}

#[test]
fn parent_based_flag() {
    assert!(!build_ok(builder().parent_based(false)).parent_based());
    assert!(build_ok(builder().parent_based(true)).parent_based());
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

type EndpointSetter = fn(TracingConfigBuilder, String) -> TracingConfigBuilder;

const ENDPOINT_SETTERS: &[(&str, EndpointSetter)] = &[
    ("otlp_endpoint", |b, u| b.otlp_endpoint(u)),
    ("otlp_traces_endpoint", |b, u| b.otlp_traces_endpoint(u)),
    ("jaeger_endpoint", |b, u| b.jaeger_endpoint(u)),
];

#[test]
fn endpoint_urls_valid() {
    let cases = [
        ("http://collector:4317", "http://collector:4317/"),
        (
            "https://collector.example.com:4317",
            "https://collector.example.com:4317/",
        ),
        (
            "https://collector.example.com",
            "https://collector.example.com/",
        ),
        (
            "http://10.0.0.5:4318/v1/traces",
            "http://10.0.0.5:4318/v1/traces",
        ),
        ("http://[::1]:4317", "http://[::1]:4317/"),
        ("  http://collector:4317  ", "http://collector:4317/"),
        ("HTTPS://Collector:443/api", "https://collector/api"),
        (
            "https://collector/path?tenant=a",
            "https://collector/path?tenant=a",
        ),
    ];
    for (input, expected) in cases {
        let c = build_ok(builder().otlp_endpoint(input));
        assert_eq!(
            c.otlp_endpoint().map(Url::as_str),
            Some(expected),
            "{input}"
        );
        let c = build_ok(builder().otlp_traces_endpoint(input));
        assert_eq!(c.otlp_traces_endpoint().as_str(), expected, "{input}");
        let c = build_ok(builder().jaeger_endpoint(input));
        assert_eq!(
            c.jaeger_endpoint().map(Url::as_str),
            Some(expected),
            "{input}"
        );
    }
}

#[test]
fn endpoint_urls_invalid() {
    let cases = [
        ("ftp://collector:21", "the scheme must be http or https"),
        ("grpc://collector:4317", "the scheme must be http or https"),
        ("file:///etc/passwd", "the scheme must be http or https"),
        ("localhost:4317", "the scheme must be http or https"),
        ("http://", "not a URL (empty host)"),
        ("https://:4317", "not a URL (empty host)"),
        ("not a url", "not a URL (relative URL without a base)"),
        ("collector", "not a URL (relative URL without a base)"),
        ("", "not a URL (relative URL without a base)"),
        ("http://collector:99999", "not a URL (invalid port number)"),
    ];
    for (setting, set) in ENDPOINT_SETTERS {
        for (input, reason) in cases {
            let e = build_err(set(builder(), input.to_owned()));
            assert_eq!(
                e.to_string(),
                format!("{setting}: invalid value {input:?}: {reason}")
            );
        }
    }
}

#[test]
fn endpoint_credentials_are_rejected_without_being_shown() {
    let cases = [
        (
            "https://user:s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "https://:s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "https://s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "http://user:s3cret@10.0.0.1/v1/traces",
            "credentials in the URL are not accepted; send them as headers",
        ),
        // Other errors on a URL holding credentials must not show them either.
        (
            "ftp://user:s3cret@collector",
            "the scheme must be http or https",
        ),
        ("http://user:s3cret@:4317", "not a URL (empty host)"),
        (
            "http://user:s3cret@collector:99999",
            "not a URL (invalid port number)",
        ),
    ];
    for (setting, set) in ENDPOINT_SETTERS {
        for (input, reason) in cases {
            let e = build_err(set(builder(), input.to_owned()));
            let text = e.to_string();
            assert!(!text.contains("s3cret"), "password leaked: {text}");
            assert_eq!(text, format!("{setting}: invalid value {HIDDEN}: {reason}"));
        }
    }
}

#[test]
fn otlp_traces_endpoint_resolution_in_code() {
    type Case = (
        OtlpProtocol,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let cases: &[Case] = &[
        (OtlpProtocol::Grpc, None, None, "http://localhost:4317/"),
        (
            OtlpProtocol::HttpProtobuf,
            None,
            None,
            "http://localhost:4318/v1/traces",
        ),
        (
            OtlpProtocol::Grpc,
            Some("http://collector:4317"),
            None,
            "http://collector:4317/",
        ),
        (
            OtlpProtocol::Grpc,
            Some("https://collector:4317/"),
            None,
            "https://collector:4317/",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://collector:4318"),
            None,
            "http://collector:4318/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://collector:4318/"),
            None,
            "http://collector:4318/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("https://gw.example.com/otlp"),
            None,
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("https://gw.example.com/otlp/"),
            None,
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://base:4318"),
            Some("http://traces:9999/custom"),
            "http://traces:9999/custom",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            None,
            Some("http://traces:4318/"),
            "http://traces:4318/",
        ),
        (
            OtlpProtocol::Grpc,
            Some("http://base:4317"),
            Some("http://traces:4317"),
            "http://traces:4317/",
        ),
    ];
    for (protocol, base, traces, expected) in cases {
        let mut b = builder().otlp_protocol(*protocol);
        if let Some(base) = base {
            b = b.otlp_endpoint(*base);
        }
        if let Some(traces) = traces {
            b = b.otlp_traces_endpoint(*traces);
        }
        let c = build_ok(b);
        assert_eq!(
            c.otlp_traces_endpoint().as_str(),
            *expected,
            "{protocol:?} {base:?} {traces:?}"
        );
        // The base endpoint is kept as configured.
        assert_eq!(
            c.otlp_endpoint().map(Url::as_str),
            base.map(|b| Url::parse(b).unwrap())
                .as_ref()
                .map(Url::as_str)
        );
    }
}

// ---------------------------------------------------------------------------
// Export headers
// ---------------------------------------------------------------------------

#[test]
fn export_headers_valid() {
    let c = build_ok(
        builder()
            .otlp_header("Authorization", "Bearer abc")
            .otlp_header("x-tenant", "t1")
            .otlp_header("AUTHORIZATION", "Bearer xyz")
            .otlp_header("x-empty", "")
            .otlp_header("x-tab", "a\tb"),
    );
    let headers = headers_of(&c);
    assert_eq!(headers.len(), 4);
    assert_eq!(headers["authorization"], "Bearer xyz");
    assert_eq!(headers["x-tenant"], "t1");
    assert_eq!(headers["x-empty"], "");
    assert_eq!(headers["x-tab"], "a\tb");
}

#[test]
fn export_header_bad_name() {
    for name in ["bad header", "", "x:y", "é", "a\nb", "(x)"] {
        let e = build_err(builder().otlp_header(name, "v"));
        assert_names(&e, "otlp_headers");
        assert!(e.to_string().ends_with(": not a valid header name"), "{e}");
    }
    assert_eq!(
        build_err(builder().otlp_header("bad header", "s3cret")).to_string(),
        r#"otlp_headers: invalid value "bad header": not a valid header name"#
    );
}

#[test]
fn export_header_bad_value_is_not_shown() {
    for value in [
        "Bearer s3cret\n",
        "Bearer\rs3cret",
        "s3cret\u{0}",
        "s3cret\u{1b}",
        "s3cret\u{7f}",
    ] {
        let e = build_err(builder().otlp_header("Authorization", value));
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "value leaked: {text}");
        assert_eq!(
            text,
            format!(
                "otlp_headers: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
            )
        );
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[test]
fn tls_valid_paths() {
    let ca = TempPath::file("ca", ".pem", PEM);
    let cert = TempPath::file("cert", ".pem", PEM);
    let key = TempPath::file("key", ".pem", PEM);
    let c = build_ok(
        builder()
            .otlp_ca_file(ca.path())
            .otlp_client_identity(cert.path(), key.path()),
    );
    let tls = c.otlp_tls();
    assert!(!tls.is_empty());
    assert_eq!(tls.ca_file(), Some(ca.path()));
    assert_eq!(tls.client_cert(), Some(cert.path()));
    assert_eq!(tls.client_key(), Some(key.path()));

    let c = build_ok(builder().otlp_ca_file(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), None);
    assert!(!c.otlp_tls().is_empty());
}

#[test]
fn tls_missing_file() {
    let missing = TempPath::missing("nope");
    let e = build_err(builder().otlp_ca_file(missing.path()));
    assert_names(&e, "otlp_tls.ca_file");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "otlp_tls.ca_file: invalid value {:?}: cannot be read (",
            missing.str()
        )),
        "{text}"
    );

    let present = TempPath::file("present", ".pem", PEM);
    let e = build_err(builder().otlp_client_identity(missing.path(), present.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let e = build_err(builder().otlp_client_identity(present.path(), missing.path()));
    assert_names(&e, "otlp_tls.client_key");
}

#[test]
fn tls_directory_is_not_a_file() {
    let dir = TempPath::dir("tlsdir");
    let file = TempPath::file("f", ".pem", PEM);
    let e = build_err(builder().otlp_ca_file(dir.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.ca_file: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().otlp_client_identity(dir.path(), file.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.client_cert: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().otlp_client_identity(file.path(), dir.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.client_key: invalid value {:?}: not a file",
            dir.str()
        )
    );
}

#[test]
fn tls_certificate_and_key_go_together() {
    let cert = TempPath::file("cert", ".pem", PEM);
    // The builder sets both at once; a file (or the environment) can set one.
    let cert_only = format!(r#"{{"otlp_client_cert": {:?}}}"#, cert.str());
    let e = serde_json::from_str::<TracingConfig>(&cert_only)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"otlp_tls: invalid value "client_cert only": a client certificate and its key go together"#),
        "{e}"
    );
    let key_only = format!(r#"{{"otlp_client_key": {:?}}}"#, cert.str());
    let e = serde_json::from_str::<TracingConfig>(&key_only)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"otlp_tls: invalid value "client_key only": a client certificate and its key go together"#),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// Jaeger agent
// ---------------------------------------------------------------------------

#[test]
fn jaeger_host_valid() {
    let label63 = "a".repeat(63);
    let hosts = [
        "localhost",
        "jaeger-agent",
        "jaeger.observability.svc.cluster.local",
        "example.com.",
        "a1.b2",
        "10.0.0.1",
        "255.255.255.255",
        "[::1]",
        "::1",
        "[2001:db8::1]",
        "[fe80::1:2:3:4]",
        label63.as_str(),
    ];
    for host in hosts {
        let c = build_ok(builder().jaeger_agent(host, 6832));
        assert_eq!(c.jaeger_agent_host(), host);
        assert_eq!(c.jaeger_agent_port(), 6832);
    }
}

#[test]
fn jaeger_host_invalid() {
    let label64 = "a".repeat(64);
    let too_long = ["abcdefghij"; 24].join("."); // 263 bytes
    let hosts = [
        "-jaeger",
        "jaeger-",
        "jae ger",
        "jaeger_agent",
        "a..b",
        ".",
        ".jaeger",
        label64.as_str(),
        "[localhost]",
        "[::1",
        "jaeger:6831",
        "jäger",
        "[2001:db8::zz]",
    ];
    for host in hosts {
        let e = build_err(builder().jaeger_agent(host, 6831));
        assert_eq!(
            e.to_string(),
            format!("jaeger_agent_host: invalid value {host:?}: not a host name or IP address"),
        );
    }
    let e = build_err(builder().jaeger_agent(too_long.as_str(), 6831));
    assert!(
        e.to_string()
            .ends_with("... (263 bytes): not a host name or IP address"),
        "{e}"
    );
    assert_eq!(
        build_err(builder().jaeger_agent("", 6831)).to_string(),
        r#"jaeger_agent_host: invalid value "": must not be empty"#
    );
}

#[test]
fn jaeger_port() {
    assert_eq!(
        build_ok(builder().jaeger_agent("localhost", 1)).jaeger_agent_port(),
        1
    );
    assert_eq!(
        build_ok(builder().jaeger_agent("localhost", 65535)).jaeger_agent_port(),
        65535
    );
    assert_eq!(
        build_err(builder().jaeger_agent("localhost", 0)).to_string(),
        r#"jaeger_agent_port: invalid value "0": a port must be within 1..=65535"#
    );
    // Beyond u16 only reaches the builder through a file or serde.
    for port in [65536_u32, 70000, u32::MAX] {
        let e =
            serde_json::from_str::<TracingConfig>(&format!(r#"{{"jaeger_agent_port": {port}}}"#))
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with(&format!(
                r#"jaeger_agent_port: invalid value "{port}": a port must be within 1..=65535"#
            )),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------
// PII patterns, secret keys, header names
// ---------------------------------------------------------------------------

#[test]
fn pii_pattern_valid() {
    let c = build_ok(
        builder()
            .pii_pattern("order_id", "ORD-[0-9]{8}")
            .pii_pattern_with("card-last4", r"\b\d{12}(\d{4})\b", "****$1")
            .pii_pattern("Ticket2", "T#[0-9]+"),
    );
    let patterns = c.pii_patterns();
    assert_eq!(patterns.len(), 3);
    let by_name: HashMap<&str, &PiiPattern> = patterns.iter().map(|p| (p.name(), p)).collect();
    let order = by_name["order_id"];
    assert_eq!(order.regex().as_str(), "ORD-[0-9]{8}");
    assert_eq!(order.replacement(), DEFAULT_PATTERN_REPLACEMENT);
    assert_eq!(order.replacement(), "[REDACTED]");
    assert!(order.regex().is_match("order ORD-12345678 shipped"));
    let card = by_name["card-last4"];
    assert_eq!(card.replacement(), "****$1");
    assert_eq!(
        card.regex()
            .replace_all("card 4111111111111111", card.replacement()),
        "card ****1111"
    );
    assert!(by_name.contains_key("Ticket2"));

    // The same name twice: the last one wins.
    let c = build_ok(
        builder()
            .pii_pattern("x", "a+")
            .pii_pattern_with("x", "b+", "B"),
    );
    assert_eq!(c.pii_patterns().len(), 1);
    assert_eq!(c.pii_patterns()[0].regex().as_str(), "b+");
    assert_eq!(c.pii_patterns()[0].replacement(), "B");
}

#[test]
fn pii_pattern_invalid() {
    let name_reason = "a pattern name must be ASCII letters, digits, `_` or `-`";
    for name in ["", "bad name", "bad.name", "naïve", "a/b"] {
        let e = build_err(builder().pii_pattern(name, "x+"));
        assert_eq!(
            e.to_string(),
            format!("pii_patterns: invalid value {name:?}: {name_reason}")
        );
    }
    assert_eq!(
        build_err(builder().pii_pattern("order", "")).to_string(),
        r#"pii_patterns.order: invalid value "": the expression is empty"#
    );
    assert_eq!(
        build_err(builder().pii_pattern("order", "(")).to_string(),
        r#"pii_patterns.order: invalid value "(": the expression does not compile (error: unclosed group)"#
    );
    for regex in ["[a-", "a{2,1}", "(?P<x>a)(?P<x>b)", "\\"] {
        let e = build_err(builder().pii_pattern("p", regex));
        assert_names(&e, "pii_patterns.p");
        assert!(
            e.to_string().contains("the expression does not compile ("),
            "{e}"
        );
    }
    for regex in ["a*", "x?", "^", "$", "(a|)", "\\B", ".*"] {
        let e = build_err(builder().pii_pattern_with("p", regex, "X"));
        assert_eq!(
            e.to_string(),
            format!(
                "pii_patterns.p: invalid value {regex:?}: the expression matches the empty string"
            )
        );
    }
    // Too large to compile within the size limit.
    let e = build_err(builder().pii_pattern("huge", "(\\w{100}){100}"));
    assert_names(&e, "pii_patterns.huge");
    // A replacement stays on one line (a masked log line stays one line).
    for replacement in ["L1\nL2", "a\rb", "tab\there", "nul\0"] {
        let e = build_err(builder().pii_pattern_with("x", "foo", replacement));
        assert_names(&e, "pii_patterns.x");
        assert!(e.to_string().contains("line break"), "{e}");
    }
    build_ok(builder().pii_pattern_with("x", "foo", "[x: $0 ✓]"));
    let e = env_err(&[(
        "FAULTLINE_PII_PATTERNS",
        r#"{"x":{"regex":"foo","replacement":"L1\nL2"}}"#,
    )]);
    assert_names(&e, "FAULTLINE_PII_PATTERNS.x");
    assert!(e.to_string().contains("line break"), "{e}");
}

#[test]
fn secret_keys_rules() {
    let c = build_ok(
        builder()
            .secret_key("API_Key")
            .secret_key("  card_cvv ")
            .secret_key("x-session.token"),
    );
    assert_eq!(c.secret_keys(), &["api_key", "card_cvv", "x-session.token"]);
    let reason = "a key must be printable ASCII without spaces";
    for (key, shown) in [
        ("", ""),
        ("   ", ""),
        ("api key", "api key"),
        ("clé", "clé"),
        ("a\tb", "a\tb"),
    ] {
        let e = build_err(builder().secret_key(key));
        assert_eq!(
            e.to_string(),
            format!("secret_keys: invalid value {shown:?}: {reason}")
        );
    }
}

type HeaderSetter = fn(TracingConfigBuilder, &str) -> TracingConfigBuilder;
type HeaderGetter = fn(&TracingConfig) -> &[HeaderName];

const HEADER_LISTS: &[(&str, HeaderSetter, HeaderGetter)] = &[
    (
        "capture_request_headers",
        |b, h| b.capture_request_header(h),
        |c| c.capture_request_headers(),
    ),
    (
        "capture_response_headers",
        |b, h| b.capture_response_header(h),
        |c| c.capture_response_headers(),
    ),
    (
        "redact_headers",
        |b, h| b.redact_header(h),
        |c| c.redact_headers(),
    ),
];

#[test]
fn header_name_lists() {
    for (setting, add, get) in HEADER_LISTS {
        let b = [
            "X-Request-Id",
            "user-agent",
            "x-request-id",
            " Content-Type ",
        ]
        .iter()
        .fold(builder(), |b, h| add(b, h));
        let c = build_ok(b);
        assert_eq!(
            header_strs(get(&c)),
            ["x-request-id", "user-agent", "content-type"],
            "{setting}"
        );

        for bad in ["bad header", "", "x:y", "é", "(x)"] {
            let e = build_err(add(builder(), bad));
            assert_eq!(
                e.to_string(),
                format!("{setting}: invalid value {bad:?}: not a valid header name")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Retries, back-off, buffer, batch, timeouts
// ---------------------------------------------------------------------------

#[test]
fn export_retries() {
    for n in [0, 1, 3, 100] {
        assert_eq!(
            build_ok(builder().max_export_retries(n))
                .export_retry()
                .max_retries(),
            n
        );
    }
    assert_eq!(
        build_err(builder().max_export_retries(101)).to_string(),
        r#"max_export_retries: invalid value "101": must be at most 100"#
    );
    assert_names(
        &build_err(builder().max_export_retries(u32::MAX)),
        "max_export_retries",
    );
}

#[test]
fn backoff_rules() {
    let ms = Duration::from_millis;
    let c = build_ok(builder().backoff(ms(250), ms(250)));
    assert_eq!(c.export_retry().backoff_base(), ms(250));
    assert_eq!(c.export_retry().backoff_max(), ms(250));
    build_ok(builder().backoff(ms(1), Duration::from_secs(600)));
    build_ok(builder().backoff(Duration::from_secs(60), Duration::from_secs(60)));

    let cases = [
        (
            ms(0),
            ms(100),
            r#"backoff_base: invalid value "0 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            ms(60_001),
            ms(120_000),
            r#"backoff_base: invalid value "60001 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            ms(100),
            ms(50),
            r#"backoff_max: invalid value "50 ms": must be within 100 ms..=600000 ms"#,
        ),
        (
            ms(100),
            ms(0),
            r#"backoff_max: invalid value "0 ms": must be within 100 ms..=600000 ms"#,
        ),
        (
            ms(100),
            ms(600_001),
            r#"backoff_max: invalid value "600001 ms": must be within 100 ms..=600000 ms"#,
        ),
    ];
    for (base, max, message) in cases {
        assert_eq!(build_err(builder().backoff(base, max)).to_string(), message);
    }
}

#[test]
fn buffer_capacity_and_export_timeout() {
    assert_eq!(
        build_ok(builder().export_buffer_capacity(0))
            .export_retry()
            .buffer_capacity(),
        0
    );
    assert_eq!(
        build_ok(builder().export_buffer_capacity(10_000_000))
            .export_retry()
            .buffer_capacity(),
        10_000_000
    );
    assert_eq!(
        build_err(builder().export_buffer_capacity(10_000_001)).to_string(),
        r#"export_buffer_capacity: invalid value "10000001": must be within 0..=10000000"#
    );
    assert_eq!(
        build_ok(builder().export_buffer_bytes(0))
            .export_retry()
            .buffer_bytes(),
        0
    );
    assert_eq!(
        build_ok(builder().export_buffer_bytes(1 << 40))
            .export_retry()
            .buffer_bytes(),
        1 << 40
    );
    assert!(
        build_err(builder().export_buffer_bytes((1 << 40) + 1))
            .to_string()
            .starts_with("export_buffer_bytes: invalid value")
    );
    assert_eq!(
        build_ok(builder().export_timeout(Duration::from_millis(1)))
            .export_retry()
            .timeout(),
        Duration::from_millis(1)
    );
    build_ok(builder().export_timeout(Duration::from_secs(600)));
    assert_eq!(
        build_err(builder().export_timeout(Duration::ZERO)).to_string(),
        r#"export_timeout: invalid value "0 ms": must be within 1 ms..=600000 ms"#
    );
    assert_names(
        &build_err(builder().export_timeout(Duration::from_secs(601))),
        "export_timeout",
    );
}

#[test]
fn batch_rules() {
    let ms = Duration::from_millis;
    let c = build_ok(builder().batch(4096, 1024, ms(200)));
    assert_eq!(c.batch().max_queue_size(), 4096);
    assert_eq!(c.batch().max_export_batch_size(), 1024);
    assert_eq!(c.batch().scheduled_delay(), ms(200));
    build_ok(builder().batch(1, 1, ms(1)));
    build_ok(builder().batch(512, 512, Duration::from_secs(3600)));
    build_ok(builder().batch(10_000_000, 1, ms(1)));

    let cases = [
        (
            0,
            0,
            ms(5000),
            r#"batch_max_queue_size: invalid value "0": must be within 1..=10000000"#,
        ),
        (
            0,
            512,
            ms(5000),
            r#"batch_max_queue_size: invalid value "0": must be within 1..=10000000"#,
        ),
        (
            10_000_001,
            512,
            ms(5000),
            r#"batch_max_queue_size: invalid value "10000001": must be within 1..=10000000"#,
        ),
        (
            512,
            600,
            ms(5000),
            r#"batch_max_export_batch_size: invalid value "600": must be within 1..=512"#,
        ),
        (
            2048,
            0,
            ms(5000),
            r#"batch_max_export_batch_size: invalid value "0": must be within 1..=2048"#,
        ),
        (
            2048,
            512,
            ms(0),
            r#"batch_scheduled_delay: invalid value "0 ms": must be within 1 ms..=3600000 ms"#,
        ),
        (
            2048,
            512,
            ms(3_600_001),
            r#"batch_scheduled_delay: invalid value "3600001 ms": must be within 1 ms..=3600000 ms"#,
        ),
    ];
    for (queue, batch, delay, message) in cases {
        assert_eq!(
            build_err(builder().batch(queue, batch, delay)).to_string(),
            message
        );
    }
}

#[test]
fn shutdown_timeout_rules() {
    assert_eq!(
        build_ok(builder().shutdown_timeout(Duration::from_secs(60))).shutdown_timeout(),
        Duration::from_secs(60)
    );
    build_ok(builder().shutdown_timeout(Duration::from_millis(1)));
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::from_millis(60_001))).to_string(),
        r#"shutdown_timeout: invalid value "60001 ms": must be within 1 ms..=60000 ms"#
    );
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::from_secs(61))).to_string(),
        r#"shutdown_timeout: invalid value "61000 ms": must be within 1 ms..=60000 ms"#
    );
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::ZERO)).to_string(),
        r#"shutdown_timeout: invalid value "0 ms": must be within 1 ms..=60000 ms"#
    );
}

#[test]
fn exporters_in_code_keep_their_order_without_duplicates() {
    let c = build_ok(builder().exporters([
        ExporterKind::CONSOLE,
        ExporterKind::OTLP,
        ExporterKind::named("mine"),
        ExporterKind::CONSOLE,
    ]));
    assert_eq!(
        c.exporters(),
        &[
            ExporterKind::CONSOLE,
            ExporterKind::OTLP,
            ExporterKind::named("mine")
        ]
    );
    assert!(build_ok(builder().exporters([])).exporters().is_empty());
}

#[test]
fn exporter_names_must_be_well_formed() {
    for bad in [
        "",
        "Mine",
        "my exporter",
        "9lives",
        "a/b",
        "none",
        &"x".repeat(65),
    ] {
        let e = build_err(builder().exporters([ExporterKind::named(bad.to_owned())]));
        assert_one_line(&e);
        assert!(e.to_string().starts_with("exporters: invalid value"), "{e}");
    }
    for good in ["mine", "audit-log", "my_exporter.v2", &"x".repeat(64)] {
        build_ok(builder().exporters([ExporterKind::named(good.to_owned())]));
    }
}

#[test]
fn first_broken_rule_is_reported() {
    // Validation runs in a fixed order: the service name comes before the rate.
    let e = build_err(builder().service_name("bad name").sample_rate(2.0));
    assert_eq!(e.setting(), Some("service_name"));
}

// ---------------------------------------------------------------------------
// Error type
// ---------------------------------------------------------------------------

#[test]
fn error_variants_display_and_setting() {
    let e = ConfigError::invalid("sample_rate", "2", "must be a number within 0.0..=1.0");
    assert_eq!(
        e.to_string(),
        r#"sample_rate: invalid value "2": must be a number within 0.0..=1.0"#
    );
    assert_eq!(e.setting(), Some("sample_rate"));

    let e = ConfigError::invalid_secret("otlp_headers", "bad");
    assert_eq!(
        e.to_string(),
        format!("otlp_headers: invalid value {HIDDEN}: bad")
    );

    let e = ConfigError::File {
        path: "/x.toml".into(),
        reason: "gone".into(),
    };
    assert_eq!(
        e.to_string(),
        "/x.toml: cannot read configuration file: gone"
    );
    assert_eq!(e.setting(), None);

    let e = ConfigError::Parse {
        path: "/x.json".into(),
        reason: "bad".into(),
    };
    assert_eq!(e.to_string(), "/x.json: invalid configuration file: bad");
    assert_eq!(e.setting(), None);
}

#[test]
fn error_value_is_quoted_escaped_and_cut() {
    let e = ConfigError::invalid("s", "a\"b\nc\u{1b}", "r");
    assert_eq!(e.to_string(), r#"s: invalid value "a\"b\nc\u{1b}": r"#);
    let exactly = "x".repeat(120);
    assert_eq!(
        ConfigError::invalid("s", &exactly, "r").to_string(),
        format!("s: invalid value {exactly:?}: r")
    );
    let long = format!("{}\n{}", "é".repeat(150), "y".repeat(10));
    let text = ConfigError::invalid("s", &long, "r").to_string();
    assert_eq!(
        text,
        format!(
            r#"s: invalid value "{}"... ({} bytes): r"#,
            "é".repeat(120),
            long.len()
        )
    );
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

#[test]
fn env_service_name() {
    assert_eq!(
        env_ok(&[("OTEL_SERVICE_NAME", "checkout")]).service_name(),
        "checkout"
    );
    assert_eq!(
        env_err(&[("OTEL_SERVICE_NAME", "check out")]).to_string(),
        r#"OTEL_SERVICE_NAME: invalid value "check out": only ASCII letters, digits and hyphens are allowed"#
    );
    let e = env_err(&[("OTEL_SERVICE_NAME", "unknown_service")]);
    assert_names(&e, "OTEL_SERVICE_NAME");
}

#[test]
fn env_resource_attributes() {
    let c = env_ok(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=checkout,service.version=1.2.3, deployment.environment.name = prod ,\
         team=pay%20ments,note=a%3Db%2Cc%25,owner=Zo%C3%AB,team2=x=y",
    )]);
    assert_eq!(c.service_name(), "checkout");
    assert_eq!(c.service_version(), Some("1.2.3"));
    assert_eq!(c.deployment_environment(), Some("prod"));
    let attrs: HashMap<&str, &str> = c
        .resource_attributes()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs.len(), 4, "{attrs:?}");
    assert_eq!(attrs["team"], "pay ments");
    assert_eq!(attrs["note"], "a=b,c%");
    assert_eq!(attrs["owner"], "Zoë");
    assert_eq!(attrs["team2"], "x=y");
    // The picked-out keys are not repeated as plain attributes.
    assert!(!attrs.contains_key("service.name"));
    assert!(!attrs.contains_key("service.version"));
    assert!(!attrs.contains_key("deployment.environment.name"));

    // The older key name is understood too.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")]);
    assert_eq!(c.deployment_environment(), Some("staging"));
    assert!(c.resource_attributes().is_empty());

    // A repeated key: the last one wins.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,team=b")]);
    assert_eq!(
        c.resource_attributes(),
        &[("team".to_owned(), "b".to_owned())]
    );

    // Empty entries are skipped.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", ",,team=a,,")]);
    assert_eq!(c.resource_attributes().len(), 1);
}

#[test]
fn env_service_name_wins_over_resource_attribute() {
    let c = env_ok(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attributes,service.version=1.0",
        ),
        ("OTEL_SERVICE_NAME", "from-variable"),
    ]);
    assert_eq!(c.service_name(), "from-variable");
    assert_eq!(c.service_version(), Some("1.0"));

    // FAULTLINE_SERVICE_VERSION and FAULTLINE_ENVIRONMENT win over the attributes too.
    let c = env_ok(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=1.0,deployment.environment.name=prod",
        ),
        ("FAULTLINE_SERVICE_VERSION", "2.0"),
        ("FAULTLINE_ENVIRONMENT", "staging"),
    ]);
    assert_eq!(c.service_version(), Some("2.0"));
    assert_eq!(c.deployment_environment(), Some("staging"));
}

#[test]
fn env_resource_attribute_errors() {
    let cases = [
        (
            "novalue",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "novalue": entry 1 is not key=value"#,
        ),
        (
            "a=1,=x",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "=x": entry 2 has an empty key"#,
        ),
        (
            "a=%zz",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=%zz": entry 1 has a bad percent-encoding"#,
        ),
        (
            "a=100%",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=100%": entry 1 has a bad percent-encoding"#,
        ),
        (
            "a=%ff",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=%ff": entry 1 has a bad percent-encoding"#,
        ),
        (
            "service.name=bad_name",
            r#"OTEL_RESOURCE_ATTRIBUTES service.name: invalid value "bad_name": only ASCII letters, digits and hyphens are allowed"#,
        ),
        (
            "my key=v",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "my key": an attribute key must be printable ASCII without spaces"#,
        ),
        (
            "team=a%0Ab",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a\nb": the value of `team` must not hold control characters"#,
        ),
    ];
    for (value, message) in cases {
        assert_eq!(
            env_err(&[("OTEL_RESOURCE_ATTRIBUTES", value)]).to_string(),
            message,
            "{value}"
        );
    }
}

#[test]
fn percent_decoding() {
    let cases: &[(&str, Option<&str>)] = &[
        ("plain", Some("plain")),
        ("", Some("")),
        ("a%20b", Some("a b")),
        ("%2c%2C", Some(",,")),
        ("%3D%25", Some("=%")),
        ("%C3%A9t%C3%A9", Some("été")),
        ("é", Some("é")),
        ("a+b", Some("a+b")),
        ("%", None),
        ("%4", None),
        ("%zz", None),
        ("%g0", None),
        ("%ff", None),
        ("%C3", None),
    ];
    for (input, expected) in cases {
        assert_eq!(
            super::env::decode_for_test(input).as_deref(),
            *expected,
            "{input:?}"
        );
    }
}

#[test]
fn env_samplers() {
    type Case = (&'static str, Option<&'static str>, bool, f64);
    let cases: &[Case] = &[
        ("always_on", None, false, 1.0),
        ("always_on", Some("0.5"), false, 1.0),
        ("always_off", None, false, 0.0),
        ("always_off", Some("0.5"), false, 0.0),
        ("traceidratio", None, false, 1.0),
        ("traceidratio", Some("0.25"), false, 0.25),
        ("traceidratio", Some("0"), false, 0.0),
        ("traceidratio", Some(" 1 "), false, 1.0),
        ("parentbased_always_on", None, true, 1.0),
        ("parentbased_always_on", Some("0.5"), true, 1.0),
        ("parentbased_always_off", None, true, 0.0),
        ("parentbased_always_off", Some("0.5"), true, 0.0),
        ("parentbased_traceidratio", None, true, 1.0),
        ("parentbased_traceidratio", Some("0.1"), true, 0.1),
        ("parentbased_traceidratio", Some("1.0"), true, 1.0),
        (" traceidratio ", Some("0.5"), false, 0.5),
    ];
    for (sampler, arg, parent_based, rate) in cases {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", *sampler)];
        if let Some(arg) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", *arg));
        }
        let c = env_ok(&vars);
        assert_eq!(c.parent_based(), *parent_based, "{vars:?}");
        assert_eq!(c.sample_rate(), *rate, "{vars:?}");
    }
    // The argument alone changes nothing.
    let c = env_ok(&[("OTEL_TRACES_SAMPLER_ARG", "0.5")]);
    assert!(c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
    // The environment replaces what the builder held.
    let map = env_map(&[("OTEL_TRACES_SAMPLER", "always_on")]);
    let c = build_ok(
        builder()
            .parent_based(true)
            .sample_rate(0.3)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert!(!c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
}

#[test]
fn env_sampler_errors() {
    for sampler in ["traceidratio", "parentbased_traceidratio"] {
        for arg in ["abc", "1.5", "-0.1", "NaN", "inf", "50%"] {
            let e = env_err(&[
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ]);
            assert_eq!(
                e.to_string(),
                format!(
                    "OTEL_TRACES_SAMPLER_ARG: invalid value {arg:?}: must be a number within 0.0..=1.0"
                ),
            );
        }
    }
    // Names are case-insensitive, as the specification asks.
    assert_eq!(
        env_ok(&[("OTEL_TRACES_SAMPLER", "ALWAYS_OFF")]).sample_rate(),
        0.0
    );
    for sampler in ["always-on", "x ray", "per/route"] {
        let e = env_err(&[("OTEL_TRACES_SAMPLER", sampler)]);
        assert_names(&e, "OTEL_TRACES_SAMPLER");
        assert!(e.to_string().contains(&format!("{sampler:?}")), "{e}");
    }
    // Other plain names are registered samplers' names, checked when the
    // engine is built (EngineBuilder::register_sampler).
    for sampler in ["jaeger_remote", "xray", "AlwaysOn"] {
        let c = env_ok(&[("OTEL_TRACES_SAMPLER", sampler)]);
        assert_eq!(
            c.custom_sampler(),
            Some(sampler.to_ascii_lowercase().as_str())
        );
    }
}

#[test]
fn env_exporters() {
    let cases: &[(&str, &[&str])] = &[
        ("otlp", &["otlp"]),
        ("jaeger", &["jaeger"]),
        ("console", &["console"]),
        ("stdout", &["console"]),
        ("none", &[]),
        ("none,none", &[]),
        ("console,otlp", &["console", "otlp"]),
        ("otlp,jaeger,console", &["otlp", "jaeger", "console"]),
        ("otlp,otlp", &["otlp"]),
        ("stdout,console", &["console"]),
        (" otlp , jaeger ", &["otlp", "jaeger"]),
        ("otlp,,jaeger,", &["otlp", "jaeger"]),
        // Any well-formed name: the engine's builder finds it among the registered ones.
        ("otlp,mine", &["otlp", "mine"]),
        ("Mine,OTLP", &["mine", "otlp"]),
    ];
    for (value, expected) in cases {
        let expected: Vec<ExporterKind> = expected
            .iter()
            .map(|n| ExporterKind::named(n.to_string()))
            .collect();
        assert_eq!(
            env_ok(&[("OTEL_TRACES_EXPORTER", value)]).exporters(),
            expected,
            "{value}"
        );
    }
}

#[test]
fn env_exporter_errors() {
    assert_eq!(
        env_err(&[("OTEL_TRACES_EXPORTER", "none,otlp")]).to_string(),
        r#"OTEL_TRACES_EXPORTER: invalid value "none,otlp": `none` cannot be combined with other exporters"#
    );
    assert_names(
        &env_err(&[("OTEL_TRACES_EXPORTER", "console, none")]),
        "OTEL_TRACES_EXPORTER",
    );
    assert_eq!(
        env_err(&[("OTEL_TRACES_EXPORTER", "otlp,zip/kin")]).to_string(),
        r#"OTEL_TRACES_EXPORTER: invalid value "zip/kin": not an exporter name (1 to 64 lowercase ASCII letters, digits, `-`, `_` or `.`, starting with a letter)"#
    );
    assert_names(
        &env_err(&[("OTEL_TRACES_EXPORTER", "log ging")]),
        "OTEL_TRACES_EXPORTER",
    );
}

#[test]
fn env_otlp_endpoint_resolution() {
    type Case = (&'static [(&'static str, &'static str)], &'static str);
    let cases: &[Case] = &[
        (&[], "http://localhost:4317/"),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "http://localhost:4317/",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            "http://localhost:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")],
            "http://localhost:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")],
            "http://collector:4317/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317/"),
            ],
            "https://collector:4317/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://gw.example.com/otlp/",
                ),
            ],
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:4318/custom/path",
                ),
            ],
            "http://traces:4318/custom/path",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318"),
            ],
            "http://traces:4318/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ],
            "http://traces:4317/",
        ),
        // The traces-specific protocol wins over the general one.
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ],
            "http://collector:4317/",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "  http://collector:4317  ")],
            "http://collector:4317/",
        ),
    ];
    for (vars, expected) in cases {
        let c = env_ok(vars);
        assert_eq!(c.otlp_traces_endpoint().as_str(), *expected, "{vars:?}");
    }
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")]);
    assert_eq!(c.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    assert_eq!(
        c.otlp_endpoint().map(Url::as_str),
        Some("http://collector:4317/")
    );
}

#[test]
fn env_protocol_errors() {
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        assert_eq!(
            env_err(&[(var, "http/json")]).to_string(),
            format!(
                r#"{var}: invalid value "http/json": http/json is not supported; use grpc or http/protobuf"#
            )
        );
        assert_eq!(
            env_err(&[(var, "thrift")]).to_string(),
            format!(r#"{var}: invalid value "thrift": must be grpc or http/protobuf"#)
        );
    }
}

#[test]
fn env_endpoint_errors() {
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_JAEGER_ENDPOINT",
    ] {
        assert_eq!(
            env_err(&[(var, "ftp://collector")]).to_string(),
            format!(r#"{var}: invalid value "ftp://collector": the scheme must be http or https"#)
        );
        assert_eq!(
            env_err(&[(var, "collector:4317")]).to_string(),
            format!(r#"{var}: invalid value "collector:4317": the scheme must be http or https"#)
        );
        assert_names(&env_err(&[(var, "http://")]), var);
        for with_password in [
            "https://user:s3cret@collector:4317",
            "ftp://user:s3cret@collector",
        ] {
            let e = env_err(&[(var, with_password)]);
            assert_names(&e, var);
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
        }
    }
}

#[test]
fn env_headers_merge_and_decode() {
    let c = env_ok(&[
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer%20general,x-tenant=a, x-scope = b%2Cc ",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "authorization=Bearer%20traces,x-extra=token==",
        ),
    ]);
    let headers = headers_of(&c);
    assert_eq!(headers.len(), 4, "{headers:?}");
    assert_eq!(headers["authorization"], "Bearer traces");
    assert_eq!(headers["x-tenant"], "a");
    assert_eq!(headers["x-scope"], "b,c");
    assert_eq!(headers["x-extra"], "token==");

    // Only the general variable.
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1")]);
    assert_eq!(headers_of(&c)["api-key"], "k1");
    // Only the traces variable.
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=k2")]);
    assert_eq!(headers_of(&c)["api-key"], "k2");
}

#[test]
fn env_header_errors_hide_the_value() {
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let cases = [
            (
                "authorizationBearer s3cret",
                format!("{var}: invalid value {HIDDEN}: entry 1 is not key=value"),
            ),
            (
                "x=1,=Bearer s3cret",
                format!("{var}: invalid value {HIDDEN}: entry 2 has an empty key"),
            ),
            (
                "authorization=Bearer%zzs3cret",
                format!("{var}: invalid value {HIDDEN}: entry 1 has a bad percent-encoding"),
            ),
            (
                "authorization=Bearer%0As3cret",
                format!(
                    "{var}: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
                ),
            ),
            (
                "Authorization=Bearer%7Fs3cret",
                format!(
                    "{var}: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
                ),
            ),
            // A bad name is shown (it is not the secret); the value is not.
            (
                "bad name=s3cret",
                format!(r#"{var}: invalid value "bad name": not a valid header name"#),
            ),
        ];
        for (value, message) in cases {
            let e = env_err(&[(var, value)]);
            assert_eq!(e.to_string(), message);
            assert!(!format!("{e:?}").contains("s3cret"));
        }
    }
}

#[test]
fn env_compression() {
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]).otlp_compression(),
        Compression::Gzip
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "none")]).otlp_compression(),
        Compression::None
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")]).otlp_compression(),
        Compression::Gzip
    );
    // The traces-specific variable wins.
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
    ]);
    assert_eq!(c.otlp_compression(), Compression::None);
    for var in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        assert_eq!(
            env_err(&[(var, "zstd")]).to_string(),
            format!(r#"{var}: invalid value "zstd": must be gzip or none"#)
        );
    }
}

#[test]
fn env_timeouts() {
    let ms = Duration::from_millis;
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")])
            .export_retry()
            .timeout(),
        ms(2500)
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", " 3000 ")])
            .export_retry()
            .timeout(),
        ms(3000)
    );
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000"),
    ]);
    assert_eq!(c.export_retry().timeout(), ms(3000));
    assert_eq!(
        env_ok(&[("OTEL_BSP_EXPORT_TIMEOUT", "7000")])
            .export_retry()
            .timeout(),
        ms(7000)
    );
    for var in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_SCHEDULE_DELAY",
        "FAULTLINE_EXPORT_BACKOFF_BASE_MS",
        "FAULTLINE_EXPORT_BACKOFF_MAX_MS",
        "FAULTLINE_SHUTDOWN_TIMEOUT_MS",
    ] {
        for bad in ["10s", "1.5", "-1", "abc", "99999999999999999999"] {
            assert_eq!(
                env_err(&[(var, bad)]).to_string(),
                format!("{var}: invalid value {bad:?}: must be a whole number of milliseconds")
            );
        }
    }
    // A well-formed value beyond a limit fails at build time, naming the
    // variable it came from.
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]),
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    );
}

#[test]
fn env_certificates() {
    let ca = TempPath::file("env-ca", ".pem", PEM);
    let ca2 = TempPath::file("env-ca2", ".pem", PEM);
    let cert = TempPath::file("env-cert", ".pem", PEM);
    let key = TempPath::file("env-key", ".pem", PEM);

    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(key.path()));

    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(key.path()));

    // The traces-specific variable wins.
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca2.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca2.path()));

    // Surrounding blanks are trimmed.
    let padded = format!("  {}  ", ca.str());
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", padded.as_str())]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));

    // A certificate without its key.
    let e = env_err(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str())]);
    assert_eq!(
        e.to_string(),
        r#"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: invalid value "client_cert only": a client certificate and its key go together"#
    );
    let e = env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.str())]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
}

#[test]
fn env_certificate_errors() {
    let missing = TempPath::missing("env-missing");
    let dir = TempPath::dir("env-dir");
    for var in [
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    ] {
        for path in [missing.str(), dir.str()] {
            assert_eq!(
                env_err(&[(var, path)]).to_string(),
                format!("{var}: invalid value {path:?}: no such file")
            );
        }
    }
}

#[test]
fn env_jaeger() {
    let c = env_ok(&[
        (
            "OTEL_EXPORTER_JAEGER_AGENT_HOST",
            "jaeger-agent.observability",
        ),
        ("OTEL_EXPORTER_JAEGER_AGENT_PORT", "6832"),
        (
            "OTEL_EXPORTER_JAEGER_ENDPOINT",
            "http://jaeger:14268/api/traces",
        ),
    ]);
    assert_eq!(c.jaeger_agent_host(), "jaeger-agent.observability");
    assert_eq!(c.jaeger_agent_port(), 6832);
    assert_eq!(
        c.jaeger_endpoint().map(Url::as_str),
        Some("http://jaeger:14268/api/traces")
    );

    for host in ["10.1.2.3", "[::1]", " jaeger "] {
        assert_eq!(
            env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_HOST", host)]).jaeger_agent_host(),
            host.trim()
        );
    }
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", " 1 ")]).jaeger_agent_port(),
        1
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", "65535")]).jaeger_agent_port(),
        65535
    );

    for host in ["bad_host", "-jaeger", "a..b", "[jaeger]"] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_AGENT_HOST", host)]).to_string(),
            format!(
                "OTEL_EXPORTER_JAEGER_AGENT_HOST: invalid value {host:?}: not a host name or IP address"
            )
        );
    }
    for port in ["0", "65536", "-1", "abc", "6831.0", "99999999999"] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", port)]).to_string(),
            format!(
                "OTEL_EXPORTER_JAEGER_AGENT_PORT: invalid value {port:?}: a port must be within 1..=65535"
            )
        );
    }
}

#[test]
fn env_batch_processor() {
    let c = env_ok(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "20000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1024"),
    ]);
    assert_eq!(c.batch().scheduled_delay(), Duration::from_millis(1000));
    assert_eq!(c.export_retry().timeout(), Duration::from_millis(20_000));
    assert_eq!(c.batch().max_queue_size(), 4096);
    assert_eq!(c.batch().max_export_batch_size(), 1024);

    for var in ["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] {
        assert_eq!(
            env_err(&[(var, "0")]).to_string(),
            format!(r#"{var}: invalid value "0": must be at least 1"#)
        );
        for bad in ["abc", "-5", "1.5"] {
            assert_eq!(
                env_err(&[(var, bad)]).to_string(),
                format!("{var}: invalid value {bad:?}: must be a whole number")
            );
        }
    }
    // A batch larger than the queue fails at build time.
    let e = env_err(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
    ]);
    assert_eq!(
        e.to_string(),
        r#"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: invalid value "200": must be within 1..=100"#
    );
    assert_names(
        &env_err(&[("OTEL_BSP_SCHEDULE_DELAY", "0")]),
        "OTEL_BSP_SCHEDULE_DELAY",
    );
}

#[test]
fn env_sdk_disabled() {
    for (value, enabled) in [
        ("true", false),
        ("TRUE", false),
        ("True", false),
        ("1", false),
        ("yes", false),
        ("on", false),
        ("false", true),
        ("FALSE", true),
        ("0", true),
        ("no", true),
        ("off", true),
        (" true ", false),
    ] {
        assert_eq!(
            env_ok(&[("OTEL_SDK_DISABLED", value)]).enabled(),
            enabled,
            "{value}"
        );
    }
    assert_eq!(
        env_err(&[("OTEL_SDK_DISABLED", "maybe")]).to_string(),
        r#"OTEL_SDK_DISABLED: invalid value "maybe": must be true or false"#
    );
    // The builder's own value is replaced.
    let map = env_map(&[("OTEL_SDK_DISABLED", "false")]);
    let c = build_ok(
        builder()
            .enabled(false)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert!(c.enabled());
}

#[test]
fn env_faultline_text_and_format() {
    let c = env_ok(&[
        ("FAULTLINE_SERVICE_VERSION", "2.0.1"),
        ("FAULTLINE_ENVIRONMENT", "staging"),
        ("FAULTLINE_CONSOLE_FORMAT", "json"),
    ]);
    assert_eq!(c.service_version(), Some("2.0.1"));
    assert_eq!(c.deployment_environment(), Some("staging"));
    assert_eq!(c.console_format(), ConsoleFormat::Json);
    assert_eq!(
        env_ok(&[("FAULTLINE_CONSOLE_FORMAT", " pretty ")]).console_format(),
        ConsoleFormat::Pretty
    );

    assert_eq!(
        env_err(&[("FAULTLINE_SERVICE_VERSION", "1.0\u{7}")]).to_string(),
        r#"FAULTLINE_SERVICE_VERSION: invalid value "1.0\u{7}": must not hold control characters"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_ENVIRONMENT", "prod\nx")]).to_string(),
        r#"FAULTLINE_ENVIRONMENT: invalid value "prod\nx": must not hold control characters"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_CONSOLE_FORMAT", "yaml")]).to_string(),
        r#"FAULTLINE_CONSOLE_FORMAT: invalid value "yaml": must be pretty or json"#
    );
}

#[test]
fn env_faultline_masking() {
    assert!(!env_ok(&[("FAULTLINE_PII_MASKING", "false")]).pii_masking());
    assert!(env_ok(&[("FAULTLINE_PII_MASKING", "on")]).pii_masking());
    assert_eq!(
        env_err(&[("FAULTLINE_PII_MASKING", "sometimes")]).to_string(),
        r#"FAULTLINE_PII_MASKING: invalid value "sometimes": must be true or false"#
    );

    let c = env_ok(&[(
        "FAULTLINE_PII_PATTERNS",
        r#"{"order_id": "ORD-[0-9]{8}", "card": {"regex": "\\d{12}(\\d{4})", "replacement": "****$1"}, "iban": {"regex": "[A-Z]{2}[0-9]{20}"}}"#,
    )]);
    let by_name: HashMap<&str, &PiiPattern> =
        c.pii_patterns().iter().map(|p| (p.name(), p)).collect();
    assert_eq!(by_name.len(), 3);
    assert_eq!(by_name["order_id"].regex().as_str(), "ORD-[0-9]{8}");
    assert_eq!(
        by_name["order_id"].replacement(),
        DEFAULT_PATTERN_REPLACEMENT
    );
    assert_eq!(by_name["card"].regex().as_str(), r"\d{12}(\d{4})");
    assert_eq!(by_name["card"].replacement(), "****$1");
    assert_eq!(by_name["iban"].replacement(), DEFAULT_PATTERN_REPLACEMENT);

    // The variable replaces patterns set in code.
    let map = env_map(&[("FAULTLINE_PII_PATTERNS", r#"{"b": "b+"}"#)]);
    let c = build_ok(
        builder()
            .pii_pattern("a", "a+")
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert_eq!(c.pii_patterns().len(), 1);
    assert_eq!(c.pii_patterns()[0].name(), "b");

    let e = env_err(&[("FAULTLINE_PII_PATTERNS", "not json")]);
    assert_names(&e, "FAULTLINE_PII_PATTERNS");
    assert!(
        e.to_string()
            .contains("must be a JSON object of name -> regex"),
        "{e}"
    );
    assert_names(
        &env_err(&[("FAULTLINE_PII_PATTERNS", r#"["a"]"#)]),
        "FAULTLINE_PII_PATTERNS",
    );
    assert_names(
        &env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": 5}"#)]),
        "FAULTLINE_PII_PATTERNS",
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"bad name": "x+"}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS: invalid value "bad name": a pattern name must be ASCII letters, digits, `_` or `-`"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": "("}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "(": the expression does not compile (error: unclosed group)"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": "a*"}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "a*": the expression matches the empty string"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": {"regex": ""}}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "": the expression is empty"#
    );
}

#[test]
fn env_faultline_keys_and_headers() {
    let c = env_ok(&[("FAULTLINE_SECRET_KEYS", "Api-Key, session_token,,")]);
    assert_eq!(c.secret_keys(), &["api-key", "session_token"]);
    assert_eq!(
        env_err(&[("FAULTLINE_SECRET_KEYS", "ok,api key")]).to_string(),
        r#"FAULTLINE_SECRET_KEYS: invalid value "api key": a key must be printable ASCII without spaces"#
    );

    for (var, get) in [
        (
            "FAULTLINE_CAPTURE_REQUEST_HEADERS",
            TracingConfig::capture_request_headers as HeaderGetter,
        ),
        (
            "FAULTLINE_CAPTURE_RESPONSE_HEADERS",
            TracingConfig::capture_response_headers,
        ),
        ("FAULTLINE_REDACT_HEADERS", TracingConfig::redact_headers),
    ] {
        let c = env_ok(&[(var, "X-Request-Id, user-agent,,x-request-id")]);
        assert_eq!(
            header_strs(get(&c)),
            ["x-request-id", "user-agent"],
            "{var}"
        );
        assert_eq!(
            env_err(&[(var, "x-ok, bad header")]).to_string(),
            format!(r#"{var}: invalid value "bad header": not a valid header name"#)
        );
    }
}

#[test]
fn env_faultline_retry_and_shutdown() {
    let c = env_ok(&[
        ("FAULTLINE_EXPORT_MAX_RETRIES", "7"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "250"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "10000"),
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "100"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "1048576"),
        ("FAULTLINE_TRUST_INCOMING_CONTEXT", "false"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "30000"),
    ]);
    let r = c.export_retry();
    assert_eq!(r.max_retries(), 7);
    assert_eq!(r.backoff_base(), Duration::from_millis(250));
    assert_eq!(r.backoff_max(), Duration::from_millis(10_000));
    assert_eq!(r.buffer_capacity(), 100);
    assert_eq!(r.buffer_bytes(), 1 << 20);
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BUFFER_BYTES", "32MiB")]).to_string(),
        r#"FAULTLINE_EXPORT_BUFFER_BYTES: invalid value "32MiB": must be a whole number"#
    );
    assert!(!c.trust_incoming_context());
    assert_eq!(c.shutdown_timeout(), Duration::from_secs(30));

    assert_eq!(
        env_ok(&[("FAULTLINE_EXPORT_MAX_RETRIES", "100")])
            .export_retry()
            .max_retries(),
        100
    );
    assert_eq!(
        env_ok(&[("FAULTLINE_EXPORT_BUFFER_CAPACITY", "0")])
            .export_retry()
            .buffer_capacity(),
        0
    );
    assert!(env_ok(&[("FAULTLINE_TRUST_INCOMING_CONTEXT", "yes")]).trust_incoming_context());

    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "101")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "101": must be at most 100"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "99999999999")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "99999999999": must be at most 100"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "three")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "three": must be a whole number"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BUFFER_CAPACITY", "-1")]).to_string(),
        r#"FAULTLINE_EXPORT_BUFFER_CAPACITY: invalid value "-1": must be a whole number"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_TRUST_INCOMING_CONTEXT", "maybe")]).to_string(),
        r#"FAULTLINE_TRUST_INCOMING_CONTEXT: invalid value "maybe": must be true or false"#
    );
    // Well-formed values that break a rule fail at build time, under the
    // variable the value came from.
    assert_eq!(
        env_err(&[
            ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "2000"),
            ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "1000")
        ])
        .to_string(),
        r#"FAULTLINE_EXPORT_BACKOFF_MAX_MS: invalid value "1000 ms": must be within 2000 ms..=600000 ms"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "61000")]).to_string(),
        r#"FAULTLINE_SHUTDOWN_TIMEOUT_MS: invalid value "61000 ms": must be within 1 ms..=60000 ms"#
    );
    for (var, value) in [
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "10000001"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "0"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "50"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "20000000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "2000000000000"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "100001"),
    ] {
        assert_names(&env_err(&[(var, value)]), var);
    }
    // A base above the default maximum names the base the user set, with
    // the maximum it must stay under.
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "10000")]).to_string(),
        r#"FAULTLINE_EXPORT_BACKOFF_BASE_MS: invalid value "10000 ms": must be at most the maximum back-off, 5000 ms (FAULTLINE_EXPORT_BACKOFF_MAX_MS)"#
    );
    // The same values from code keep the settings' names.
    assert_names(
        &build_err(builder().shutdown_timeout(Duration::from_secs(61))),
        "shutdown_timeout",
    );
}

#[test]
fn env_tls_files_are_checked_and_named_by_their_variable() {
    let text = TempPath::file("not-pem", ".pem", "just a host name\n");
    let cert = TempPath::file("cert-only", ".pem", PEM);
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", text.str())]),
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    );
    let e = env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", text.str())]).to_string();
    assert!(
        e.ends_with("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        "{e}"
    );
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str())]),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    );
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", cert.str())]),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    );
    let e = env_err(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text.str()),
    ]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
    assert!(
        e.to_string()
            .ends_with("holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)"),
        "{e}"
    );
    env_ok(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.str()),
    ]);
}

#[test]
fn tls_files_without_pem_blocks_are_refused() {
    let text = TempPath::file("plain", ".pem", "127.0.0.1 localhost\n");
    let key_only = TempPath::file(
        "key-only",
        ".pem",
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
    );
    let e = build_err(builder().otlp_ca_file(text.path()));
    assert_names(&e, "otlp_tls.ca_file");
    let e = build_err(builder().otlp_client_identity(key_only.path(), key_only.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let both = TempPath::file("both", ".pem", PEM);
    let e = build_err(builder().otlp_client_identity(both.path(), text.path()));
    assert_names(&e, "otlp_tls.client_key");
    build_ok(builder().otlp_client_identity(both.path(), key_only.path()));
}

#[test]
fn env_empty_values_count_as_unset() {
    let default = TracingConfig::default();
    for blank in ["", "   ", "\t"] {
        let all: Vec<(&str, &str)> = ENV_VARIABLES.iter().map(|v| (*v, blank)).collect();
        assert_eq!(env_ok(&all), default, "all variables set to {blank:?}");
        for var in ENV_VARIABLES {
            assert_eq!(env_ok(&[(var, blank)]), default, "{var}={blank:?}");
        }
    }
    // An empty variable keeps the builder's value.
    let map = env_map(&[("OTEL_SERVICE_NAME", ""), ("OTEL_TRACES_SAMPLER", "")]);
    let c = build_ok(
        builder()
            .service_name("from-code")
            .sample_rate(0.5)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert_eq!(c.service_name(), "from-code");
    assert_eq!(c.sample_rate(), 0.5);
}

#[test]
fn env_unset_variables_keep_builder_values() {
    let code = builder()
        .service_name("from-code")
        .sample_rate(0.5)
        .exporters([ExporterKind::CONSOLE])
        .otlp_header("x-a", "1")
        .shutdown_timeout(Duration::from_secs(9));
    let expected = build_ok(code.clone());
    assert_eq!(build_ok(code.with_env_from(|_| None).unwrap()), expected);
}

#[test]
fn env_variables_list_matches_what_is_read() {
    let asked = RefCell::new(BTreeSet::new());
    TracingConfig::builder()
        .with_env_from(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        })
        .unwrap();
    let listed: BTreeSet<String> = ENV_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(
        listed.len(),
        ENV_VARIABLES.len(),
        "ENV_VARIABLES holds a duplicate"
    );
    assert_eq!(asked.into_inner(), listed);
}

#[test]
fn env_every_variable_is_read_and_named_in_its_error() {
    let missing = TempPath::missing("every-var");
    let bad: &[(&str, &str)] = &[
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_SERVICE_NAME", "bad name"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("OTEL_TRACES_SAMPLER", "some times"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_EXPORTER", "zip kin"),
        ("OTEL_PROPAGATORS", "x/ray"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "novalue"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", missing.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", missing.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", missing.str()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            missing.str(),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", missing.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", missing.str()),
        ("OTEL_EXPORTER_JAEGER_AGENT_HOST", "bad_host"),
        ("OTEL_EXPORTER_JAEGER_AGENT_PORT", "0"),
        ("OTEL_EXPORTER_JAEGER_ENDPOINT", "ftp://x"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "soon"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("FAULTLINE_SERVICE_VERSION", "1.0\u{7}"),
        ("FAULTLINE_ENVIRONMENT", "prod\u{1b}"),
        ("FAULTLINE_CONSOLE_FORMAT", "yaml"),
        ("FAULTLINE_PII_MASKING", "sometimes"),
        ("FAULTLINE_PII_PATTERNS", "not json"),
        ("FAULTLINE_PII_HASH_KEY", "too-short"),
        ("FAULTLINE_SECRET_KEYS", "api key"),
        ("FAULTLINE_CAPTURE_REQUEST_HEADERS", "bad header"),
        ("FAULTLINE_CAPTURE_RESPONSE_HEADERS", "bad header"),
        ("FAULTLINE_REDACT_HEADERS", "bad header"),
        ("FAULTLINE_EXPORT_MAX_RETRIES", "101"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "soon"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "soon"),
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "lots"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "lots"),
        ("FAULTLINE_TRUST_INCOMING_CONTEXT", "maybe"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "soon"),
        ("FAULTLINE_METRICS_PATH", "metrics"),
        ("FAULTLINE_EXCLUDED_ROUTES", "health"),
        ("FAULTLINE_KEEP_ERRORS", "sometimes"),
        ("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "0"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "lots"),
        ("FAULTLINE_KEEP_SLOW_MS", "slow"),
        ("FAULTLINE_METRICS_ADDR", "localhost"),
        ("FAULTLINE_RESOURCE_DETECTORS", "k8s"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "huge"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "0"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "100000"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "-1"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "x"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "0"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "1.5"),
        ("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8,proxy.local"),
        ("OTEL_LOGS_EXPORTER", "ot lp"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "ftp://x"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "udp"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "novalue"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon"),
        ("FAULTLINE_LOG_FORMAT", "xml"),
    ];
    let covered: BTreeSet<&str> = bad.iter().map(|(v, _)| *v).collect();
    let listed: BTreeSet<&str> = ENV_VARIABLES.iter().copied().collect();
    assert_eq!(
        covered, listed,
        "the table must cover ENV_VARIABLES exactly"
    );

    for (var, value) in bad {
        let mut vars = vec![(*var, *value)];
        if *var == "OTEL_TRACES_SAMPLER_ARG" {
            vars.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
        }
        // The error comes from reading the variable, before build.
        let e = match with_env(&vars) {
            Ok(_) => panic!("{var}={value:?} should be rejected"),
            Err(e) => e,
        };
        assert_names(&e, var);
    }
}

// ---------------------------------------------------------------------------
// Files and serde
// ---------------------------------------------------------------------------

const FULL_TOML: &str = r#"
enabled = true
service_name = "checkout"
service_version = "1.4.2"
deployment_environment = "production"
resource_attributes = { team = "payments", "k8s.namespace" = "shop" }
sample_rate = 0.1
parent_based = false
exporters = ["console", "otlp", "jaeger", "otlp"]
otlp_endpoint = "https://collector.internal:4318"
otlp_protocol = "http/protobuf"
otlp_headers = { Authorization = "Bearer s3cret", x-tenant = "t1" }
otlp_compression = "gzip"
jaeger_agent_host = "jaeger"
jaeger_agent_port = 6832
jaeger_endpoint = "http://jaeger:14268/api/traces"
console_format = "json"
pii_masking = false
custom_pii_patterns = { order_id = "ORD-[0-9]{8}", card = { regex = "\\d{12}(\\d{4})", replacement = "****$1" } }
secret_keys = ["Card_CVV"]
capture_request_headers = ["X-Request-Id"]
capture_response_headers = ["content-type"]
redact_headers = ["x-internal-token"]
max_export_retries = 5
backoff_base_ms = 200
backoff_max_ms = 8000
export_buffer_capacity = 1000
export_buffer_bytes = 4096
export_timeout_ms = 3000
batch_max_queue_size = 1024
batch_max_export_batch_size = 256
batch_scheduled_delay_ms = 1500
trust_incoming_context = false
shutdown_timeout_ms = 10000
"#;

fn assert_full(c: &TracingConfig) {
    assert!(c.enabled());
    assert_eq!(c.service_name(), "checkout");
    assert_eq!(c.service_version(), Some("1.4.2"));
    assert_eq!(c.deployment_environment(), Some("production"));
    let attrs: HashMap<&str, &str> = c
        .resource_attributes()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs["team"], "payments");
    assert_eq!(attrs["k8s.namespace"], "shop");
    assert_eq!(c.sample_rate(), 0.1);
    assert!(!c.parent_based());
    assert_eq!(
        c.exporters(),
        &[
            ExporterKind::CONSOLE,
            ExporterKind::OTLP,
            ExporterKind::JAEGER
        ]
    );
    assert_eq!(c.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    assert_eq!(
        c.otlp_traces_endpoint().as_str(),
        "https://collector.internal:4318/v1/traces"
    );
    let headers = headers_of(c);
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["x-tenant"], "t1");
    assert_eq!(c.otlp_compression(), Compression::Gzip);
    assert_eq!(c.jaeger_agent_host(), "jaeger");
    assert_eq!(c.jaeger_agent_port(), 6832);
    assert_eq!(
        c.jaeger_endpoint().map(Url::as_str),
        Some("http://jaeger:14268/api/traces")
    );
    assert_eq!(c.console_format(), ConsoleFormat::Json);
    assert!(!c.pii_masking());
    let by_name: HashMap<&str, &PiiPattern> =
        c.pii_patterns().iter().map(|p| (p.name(), p)).collect();
    assert_eq!(
        by_name["order_id"].replacement(),
        DEFAULT_PATTERN_REPLACEMENT
    );
    assert_eq!(by_name["card"].regex().as_str(), r"\d{12}(\d{4})");
    assert_eq!(by_name["card"].replacement(), "****$1");
    assert_eq!(c.secret_keys(), &["card_cvv"]);
    assert_eq!(header_strs(c.capture_request_headers()), ["x-request-id"]);
    assert_eq!(header_strs(c.capture_response_headers()), ["content-type"]);
    assert_eq!(header_strs(c.redact_headers()), ["x-internal-token"]);
    let r = c.export_retry();
    assert_eq!(r.max_retries(), 5);
    assert_eq!(r.backoff_base(), Duration::from_millis(200));
    assert_eq!(r.backoff_max(), Duration::from_millis(8000));
    assert_eq!(r.buffer_capacity(), 1000);
    assert_eq!(r.buffer_bytes(), 4096);
    assert_eq!(r.timeout(), Duration::from_millis(3000));
    assert_eq!(c.batch().max_queue_size(), 1024);
    assert_eq!(c.batch().max_export_batch_size(), 256);
    assert_eq!(c.batch().scheduled_delay(), Duration::from_millis(1500));
    assert!(!c.trust_incoming_context());
    assert_eq!(c.shutdown_timeout(), Duration::from_secs(10));
}

fn full_json() -> String {
    let value: toml::Value = toml::from_str(FULL_TOML).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn file_toml() {
    let f = TempPath::file("full", ".toml", FULL_TOML);
    assert_full(&TracingConfig::from_file(f.path()).unwrap());
    // The extension is matched case-insensitively.
    let f = TempPath::file("upper", ".TOML", FULL_TOML);
    assert_full(&TracingConfig::from_file(f.path()).unwrap());
}

#[test]
fn file_json() {
    let json = full_json();
    for ext in [".json", "", ".conf"] {
        let f = TempPath::file("full", ext, &json);
        assert_full(&TracingConfig::from_file(f.path()).unwrap());
    }
}

#[test]
fn file_empty_gives_defaults() {
    let f = TempPath::file("empty", ".toml", "");
    assert_eq!(
        TracingConfig::from_file(f.path()).unwrap(),
        TracingConfig::default()
    );
    let f = TempPath::file("empty", ".json", "{}");
    assert_eq!(
        TracingConfig::from_file(f.path()).unwrap(),
        TracingConfig::default()
    );
}

#[test]
fn file_documented_example() {
    let f = TempPath::file(
        "doc",
        ".toml",
        r#"
service_name = "checkout"
service_version = "1.4.2"
sample_rate = 0.1
exporters = ["otlp", "console"]
otlp_endpoint = "https://collector.internal:4317"
otlp_headers = { authorization = "Bearer ..." }
custom_pii_patterns = { order_id = "ORD-[0-9]{8}" }
"#,
    );
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.service_name(), "checkout");
    assert_eq!(
        c.otlp_traces_endpoint().as_str(),
        "https://collector.internal:4317/"
    );
    assert_eq!(c.pii_patterns()[0].name(), "order_id");
}

#[test]
fn file_unknown_key_is_rejected() {
    for (ext, text) in [
        (".toml", "sample_ratio = 0.5\n"),
        (".json", r#"{"sample_ratio": 0.5}"#),
    ] {
        let f = TempPath::file("unknown", ext, text);
        let e = TracingConfig::from_file(f.path()).unwrap_err();
        assert_one_line(&e);
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}: invalid configuration file: ", f.str())),
            "{text}"
        );
        assert!(text.contains("unknown field `sample_ratio`"), "{text}");
        assert_eq!(e.setting(), None);
    }
}

#[test]
fn file_invalid_value_names_the_setting() {
    let cases = [
        (
            "sample_rate = 1.5\n",
            r#"sample_rate: invalid value "1.5": must be a number within 0.0..=1.0"#,
        ),
        (
            "service_name = \"my_service\"\n",
            r#"service_name: invalid value "my_service": only ASCII letters, digits and hyphens are allowed"#,
        ),
        (
            "jaeger_agent_port = 70000\n",
            r#"jaeger_agent_port: invalid value "70000": a port must be within 1..=65535"#,
        ),
        (
            "shutdown_timeout_ms = 120000\n",
            r#"shutdown_timeout: invalid value "120000 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            "max_export_retries = 1000\n",
            r#"max_export_retries: invalid value "1000": must be at most 100"#,
        ),
        (
            "otlp_endpoint = \"ftp://x\"\n",
            r#"otlp_endpoint: invalid value "ftp://x": the scheme must be http or https"#,
        ),
        (
            "batch_max_queue_size = 0\n",
            r#"batch_max_queue_size: invalid value "0": must be within 1..=10000000"#,
        ),
        (
            "custom_pii_patterns = { x = \"(\" }\n",
            r#"pii_patterns.x: invalid value "(": the expression does not compile (error: unclosed group)"#,
        ),
    ];
    for (text, message) in cases {
        let f = TempPath::file("invalid", ".toml", text);
        let e = TracingConfig::from_file(f.path()).unwrap_err();
        assert_eq!(e.to_string(), message, "{text}");
        // The same through serde.
        let e = toml::from_str::<TracingConfig>(text).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
    }
}

#[test]
fn file_bad_names_and_types_are_parse_errors() {
    let cases = [
        ("otlp_protocol = \"http/json\"\n", "http/json"),
        ("otlp_compression = \"zstd\"\n", "zstd"),
        ("console_format = \"yaml\"\n", "yaml"),
        ("sample_rate = \"high\"\n", "high"),
        ("jaeger_agent_port = -1\n", "-1"),
        ("this is not toml", "TOML parse error"),
    ];
    for (text, mentioned) in cases {
        let f = TempPath::file("parse", ".toml", text);
        let e = TracingConfig::from_file(f.path()).unwrap_err();
        assert_one_line(&e);
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
        assert!(e.to_string().contains(mentioned), "{e}");
    }
    // Any exporter name parses; a malformed one breaks the name rule.
    for (ext, text) in [
        (".json", r#"{"exporters": ["zip kin"]}"#),
        (".toml", "exporters = [\"zip kin\"]\n"),
    ] {
        let f = TempPath::file("parse", ext, text);
        let e = TracingConfig::from_file(f.path()).unwrap_err();
        assert_one_line(&e);
        assert_names(&e, "exporters");
        assert!(e.to_string().contains("zip kin"), "{e}");
    }
    let f = TempPath::file("parse", ".json", "{ not json");
    assert!(matches!(
        TracingConfig::from_file(f.path()).unwrap_err(),
        ConfigError::Parse { .. }
    ));
    // A TOML file read as JSON because of its extension.
    let f = TempPath::file("parse", ".json", "sample_rate = 0.5\n");
    assert!(matches!(
        TracingConfig::from_file(f.path()).unwrap_err(),
        ConfigError::Parse { .. }
    ));
}

#[test]
fn file_parse_error_does_not_quote_a_secret_line() {
    let text = "service_name = \"checkout\"\notlp_headers = { authorization = \"Bearer s3cret\", x-retries = 3 }\n";
    let f = TempPath::file("secret-line", ".toml", text);
    let e = TracingConfig::from_file(f.path()).unwrap_err();
    assert_one_line(&e);
    let message = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert!(message.contains("line 2"), "{message}");
    assert!(!message.contains("s3cret"), "secret leaked: {message}");
}

#[test]
fn file_header_value_error_is_hidden() {
    let f = TempPath::file(
        "hdr",
        ".json",
        r#"{"otlp_headers": {"authorization": "Bearer\ns3cret"}}"#,
    );
    let e = TracingConfig::from_file(f.path()).unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_headers: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
        )
    );
}

#[test]
fn file_missing() {
    let missing = TempPath::missing("no-such-config");
    let e = TracingConfig::from_file(missing.path()).unwrap_err();
    assert_one_line(&e);
    match &e {
        ConfigError::File { path, reason } => {
            assert_eq!(path, missing.str());
            assert!(!reason.is_empty());
        }
        other => panic!("expected a File error, got {other:?}"),
    }
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read configuration file: ",
            missing.str()
        )),
        "{e}"
    );
    assert_eq!(e.setting(), None);

    // A directory cannot be read as a file either.
    let dir = TempPath::dir("config-dir");
    assert!(matches!(
        TracingConfig::from_file(dir.path()).unwrap_err(),
        ConfigError::File { .. }
    ));
}

#[test]
fn file_tls_paths() {
    let ca = TempPath::file("file-ca", ".pem", PEM);
    let cert = TempPath::file("file-cert", ".pem", PEM);
    let key = TempPath::file("file-key", ".pem", PEM);
    let text = format!(
        "otlp_ca_file = {:?}\notlp_client_cert = {:?}\notlp_client_key = {:?}\n",
        ca.str(),
        cert.str(),
        key.str()
    );
    let f = TempPath::file("tls", ".toml", &text);
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(key.path()));

    let missing = TempPath::missing("file-missing-ca");
    let f = TempPath::file(
        "tls",
        ".toml",
        &format!("otlp_ca_file = {:?}\n", missing.str()),
    );
    let e = TracingConfig::from_file(f.path()).unwrap_err();
    assert_names(&e, "otlp_tls.ca_file");
}

#[test]
fn file_then_environment() {
    let f = TempPath::file(
        "layer",
        ".toml",
        "service_name = \"from-file\"\nsample_rate = 0.5\n",
    );
    let map = env_map(&[("OTEL_SERVICE_NAME", "from-env")]);
    let c = TracingConfigBuilder::from_file(f.path())
        .unwrap()
        .with_env_from(|n| map.get(n).cloned())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(c.service_name(), "from-env");
    assert_eq!(c.sample_rate(), 0.5);
}

#[test]
fn deserialize_through_serde_json() {
    let c: TracingConfig = serde_json::from_str(&full_json()).unwrap();
    assert_full(&c);
    let c: TracingConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, TracingConfig::default());
    let c: TracingConfig = toml::from_str(FULL_TOML).unwrap();
    assert_full(&c);

    let e = serde_json::from_str::<TracingConfig>(r#"{"sample_ratio": 0.5}"#).unwrap_err();
    assert!(
        e.to_string().contains("unknown field `sample_ratio`"),
        "{e}"
    );
    let e = serde_json::from_str::<TracingConfig>(r#"{"sample_rate": 1.5}"#).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(r#"sample_rate: invalid value "1.5": must be a number within 0.0..=1.0"#),
        "{e}"
    );
    let e = serde_json::from_str::<TracingConfig>(r#"{"exporters": ["zip kin"]}"#).unwrap_err();
    assert!(e.to_string().contains("zip kin"), "{e}");
    let e = serde_json::from_str::<TracingConfig>(
        r#"{"otlp_headers": {"authorization": "Bearer\u0000s3cret"}}"#,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e =
        serde_json::from_str::<TracingConfig>(r#"{"otlp_endpoint": "https://u:s3cret@collector"}"#)
            .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = serde_json::from_str::<TracingConfig>("[]").unwrap_err();
    assert!(!e.to_string().is_empty());
}

// ---------------------------------------------------------------------------
// Debug and round trip
// ---------------------------------------------------------------------------

#[test]
fn debug_hides_header_values() {
    let c = build_ok(
        builder()
            .otlp_header("Authorization", "Bearer sup3r-s3cret-t0ken")
            .otlp_header("x-api-key", "key-s3cret-value"),
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains("sup3r-s3cret-t0ken"), "{debug}");
    assert!(!debug.contains("key-s3cret-value"), "{debug}");
    assert!(debug.contains("authorization: [REDACTED]"), "{debug}");
    assert!(debug.contains("x-api-key: [REDACTED]"), "{debug}");
    let pretty = format!("{c:#?}");
    assert!(!pretty.contains("sup3r-s3cret-t0ken"));
    // Other values are shown.
    assert!(debug.contains("unknown-service"), "{debug}");
    assert!(debug.contains("http://localhost:4317/"), "{debug}");

    // The same holds for headers from the environment and from files.
    let c = env_ok(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20env-s3cret",
    )]);
    assert!(!format!("{c:?}").contains("env-s3cret"));
    let c: TracingConfig = toml::from_str(FULL_TOML).unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn to_builder_round_trip() {
    let ca = TempPath::file("rt-ca", ".pem", PEM);
    let cert = TempPath::file("rt-cert", ".pem", PEM);
    let key = TempPath::file("rt-key", ".pem", PEM);
    let ms = Duration::from_millis;
    let full = build_ok(
        builder()
            .enabled(false)
            .service_name("checkout")
            .service_version("1.4.2")
            .deployment_environment("production")
            .resource_attribute("team", "payments")
            .resource_attribute("region", "eu-west-1")
            .sample_rate(0.25)
            .parent_based(false)
            .exporters([
                ExporterKind::CONSOLE,
                ExporterKind::JAEGER,
                ExporterKind::OTLP,
            ])
            .otlp_endpoint("https://collector:4318/base/")
            .otlp_traces_endpoint("https://traces:4318/v1/traces")
            .otlp_protocol(OtlpProtocol::HttpProtobuf)
            .otlp_header("Authorization", "Bearer x")
            .otlp_header("x-tenant", "t1")
            .otlp_compression(Compression::Gzip)
            .otlp_ca_file(ca.path())
            .otlp_client_identity(cert.path(), key.path())
            .jaeger_agent("[::1]", 6832)
            .jaeger_endpoint("http://jaeger:14268/api/traces")
            .console_format(ConsoleFormat::Json)
            .pii_masking(false)
            .pii_pattern("order_id", "ORD-[0-9]{8}")
            .pii_pattern_with("card", r"\d{12}(\d{4})", "****$1")
            .secret_key("Card_CVV")
            .capture_request_header("X-Request-Id")
            .capture_response_header("content-type")
            .redact_header("x-internal")
            .max_export_retries(7)
            .backoff(ms(200), ms(9000))
            .export_buffer_capacity(123)
            .export_timeout(ms(4321))
            .batch(1000, 100, ms(250))
            .trust_incoming_context(false)
            .shutdown_timeout(ms(12_345)),
    );
    for config in [
        TracingConfig::default(),
        full.clone(),
        env_ok(&[("OTEL_TRACES_EXPORTER", "none")]),
    ] {
        let again = build_ok(config.to_builder());
        assert_eq!(again, config);
        assert_eq!(format!("{again:?}"), format!("{config:?}"));
        // Twice, to be sure nothing drifts (such as a URL gaining a slash).
        assert_eq!(build_ok(again.to_builder()), config);
    }
    // A changed copy differs only where changed.
    let changed = build_ok(full.to_builder().sample_rate(0.5));
    assert_ne!(changed, full);
    assert_eq!(changed.sample_rate(), 0.5);
    assert_eq!(build_ok(changed.to_builder().sample_rate(0.25)), full);
}

#[test]
fn env_propagators() {
    use super::PropagatorKind as P;
    assert_eq!(
        TracingConfig::default().propagators(),
        [P::TRACE_CONTEXT, P::BAGGAGE]
    );
    let cases: &[(&str, &[P])] = &[
        ("tracecontext", &[P::TRACE_CONTEXT]),
        (
            "b3, tracecontext,baggage",
            &[P::B3, P::TRACE_CONTEXT, P::BAGGAGE],
        ),
        ("B3MULTI,jaeger,b3multi", &[P::B3_MULTI, P::JAEGER]),
        ("none", &[]),
    ];
    for (value, want) in cases {
        assert_eq!(
            env_ok(&[("OTEL_PROPAGATORS", value)]).propagators(),
            *want,
            "{value}"
        );
    }
    // Any well-formed name parses (the engine's builder finds it among the
    // registered propagators); a malformed one breaks the name rule.
    assert_eq!(
        env_ok(&[("OTEL_PROPAGATORS", "tracecontext,XRay")]).propagators(),
        [P::TRACE_CONTEXT, P::named("xray")]
    );
    assert_eq!(
        env_err(&[("OTEL_PROPAGATORS", "tracecontext,x/ray")]).to_string(),
        "OTEL_PROPAGATORS: invalid value \"x/ray\": not a propagator name \
         (1 to 64 lowercase ASCII letters, digits, `-`, `_` or `.`, starting with a letter)"
    );
    assert_names(
        &env_err(&[("OTEL_PROPAGATORS", "none,b3")]),
        "OTEL_PROPAGATORS",
    );
}

#[test]
fn env_queue_size_alone_shrinks_the_default_batch() {
    let c = env_ok(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]);
    assert_eq!(c.batch().max_queue_size(), 100);
    assert_eq!(c.batch().max_export_batch_size(), 100);
    // Both given and inconsistent: an error naming the batch size.
    let e = env_err(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
    ]);
    assert_eq!(e.setting(), Some("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"));
}

// ---------------------------------------------------------------------------
// The keyed-hash key
// ---------------------------------------------------------------------------

#[test]
fn pii_hash_key_from_builder_env_and_file() {
    const KEY: &str = "hash-k3y-0123456789abcdef";
    assert_eq!(TracingConfig::default().pii_hash_key(), None);

    let c = build_ok(builder().pii_hash_key(KEY));
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
    // Never shown by Debug, of the configuration or of its builder.
    for debug in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", builder().pii_hash_key(KEY)),
    ] {
        assert!(!debug.contains("hash-k3y"), "{debug}");
    }
    assert!(format!("{c:?}").contains("pii_hash_key: Some([REDACTED])"));
    // Round trip.
    assert_eq!(build_ok(c.to_builder()), c);

    let c = env_ok(&[("FAULTLINE_PII_HASH_KEY", KEY)]);
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));

    let f = TempPath::file("hash", ".toml", &format!("pii_hash_key = \"{KEY}\"\n"));
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
    let f = TempPath::file("hash", ".json", &format!("{{\"pii_hash_key\": \"{KEY}\"}}"));
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
}

#[test]
fn pii_hash_key_must_be_16_bytes_and_is_never_quoted() {
    let short = "s3cret-short";
    for e in [
        build_err(builder().pii_hash_key(short)),
        env_err(&[("FAULTLINE_PII_HASH_KEY", short)]),
    ] {
        let text = e.to_string();
        assert!(!text.contains(short), "{text}");
        assert!(text.contains("at least 16 bytes"), "{text}");
    }
    assert_names(&build_err(builder().pii_hash_key(short)), "pii_hash_key");
    assert_names(
        &env_err(&[("FAULTLINE_PII_HASH_KEY", short)]),
        "FAULTLINE_PII_HASH_KEY",
    );
    // Exactly 16 bytes is enough.
    build_ok(builder().pii_hash_key("0123456789abcdef"));
    let f = TempPath::file(
        "hash-short",
        ".toml",
        &format!("pii_hash_key = \"{short}\"\n"),
    );
    let text = TracingConfig::from_file(f.path()).unwrap_err().to_string();
    assert!(!text.contains(short), "{text}");
}

#[test]
fn metrics_path_rules() {
    assert_eq!(build_ok(builder()).metrics_path(), Some("/metrics"));
    assert_eq!(
        build_ok(builder().metrics_path(Some("/internal/metrics"))).metrics_path(),
        Some("/internal/metrics")
    );
    assert_eq!(build_ok(builder().metrics_path(None)).metrics_path(), None);
    for bad in [
        "metrics",
        "",
        "/me trics",
        "/metrics?x=1",
        "/a#b",
        "/%2e",
        "/\u{e9}",
    ] {
        let e = build_err(builder().metrics_path(Some(bad))).to_string();
        assert!(e.starts_with("metrics_path: invalid value"), "{bad:?}: {e}");
    }
    assert_eq!(
        env_ok(&[("FAULTLINE_METRICS_PATH", "/prom")]).metrics_path(),
        Some("/prom")
    );
    assert_eq!(
        env_ok(&[("FAULTLINE_METRICS_PATH", "off")]).metrics_path(),
        None
    );
    assert_eq!(
        env_err(&[("FAULTLINE_METRICS_PATH", "/a b")]).to_string(),
        r#"FAULTLINE_METRICS_PATH: invalid value "/a b": must be a plain path: visible ASCII, no ?, # or %"#
    );
}

#[test]
fn excluded_routes_from_the_builder_the_environment_and_a_file() {
    assert!(build_ok(builder()).excluded_routes().is_empty());
    let c = build_ok(builder().excluded_routes(["/health", "/users/{id}"]));
    assert!(c.excluded_routes().matches("/users/7"));
    assert!(!c.excluded_routes().matches("/users"));
    let c = env_ok(&[("FAULTLINE_EXCLUDED_ROUTES", " /health, /internal/* ,")]);
    assert_eq!(c.excluded_routes().to_strings(), ["/health", "/internal/*"]);
    assert!(c.excluded_routes().matches("/internal/ready"));
    assert_eq!(
        env_err(&[("FAULTLINE_EXCLUDED_ROUTES", "/health,ready")]).to_string(),
        r#"FAULTLINE_EXCLUDED_ROUTES: invalid value "/health,ready": "ready" must start with /"#
    );
    let e = build_err(builder().excluded_routes(["/users/{id"])).to_string();
    assert!(e.starts_with("excluded_routes: invalid value"), "{e}");
    // Read back through the builder: the same routes.
    let again = build_ok(c.to_builder());
    assert_eq!(again.excluded_routes(), c.excluded_routes());
    let f = TempPath::file(
        "excluded",
        ".toml",
        "excluded_routes = [\"/health\", \"/u/{id}\"]\n",
    );
    let from_file = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(
        from_file.excluded_routes().to_strings(),
        ["/health", "/u/{id}"]
    );
    let f = TempPath::file("excluded-bad", ".toml", "excluded_routes = [\"health\"]\n");
    let e = TracingConfig::from_file(f.path()).unwrap_err().to_string();
    assert!(e.contains("excluded_routes"), "{e}");
}

#[test]
fn keep_errors_rules() {
    let c = build_ok(builder());
    assert!(c.keep_errors().enabled());
    assert_eq!(c.keep_errors().max_traces(), 4096);
    assert_eq!(c.keep_errors().max_spans_per_trace(), 128);
    let c = env_ok(&[
        ("FAULTLINE_KEEP_ERRORS", "false"),
        ("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "100"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "7"),
    ]);
    assert!(!c.keep_errors().enabled());
    assert_eq!(c.keep_errors().max_traces(), 100);
    assert_eq!(c.keep_errors().max_spans_per_trace(), 7);
    assert_eq!(
        env_err(&[("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "2000000")]).to_string(),
        r#"FAULTLINE_KEEP_ERRORS_MAX_TRACES: invalid value "2000000": must be within 1..=1000000"#
    );
    assert!(
        build_err(builder().keep_errors_caps(0, 1))
            .to_string()
            .starts_with("keep_errors_max_traces:")
    );
}

#[test]
fn limits_rules() {
    let l = *build_ok(builder()).limits();
    assert_eq!(l.attribute_value_length(), 16384);
    assert_eq!(
        (
            l.attributes_per_span(),
            l.events_per_span(),
            l.links_per_span()
        ),
        (128, 128, 128)
    );
    let c = env_ok(&[
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "3"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "4"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "2"),
    ]);
    let l = c.limits();
    assert_eq!(
        l.attribute_value_length(),
        200,
        "the span-specific variable wins"
    );
    assert_eq!(l.attributes_per_span(), 10);
    assert_eq!(l.events_per_span(), 5);
    assert_eq!(l.links_per_span(), 3);
    assert_eq!(l.attributes_per_event(), 4);
    assert_eq!(l.attributes_per_link(), 2);
    assert_eq!(
        env_err(&[("OTEL_SPAN_EVENT_COUNT_LIMIT", "70000")]).to_string(),
        r#"OTEL_SPAN_EVENT_COUNT_LIMIT: invalid value "70000": must be within 1..=65536"#
    );
    assert!(
        build_err(builder().attribute_value_length_limit(4))
            .to_string()
            .starts_with("attribute_value_length_limit:")
    );
    assert!(
        build_err(builder().span_count_limits(1, 0, 1))
            .to_string()
            .starts_with("events_per_span:")
    );
}

#[test]
fn trusted_peers_rules() {
    use super::PeerNet;
    use std::net::IpAddr;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let net = |s: &str| PeerNet::parse(s).unwrap_or_else(|| panic!("{s}"));
    assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
    assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
    assert!(net("192.168.1.5").contains(ip("192.168.1.5")));
    assert!(!net("192.168.1.5").contains(ip("192.168.1.6")));
    assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
    assert!(net("fd00::/8").contains(ip("fd12::1")));
    assert!(!net("fd00::/8").contains(ip("fe80::1")));
    assert!(
        net("10.0.0.0/8").contains(ip("::ffff:10.1.1.1")),
        "IPv4-mapped"
    );
    assert!(!net("10.0.0.0/8").contains(ip("fd00::1")));
    for bad in [
        "",
        "10.0.0.0/33",
        "10.0.0/8",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "host",
    ] {
        assert!(PeerNet::parse(bad).is_none(), "{bad:?}");
    }

    let c = env_ok(&[("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8, 192.168.1.5")]);
    assert_eq!(c.trusted_peers().len(), 2);
    assert!(c.trusts(Some(ip("10.9.9.9"))));
    assert!(!c.trusts(Some(ip("203.0.113.7"))));
    assert!(!c.trusts(None), "an unknown peer is not trusted");
    let all = build_ok(builder());
    assert!(all.trusts(None) && all.trusts(Some(ip("203.0.113.7"))));
    let off = build_ok(
        builder()
            .trust_incoming_context(false)
            .trusted_peers([net("10.0.0.0/8")]),
    );
    assert!(!off.trusts(Some(ip("10.1.1.1"))), "the global switch wins");
    assert_eq!(
        env_err(&[("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8,lb")]).to_string(),
        r#"FAULTLINE_TRUSTED_PEERS: invalid value "lb": must be a comma-separated list of IP addresses or networks (10.0.0.0/8)"#
    );
}
