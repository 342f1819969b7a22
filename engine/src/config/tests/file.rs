//! Configuration files and serde.

use super::*;

// Files and serde
// ---------------------------------------------------------------------------

pub(super) const FULL_TOML: &str = r#"
enabled = true
service_name = "checkout"
service_version = "1.4.2"
deployment_environment = "production"
resource_attributes = { team = "payments", "k8s.namespace" = "shop" }
sample_rate = 0.1
parent_based = false
exporters = ["console", "otlp", "jaeger", "otlp"]
pii_hash_key = "a s3cret key of at least 16 bytes"
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
    assert_eq!(
        c.pii_hash_key(),
        Some("a s3cret key of at least 16 bytes".as_bytes())
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
custom_pii_patterns = { order_id = "ORD-[0-9]{8}" }
"#,
    );
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.service_name(), "checkout");
    assert_eq!(c.exporters(), &[ExporterKind::OTLP, ExporterKind::CONSOLE]);
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
            "shutdown_timeout_ms = 120000\n",
            r#"shutdown_timeout: invalid value "120000 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            "max_export_retries = 1000\n",
            r#"max_export_retries: invalid value "1000": must be at most 100"#,
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
        ("console_format = \"yaml\"\n", "yaml"),
        ("sample_rate = \"high\"\n", "high"),
        ("max_export_retries = -1\n", "-1"),
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
    let text = "service_name = \"checkout\"\npii_hash_key = [\"a s3cret key of 16 bytes\"]\n";
    let f = TempPath::file("secret-line", ".toml", text);
    let e = TracingConfig::from_file(f.path()).unwrap_err();
    assert_one_line(&e);
    let message = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert!(message.contains("line 2"), "{message}");
    assert!(!message.contains("s3cret"), "secret leaked: {message}");
}

#[test]
fn file_missing() {
    let missing = TempPath::missing("no-such-config");
    let e = TracingConfig::from_file(missing.path()).unwrap_err();
    assert_one_line(&e);
    match &e {
        ConfigError::File {
            path,
            reason,
            source,
            ..
        } => {
            assert_eq!(path, missing.str());
            assert!(!reason.is_empty());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            // The I/O error stays reachable as the source.
            let chained = std::error::Error::source(&e).map(ToString::to_string);
            assert_eq!(chained, Some(source.to_string()));
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
    let e = serde_json::from_str::<TracingConfig>(r#"{"pii_hash_key": "s3cret"}"#).unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    // An exporter's settings are its plugin's, not the engine's.
    let e = serde_json::from_str::<TracingConfig>(r#"{"otlp_endpoint": "https://collector"}"#)
        .unwrap_err();
    assert!(
        e.to_string().contains("unknown field `otlp_endpoint`"),
        "{e}"
    );
    let e = serde_json::from_str::<TracingConfig>("[]").unwrap_err();
    assert!(!e.to_string().is_empty());
}

// ---------------------------------------------------------------------------
