//! The engine end to end: plugins called, resource, sampling, masking on the
//! export path, shutdown, error model.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline::carrier::{Carrier, CarrierMut};
use faultline::config::{ConsoleFormat, ExporterKind, TracingConfig};
use faultline::correlate::{Correlator, FailureKind, RequestError, RequestOutcome};
use faultline::error::{AppError, ErrorCode, Severity};
use faultline::exception::{ExceptionRecorder, Failure};
use faultline::export::{ConsoleExporter, ExportError, Exporter, InMemoryExporter};
use faultline::masking::Masker;
use faultline::propagation::{Propagator, default_propagator};
use faultline::{Engine, EngineError};
use opentelemetry::trace::{
    Span as _, SpanKind, SpanRef, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::common::{SharedBuf, memory_engine, quiet_config};

const WAIT: Duration = Duration::from_secs(10);

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

// ---- a custom plugin of each kind, each counting its calls ----

#[derive(Debug, Default)]
struct CountingPropagator {
    extracts: AtomicUsize,
    injects: AtomicUsize,
}

impl Propagator for CountingPropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        self.extracts.fetch_add(1, Ordering::SeqCst);
        default_propagator().extract(carrier, cx)
    }
    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        self.injects.fetch_add(1, Ordering::SeqCst);
        carrier.set("x-custom-propagator", "yes".to_owned());
        default_propagator().inject(cx, carrier);
    }
    fn fields(&self) -> Vec<String> {
        vec!["traceparent".into(), "x-custom-propagator".into()]
    }
}

/// Masks the word "gizmo" and treats keys ending in `.pin` as secret.
#[derive(Debug, Default)]
struct GizmoMasker {
    calls: AtomicUsize,
}

impl Masker for GizmoMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if text.contains("gizmo") {
            Cow::Owned(text.replace("gizmo", "g***o"))
        } else {
            Cow::Borrowed(text)
        }
    }
    fn is_secret_key(&self, key: &str) -> bool {
        key.ends_with(".pin")
    }
}

#[derive(Debug, Default)]
struct CountingRecorder {
    calls: AtomicUsize,
}

impl ExceptionRecorder for CountingRecorder {
    fn record(&self, span: &SpanRef<'_>, failure: &Failure<'_>) -> Option<ErrorCode> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        span.add_event("custom-exception", vec![KeyValue::new("custom", true)]);
        failure.error_code()
    }
}

#[derive(Debug, Default)]
struct RecordingCorrelator {
    seen: Mutex<Vec<(String, u16, Option<u32>)>>,
}

impl Correlator for RecordingCorrelator {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        self.seen.lock().unwrap().push((
            outcome.trace_id.to_string(),
            outcome.status,
            outcome
                .error
                .as_ref()
                .and_then(|e| e.code.map(|c| c.code())),
        ));
    }
}

#[derive(Debug, Default)]
struct PanickingCorrelator;

impl Correlator for PanickingCorrelator {
    fn on_request_end(&self, _outcome: &RequestOutcome<'_>) {
        panic!("correlator bug");
    }
}

const DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", http::StatusCode::PAYMENT_REQUIRED)
        .with_severity(Severity::Warning);

#[test]
fn a_custom_plugin_of_each_kind_is_called() {
    let propagator = Arc::new(CountingPropagator::default());
    let masker = Arc::new(GizmoMasker::default());
    let recorder = Arc::new(CountingRecorder::default());
    let correlator = Arc::new(RecordingCorrelator::default());
    let spans = InMemoryExporter::default();

    let engine = Engine::builder(quiet_config().build().unwrap())
        .propagator(propagator.clone())
        .masker(masker.clone())
        .exception_recorder(recorder.clone())
        .exporter(spans.clone())
        .correlator(PanickingCorrelator)
        .correlator(correlator.clone())
        .install_global(false)
        .build()
        .unwrap();

    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let cx = engine.start_server_span(
        "POST /gizmo",
        vec![
            KeyValue::new("item", "blue gizmo"),
            KeyValue::new("card.pin", 1234_i64),
        ],
        &incoming,
    );
    assert_eq!(propagator.extracts.load(Ordering::SeqCst), 1);

    let err = AppError::new(DECLINED, "declined the gizmo");
    let code = engine.record_failure(&cx, &Failure::error(&err));
    assert_eq!(code, Some(DECLINED));
    assert_eq!(recorder.calls.load(Ordering::SeqCst), 1);

    let mut outgoing: HashMap<String, String> = HashMap::new();
    engine.inject(&cx, &mut outgoing);
    assert_eq!(propagator.injects.load(Ordering::SeqCst), 1);
    assert_eq!(
        outgoing.get("x-custom-propagator").map(String::as_str),
        Some("yes")
    );
    assert!(outgoing["traceparent"].starts_with("00-0af7651916cd43dd8448eb211c80319c-"));

    let sc = cx.span().span_context().clone();
    let mut error = RequestError::new(
        FailureKind::Error,
        Severity::Warning,
        "faultline::AppError",
        "declined",
    );
    error.code = Some(DECLINED);
    let mut outcome = RequestOutcome::new(
        sc.trace_id(),
        sc.span_id(),
        sc.is_sampled(),
        "POST",
        "/gizmo",
        402,
        Duration::from_millis(3),
    );
    outcome.error = Some(error);
    engine.notify_request_end(&outcome);
    assert_eq!(
        *correlator.seen.lock().unwrap(),
        vec![(
            "0af7651916cd43dd8448eb211c80319c".to_owned(),
            402,
            Some(2001)
        )],
        "the correlator after the panicking one still hears"
    );

    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    assert_eq!(exported.len(), 1);
    let span = &exported[0];
    assert_eq!(span.name, "POST /g***o");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(attr(span, "item").unwrap().as_str(), "blue g***o");
    assert_eq!(attr(span, "card.pin").unwrap().as_str(), "[REDACTED]");
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "custom-exception");
    assert!(span.parent_span_is_remote);
    assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
    assert!(masker.calls.load(Ordering::SeqCst) > 0);
}

