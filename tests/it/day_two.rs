//! What a service needs once it runs: samplers of its own chosen by name,
//! slow requests kept like errors.

use std::time::{Duration, SystemTime};

use faultline::Engine;
use faultline::config::TracingConfigBuilder;
use faultline::export::{InMemoryExporter, KEPT_ATTRIBUTE};
use http::{HeaderMap, StatusCode};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::{Sampler, SpanData};

use crate::common::{memory_engine, quiet_config, start_get};

fn engine(config: TracingConfigBuilder) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(config.build().unwrap(), &spans);
    (engine, spans)
}

fn kept_mark(span: &SpanData) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == KEPT_ATTRIBUTE)
        .map(|kv| kv.value.as_str().into_owned())
}

fn of_trace(spans: &[SpanData], trace_id: &str) -> Vec<SpanData> {
    spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace_id)
        .cloned()
        .collect()
}

/// A server span (and a child) that started `ago` and ends now: a request
/// that lasted that long, without waiting for it.
fn request_that_lasted(engine: &Engine, ago: Duration) -> String {
    let tracer = engine.tracer();
    let span = tracer
        .span_builder("GET /report")
        .with_kind(SpanKind::Server)
        .with_start_time(SystemTime::now() - ago)
        .start(tracer);
    let cx = opentelemetry::Context::new().with_span(span);
    let trace_id = cx.span().span_context().trace_id().to_string();
    tracer.start_with_context("render", &cx).end();
    cx.span().end();
    trace_id
}

#[test]
fn slow_unsampled_requests_are_kept_with_error_keeping_on_or_off() {
    for keep_errors in [true, false] {
        let (engine, exported) = engine(
            quiet_config()
                .sample_rate(0.0)
                .keep_errors(keep_errors)
                .keep_slow(Some(Duration::from_millis(500))),
        );
        let slow = request_that_lasted(&engine, Duration::from_secs(2));
        let fast = request_that_lasted(&engine, Duration::ZERO);
        // Through the request path as an adapter runs it: slept past a
        // threshold of 20 ms.
        let (real_engine, real_exported) = self::engine(
            quiet_config()
                .sample_rate(0.0)
                .keep_errors(keep_errors)
                .keep_slow(Some(Duration::from_millis(20))),
        );
        let request = start_get(&real_engine, "/report", "/report", &HeaderMap::new(), None);
        let real_trace = request.trace_id().unwrap();
        std::thread::sleep(Duration::from_millis(40));
        request.finish(StatusCode::OK, &HeaderMap::new());

        engine.force_flush();
        real_engine.force_flush();
        let spans = exported.spans();
        let kept = of_trace(&spans, &slow);
        let mut names: Vec<&str> = kept.iter().map(|s| s.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["GET /report", "render"],
            "keep_errors={keep_errors}"
        );
        let root = kept.iter().find(|s| s.name == "GET /report").unwrap();
        assert_eq!(kept_mark(root).as_deref(), Some("slow"));
        assert!(kept.iter().all(|s| s.span_context.is_sampled()));
        assert!(
            of_trace(&spans, &fast).is_empty(),
            "a fast request is not kept"
        );
        let stats = engine.export_stats().error_keeping;
        assert_eq!((stats.traces_kept, stats.traces_kept_slow), (1, 1));
        assert_eq!(stats.traces_discarded, 1);

        let real = of_trace(&real_exported.spans(), &real_trace);
        assert_eq!(real.len(), 1, "keep_errors={keep_errors}");
        assert_eq!(kept_mark(&real[0]).as_deref(), Some("slow"));
        assert_eq!(real_engine.export_stats().error_keeping.traces_kept_slow, 1);
        engine.shutdown();
        real_engine.shutdown();
    }
}

#[test]
fn without_the_threshold_or_when_sampled_nothing_is_marked_slow() {
    // Off (the default): an unsampled slow request is discarded.
    let (engine, exported) = engine(quiet_config().sample_rate(0.0));
    let slow = request_that_lasted(&engine, Duration::from_secs(5));
    engine.force_flush();
    assert!(of_trace(&exported.spans(), &slow).is_empty());
    assert_eq!(engine.export_stats().error_keeping.traces_kept_slow, 0);

    // Error keeping off and no threshold: unsampled requests are not even
    // held.
    let (engine, _exported) = self::engine(quiet_config().sample_rate(0.0).keep_errors(false));
    request_that_lasted(&engine, Duration::from_secs(5));
    assert_eq!(engine.export_stats().error_keeping.traces_discarded, 0);

    // Sampled: exported as always, not marked.
    let (engine, exported) = self::engine(quiet_config().keep_slow(Some(Duration::from_millis(1))));
    let slow = request_that_lasted(&engine, Duration::from_secs(5));
    engine.force_flush();
    let spans = of_trace(&exported.spans(), &slow);
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(|s| kept_mark(s).is_none()));
}

