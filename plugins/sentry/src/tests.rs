//! The correlator end to end against sentry's in-memory test transport.

use std::sync::Arc;
use std::time::Duration;

use faultline_engine::config::TracingConfig;
use faultline_engine::correlate::{Correlator, FailureKind, RequestError, RequestOutcome};
use faultline_engine::error::{ErrorCode, Severity};
use faultline_engine::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use sentry::TransportFactory;
use sentry::protocol::{Context, Event, Level};
use sentry::test::TestTransport;

use super::*;

const KEY: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const PHONE: &str = "+1 415 555 0134";
const ORDER_FAILED: ErrorCode = ErrorCode::new(
    3001,
    "ORDER_FAILED",
    http::StatusCode::INTERNAL_SERVER_ERROR,
);

fn plugin(config: SentryConfig) -> (Sentry, Arc<TestTransport>) {
    let transport = TestTransport::new();
    let factory: Arc<dyn TransportFactory> = Arc::new(transport.clone());
    let config = config
        .dsn(format!("https://{KEY}@sentry.example.com/7"))
        .environment("test")
        .release("shop@1.0.0")
        .transport(factory);
    let masker = faultline_engine::masking::from_config(&TracingConfig::default());
    (Sentry::new(config, masker).unwrap(), transport)
}

fn outcome<'a>(error: Option<RequestError<'a>>) -> RequestOutcome<'a> {
    let mut o = RequestOutcome::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        false,
        "POST",
        "/orders/{id}",
        500,
        Duration::from_millis(5),
    );
    o.parent_span_id = Some(SpanId::from_hex("00f067aa0ba902b7").unwrap());
    o.error = error;
    o
}

fn app_error(severity: Severity, message: &str) -> RequestError<'_> {
    let mut e = RequestError::new(
        FailureKind::Error,
        severity,
        "faultline_engine::error::AppError",
        message,
    );
    e.code = Some(ORDER_FAILED.with_severity(severity));
    e
}

fn trace_of<'a>(event: &'a Event<'static>) -> &'a sentry::protocol::TraceContext {
    match event.contexts.get("trace") {
        Some(Context::Trace(t)) => t,
        other => panic!("no trace context: {other:?}"),
    }
}

#[test]
fn errors_at_or_above_the_threshold_become_masked_events_with_the_trace_context() {
    let (sentry, transport) = plugin(SentryConfig::new());
    // The engine masks the message before; an unmasked one is masked again here.
    let raw = format!("order for {EMAIL} with card {CARD}, call {PHONE}");
    sentry.on_request_end(&outcome(Some(app_error(Severity::Error, &raw))));
    sentry.on_request_end(&outcome(Some(app_error(Severity::Warning, "minor"))));
    sentry.on_request_end(&outcome(None));
    sentry.flush(Duration::from_secs(5));
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    let json = serde_json::to_string(e).unwrap();
    for item in [EMAIL, CARD, PHONE, KEY] {
        assert!(!json.contains(item), "{item} in {json}");
    }
    let t = trace_of(e);
    assert_eq!(t.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(t.span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(
        t.parent_span_id.map(|p| p.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(t.op.as_deref(), Some("http.server"));
    assert_eq!(t.status, Some(sentry::protocol::SpanStatus::InternalError));
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.environment.as_deref(), Some("test"));
    assert_eq!(e.release.as_deref(), Some("shop@1.0.0"));
    assert_eq!(e.tags["error.code"], "3001");
    assert_eq!(e.tags["http.route"], "/orders/{id}");
    assert_eq!(e.transaction.as_deref(), Some("POST /orders/{id}"));
    assert!(
        e.exception.values[0]
            .value
            .as_deref()
            .unwrap()
            .contains("j***@example.com")
    );
}

#[test]
fn a_lower_threshold_reports_warnings_and_panics_always_go() {
    let (sentry, transport) = plugin(SentryConfig::new().min_severity(Severity::Warning));
    sentry.on_request_end(&outcome(Some(app_error(Severity::Warning, "minor"))));
    sentry.on_request_end(&outcome(Some(app_error(Severity::Info, "note"))));
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, Level::Warning);

    let (strict, transport) = plugin(SentryConfig::new().min_severity(Severity::Critical));
    strict.on_request_end(&outcome(Some(app_error(Severity::Error, "e"))));
    strict.on_request_end(&outcome(Some(RequestError::new(
        FailureKind::Panic,
        Severity::Debug,
        "panic",
        "boom",
    ))));
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, Level::Fatal);
    assert_eq!(events[0].exception.values[0].ty, "panic");
}

#[test]
fn a_zero_sample_rate_sends_nothing() {
    let (sentry, transport) = plugin(SentryConfig::new().sample_rate(0.0));
    for _ in 0..20 {
        sentry.on_request_end(&outcome(Some(app_error(Severity::Critical, "x"))));
    }
    assert!(transport.fetch_and_clear_events().is_empty());
}

#[test]
fn hub_captures_are_masked_and_carry_the_current_span() {
    let (sentry, transport) = plugin(SentryConfig::new());
    let sc = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    let cx = faultline_engine::opentelemetry::Context::new().with_remote_span_context(sc);
    {
        let _guard = cx.attach();
        sentry.hub().add_breadcrumb(sentry::Breadcrumb {
            message: Some(format!("looked up {EMAIL}")),
            ..Default::default()
        });
        sentry
            .hub()
            .capture_message(&format!("refund to {CARD} failed"), Level::Error);
    }
    sentry
        .hub()
        .capture_message("outside any span", Level::Info);
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 2);
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains(EMAIL) && !json.contains(CARD), "{json}");
    let t = trace_of(&events[0]);
    assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(t.span_id.to_string(), "53995c3f42cd8ad8");
    assert_ne!(
        trace_of(&events[1]).trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn two_plugins_share_no_hub() {
    let (a, ta) = plugin(SentryConfig::new());
    let (b, tb) = plugin(SentryConfig::new());
    a.hub().capture_message("to a", Level::Error);
    assert_eq!(ta.fetch_and_clear_events().len(), 1);
    assert!(tb.fetch_and_clear_events().is_empty());
    assert!(!Arc::ptr_eq(a.hub(), b.hub()));
}

#[test]
fn debug_shows_no_key_and_bad_settings_fail_without_echoing_it() {
    let (sentry, _t) = plugin(SentryConfig::new());
    let text = format!("{sentry:?}");
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("sentry.example.com"), "{text}");

    let masker = faultline_engine::masking::from_config(&TracingConfig::default());
    let err = Sentry::new(
        SentryConfig::new().dsn(format!("{KEY}@nowhere")),
        masker.clone(),
    )
    .unwrap_err();
    assert_eq!(err.setting(), Some(SENTRY_DSN));
    assert!(!err.to_string().contains(KEY));
    let err = Sentry::new(
        SentryConfig::new()
            .dsn(format!("https://{KEY}@sentry.example.com/7"))
            .sample_rate(2.0),
        masker.clone(),
    )
    .unwrap_err();
    assert_eq!(err.setting(), Some(SENTRY_SAMPLE_RATE));
    assert!(Sentry::new(SentryConfig::new(), masker).is_err());
}