#[test]
fn resource_has_service_and_sdk_attributes() {
    let spans = InMemoryExporter::default();
    let config = TracingConfig::builder()
        .service_name("payments-api")
        .service_version("2.3.4")
        .deployment_environment("staging")
        .resource_attribute("team", "billing")
        .exporters([])
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let resource = spans
        .resource()
        .expect("the exporter received the resource");
    let get = |k: &'static str| {
        resource
            .get(&opentelemetry::Key::from_static_str(k))
            .map(|v| v.to_string())
    };
    assert_eq!(get("service.name").as_deref(), Some("payments-api"));
    assert_eq!(get("service.version").as_deref(), Some("2.3.4"));
    assert_eq!(
        get("deployment.environment.name").as_deref(),
        Some("staging")
    );
    assert_eq!(get("team").as_deref(), Some("billing"));
    assert_eq!(get("telemetry.sdk.name").as_deref(), Some("opentelemetry"));
    assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
    assert!(get("telemetry.sdk.version").is_some());
    assert_eq!(engine.resource(), &resource);
    engine.shutdown();
}

#[test]
fn shutdown_flushes_every_pending_span_and_is_idempotent() {
    let spans = InMemoryExporter::default();
    // A long delay and a large batch: nothing is exported before shutdown.
    let config = quiet_config()
        .batch(4096, 4096, Duration::from_secs(600))
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let tracer = engine.tracer().clone();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let tracer = tracer.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let mut span = tracer.start(format!("work-{t}-{i}"));
                    span.set_attribute(KeyValue::new("i", i64::from(i)));
                    span.end();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        spans.is_empty(),
        "nothing should be exported before shutdown"
    );

    let clone = engine.clone();
    let report = clone.shutdown();
    assert!(!report.already_shut_down);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(spans.len(), 1000);
    assert_eq!(report.stats.spans_exported, 1000);
    assert!(spans.is_shut_down());

    let again = engine.shutdown();
    assert!(again.already_shut_down);
    // Spans after shutdown go nowhere and break nothing.
    engine.tracer().start("late").end();
    assert_eq!(spans.len(), 1000);
}

#[test]
fn raw_opentelemetry_api_attributes_arrive_masked() {
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .pii_pattern_with("iban", r"\bDE\d{20}\b", "DE**IBAN**")
        .secret_key("x-tenant-key")
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    // A tracer of the application's own scope, used through the plain API.
    let tracer = engine.tracer_provider().tracer("my-app");
    let mut span = tracer.start("transfer");
    span.set_attribute(KeyValue::new("payee.iban", "DE89370400440532013000"));
    span.set_attribute(KeyValue::new("x-tenant-key", "t-123"));
    span.set_attribute(KeyValue::new(
        "http.request.header.authorization",
        "Bearer abc",
    ));
    span.set_attribute(KeyValue::new("note", "plain"));
    span.add_event(
        "retry",
        vec![KeyValue::new("iban", "to DE89370400440532013000 failed")],
    );
    span.set_status(Status::error("rejected DE89370400440532013000"));
    span.end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    let s = &exported[0];
    assert_eq!(s.instrumentation_scope.name(), "my-app");
    assert_eq!(attr(s, "payee.iban").unwrap().as_str(), "DE**IBAN**");
    assert_eq!(attr(s, "x-tenant-key").unwrap().as_str(), "[REDACTED]");
    assert_eq!(
        attr(s, "http.request.header.authorization")
            .unwrap()
            .as_str(),
        "[REDACTED]"
    );
    assert_eq!(attr(s, "note").unwrap().as_str(), "plain");
    assert_eq!(
        s.events[0].attributes[0].value.as_str(),
        "to DE**IBAN** failed"
    );
    assert_eq!(s.status, Status::error("rejected DE**IBAN**"));
    let everything = format!("{s:?}");
    assert!(!everything.contains("DE89370400440532013000"));
    assert!(!everything.contains("Bearer abc"));
    engine.shutdown();
}

