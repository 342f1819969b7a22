//! `Debug` never shows secrets; the `to_builder` round trip.

use super::file::FULL_TOML;
use super::*;

// Debug and round trip
// ---------------------------------------------------------------------------

#[test]
fn debug_hides_the_hash_key() {
    let c = build_ok(builder().pii_hash_key("sup3r-s3cret-hash-key"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("sup3r-s3cret-hash-key"), "{debug}");
    let pretty = format!("{c:#?}");
    assert!(!pretty.contains("sup3r-s3cret-hash-key"));
    // Other values are shown.
    assert!(debug.contains("unknown-service"), "{debug}");

    // The same holds for a key from the environment and from files.
    let c = env_ok(&[("FAULTLINE_PII_HASH_KEY", "env-s3cret-hash-key")]);
    assert!(!format!("{c:?}").contains("env-s3cret"));
    let c: TracingConfig = toml::from_str(FULL_TOML).unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn to_builder_round_trip() {
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
            .console_format(ConsoleFormat::Json)
            .pii_masking(false)
            .pii_hash_key("a key of at least 16 bytes")
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
