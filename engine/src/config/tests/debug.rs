//! `Debug` never shows secrets; the `to_builder` round trip.

use super::file::FULL_TOML;
use super::*;

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