#[test]
fn an_attribute_set_twice_is_exported_once_with_its_last_value() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    // The route learned late, twice (an adapter, then the application).
    let mut request = crate::common::start_get(
        &engine,
        "/orders/{id}",
        "/orders/7",
        &http::HeaderMap::new(),
        None,
    );
    request.set_route("/v2/orders/{id}");
    request
        .context()
        .span()
        .set_attribute(KeyValue::new("tenant", "first"));
    request
        .context()
        .span()
        .set_attribute(KeyValue::new("tenant", "second"));
    request.finish(http::StatusCode::OK, &http::HeaderMap::new());
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    let s = &exported[0];
    let count = |key: &str| {
        s.attributes
            .iter()
            .filter(|kv| kv.key.as_str() == key)
            .count()
    };
    assert_eq!(count("http.route"), 1, "{:?}", s.attributes);
    assert_eq!(attr(s, "http.route").unwrap().as_str(), "/v2/orders/{id}");
    assert_eq!(s.name, "GET /v2/orders/{id}");
    assert_eq!(count("tenant"), 1, "{:?}", s.attributes);
    assert_eq!(attr(s, "tenant").unwrap().as_str(), "second");
    // Everything else once, too.
    let mut keys: Vec<&str> = s.attributes.iter().map(|kv| kv.key.as_str()).collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all, "{:?}", s.attributes);
    engine.shutdown();
}

#[test]
fn a_problem_names_a_trace_only_when_that_trace_is_exported() {
    // (sample rate, error keeping, tracing on, trace id expected)
    for (rate, keep, enabled, expected) in [
        (1.0, true, true, true),
        (0.0, true, true, true),
        (0.0, false, true, false),
        (1.0, true, false, false),
    ] {
        let case = format!("rate {rate}, keep {keep}, enabled {enabled}");
        let spans = InMemoryExporter::default();
        let config = quiet_config()
            .sample_rate(rate)
            .keep_errors(keep)
            .enabled(enabled)
            .build()
            .unwrap();
        let engine = memory_engine(config, &spans);
        let request =
            crate::common::start_get(&engine, "/pay", "/pay", &http::HeaderMap::new(), None);
        assert_eq!(request.exports_trace(), expected, "{case}");
        let problem = request.problem(DECLINED, "declined", "/pay");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
        request.finish(http::StatusCode::PAYMENT_REQUIRED, &headers);
        engine.force_flush();
        if expected {
            let exported = spans.wait_for(1, WAIT);
            assert_eq!(
                problem.trace_id.as_deref(),
                Some(exported[0].span_context.trace_id().to_string().as_str()),
                "{case}"
            );
        } else {
            assert_eq!(problem.trace_id, None, "{case}");
            assert_eq!(spans.len(), 0, "{case}");
        }
        engine.shutdown();
    }
}

#[test]
fn global_api_spans_are_masked() {
    let spans = InMemoryExporter::default();
    let config = quiet_config().secret_key("pin").build().unwrap();
    let engine = Engine::builder(config)
        .exporter(spans.clone())
        .build()
        .unwrap();
    let tracer = opentelemetry::global::tracer("library");
    let mut span = tracer.start("global-span");
    span.set_attribute(KeyValue::new("card.pin", "9999"));
    span.end();
    // The global propagator is the engine's.
    let cx = engine.start_server_span("GET /x", vec![], &http::HeaderMap::new());
    let mut out: HashMap<String, String> = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));
    assert!(out.contains_key("traceparent"));
    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(2, WAIT);
    let s = exported.iter().find(|s| s.name == "global-span").unwrap();
    assert_eq!(attr(s, "card.pin").unwrap().as_str(), "[REDACTED]");
    engine.shutdown();
}

#[test]
fn masking_off_exports_values_as_they_are() {
    let spans = InMemoryExporter::default();
    let config = quiet_config().pii_masking(false).build().unwrap();
    let engine = memory_engine(config, &spans);
    let mut span = engine.tracer().start("raw");
    span.set_attribute(KeyValue::new("password", "visible-on-purpose"));
    span.end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    assert_eq!(
        attr(&exported[0], "password").unwrap().as_str(),
        "visible-on-purpose"
    );
}

