//! The correlator and its exposition, end to end within the crate.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use faultline_engine::correlate::{Correlator, FailureKind, RequestError, RequestOutcome};
use faultline_engine::error::{ErrorCode, Severity};
use faultline_engine::export::{ExportStats, ExporterStats};
use faultline_engine::masking::Masker;
use opentelemetry::trace::{SpanId, TraceId};

use super::*;
use crate::traces::tests::ManualClock;

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);

const OM: Option<&str> =
    Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");

fn outcome<'a>(
    n: u128,
    route: &'a str,
    status: u16,
    sampled: bool,
    error: Option<RequestError<'a>>,
) -> RequestOutcome<'a> {
    let mut o = RequestOutcome::new(
        TraceId::from(n),
        SpanId::from(n as u64),
        sampled,
        "GET",
        route,
        status,
        Duration::from_millis(30),
    );
    o.error = error;
    o
}

fn app_error(code: Option<ErrorCode>) -> RequestError<'static> {
    let mut e = RequestError::new(FailureKind::Error, Severity::Warning, "AppError", "no user");
    e.code = code;
    e
}

fn panic_error() -> RequestError<'static> {
    RequestError::new(FailureKind::Panic, Severity::Critical, "panic", "boom")
}

fn trace_hex(n: u128) -> String {
    format!("{n:032x}")
}