#[test]
fn a_slow_request_that_failed_stays_marked_error() {
    let (engine, exported) = engine(
        quiet_config()
            .sample_rate(0.0)
            .keep_slow(Some(Duration::from_millis(1))),
    );
    let request = start_get(&engine, "/report", "/report", &HeaderMap::new(), None);
    let trace = request.trace_id().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    request.finish(StatusCode::BAD_GATEWAY, &HeaderMap::new());
    engine.force_flush();
    let spans = of_trace(&exported.spans(), &trace);
    assert_eq!(kept_mark(&spans[0]).as_deref(), Some("error"));
    let stats = engine.export_stats().error_keeping;
    assert_eq!((stats.traces_kept, stats.traces_kept_slow), (1, 0));
}

fn env(vars: &'static [(&'static str, &'static str)]) -> TracingConfigBuilder {
    quiet_config()
        .with_env_from(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
}

#[test]
fn a_registered_sampler_is_chosen_by_name_with_its_argument() {
    let spans = InMemoryExporter::default();
    let seen_arg = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = seen_arg.clone();
    let engine = Engine::builder(
        env(&[
            ("OTEL_TRACES_SAMPLER", "Nothing_New"),
            ("OTEL_TRACES_SAMPLER_ARG", "x=1"),
        ])
        .keep_errors(false)
        .build()
        .unwrap(),
    )
    .register_sampler("everything", |_| Ok(Sampler::AlwaysOn))
    .register_sampler("nothing_new", move |arg| {
        *seen.lock().unwrap() = arg.map(str::to_owned);
        Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
    })
    .exporter(spans.clone())
    .install_global(false)
    .build()
    .unwrap();
    assert_eq!(seen_arg.lock().unwrap().as_deref(), Some("x=1"));
    let cx = engine.start_server_span("GET /", vec![], &HeaderMap::new());
    assert!(!cx.span().span_context().is_sampled());
    assert!(!cx.span().is_recording(), "error keeping off: dropped");
    cx.span().end();
    engine.force_flush();
    assert!(spans.is_empty());

    // A factory that refuses its argument stops the engine, naming it.
    let e = Engine::builder(env(&[("OTEL_TRACES_SAMPLER", "picky")]).build().unwrap())
        .register_sampler("picky", |_| {
            Err::<Sampler, _>("needs an argument".to_owned())
        })
        .install_global(false)
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "OTEL_TRACES_SAMPLER_ARG: sampler `picky` cannot start: needs an argument"
    );
}

#[test]
fn an_unknown_sampler_name_stops_the_engine_with_one_line_of_known_names() {
    let e = Engine::builder(env(&[("OTEL_TRACES_SAMPLER", "per_rout")]).build().unwrap())
        .register_sampler("per_route", |_| Ok(Sampler::AlwaysOn))
        .install_global(false)
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "OTEL_TRACES_SAMPLER: unknown sampler \"per_rout\": known samplers are always_on, \
         always_off, traceidratio, parentbased_always_on, parentbased_always_off, \
         parentbased_traceidratio, per_route"
    );
    assert!(!e.contains('\n'));
}

#[test]
fn a_sampler_given_to_the_builder_wins_and_error_keeping_applies_on_top() {
    let (spans, engine) = {
        let spans = InMemoryExporter::default();
        let engine = Engine::builder(
            env(&[("OTEL_TRACES_SAMPLER", "always_on")])
                .build()
                .unwrap(),
        )
        .sampler(Sampler::AlwaysOff)
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
        (spans, engine)
    };
    let ok = start_get(&engine, "/a", "/a", &HeaderMap::new(), None);
    assert!(!ok.context().span().span_context().is_sampled());
    ok.finish(StatusCode::OK, &HeaderMap::new());
    let failed = start_get(&engine, "/a", "/a", &HeaderMap::new(), None);
    let failed_trace = failed.trace_id().unwrap();
    failed.finish(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new());
    engine.force_flush();
    let exported = spans.spans();
    assert_eq!(exported.len(), 1);
    assert_eq!(
        exported[0].span_context.trace_id().to_string(),
        failed_trace
    );
    assert_eq!(kept_mark(&exported[0]).as_deref(), Some("error"));
}