#[test]
fn sampling_follows_the_configuration() {
    // Rate 0: a new trace is not exported, a sampled incoming parent is (parent-based).
    let spans = InMemoryExporter::default();
    let config = quiet_config().sample_rate(0.0).build().unwrap();
    let engine = memory_engine(config, &spans);
    engine
        .start_server_span("GET /new", vec![], &http::HeaderMap::new())
        .span()
        .end();
    let mut sampled_parent = http::HeaderMap::new();
    sampled_parent.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    engine
        .start_server_span("GET /child", vec![], &sampled_parent)
        .span()
        .end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].name, "GET /child");
    assert_eq!(
        exported[0].span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Not parent-based at rate 0: even a sampled parent is dropped.
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .sample_rate(0.0)
        .parent_based(false)
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    engine
        .start_server_span("GET /child", vec![], &sampled_parent)
        .span()
        .end();
    engine.force_flush();
    assert!(spans.is_empty());

    // Ratio 0.5: roughly half of 2000 new traces.
    let spans = InMemoryExporter::default();
    let config = quiet_config().sample_rate(0.5).build().unwrap();
    let engine = memory_engine(config, &spans);
    for _ in 0..2000 {
        engine.tracer().start("r").end();
    }
    engine.force_flush();
    let n = spans.len();
    assert!((800..=1200).contains(&n), "{n} of 2000 sampled at 0.5");
}

#[test]
fn disabled_engine_traces_nothing() {
    let spans = InMemoryExporter::default();
    let config = quiet_config().enabled(false).build().unwrap();
    let engine = memory_engine(config, &spans);
    let cx = engine.start_server_span("GET /", vec![], &http::HeaderMap::new());
    assert!(!cx.span().is_recording());
    cx.span().end();
    engine.force_flush();
    assert!(spans.is_empty());
}

#[test]
fn configured_exporter_without_plugin_is_a_clear_error() {
    let config = TracingConfig::builder()
        .exporters([ExporterKind::OTLP])
        .build()
        .unwrap();
    let err = Engine::builder(config)
        .install_global(false)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::ExporterUnavailable { kind, registered }
            if *kind == ExporterKind::OTLP && registered == &[ExporterKind::CONSOLE]),
        "{err:?}"
    );
    // One line that says exactly what to call.
    assert_eq!(
        err.to_string(),
        "exporter `otlp` (named by OTEL_TRACES_EXPORTER or the configuration) is not registered \
         (registered: console): build the engine \
         with `faultline::setup::engine_builder(config)`, which registers the exporters of the \
         faultline features turned on (`otlp`, `jaeger`, `viewer`: each is the feature of that \
         name), or register it with `EngineBuilder::exporter_factory(ExporterKind::named(\"otlp\"), ..)`"
    );

    // A registered factory fills the slot; a failing one is reported with its source.
    let spans = InMemoryExporter::default();
    let factory_spans = spans.clone();
    let config = TracingConfig::builder()
        .exporters([ExporterKind::OTLP])
        .build()
        .unwrap();
    let engine = Engine::builder(config.clone())
        .exporter_factory(ExporterKind::OTLP, move |_| Ok(Box::new(factory_spans)))
        .install_global(false)
        .build()
        .unwrap();
    engine.tracer().start("via-factory").end();
    engine.force_flush();
    assert_eq!(spans.wait_for(1, WAIT)[0].name, "via-factory");

    let err = Engine::builder(config)
        .exporter_factory(ExporterKind::OTLP, |_| {
            Err(std::io::Error::other("no route to collector").into())
        })
        .install_global(false)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exporter `otlp` could not start: no route to collector"
    );
    let source = std::error::Error::source(&err).expect("the factory's error is the source");
    assert!(
        source.downcast_ref::<std::io::Error>().is_some(),
        "{source:?}"
    );
}

/// An application's own exporter, from outside the workspace's plugins.
#[derive(Debug, Clone, Default)]
struct AuditExporter {
    names: Arc<Mutex<Vec<String>>>,
    service: Arc<Mutex<Option<String>>>,
}

#[async_trait::async_trait]
impl Exporter for AuditExporter {
    fn name(&self) -> &str {
        "audit"
    }
    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        let mut names = self.names.lock().unwrap();
        names.extend(batch.iter().map(|s| s.name.to_string()));
        Ok(())
    }
}

#[test]
fn an_application_exporter_is_registered_by_name_and_chosen_by_the_environment() {
    let from_env = |list: &'static str| {
        let env = HashMap::from([
            ("OTEL_TRACES_EXPORTER", list),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ]);
        TracingConfig::builder()
            .service_name("audited")
            .with_env_from(|k| env.get(k).map(|v| (*v).to_owned()))
            .unwrap()
            .build()
            .unwrap()
    };
    let audit = AuditExporter::default();
    let registered = audit.clone();
    let engine = faultline::setup::engine_builder(from_env("audit"))
        .exporter_factory(ExporterKind::named("audit"), move |cx| {
            *registered.service.lock().unwrap() = Some(cx.config().service_name().to_owned());
            Ok(Box::new(registered))
        })
        .install_global(false)
        .build()
        .unwrap();
    engine.tracer().start("audited-span").end();
    engine.force_flush();
    assert_eq!(*audit.names.lock().unwrap(), ["audited-span"]);
    assert_eq!(audit.service.lock().unwrap().as_deref(), Some("audited"));
    assert!(engine.shutdown().is_clean());

    // Beside a plugin: `otlp,audit` builds with both.
    let engine = faultline::setup::engine_builder(from_env("otlp,audit"))
        .exporter_factory(ExporterKind::named("audit"), |_| {
            Ok(Box::new(AuditExporter::default()))
        })
        .install_global(false)
        .build()
        .unwrap();
    engine.shutdown();

    // Not registered: one line listing the registered names.
    let err = faultline::setup::engine_builder(from_env("otlp,audit"))
        .install_global(false)
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.starts_with(
            "exporter `audit` (named by OTEL_TRACES_EXPORTER or the configuration) is not \
             registered (registered: console, jaeger, otlp, viewer)"
        ),
        "{message}"
    );
}