#[test]
fn openmetrics_has_exemplars_and_eof() {
    let p = Prometheus::new(PrometheusConfig::default());
    p.on_request_end(&outcome(
        0xabc,
        "/users/{id}",
        404,
        true,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    p.on_request_end(&outcome(0xdef, "/hello", 200, true, None));
    let page = p.render(OM, &ExportStats::default());
    assert_eq!(page.content_type, OPENMETRICS_CONTENT_TYPE);
    let body = &page.body;
    assert!(body.ends_with("# EOF\n"), "{body}");
    // OpenMetrics help text escapes its quotes.
    for help in body.lines().filter(|l| l.starts_with("# HELP ")) {
        let unescaped = help
            .char_indices()
            .any(|(i, c)| c == '"' && !help[..i].ends_with('\\'));
        assert!(!unescaped, "{help}");
    }
    assert_eq!(body.matches("# EOF").count(), 1);
    let t = trace_hex(0xabc);
    let s = format!("{:016x}", 0xabc_u64);
    // The error counter, with its exemplar.
    assert!(
        body.contains(&format!(
            "faultline_errors_total{{error_code=\"1001\",error_name=\"USER_NOT_FOUND\",http_route=\"/users/{{id}}\"}} 1 # {{trace_id=\"{t}\",span_id=\"{s}\"}} 1.0 "
        )),
        "{body}"
    );
    // The per-trace series.
    assert!(
        body.contains(&format!(
            "faultline_trace_errors_total{{error_code=\"1001\",error_name=\"USER_NOT_FOUND\",http_route=\"/users/{{id}}\",trace_id=\"{t}\",span_id=\"{s}\"}} 1\n"
        )),
        "{body}"
    );
    // The latency histogram: 30 ms lands in le=0.05 with the exemplar.
    assert!(
        body.contains(&format!(
            "http_server_request_duration_seconds_bucket{{le=\"0.05\",http_request_method=\"GET\",http_route=\"/users/{{id}}\",http_response_status_code=\"404\"}} 1 # {{trace_id=\"{t}\",span_id=\"{s}\"}} 0.03 "
        )),
        "{body}"
    );
    assert!(body.contains(
        "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/hello\",http_response_status_code=\"200\"} 1\n"
    ));
    assert!(body.contains("# TYPE faultline_errors counter\n"));
    assert!(body.contains("# TYPE http_server_request_duration_seconds histogram\n"));
    assert!(body.contains("faultline_trace_error_series 1\n"));
    assert!(body.contains("faultline_trace_error_series_evicted_total{reason=\"capacity\"} 0\n"));
}

#[test]
fn prometheus_text_has_no_exemplars_and_counter_types_name_the_sample() {
    let p = Prometheus::new(PrometheusConfig::default());
    p.on_request_end(&outcome(
        0xabc,
        "/users/{id}",
        404,
        true,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let page = p.render(accept, &ExportStats::default());
        assert_eq!(page.content_type, PROMETHEUS_TEXT_CONTENT_TYPE);
        let body = &page.body;
        assert!(!body.contains("# EOF"), "{body}");
        assert!(!body.contains(" # {"), "exemplar in 0.0.4: {body}");
        assert!(!body.contains("# UNIT"));
        assert!(
            body.contains("# TYPE faultline_errors_total counter\n"),
            "{body}"
        );
        assert!(body.contains("# HELP faultline_errors_total "));
        assert!(body.contains("# TYPE faultline_trace_errors_total counter\n"));
        assert!(body.contains("# TYPE http_server_request_duration_seconds histogram\n"));
        assert!(body.contains(
            "faultline_errors_total{error_code=\"1001\",error_name=\"USER_NOT_FOUND\",http_route=\"/users/{id}\"} 1\n"
        ));
        // Every sample's family was declared by a TYPE line.
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let declared = [
                name,
                name.trim_end_matches("_bucket"),
                name.trim_end_matches("_sum"),
                name.trim_end_matches("_count"),
            ]
            .iter()
            .any(|n| body.contains(&format!("# TYPE {n} ")));
            assert!(declared, "{line}");
        }
    }
}

#[test]
fn exemplars_only_for_traced_requests_and_when_enabled() {
    let p = Prometheus::new(PrometheusConfig::default());
    // Unsampled and successful: no exemplar (its trace was not exported).
    p.on_request_end(&outcome(0x1, "/hello", 200, false, None));
    // Failed and kept by error keeping: the engine reports it exported
    // (`sampled`), so the exemplar and the per-trace series name it.
    p.on_request_end(&outcome(
        0x2,
        "/users/{id}",
        404,
        true,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    // Failed but not exported (error keeping off): counted, never named.
    p.on_request_end(&outcome(
        0x4,
        "/users/{id}",
        404,
        false,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    let body = p.render(OM, &ExportStats::default()).body;
    assert!(!body.contains(&trace_hex(0x1)), "{body}");
    assert!(body.contains(&format!("trace_id=\"{}\"", trace_hex(0x2))));
    assert!(!body.contains(&trace_hex(0x4)), "{body}");
    assert!(
        body.contains("faultline_errors_total{error_code=\"1001\",error_name=\"USER_NOT_FOUND\",http_route=\"/users/{id}\"} 2"),
        "{body}"
    );

    let off = Prometheus::new(PrometheusConfig::default().exemplars(false));
    off.on_request_end(&outcome(
        0x3,
        "/users/{id}",
        404,
        true,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    let body = off.render(OM, &ExportStats::default()).body;
    assert!(!body.contains(" # {"), "{body}");
    // The per-trace series still carries the id.
    assert!(body.contains(&format!("trace_id=\"{}\"", trace_hex(0x3))));
}

#[test]
fn panics_and_uncoded_errors_count_as_code_5000_and_unmatched_routes_are_fixed() {
    let p = Prometheus::new(PrometheusConfig::default());
    p.on_request_end(&outcome(0x10, "/panic", 500, true, Some(panic_error())));
    p.on_request_end(&outcome(0x11, "", 500, true, Some(app_error(None))));
    let body = p.render(None, &ExportStats::default()).body;
    assert!(body.contains(
        "faultline_errors_total{error_code=\"5000\",error_name=\"INTERNAL_ERROR\",http_route=\"/panic\"} 1\n"
    ), "{body}");
    assert!(body.contains(
        "faultline_errors_total{error_code=\"5000\",error_name=\"INTERNAL_ERROR\",http_route=\"unmatched\"} 1\n"
    ), "{body}");
    let mut weird = outcome(0x12, "", 404, true, None);
    weird.method = "PROPFIND";
    p.on_request_end(&weird);
    let body = p.render(None, &ExportStats::default()).body;
    assert!(body.contains(
        "http_request_method=\"_OTHER\",http_route=\"unmatched\",http_response_status_code=\"404\""
    ));
}

#[test]
fn the_trace_id_guard_bounds_and_expires_series() {
    let clock = ManualClock::new();
    let p = Prometheus::with_clock(
        PrometheusConfig::default()
            .trace_id_series(2)
            .trace_id_ttl(Duration::from_secs(60)),
        clock.clone(),
    );
    for n in 1..=3 {
        p.on_request_end(&outcome(
            n,
            "/users/{id}",
            404,
            true,
            Some(app_error(Some(USER_NOT_FOUND))),
        ));
    }
    let body = p.render(None, &ExportStats::default()).body;
    let series = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("faultline_trace_errors_total{"))
            .count()
    };
    assert_eq!(series(&body), 2, "{body}");
    assert!(!body.contains(&trace_hex(1)));
    assert!(body.contains(&trace_hex(3)));
    assert!(body.contains("faultline_trace_error_series_evicted_total{reason=\"capacity\"} 1\n"));
    // The aggregate counter keeps every error.
    assert!(body.contains("faultline_errors_total{error_code=\"1001\",error_name=\"USER_NOT_FOUND\",http_route=\"/users/{id}\"} 3\n"));
    clock.advance(Duration::from_secs(61));
    let body = p.render(None, &ExportStats::default()).body;
    assert_eq!(series(&body), 0, "{body}");
    assert!(body.contains("faultline_trace_error_series 0\n"));
    assert!(body.contains("faultline_trace_error_series_evicted_total{reason=\"idle\"} 2\n"));

    // 0 turns the per-trace series off entirely.
    let off = Prometheus::new(PrometheusConfig::default().trace_id_series(0));
    off.on_request_end(&outcome(
        9,
        "/users/{id}",
        404,
        true,
        Some(app_error(Some(USER_NOT_FOUND))),
    ));
    let body = off.render(OM, &ExportStats::default()).body;
    assert!(!body.contains("faultline_trace_errors"), "{body}");
    assert!(body.contains("faultline_errors_total{"));
}

#[test]
fn export_stats_are_rendered_per_exporter() {
    let p = Prometheus::new(PrometheusConfig::default());
    let mut otlp = ExporterStats::default();
    otlp.name = "otlp".into();
    otlp.delivered = 7;
    otlp.retries = 3;
    otlp.failed_attempts = 4;
    otlp.buffered = 2;
    otlp.buffered_bytes = 4096;
    otlp.dropped = 1;
    otlp.rejected = 3;
    let mut stats = ExportStats::default();
    stats.spans_received = 10;
    stats.spans_exported = 7;
    stats.spans_failed = 1;
    stats.spans_buffered = 2;
    stats.retries = 3;
    stats.export_errors = 4;
    stats.spans_rejected = 3;
    stats.exporters = vec![otlp];
    stats.error_keeping.traces_kept = 5;
    stats.error_keeping.traces_kept_slow = 2;
    stats.error_keeping.traces_discarded = 95;
    stats.error_keeping.traces_waiting = 6;
    stats.error_keeping.spans_cut = 8;
    stats.spans_ended = 12;
    stats.limits.values_truncated = 2;
    stats.limits.attributes_dropped = 3;
    stats.limits.events_dropped = 4;
    stats.limits.links_dropped = 5;
    stats.logs.records_queued = 40;
    stats.logs.records_dropped_by_queue = 6;
    let mut logs = ExporterStats::default();
    logs.name = "otlp".into();
    logs.delivered = 30;
    logs.retries = 2;
    logs.failed_attempts = 1;
    logs.buffered = 3;
    logs.buffered_bytes = 900;
    logs.dropped = 4;
    logs.rejected = 5;
    stats.logs.exporters = vec![logs];
    let body = p.render(None, &stats).body;
    for line in [
        "faultline_export_spans_received_total 10\n",
        "faultline_export_spans_exported_total{exporter=\"otlp\"} 7\n",
        "faultline_export_retries_total{exporter=\"otlp\"} 3\n",
        "faultline_export_failed_attempts_total{exporter=\"otlp\"} 4\n",
        "faultline_export_spans_dropped_total{exporter=\"otlp\"} 1\n",
        "faultline_export_spans_rejected_total{exporter=\"otlp\"} 3\n",
        "faultline_export_spans_buffered{exporter=\"otlp\"} 2\n",
        "# TYPE faultline_export_spans_buffered gauge\n",
        "faultline_export_buffered_bytes{exporter=\"otlp\"} 4096\n",
        "faultline_error_keeping_traces_kept_total 5\n",
        "faultline_error_keeping_traces_kept_slow_total 2\n",
        "faultline_error_keeping_traces_discarded_total 95\n",
        "faultline_error_keeping_spans_cut_total 8\n",
        "faultline_error_keeping_traces_waiting 6\n",
        "faultline_export_spans_ended_total 12\n",
        "faultline_span_limits_cut_total{what=\"value\"} 2\n",
        "faultline_span_limits_cut_total{what=\"link\"} 5\n",
        "faultline_export_log_records_queued_total 40\n",
        "faultline_export_log_records_queue_dropped_total 6\n",
        "faultline_export_log_records_exported_total{exporter=\"otlp\"} 30\n",
        "faultline_export_log_retries_total{exporter=\"otlp\"} 2\n",
        "faultline_export_log_failed_attempts_total{exporter=\"otlp\"} 1\n",
        "faultline_export_log_records_dropped_total{exporter=\"otlp\"} 4\n",
        "faultline_export_log_records_rejected_total{exporter=\"otlp\"} 5\n",
        "faultline_export_log_records_buffered{exporter=\"otlp\"} 3\n",
        "faultline_export_log_buffered_bytes{exporter=\"otlp\"} 900\n",
        "# HELP faultline_export_log_records_rejected_total Log records the backend accepted and then rejected (OTLP partial success).\n",
    ] {
        assert!(body.contains(line), "{line}: {body}");
    }
}

#[test]
fn the_metrics_recorder_feeds_the_same_exposition_masked() {
    let p = Prometheus::new(PrometheusConfig::default().buckets([0.1, 1.0]));
    let recorder = p.recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_counter!("app.orders", "Orders \"placed\".\nPer tier.");
        metrics::counter!("app.orders", "tier" => "gold").increment(2);
        metrics::counter!("app.orders", "tier" => "gold").increment(1);
        metrics::counter!("app.orders", "customer" => "alice@example.com", "password" => "hunter2")
            .increment(1);
        metrics::gauge!("app_queue_depth").set(5.0);
        metrics::gauge!("app_queue_depth").decrement(1.5);
        metrics::histogram!("app_job_seconds", "job" => "mail").record(0.5);
        // Names faultline owns, or already used by another kind, record nothing.
        metrics::counter!("faultline_errors_total").increment(1);
        metrics::gauge!("app.orders").set(1.0);
    });
    let body = p.render(None, &ExportStats::default()).body;
    assert!(
        body.contains("# HELP app_orders_total Orders \"placed\".\\nPer tier.\n"),
        "{body}"
    );
    assert!(body.contains("# TYPE app_orders_total counter\n"));
    assert!(
        body.contains("app_orders_total{tier=\"gold\"} 3\n"),
        "{body}"
    );
    assert!(!body.contains("alice@example.com"), "{body}");
    assert!(!body.contains("hunter2"), "{body}");
    assert!(body.contains("# TYPE app_queue_depth gauge\n"));
    assert!(body.contains("app_queue_depth 3.5\n"), "{body}");
    assert!(
        body.contains("app_job_seconds_bucket{le=\"1.0\",job=\"mail\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("app_job_seconds_sum{job=\"mail\"} 0.5\n"));
    // faultline's error counter has no request yet: nothing under its name.
    assert!(!body.contains("faultline_errors_total"), "{body}");
    let om = p.render(OM, &ExportStats::default()).body;
    assert!(
        om.contains("# HELP app_orders Orders \\\"placed\\\".\\nPer tier.\n"),
        "{om}"
    );
    assert!(om.contains("app_orders_total{tier=\"gold\"} 3\n"));
}

#[derive(Debug)]
struct Shout;

impl Masker for Shout {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        Cow::Owned(text.to_uppercase())
    }
    fn is_secret_key(&self, key: &str) -> bool {
        key == "token"
    }
}

#[test]
fn with_masker_replaces_the_default() {
    let p = Prometheus::new(PrometheusConfig::default()).with_masker(Arc::new(Shout));
    metrics::with_local_recorder(&p.recorder(), || {
        metrics::counter!("logins", "user" => "bob", "token" => "abc").increment(1);
    });
    let body = p.render(None, &ExportStats::default()).body;
    assert!(
        body.contains("logins_total{user=\"BOB\",token=\"[REDACTED]\"} 1\n"),
        "{body}"
    );
}

#[test]
fn clones_share_state_and_the_type_is_send_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Prometheus>();
    let a = Prometheus::new(PrometheusConfig::default());
    let b = a.clone();
    b.on_request_end(&outcome(0x5, "/hello", 200, true, None));
    assert!(
        a.render(None, &ExportStats::default())
            .body
            .contains("http_route=\"/hello\"")
    );
    assert!(a.serves_metrics());
    assert!(a.render_metrics(OM, &ExportStats::default()).is_some());
}

#[test]
fn unvalidated_settings_are_brought_within_bounds() {
    let p = Prometheus::new(
        PrometheusConfig::default()
            .buckets([f64::NAN, 2.0, 1.0, 1.0, -1.0])
            .trace_id_ttl(Duration::ZERO),
    );
    assert_eq!(p.config().bucket_bounds(), &[1.0, 2.0]);
    assert_eq!(p.config().trace_id_ttl_duration(), Duration::from_secs(1));
    let p = Prometheus::new(PrometheusConfig::default().buckets([]));
    assert_eq!(p.config().bucket_bounds(), DEFAULT_BUCKETS);
}

#[test]
fn target_info_carries_the_engines_resource() {
    use faultline_engine::Engine;
    use faultline_engine::config::TracingConfig;

    let p = Prometheus::new(PrometheusConfig::default());
    // Before an engine hands its resource over: no target_info.
    assert!(
        !p.render(None, &ExportStats::default())
            .body
            .contains("target_info")
    );
    let config = TracingConfig::builder()
        .service_name("shop")
        .exporters([])
        .resource_attribute("service.instance.id", "pod-7")
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .correlator(p.clone())
        .install_global(false)
        .build()
        .unwrap();
    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let body = p.render(accept, &ExportStats::default()).body;
        let line = body
            .lines()
            .find(|l| l.starts_with("target_info{"))
            .unwrap_or_else(|| panic!("{body}"));
        assert!(line.ends_with("} 1"), "{line}");
        for label in [
            "service_name=\"shop\"",
            "service_instance_id=\"pod-7\"",
            "telemetry_distro_name=\"faultline\"",
            &format!("process_pid=\"{}\"", std::process::id()),
        ] {
            assert!(line.contains(label), "{label}: {line}");
        }
        assert!(line.contains("host_name=\""), "{line}");
    }
    engine.shutdown();
}
