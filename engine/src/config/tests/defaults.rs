//! The defaults, and the names of the enums.

use super::*;

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
    // parentbased_always_on
    assert!(c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
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
    assert_eq!(ConsoleFormat::default(), ConsoleFormat::Pretty);
}