/// An application's own propagation format, from outside the workspace's
/// plugins: `x-edge-trace: <trace id>-<span id>` (sampled).
#[derive(Debug)]
struct EdgePropagator;

impl Propagator for EdgePropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let Some((trace, span)) = carrier.get("x-edge-trace").and_then(|v| v.split_once('-'))
        else {
            return cx.clone();
        };
        match (TraceId::from_hex(trace), SpanId::from_hex(span)) {
            (Ok(trace), Ok(span)) => cx.with_remote_span_context(SpanContext::new(
                trace,
                span,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )),
            _ => cx.clone(),
        }
    }
    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            carrier.set(
                "x-edge-trace",
                format!("{}-{}", sc.trace_id(), sc.span_id()),
            );
        }
    }
    fn fields(&self) -> Vec<String> {
        vec!["x-edge-trace".into()]
    }
}

#[test]
fn an_application_propagator_is_registered_by_name_and_chosen_by_the_environment() {
    use faultline::config::PropagatorKind;
    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    let from_env = |list: &'static str| {
        let env = HashMap::from([("OTEL_PROPAGATORS", list)]);
        quiet_config()
            .with_env_from(|k| env.get(k).map(|v| (*v).to_owned()))
            .unwrap()
            .build()
            .unwrap()
    };
    let engine = faultline::setup::engine_builder(from_env("tracecontext,edge"))
        .register_propagator(PropagatorKind::named("edge"), EdgePropagator)
        .install_global(false)
        .build()
        .unwrap();
    let continued = |headers: &[(&'static str, String)]| {
        let mut incoming = http::HeaderMap::new();
        for (name, value) in headers {
            incoming.insert(*name, value.parse().unwrap());
        }
        let (cx, _) = engine.extract_from(&incoming, None);
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    };
    let expected = (TRACE.to_owned(), SPAN.to_owned());
    // The application's format alone is read...
    assert_eq!(
        continued(&[("x-edge-trace", format!("{TRACE}-{SPAN}"))]),
        expected
    );
    // ...and W3C Trace Context still is, first.
    assert_eq!(
        continued(&[("traceparent", format!("00-{TRACE}-{SPAN}-01"))]),
        expected
    );
    // Both are written.
    let cx = engine.start_server_span("GET /edge", vec![], &http::HeaderMap::new());
    let mut out = http::HeaderMap::new();
    engine.inject(&cx, &mut out);
    let sc = cx.span().span_context().clone();
    assert_eq!(
        out["traceparent"],
        format!("00-{}-{}-01", sc.trace_id(), sc.span_id()).as_str()
    );
    assert_eq!(
        out["x-edge-trace"],
        format!("{}-{}", sc.trace_id(), sc.span_id()).as_str()
    );
    cx.span().end();
    engine.shutdown();

    // A name nobody registered stops the build with one line naming the
    // known ones.
    let err = faultline::setup::engine_builder(from_env("tracecontext,nope"))
        .register_propagator(PropagatorKind::named("edge"), EdgePropagator)
        .install_global(false)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, EngineError::PropagatorUnavailable { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(
        message,
        "propagator `nope` (named by OTEL_PROPAGATORS or the configuration) is not registered \
         (registered: b3, b3multi, baggage, edge, jaeger, tracecontext): register it with \
         `EngineBuilder::register_propagator(PropagatorKind::named(\"nope\"), ..)`"
    );
}

#[derive(Debug)]
struct FlakyExporter {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Exporter for FlakyExporter {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn export(&self, _batch: &[SpanData]) -> Result<(), ExportError> {
        match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => panic!("exporter bug"),
            1 => Err(ExportError::transient("connection refused")),
            2 => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[test]
fn a_failing_exporter_is_retried_and_never_stops_the_others() {
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .export_timeout(Duration::from_millis(200))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(FlakyExporter {
            calls: AtomicUsize::new(0),
        })
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    for i in 0..4 {
        engine.tracer().start(format!("batch-{i}")).end();
        engine.force_flush();
    }
    let exported = spans.wait_for(4, WAIT);
    assert_eq!(exported.len(), 4, "the in-memory exporter got every batch");
    let stats = engine.export_stats();
    assert_eq!(stats.spans_received, 4);
    let flaky = &stats.exporters[0];
    assert_eq!(flaky.name, "flaky");
    assert_eq!(
        (
            flaky.failed_attempts,
            flaky.retries,
            flaky.delivered,
            flaky.dropped
        ),
        (3, 3, 4, 0),
        "a panic, an error and a time-out, each retried: {stats:?}"
    );
    assert_eq!(stats.spans_exported, 4);
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn untrusted_incoming_context_becomes_a_link() {
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .trust_incoming_context(false)
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    incoming.insert("baggage", "user=alice".parse().unwrap());
    let cx = engine.start_server_span("GET /public", vec![], &incoming);
    assert!(opentelemetry::baggage::BaggageExt::baggage(&cx).is_empty());
    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    let s = &exported[0];
    assert_ne!(
        s.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(s.links.len(), 1);
    assert_eq!(
        s.links[0].span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn problem_details_carry_the_exported_trace_id_and_are_masked() {
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .pii_pattern("acct", r"ACCT-\d{6}")
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let cx = engine.start_server_span("POST /pay", vec![], &http::HeaderMap::new());
    let err = AppError::new(DECLINED, "account ACCT-123456 declined");
    engine.record_failure(&cx, &Failure::error(&err));
    let problem = engine.problem_details(&cx, &err).with_instance("/pay");
    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    let body: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
    assert_eq!(body["code"], 2001);
    assert_eq!(body["status"], 402);
    assert_eq!(body["detail"], "account [REDACTED] declined");
    assert_eq!(
        body["trace_id"].as_str().unwrap(),
        exported[0].span_context.trace_id().to_string()
    );
    // The exception event is there, masked on the way out.
    let event = &exported[0].events[0];
    assert_eq!(event.name, "exception");
    let get = |k: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(get("exception.type").unwrap().as_str(), "PAYMENT_DECLINED");
    assert_eq!(
        get("exception.message").unwrap().as_str(),
        "account [REDACTED] declined"
    );
    assert_eq!(get("faultline.error.code"), Some(Value::I64(2001)));
    assert_eq!(get("faultline.error.severity").unwrap().as_str(), "warning");
    // A 4xx is the caller's fault: the server span's status stays unset.
    assert_eq!(exported[0].status, Status::Unset);

    // A 5xx error sets the status, masked on the way out.
    let cx = engine.start_server_span("POST /pay", vec![], &http::HeaderMap::new());
    let err = AppError::new(
        faultline::error::codes::UNAVAILABLE,
        "ledger ACCT-654321 unreachable",
    );
    engine.record_failure(&cx, &Failure::error(&err));
    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(2, WAIT);
    assert_eq!(
        exported[1].status,
        Status::error("ledger [REDACTED] unreachable")
    );
}

#[test]
fn console_exporter_writes_one_line_per_span() {
    let pretty = SharedBuf::default();
    let json = SharedBuf::default();
    let engine = Engine::builder(quiet_config().service_name("console-test").build().unwrap())
        .exporter(ConsoleExporter::to_writer(
            ConsoleFormat::Pretty,
            pretty.clone(),
        ))
        .exporter(ConsoleExporter::to_writer(
            ConsoleFormat::Json,
            json.clone(),
        ))
        .install_global(false)
        .build()
        .unwrap();
    let cx = engine.start_server_span(
        "GET /users/{id}",
        vec![
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("note", "two\nlines"),
        ],
        &http::HeaderMap::new(),
    );
    let trace_id = Engine::trace_id(&cx).unwrap();
    cx.span().end();
    engine.shutdown();
    let text = pretty.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("console-test SERVER \"GET /users/{id}\""),
        "{text}"
    );
    assert!(text.contains(&format!("trace_id={trace_id}")), "{text}");
    assert!(text.contains("http.route=\"/users/{id}\""), "{text}");
    let line: serde_json::Value = serde_json::from_str(json.text().trim()).unwrap();
    assert_eq!(line["name"], "GET /users/{id}");
    assert_eq!(line["service"], "console-test");
    assert_eq!(line["trace_id"], trace_id);
    assert_eq!(line["attributes"]["note"], "two\nlines");
}

#[test]
fn many_engines_can_be_built_and_used_side_by_side() {
    let a = InMemoryExporter::default();
    let b = InMemoryExporter::default();
    let ea = Engine::builder(quiet_config().service_name("a").build().unwrap())
        .exporter(a.clone())
        .install_global(false)
        .build()
        .unwrap();
    let eb = Engine::builder(quiet_config().service_name("b").build().unwrap())
        .exporter(b.clone())
        .install_global(false)
        .build()
        .unwrap();
    ea.tracer().start("in-a").end();
    eb.tracer().start("in-b").end();
    ea.shutdown();
    eb.shutdown();
    assert_eq!(
        a.spans()
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>(),
        ["in-a"]
    );
    assert_eq!(
        b.spans()
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>(),
        ["in-b"]
    );
}

#[test]
fn engine_is_send_sync_clone_and_cheap_to_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Engine>();
    assert!(std::mem::size_of::<Engine>() <= std::mem::size_of::<usize>());
}

#[test]
fn engine_from_environment_map_builds_a_console_engine() {
    let env: HashMap<&str, &str> = [
        ("OTEL_SERVICE_NAME", "env-service"),
        ("OTEL_TRACES_EXPORTER", "console"),
        ("FAULTLINE_CONSOLE_FORMAT", "json"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]
    .into_iter()
    .collect();
    let config = TracingConfig::builder()
        .with_env_from(|k| env.get(k).map(|v| (*v).to_owned()))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(config.service_name(), "env-service");
    assert_eq!(config.exporters(), [ExporterKind::CONSOLE]);
    assert_eq!(config.sample_rate(), 0.25);
    let engine = Engine::builder(config)
        .install_global(false)
        .build()
        .unwrap();
    assert_eq!(engine.config().console_format(), ConsoleFormat::Json);
    engine.shutdown();
}

#[test]
fn configured_propagators_read_b3_and_write_every_format() {
    use faultline::config::PropagatorKind as P;
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .propagators([P::B3, P::TRACE_CONTEXT, P::JAEGER])
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "b3",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
            .parse()
            .unwrap(),
    );
    let cx = engine.start_server_span("GET /b3", vec![], &incoming);
    let mut out = http::HeaderMap::new();
    engine.inject(&cx, &mut out);
    let span_id = cx.span().span_context().span_id().to_string();
    assert_eq!(
        out["b3"],
        format!("80f198ee56343ba864fe8b2a57d3eff7-{span_id}-1").as_str()
    );
    assert_eq!(
        out["traceparent"],
        format!("00-80f198ee56343ba864fe8b2a57d3eff7-{span_id}-01").as_str()
    );
    assert_eq!(
        out["uber-trace-id"],
        format!("80f198ee56343ba864fe8b2a57d3eff7:{span_id}:0:1").as_str()
    );
    cx.span().end();
    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    assert_eq!(exported[0].parent_span_id.to_string(), "e457b5a2e4d86bd1");

    // No propagators: incoming headers are ignored and nothing is written.
    let engine = Engine::builder(quiet_config().propagators([]).build().unwrap())
        .install_global(false)
        .build()
        .unwrap();
    let cx = engine.start_server_span("GET /none", vec![], &incoming);
    assert_ne!(
        cx.span().span_context().trace_id().to_string(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    let mut out = http::HeaderMap::new();
    engine.inject(&cx, &mut out);
    assert!(out.is_empty());
}

/// A request is extracted from whenever it holds any header a configured
/// propagator reads, alone, among a few headers or among many (the engine
/// skips extraction only for requests with none of them).
#[test]
fn a_request_with_any_one_trace_header_is_extracted_from() {
    use faultline::config::PropagatorKind as P;
    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    let cases: [(P, &[(&str, String)]); 5] = [
        (
            P::TRACE_CONTEXT,
            &[("traceparent", format!("00-{TRACE}-{SPAN}-01"))],
        ),
        (P::B3, &[("b3", format!("{TRACE}-{SPAN}-1"))]),
        (
            P::B3_MULTI,
            &[
                ("x-b3-traceid", TRACE.to_owned()),
                ("x-b3-spanid", SPAN.to_owned()),
            ],
        ),
        // Each encoding reads the other's headers too.
        (P::B3_MULTI, &[("b3", format!("{TRACE}-{SPAN}-1"))]),
        (
            P::JAEGER,
            &[("uber-trace-id", format!("{TRACE}:{SPAN}:0:1"))],
        ),
    ];
    for (kind, headers) in cases {
        let engine = Engine::builder(quiet_config().propagators([kind.clone()]).build().unwrap())
            .install_global(false)
            .build()
            .unwrap();
        for filler in [0, 3, 40] {
            let mut incoming = http::HeaderMap::new();
            for i in 0..filler {
                incoming.insert(
                    http::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            for (name, value) in headers {
                incoming.insert(*name, value.parse().unwrap());
            }
            let (cx, _link) = engine.extract_from(&incoming, None);
            let sc = cx.span().span_context().clone();
            assert_eq!(
                (sc.trace_id().to_string(), sc.span_id().to_string()),
                (TRACE.to_owned(), SPAN.to_owned()),
                "{kind:?} with {headers:?} among {filler} other headers"
            );
        }
        engine.shutdown();
    }

    // Baggage alone.
    let engine = Engine::builder(quiet_config().propagators([P::BAGGAGE]).build().unwrap())
        .install_global(false)
        .build()
        .unwrap();
    let mut incoming = http::HeaderMap::new();
    incoming.insert("baggage", "tenant=acme".parse().unwrap());
    let (cx, _) = engine.extract_from(&incoming, None);
    assert_eq!(
        faultline::propagation::baggage::baggage(&cx).and_then(|b| b.get("tenant")),
        Some("acme")
    );
    engine.shutdown();
}

/// An application's own propagator may read any header: it is always asked.
#[test]
fn a_propagator_of_the_applications_own_is_always_asked() {
    #[derive(Debug)]
    struct Custom;
    impl faultline::propagation::Propagator for Custom {
        fn extract(
            &self,
            carrier: &dyn faultline::carrier::Carrier,
            cx: &opentelemetry::Context,
        ) -> opentelemetry::Context {
            match carrier.get("x-request-trace") {
                Some(id) => cx.with_remote_span_context(opentelemetry::trace::SpanContext::new(
                    opentelemetry::trace::TraceId::from_hex(id).unwrap(),
                    opentelemetry::trace::SpanId::from_hex("e457b5a2e4d86bd1").unwrap(),
                    opentelemetry::trace::TraceFlags::SAMPLED,
                    true,
                    Default::default(),
                )),
                None => cx.clone(),
            }
        }
        fn inject(
            &self,
            _cx: &opentelemetry::Context,
            _carrier: &mut dyn faultline::carrier::CarrierMut,
        ) {
        }
        fn fields(&self) -> Vec<String> {
            Vec::new()
        }
    }
    let engine = Engine::builder(quiet_config().build().unwrap())
        .propagator(Custom)
        .install_global(false)
        .build()
        .unwrap();
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "x-request-trace",
        "80f198ee56343ba864fe8b2a57d3eff7".parse().unwrap(),
    );
    let (cx, _) = engine.extract_from(&incoming, None);
    assert_eq!(
        cx.span().span_context().trace_id().to_string(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
    engine.shutdown();
}

#[derive(Debug, Default)]
struct ServingCorrelator;

impl Correlator for ServingCorrelator {
    fn on_request_end(&self, _outcome: &RequestOutcome<'_>) {}
    fn serves_metrics(&self) -> bool {
        true
    }
    fn render_metrics(
        &self,
        accept: Option<&str>,
        stats: &faultline::export::ExportStats,
    ) -> Option<faultline::correlate::Exposition> {
        Some(faultline::correlate::Exposition::new(
            "text/plain; version=0.0.4",
            format!("accept {accept:?} received {}", stats.spans_received),
        ))
    }
}

#[test]
fn only_a_correlator_that_serves_metrics_opens_the_metrics_path() {
    use faultline::request::adapter::scrape;
    let get = http::Method::GET;
    let mut headers = http::HeaderMap::new();
    headers.insert("accept", "application/openmetrics-text".parse().unwrap());

    let plain = Engine::builder(quiet_config().build().unwrap())
        .correlator(RecordingCorrelator::default())
        .install_global(false)
        .build()
        .unwrap();
    assert_eq!(plain.metrics_path(), None);
    assert!(scrape(&plain, &get, "/metrics", &headers).is_none());
    assert!(plain.render_metrics(None).is_none());

    let serving = Engine::builder(quiet_config().build().unwrap())
        .correlator(RecordingCorrelator::default())
        .correlator(ServingCorrelator)
        .install_global(false)
        .build()
        .unwrap();
    assert_eq!(serving.metrics_path(), Some("/metrics"));
    let scraped = scrape(&serving, &get, "/metrics", &headers).unwrap();
    assert_eq!(
        scraped.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    assert_eq!(
        scraped.body(),
        r#"accept Some("application/openmetrics-text") received 0"#
    );
    assert!(scrape(&serving, &http::Method::HEAD, "/metrics", &headers).is_some());
    assert!(scrape(&serving, &http::Method::POST, "/metrics", &headers).is_none());
    assert!(scrape(&serving, &get, "/metrics/", &headers).is_none());
    assert!(scrape(&serving, &get, "/hello", &headers).is_none());

    let moved = Engine::builder(
        quiet_config()
            .metrics_path(Some("/internal/prom"))
            .build()
            .unwrap(),
    )
    .correlator(ServingCorrelator)
    .install_global(false)
    .build()
    .unwrap();
    assert!(scrape(&moved, &get, "/metrics", &headers).is_none());
    assert!(scrape(&moved, &get, "/internal/prom", &headers).is_some());

    let off = Engine::builder(quiet_config().metrics_path(None).build().unwrap())
        .correlator(ServingCorrelator)
        .install_global(false)
        .build()
        .unwrap();
    assert_eq!(off.metrics_path(), None);
    assert!(
        off.render_metrics(None).is_some(),
        "still renderable by hand"
    );
}
