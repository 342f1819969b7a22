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
use crate::keep_errors::of_trace;

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
        .register_sampler("picky", |_| Err::<Sampler, _>("needs an argument".into()))
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

// ---------------------------------------------------------------------------
// Export exactly as the OTLP specification says: which failures are retried,
// the server's throttling honoured, partial success counted. The receivers
// are built on the official protobufs (opentelemetry-proto's tonic server
// and prost messages); they answer what each test scripts and note when
// each request arrived.

mod export {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use faultline::Engine;
    use faultline::config::{ExporterKind, TracingConfig, TracingConfigBuilder};
    use faultline::otlp::{OtlpConfig, OtlpProtocol};
    use opentelemetry::trace::{Span as _, Tracer as _};
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message as _;
    use tonic_types::{ErrorDetails, StatusExt as _};

    /// What the receiver answers to one request.
    #[derive(Clone)]
    pub(super) enum Answer {
        /// A gRPC status (HTTP: the status code), with a RetryInfo delay.
        Grpc(tonic::Code, Option<Duration>),
        /// An HTTP status with a `Retry-After` value (`date+N`: the
        /// HTTP-date N seconds after the answer).
        Http(u16, Option<&'static str>),
        /// Accepted, with a partial success.
        Partial(i64, &'static str),
    }

    /// A scripted receiver: answers in order, then accepts everything.
    #[derive(Clone, Default)]
    pub(super) struct Script {
        answers: Arc<Mutex<VecDeque<Answer>>>,
        /// When each request arrived, and how many spans it held.
        arrivals: Arc<Mutex<Vec<(Instant, usize)>>>,
        /// The resource attributes of the last request (values as text).
        resource: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Script {
        pub(super) fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
            let mut a = self.answers.lock().unwrap();
            a.clear();
            a.extend(answers);
            self.arrivals.lock().unwrap().clear();
        }
        pub(super) fn arrivals(&self) -> Vec<(Instant, usize)> {
            self.arrivals.lock().unwrap().clone()
        }
        /// Waits (generously) until `n` requests arrived.
        pub(super) fn wait_for(&self, n: usize, within: Duration) -> Vec<(Instant, usize)> {
            let deadline = Instant::now() + within;
            loop {
                let got = self.arrivals();
                if got.len() >= n || Instant::now() > deadline {
                    return got;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        pub(super) fn resource(&self) -> Vec<(String, String)> {
            self.resource.lock().unwrap().clone()
        }
        fn next(&self, request: &ExportTraceServiceRequest) -> Option<Answer> {
            use opentelemetry_proto::tonic::common::v1::any_value::Value;
            let spans = spans_in(request);
            if let Some(resource) = request
                .resource_spans
                .first()
                .and_then(|r| r.resource.as_ref())
            {
                *self.resource.lock().unwrap() = resource
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Value::StringValue(s)) => s.clone(),
                            Some(Value::IntValue(i)) => i.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
            }
            self.arrivals.lock().unwrap().push((Instant::now(), spans));
            self.answers.lock().unwrap().pop_front()
        }
    }

    fn spans_in(request: &ExportTraceServiceRequest) -> usize {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }

    fn partial(rejected: i64, message: &str) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message.to_owned(),
            }),
        }
    }