#[test]
fn the_panic_hook_reports_panics_outside_requests_only() {
    let (sentry, transport) = plugin(SentryConfig::new());
    sentry.install_panic_hook();
    sentry.install_panic_hook(); // once only

    let joined = std::thread::spawn(|| panic!("worker died for {EMAIL}")).join();
    assert!(joined.is_err());

    // A panic caught by a traced request is left to on_request_end.
    faultline_engine::panic::install_hook();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let caught = rt.block_on(faultline_engine::panic::CatchPanic::new(
        async {
            if true {
                panic!("in a request");
            }
            1
        },
        faultline_engine::opentelemetry::Context::new(),
    ));
    assert!(caught.is_err());

    let events: Vec<_> = transport
        .fetch_and_clear_events()
        .into_iter()
        .filter(|e| e.exception.values.iter().any(|x| x.ty == "panic"))
        .collect();
    let values: Vec<_> = events
        .iter()
        .map(|e| e.exception.values[0].value.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        values
            .iter()
            .filter(|v| v.starts_with("worker died for"))
            .count(),
        1,
        "{values:?}"
    );
    assert!(
        !values.iter().any(|v| v.contains("in a request")),
        "{values:?}"
    );
    assert!(!values.iter().any(|v| v.contains(EMAIL)), "{values:?}");
    let worker = events
        .iter()
        .find(|e| {
            e.exception.values[0]
                .value
                .as_deref()
                .unwrap_or("")
                .starts_with("worker")
        })
        .unwrap();
    assert_eq!(worker.level, Level::Fatal);
}

#[test]
fn a_requests_log_records_are_the_breadcrumbs_of_its_event_masked() {
    use faultline_engine::export::{LogRecord, LogSeverity};
    use faultline_engine::opentelemetry::KeyValue;

    let (sentry, transport) = plugin(SentryConfig::new());
    let failing = outcome(Some(app_error(Severity::Error, "order failed")));
    let mut record = LogRecord::new(
        LogSeverity::Warn,
        "shop::orders",
        format!("retrying for {EMAIL}"),
    );
    record.attributes = vec![KeyValue::new("attempt", 2i64), KeyValue::new("card", CARD)];
    record.trace_id = failing.trace_id;
    record.span_id = failing.span_id;
    sentry.on_log(&record);
    // Another request's record, and one outside any request: not breadcrumbs here.
    let mut other = LogRecord::new(LogSeverity::Info, "shop", "other request");
    other.trace_id = TraceId::from(1u128);
    other.span_id = SpanId::from(1u64);
    sentry.on_log(&other);
    sentry.on_log(&LogRecord::new(LogSeverity::Info, "shop", "no request"));
    sentry.on_request_end(&failing);
    sentry.flush(Duration::from_secs(5));
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    let crumbs = &events[0].breadcrumbs.values;
    assert_eq!(crumbs.len(), 1, "{crumbs:?}");
    let crumb = &crumbs[0];
    assert_eq!(crumb.level, Level::Warning);
    assert_eq!(crumb.category.as_deref(), Some("shop::orders"));
    let shown = format!("{crumb:?}");
    assert!(!shown.contains(EMAIL) && !shown.contains(CARD), "{shown}");
    assert_eq!(crumb.data["attempt"], 2);
    // The request is over: its records are forgotten.
    assert!(sentry.inner.take_crumbs(failing.trace_id).is_empty());
}