    #[tonic::async_trait]
    impl TraceService for Script {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            match self.next(request.get_ref()) {
                None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
                Some(Answer::Partial(n, m)) => Ok(tonic::Response::new(partial(n, m))),
                Some(Answer::Grpc(code, None)) => Err(tonic::Status::new(code, "scripted")),
                Some(Answer::Grpc(code, Some(delay))) => Err(tonic::Status::with_error_details(
                    code,
                    "scripted, with RetryInfo",
                    ErrorDetails::with_retry_info(Some(delay)),
                )),
                Some(Answer::Http(..)) => unreachable!("an HTTP answer to gRPC"),
            }
        }
    }

    /// A receiver running on its own thread and runtime, stopped when dropped.
    pub(super) struct Running {
        pub(super) port: u16,
        pub(super) script: Script,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Serves `script` with `serve` on a listener of 127.0.0.1, on a thread
    /// and runtime of its own, until the `Running` is dropped.
    fn run<F>(
        script: Script,
        serve: impl FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> F
        + Send
        + 'static,
    ) -> Running
    where
        F: std::future::Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(listener, stopped).await;
            });
        });
        Running {
            port,
            script,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(super) fn grpc_receiver() -> Running {
        let script = Script::default();
        let service = TraceServiceServer::new(script.clone());
        run(script, |listener, stopped| async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        })
    }

    pub(super) fn http_receiver() -> Running {
        use axum::body::Bytes;
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::IntoResponse;

        let script = Script::default();
        let app = {
            let script = script.clone();
            axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: Bytes| {
                    let script = script.clone();
                    async move {
                        let request = ExportTraceServiceRequest::decode(body).unwrap();
                        let proto = [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/x-protobuf"),
                        )];
                        match script.next(&request) {
                            None => (proto, ExportTraceServiceResponse::default().encode_to_vec())
                                .into_response(),
                            Some(Answer::Partial(n, m)) => {
                                (proto, partial(n, m).encode_to_vec()).into_response()
                            }
                            Some(Answer::Http(status, retry_after)) => {
                                let mut response =
                                    StatusCode::from_u16(status).unwrap().into_response();
                                if let Some(v) = retry_after {
                                    let v = match v.strip_prefix("date+") {
                                        Some(secs) => httpdate::fmt_http_date(
                                            std::time::SystemTime::now()
                                                + Duration::from_secs(secs.parse().unwrap()),
                                        ),
                                        None => v.to_owned(),
                                    };
                                    response.headers_mut().insert(
                                        header::RETRY_AFTER,
                                        HeaderValue::from_str(&v).unwrap(),
                                    );
                                }
                                response
                            }
                            Some(Answer::Grpc(..)) => unreachable!("a gRPC answer to HTTP"),
                        }
                    }
                }),
            )
        };
        run(script, |listener, stopped| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        })
    }

    /// The engine's settings and the OTLP plugin's.
    fn config(
        protocol: OtlpProtocol,
        port: u16,
        max_backoff: Duration,
    ) -> (TracingConfigBuilder, OtlpConfig) {
        let endpoint = match protocol {
            OtlpProtocol::Grpc => format!("http://127.0.0.1:{port}"),
            _ => format!("http://127.0.0.1:{port}/v1/traces"),
        };
        let engine = TracingConfig::builder()
            .service_name("day-two")
            .exporters([ExporterKind::OTLP])
            .export_timeout(Duration::from_secs(5))
            .max_export_retries(3)
            .backoff(Duration::from_millis(10), max_backoff)
            .batch(2048, 512, Duration::from_millis(20));
        let otlp = OtlpConfig::new()
            .protocol(protocol)
            .traces_endpoint(&endpoint);
        (engine, otlp)
    }

    fn engine((config, otlp): (TracingConfigBuilder, OtlpConfig)) -> Engine {
        otlp.register(Engine::builder(config.build().unwrap()))
            .install_global(false)
            .build()
            .unwrap()
    }

    fn one_span(engine: &Engine) {
        engine.tracer().start("work").end();
        engine.force_flush();
    }

    /// The OTLP specification's retryable codes (RESOURCE_EXHAUSTED only
    /// with a RetryInfo, below).
    fn retryable(code: tonic::Code) -> bool {
        use tonic::Code::*;
        matches!(
            code,
            Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss
        )
    }

    /// The receiver answers `answer` once, then accepts: one span is
    /// exported and must be retried once (and delivered) or never (and
    /// dropped), as `retried` says.
    fn answered_once(receiver: &Running, protocol: OtlpProtocol, answer: Answer, retried: bool) {
        let case = match &answer {
            Answer::Grpc(code, info) => format!("{code:?} (RetryInfo {info:?})"),
            Answer::Http(status, _) => format!("HTTP {status}"),
            Answer::Partial(..) => "partial success".to_owned(),
        };
        receiver.script.answer([answer]);
        let engine = engine(config(protocol, receiver.port, Duration::from_secs(2)));
        one_span(&engine);
        let arrivals = receiver
            .script
            .wait_for(1 + usize::from(retried), Duration::from_secs(10));
        let report = engine.shutdown();
        let otlp = &report.stats.exporters[0];
        assert_eq!(arrivals.len(), 1 + usize::from(retried), "{case}: attempts");
        let (delivered, dropped) = if retried { (1, 0) } else { (0, 1) };
        assert_eq!(
            (otlp.delivered, otlp.dropped),
            (delivered, dropped),
            "{case}"
        );
        assert_eq!(otlp.retries, u64::from(retried), "{case}");
        assert_eq!(otlp.failed_attempts, 1, "{case}");
    }

    #[test]
    fn grpc_failures_are_retried_exactly_as_the_specification_lists() {
        let receiver = grpc_receiver();
        // Every code but OK.
        for code in (1..=16).map(tonic::Code::from_i32) {
            answered_once(
                &receiver,
                OtlpProtocol::Grpc,
                Answer::Grpc(code, None),
                retryable(code),
            );
        }
        // RESOURCE_EXHAUSTED is retried only with a RetryInfo.
        answered_once(
            &receiver,
            OtlpProtocol::Grpc,
            Answer::Grpc(
                tonic::Code::ResourceExhausted,
                Some(Duration::from_millis(50)),
            ),
            true,
        );
    }

    #[test]
    fn http_failures_are_retried_exactly_as_the_specification_lists() {
        let receiver = http_receiver();
        for status in [
            400, 401, 403, 404, 405, 408, 409, 413, 415, 429, 500, 501, 502, 503, 504, 505,
        ] {
            let retried = matches!(status, 429 | 502 | 503 | 504);
            answered_once(
                &receiver,
                OtlpProtocol::HttpProtobuf,
                Answer::Http(status, None),
                retried,
            );
        }
    }

    /// The gap between two arrivals.
    fn gap(arrivals: &[(Instant, usize)], i: usize) -> Duration {
        arrivals[i + 1].0.duration_since(arrivals[i].0)
    }

    #[test]
    fn the_servers_delay_is_honoured_within_the_longest_back_off() {
        // gRPC RetryInfo of 1 s, HTTP Retry-After of 1 s and as a date: the
        // next attempt comes no earlier (the answer leaves after the
        // request arrived, so the gap between arrivals is at least the
        // delay), and well before what would be a stuck exporter.
        let grpc = grpc_receiver();
        grpc.script.answer([Answer::Grpc(
            tonic::Code::Unavailable,
            Some(Duration::from_secs(1)),
        )]);
        let http = http_receiver();
        http.script.answer([
            Answer::Http(429, Some("1")),
            Answer::Http(503, Some("date+3")),
        ]);
        let engines = [
            engine(config(
                OtlpProtocol::Grpc,
                grpc.port,
                Duration::from_secs(5),
            )),
            engine(config(
                OtlpProtocol::HttpProtobuf,
                http.port,
                Duration::from_secs(5),
            )),
        ];
        for engine in &engines {
            one_span(engine);
        }
        let g = grpc.script.wait_for(2, Duration::from_secs(20));
        let h = http.script.wait_for(3, Duration::from_secs(20));
        assert_eq!(g.len(), 2);
        assert!(gap(&g, 0) >= Duration::from_secs(1), "{:?}", gap(&g, 0));
        assert!(gap(&g, 0) < Duration::from_secs(5), "{:?}", gap(&g, 0));
        assert_eq!(h.len(), 3);
        assert!(gap(&h, 0) >= Duration::from_secs(1), "{:?}", gap(&h, 0));
        // An HTTP-date has whole seconds: at least 2 s of the 3 remain
        // (the date is written as the answer leaves).
        assert!(gap(&h, 1) >= Duration::from_secs(2), "{:?}", gap(&h, 1));
        assert!(gap(&h, 1) < Duration::from_secs(5), "{:?}", gap(&h, 1));
        for engine in engines {
            let report = engine.shutdown();
            assert!(report.is_clean(), "{report:?}");
        }
    }

    #[test]
    fn a_longer_ask_than_the_longest_back_off_moves_the_batch_to_the_buffer() {
        let grpc = grpc_receiver();
        grpc.script.answer([Answer::Grpc(
            tonic::Code::ResourceExhausted,
            Some(Duration::from_secs(600)),
        )]);
        let engine = engine(config(
            OtlpProtocol::Grpc,
            grpc.port,
            Duration::from_millis(500),
        ));
        // The flush does not wait for the 600 s: the batch is buffered.
        one_span(&engine);
        let stats = engine.export_stats();
        assert_eq!(stats.spans_buffered, 1, "{stats:?}");
        // Probed again after the longest back-off, not after 600 s.
        let arrivals = grpc.script.wait_for(2, Duration::from_secs(30));
        assert_eq!(arrivals.len(), 2);
        assert!(gap(&arrivals, 0) >= Duration::from_millis(500));
        let report = engine.shutdown();
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn partial_success_is_counted_on_both_transports() {
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let receiver = match protocol {
                OtlpProtocol::Grpc => grpc_receiver(),
                _ => http_receiver(),
            };
            receiver.script.answer([
                Answer::Partial(2, "2 spans too old, first from alice@example.com"),
                Answer::Partial(1, "1 span too old"),
            ]);
            let engine = engine(config(protocol, receiver.port, Duration::from_secs(1)));
            for _ in 0..2 {
                for _ in 0..3 {
                    engine.tracer().start("work").end();
                }
                engine.force_flush();
            }
            let stats = engine.export_stats();
            assert_eq!(receiver.script.arrivals().len(), 2, "{protocol:?}");
            assert_eq!(stats.spans_rejected, 3, "{protocol:?}: {stats:?}");
            assert_eq!(stats.exporters[0].rejected, 3);
            assert_eq!(stats.exporters[0].delivered, 6);
            engine.shutdown();
        }
    }

    #[test]
    fn an_unscripted_receiver_accepts_and_counts_the_spans() {
        // The receivers accept when nothing is scripted (the checks above
        // rely on it).
        let grpc = grpc_receiver();
        let engine = engine(config(
            OtlpProtocol::Grpc,
            grpc.port,
            Duration::from_secs(1),
        ));
        let mut span = engine.tracer().start("a");
        span.end();
        engine.force_flush();
        assert_eq!(grpc.script.arrivals().len(), 1);
        assert_eq!(grpc.script.arrivals()[0].1, 1);
        engine.shutdown();
    }

    #[test]
    fn an_exported_span_carries_the_detected_resource() {
        let receiver = grpc_receiver();
        // OTEL_RESOURCE_ATTRIBUTES overrides what is detected.
        let (config, otlp) = config(OtlpProtocol::Grpc, receiver.port, Duration::from_secs(1));
        let config = config
            .with_env_from(|name| {
                (name == "OTEL_RESOURCE_ATTRIBUTES")
                    .then(|| "service.instance.id=pod-7,team=checkout".to_owned())
            })
            .unwrap();
        let engine = engine((config, otlp));
        one_span(&engine);
        let got = receiver.script.resource();
        let get = |key: &str| {
            got.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{key} missing: {got:?}"))
        };
        assert!(!get("host.name").is_empty());
        assert_eq!(get("process.pid"), std::process::id().to_string());
        assert_eq!(get("process.runtime.name"), "rustc");
        assert!(get("process.runtime.version").starts_with("1."));
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            get("process.executable.name"),
            exe.file_name().unwrap().to_string_lossy()
        );
        assert_eq!(get("os.type"), std::env::consts::OS);
        assert_eq!(get("service.instance.id"), "pod-7");
        assert_eq!(get("team"), "checkout");
        assert_eq!(get("service.name"), "day-two");
        assert_eq!(get("telemetry.sdk.name"), "opentelemetry");
        assert_eq!(get("telemetry.sdk.language"), "rust");
        assert!(!get("telemetry.sdk.version").is_empty());
        assert_eq!(get("telemetry.distro.name"), "faultline");
        assert_eq!(get("telemetry.distro.version"), env!("CARGO_PKG_VERSION"));
        // container.id when the cgroup files name one (in a container).
        let in_container = ["/proc/self/cgroup", "/proc/self/mountinfo"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .any(|text| text.contains("/docker/") || text.contains("/containers/"));
        if in_container {
            assert_eq!(get("container.id").len(), 64, "{got:?}");
        }
        assert!(!got.iter().any(|(k, _)| k == "process.command_args"));
        // The engine's resource is the one exported (logs and metrics read
        // it from there).
        assert_eq!(
            engine
                .resource()
                .get(&opentelemetry::Key::from_static_str("service.instance.id"))
                .map(|v| v.as_str().into_owned())
                .as_deref(),
            Some("pod-7")
        );
        engine.shutdown();

        // Every detector off: none of them.
        let (config, otlp) =
            self::config(OtlpProtocol::Grpc, receiver.port, Duration::from_secs(1));
        let config = config
            .with_env_from(|name| {
                (name == "FAULTLINE_RESOURCE_DETECTORS").then(|| "none".to_owned())
            })
            .unwrap();
        let engine = self::engine((config, otlp));
        one_span(&engine);
        let got = receiver.script.resource();
        for key in ["host.name", "process.pid", "os.type", "service.instance.id"] {
            assert!(!got.iter().any(|(k, _)| k == key), "{key}: {got:?}");
        }
        assert!(got.iter().any(|(k, _)| k == "telemetry.distro.name"));
        engine.shutdown();
    }
}

// ---------------------------------------------------------------------------
// Metrics on a private port: FAULTLINE_METRICS_ADDR.

mod private_metrics {
    use axum::Router;
    use axum::routing::get;
    use faultline::error::{AppError, ErrorCode};
    use serde_json::Value as Json;

    use crate::prometheus::{PrometheusServer, finds_by_trace_id};

    const USER_NOT_FOUND: ErrorCode =
        ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);

    async fn user() -> Result<String, faultline::axum::Error> {
        Err(AppError::new(USER_NOT_FOUND, "no user 0").into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_real_prometheus_scrapes_the_private_port_and_the_apps_port_has_no_metrics() {
        let faultline = faultline::setup::Setup::new("private-metrics")
            .env_from(|name| match name {
                "OTEL_TRACES_EXPORTER" => Some("none".to_owned()),
                "FAULTLINE_METRICS_ADDR" => Some("127.0.0.1:0".to_owned()),
                _ => None,
            })
            .install_global(false)
            .metrics_recorder(false)
            .sentry(false)
            .panic_hook(false)
            .init()
            .unwrap();
        assert_eq!(faultline.engine().metrics_path(), None);
        let metrics_addr = faultline.metrics_listener_addr().expect("listening");
        let app = Router::new()
            .route("/users/{id}", get(user))
            .layer(faultline.axum_layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let client = reqwest::Client::new();
        let response = client
            .get(format!("http://{app_addr}/users/0"))
            .send()
            .await
            .unwrap();
        let problem: Json = response.json().await.unwrap();
        let trace_id = problem["trace_id"].as_str().unwrap().to_owned();

        // The application's port does not answer /metrics.
        let app_metrics = client
            .get(format!("http://{app_addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(app_metrics.status(), 404);
        assert!(!app_metrics.text().await.unwrap().contains("faultline_"));

        // The private port does, in both formats, and nothing else there.
        let text = client
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), 200);
        assert!(
            text.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let body = text.text().await.unwrap();
        assert!(body.contains("faultline_errors_total"), "{body}");
        assert!(body.contains("target_info{"), "{body}");
        let other = client
            .get(format!("http://{metrics_addr}/users/0"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404);

        // A real Prometheus scrapes it (OpenMetrics, with exemplars) and
        // finds the error by its trace id, as a label and an exemplar.
        let mut prometheus = PrometheusServer::start(metrics_addr);
        finds_by_trace_id(&client, &mut prometheus, &trace_id).await;
        let pid = std::process::id().to_string();
        prometheus
            .poll(
                &client,
                "/api/v1/query",
                &[(
                    "query",
                    "target_info{service_name=\"private-metrics\"}".to_owned(),
                )],
                "target_info with the service's resource",
                |data| {
                    data["result"].as_array().is_some_and(|r| {
                        r.iter()
                            .any(|s| s["metric"]["process_pid"].as_str() == Some(pid.as_str()))
                    })
                },
            )
            .await;
        drop(prometheus);

        // Shut down with the set-up: the private port closes.
        tokio::task::spawn_blocking(move || faultline.shutdown())
            .await
            .unwrap();
        assert!(
            std::net::TcpStream::connect(metrics_addr).is_err(),
            "the listener stopped"
        );
    }

    #[test]
    fn a_busy_address_stops_the_setup_with_one_line() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        let e = faultline::setup::Setup::new("busy")
            .env_from(move |name| match name {
                "OTEL_TRACES_EXPORTER" => Some("none".to_owned()),
                "FAULTLINE_METRICS_ADDR" => Some(addr.clone()),
                _ => None,
            })
            .install_global(false)
            .metrics_recorder(false)
            .sentry(false)
            .panic_hook(false)
            .init()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("FAULTLINE_METRICS_ADDR: cannot listen on 127.0.0.1:"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    /// The reference service on each framework, set up by
    /// `faultline::setup` from its environment: the adapters leave
    /// `/metrics` to the application (a 404), the private address serves it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reference_service_serves_metrics_only_on_the_private_address() {
        let client = reqwest::Client::new();
        for framework in ["axum", "poem", "warp"] {
            let port = crate::common::free_port();
            let addr = format!("127.0.0.1:{port}");
            let svc = crate::service::Service::start(
                framework,
                &[("FAULTLINE_METRICS_ADDR", addr.as_str())],
            );
            let hello = client.get(svc.url("/hello")).send().await.unwrap();
            assert_eq!(hello.status(), 200, "{framework}");
            let on_app = client.get(svc.url("/metrics")).send().await.unwrap();
            assert_eq!(on_app.status(), 404, "{framework}");
            let private = client
                .get(format!("http://{addr}/metrics"))
                .header("accept", "application/openmetrics-text; version=1.0.0")
                .send()
                .await
                .unwrap();
            assert_eq!(private.status(), 200, "{framework}");
            assert!(
                private.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/openmetrics-text"),
                "{framework}"
            );
            let body = private.text().await.unwrap();
            assert!(
                body.contains("http_server_request_duration_seconds_count{")
                    && body.contains("http_route=\"/hello\""),
                "{framework}: {body}"
            );
            assert!(body.ends_with("# EOF\n"), "{framework}");
        }
    }
}
