//! Logs and traces joined: `tracing` events as span events, as JSON log
//! lines with the trace and span ids, and as OTLP log records decoded by
//! receivers built on the official protobufs (`opentelemetry-proto`, gRPC
//! `LogsService` and HTTP `/v1/logs`); masked in all three; on the
//! reference service of every framework; composed with an application's
//! own subscriber; nothing lost at shutdown; a dead collector never slows
//! a request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use faultline::axum::FaultlineLayer;
use faultline::config::LogFormat;
use faultline::export::{InMemoryExporter, InMemoryLogExporter, LogRecord, LogSeverity};
use faultline::otlp::{OtlpConfig, OtlpProtocol};
use opentelemetry::Value;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::logs::v1::LogRecord as ProtoRecord;
use prost::Message as _;
use serde_json::Value as Json;
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::common::{SharedBuf, quiet_config};
use crate::service::Service;

/// An OTLP logs receiver on the official protobufs, gRPC or HTTP, on
/// 127.0.0.1, in a runtime of its own; stopped when dropped.
struct LogsReceiver {
    port: u16,
    requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The requests received, and the partial success each is answered with.
#[derive(Clone)]
struct Collect(
    Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    Option<ExportLogsPartialSuccess>,
);

impl Collect {
    fn answer(&self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: self.1.clone(),
        }
    }
}

#[tonic::async_trait]
impl LogsService for Collect {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(self.answer()))
    }
}

impl LogsReceiver {
    fn start(protocol: OtlpProtocol) -> LogsReceiver {
        Self::answering(protocol, None)
    }

    /// A receiver that accepts every request with `partial` as its
    /// partial success.
    fn answering(
        protocol: OtlpProtocol,
        partial: Option<ExportLogsPartialSuccess>,
    ) -> LogsReceiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let collect = Collect(requests.clone(), partial);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, port) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap().port()).unwrap();
                let stopped = async {
                    let _ = stopped.await;
                };
                match protocol {
                    OtlpProtocol::Grpc => {
                        let incoming = tonic::transport::server::TcpIncoming::from(listener);
                        tonic::transport::Server::builder()
                            .add_service(LogsServiceServer::new(collect))
                            .serve_with_incoming_shutdown(incoming, stopped)
                            .await
                            .unwrap();
                    }
                    _ => {
                        let app = Router::new().route(
                            "/v1/logs",
                            axum::routing::post(move |body: bytes::Bytes| async move {
                                match ExportLogsServiceRequest::decode(body) {
                                    Ok(request) => {
                                        collect.0.lock().unwrap().push(request);
                                        (
                                            http::StatusCode::OK,
                                            [("content-type", "application/x-protobuf")],
                                            collect.answer().encode_to_vec(),
                                        )
                                    }
                                    Err(_) => (
                                        http::StatusCode::BAD_REQUEST,
                                        [("content-type", "text/plain")],
                                        Vec::new(),
                                    ),
                                }
                            }),
                        );
                        axum::serve(listener, app)
                            .with_graceful_shutdown(stopped)
                            .await
                            .unwrap();
                    }
                }
            });
        });
        LogsReceiver {
            port: port.recv_timeout(Duration::from_secs(10)).unwrap(),
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every record received, in order.
    fn records(&self) -> Vec<ProtoRecord> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_logs.iter())
            .flat_map(|r| r.scope_logs.iter())
            .flat_map(|s| s.log_records.iter().cloned())
            .collect()
    }
}

impl Drop for LogsReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn record_attr<'a>(record: &'a ProtoRecord, key: &str) -> Option<&'a Any> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn event<'a>(span: &'a Json, name: &str) -> &'a Json {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no event {name:?} on {span}"))
}

/// The reference service on `framework`, log records over `protocol` to a
/// receiver: the event of `#[instrument] load_user`, the handler's own
/// `user not found` and `payment declined` are events of their spans, JSON
/// lines with those spans' ids, and log records with the same ids; masked
/// everywhere; all delivered by the shutdown.
fn service_logs(framework: &str, protocol: OtlpProtocol) {
    let receiver = LogsReceiver::start(protocol);
    let (endpoint, proto) = match protocol {
        OtlpProtocol::Grpc => (format!("http://127.0.0.1:{}", receiver.port), "grpc"),
        _ => (
            format!("http://127.0.0.1:{}/v1/logs", receiver.port),
            "http/protobuf",
        ),
    };
    let svc = Service::start(
        framework,
        &[
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", proto),
            ("FAULTLINE_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let (missing_trace, declined_trace) = rt.block_on(async {
        let found = client.get(svc.url("/users/7")).send().await.unwrap();
        assert_eq!(found.status(), 200);
        let missing = client.get(svc.url("/users/1234")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let missing: Json = missing.json().await.unwrap();
        let declined = client
            .post(svc.url("/checkout"))
            .json(&serde_json::json!({
                "email": "alice@example.com",
                "phone": "+1 415 555 0100",
                "card": "4111 1111 1111 1111",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(declined.status(), 402);
        let declined: Json = declined.json().await.unwrap();
        (
            missing["trace_id"].as_str().unwrap().to_owned(),
            declined["trace_id"].as_str().unwrap().to_owned(),
        )
    });

    // Spans: the server spans and load_user, with their events.
    let missing_spans = svc.trace(&missing_trace, 1);
    let missing_server = &missing_spans[0];
    let e = event(missing_server, "user not found");
    assert_eq!(e["attributes"]["user.id"], 1234, "{e}");
    assert_eq!(e["attributes"]["level"], "WARN", "{e}");
    let declined_spans = svc.trace(&declined_trace, 2);
    let declined_server = declined_spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .unwrap();
    let e = event(declined_server, "payment declined");
    assert_eq!(e["attributes"]["email"], "a***@example.com", "{e}");
    assert_eq!(e["attributes"]["card"], "****-****-****-1111", "{e}");
    let load_user = svc
        .spans()
        .into_iter()
        .find(|s| s["name"] == "load_user")
        .expect("the load_user span");
    let found_trace = load_user["trace_id"].as_str().unwrap().to_owned();
    let found_spans = svc.trace(&found_trace, 2);
    let found_server = found_spans.iter().find(|s| s["kind"] == "SERVER").unwrap();
    assert_eq!(load_user["parent_span_id"], found_server["span_id"]);
    assert_eq!(
        event(&load_user, "loading user")["attributes"]["user.id"],
        7,
        "{load_user}"
    );

    let stopped = svc.terminate();
    assert!(stopped.clean(), "{:?}", stopped.lines);

    // JSON lines: the ids of the span current where each was written.
    let lines: Vec<Json> = stopped
        .stderr()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no line {message:?} in {:?}", stopped.lines))
            .clone()
    };
    let l = line("loading user");
    assert_eq!(
        (&l["trace_id"], &l["span_id"], &l["level"], &l["user.id"]),
        (
            &load_user["trace_id"],
            &load_user["span_id"],
            &"INFO".into(),
            &7.into()
        )
    );
    let l = line("user not found");
    assert_eq!(l["trace_id"], missing_trace.as_str());
    assert_eq!(l["span_id"], missing_server["span_id"]);
    assert_eq!(l["level"], "WARN");
    let l = line("payment declined");
    assert_eq!(l["trace_id"], declined_trace.as_str());
    assert_eq!(l["span_id"], declined_server["span_id"]);
    assert_eq!(l["email"], "a***@example.com");
    assert_eq!(l["card"], "****-****-****-1111");
    let all = stopped.lines.join("\n");
    for raw in ["alice@example.com", "4111 1111 1111 1111", "415 555 0100"] {
        assert!(!all.contains(raw), "{raw} printed:\n{all}");
    }

    // Log records, decoded by the official protobufs: every one delivered
    // by the shutdown, with the spans' ids.
    let records = receiver.records();
    let record = |body: &str| {
        records
            .iter()
            .find(|r| text(&r.body) == body)
            .unwrap_or_else(|| panic!("no record {body:?} in {records:#?}"))
            .clone()
    };
    let r = record("loading user");
    assert_eq!(r.severity_number, 9);
    assert_eq!(r.severity_text, "INFO");
    assert_eq!(hex(&r.trace_id), load_user["trace_id"].as_str().unwrap());
    assert_eq!(hex(&r.span_id), load_user["span_id"].as_str().unwrap());
    assert_eq!(record_attr(&r, "user.id"), Some(&Any::IntValue(7)));
    assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano > 0);
    let r = record("user not found");
    assert_eq!(r.severity_number, 13);
    assert_eq!(hex(&r.trace_id), missing_trace);
    assert_eq!(hex(&r.span_id), missing_server["span_id"].as_str().unwrap());
    assert_eq!(record_attr(&r, "user.id"), Some(&Any::IntValue(1234)));
    let r = record("payment declined");
    assert_eq!(hex(&r.trace_id), declined_trace);
    assert_eq!(
        record_attr(&r, "email"),
        Some(&Any::StringValue("a***@example.com".into()))
    );
    assert_eq!(
        record_attr(&r, "card"),
        Some(&Any::StringValue("****-****-****-1111".into()))
    );
    let wire = format!("{:?}", receiver.requests.lock().unwrap());
    assert!(!wire.contains("alice@example.com"), "{wire}");
    // The resource is the traces'.
    let requests = receiver.requests.lock().unwrap();
    let resource = requests[0].resource_logs[0].resource.as_ref().unwrap();
    let service_name = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .map(|kv| text(&kv.value));
    assert_eq!(service_name.as_deref(), Some("faultline-service"));
}

#[test]
fn axum_service_logs_join_traces_over_grpc() {
    service_logs("axum", OtlpProtocol::Grpc);
}

#[test]
fn axum_service_logs_join_traces_over_http() {
    service_logs("axum", OtlpProtocol::HttpProtobuf);
}

#[test]
fn poem_service_logs_join_traces_over_http() {
    service_logs("poem", OtlpProtocol::HttpProtobuf);
}

#[test]
fn warp_service_logs_join_traces_over_grpc() {
    service_logs("warp", OtlpProtocol::Grpc);
}

/// `GET /panic` on every framework: the adapter's line for the panic
/// (masked) is written in the request's context, so the JSON line has the
/// server span's trace and span ids at the top level and is an event of
/// that span, like the handler's own lines.
#[test]
fn the_panic_line_carries_the_server_spans_ids_on_every_framework() {
    for framework in crate::service::FRAMEWORKS {
        let svc = Service::start(
            framework,
            &[("FAULTLINE_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let body: Json = rt.block_on(async {
            let response = reqwest::get(svc.url("/panic")).await.unwrap();
            assert_eq!(response.status(), 500, "{framework}");
            response.json().await.unwrap()
        });
        let trace_id = body["trace_id"].as_str().unwrap().to_owned();
        let spans = svc.trace(&trace_id, 1);
        let server = spans
            .iter()
            .find(|s| s["kind"] == "SERVER")
            .unwrap_or_else(|| panic!("{framework}: no server span: {spans:#?}"))
            .clone();
        let stopped = svc.terminate();
        assert!(stopped.clean(), "{framework}: {:?}", stopped.lines);
        let line = stopped
            .stderr()
            .into_iter()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("request handler panicked"))
            })
            .unwrap_or_else(|| panic!("{framework}: no panic line: {:#?}", stopped.lines));
        assert_eq!(
            line["message"],
            "request handler panicked: payment worker crashed for a***@example.com",
            "{framework}"
        );
        assert_eq!(line["trace_id"], trace_id.as_str(), "{framework}: {line}");
        assert_eq!(line["span_id"], server["span_id"], "{framework}: {line}");
        event(&server, line["message"].as_str().unwrap());
    }
}

/// An application with a subscriber of its own adds faultline's layers to
/// its registry: its own layer and faultline's both see every event; the
/// event joins the request's span; faultline's line is masked (the message,
/// a `password` field by its name) and carries the ids.
#[test]
fn faultline_layers_compose_with_an_applications_own_subscriber() {
    let spans = InMemoryExporter::default();
    let records = InMemoryLogExporter::default();
    let engine = faultline::Engine::builder(quiet_config().build().unwrap())
        .exporter(spans.clone())
        .log_exporter(records.clone())
        .install_global(false)
        .build()
        .unwrap();
    let faultline_lines = SharedBuf::default();
    let own_lines = SharedBuf::default();
    let (ours, theirs) = (faultline_lines.clone(), own_lines.clone());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(faultline::tracing::layers_with(
            &engine,
            faultline::tracing::LogLayer::new(&engine)
                .format(LogFormat::Json)
                .writer(move || ours.clone()),
        ))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || theirs.clone()),
        );
    let _guard = tracing::subscriber::set_default(subscriber);

    async fn login() -> &'static str {
        tracing::info!(
            password = "hunter2",
            attempts = 3u64,
            admin = false,
            "login by bob@example.com"
        );
        tracing::debug!("below the filter");
        "ok"
    }
    let app = Router::new()
        .route("/login", get(login))
        .layer(FaultlineLayer::new(engine.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = rt.block_on(
        app.oneshot(
            http::Request::get("/login")
                .body(axum::body::Body::empty())
                .unwrap(),
        ),
    );
    assert_eq!(response.unwrap().status(), 200);
    engine.force_flush();

    let server = spans
        .wait_for(1, Duration::from_secs(5))
        .into_iter()
        .find(|s| s.name == "GET /login")
        .expect("server span");
    let e = server
        .events
        .iter()
        .find(|e| e.name.starts_with("login by"))
        .expect("the event on the server span");
    assert_eq!(e.name, "login by b***@example.com");
    let attr = |key: &str| {
        e.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attr("password"), Some(Value::from("[REDACTED]")));
    assert_eq!(attr("attempts"), Some(Value::I64(3)));
    assert_eq!(attr("admin"), Some(Value::Bool(false)));
    assert_eq!(attr("level"), Some(Value::from("INFO")));

    let text = faultline_lines.text();
    let lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert_eq!(l["message"], "login by b***@example.com");
    assert_eq!(l["password"], "[REDACTED]");
    assert_eq!(l["attempts"], 3);
    assert_eq!(
        l["trace_id"].as_str().unwrap(),
        server.span_context.trace_id().to_string()
    );
    assert_eq!(
        l["span_id"].as_str().unwrap(),
        server.span_context.span_id().to_string()
    );
    // The application's own layer saw the event too (raw: its own choice).
    assert!(
        own_lines.text().contains("login by"),
        "{}",
        own_lines.text()
    );
    assert!(!text.contains("hunter2") && !text.contains("bob@example.com"));

    let got = records.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let r: &LogRecord = &got[0];
    assert_eq!(r.severity, LogSeverity::Info);
    assert_eq!(r.body, "login by b***@example.com");
    assert_eq!(r.trace_id, server.span_context.trace_id());
    assert_eq!(r.span_id, server.span_context.span_id());
    engine.shutdown();
}

/// Not a test of its own: the body of `setup_installs_the_subscriber`, in a
/// child process (a global subscriber cannot be removed).
#[test]
fn setup_subscriber_child() {
    if std::env::var_os("FAULTLINE_TEST_LOGS_CHILD").is_none() {
        return;
    }
    let faultline = faultline::setup::Setup::new("logs-child")
        .env_from(|name| match name {
            "OTEL_TRACES_EXPORTER" | "OTEL_LOGS_EXPORTER" => Some("none".into()),
            "FAULTLINE_LOG_FORMAT" => Some("json".into()),
            _ => None,
        })
        .metrics_recorder(false)
        .panic_hook(false)
        .init()
        .unwrap();
    assert!(faultline.subscriber_installed());
    let engine = faultline.engine().clone();
    let cx = engine.start_server_span("GET /child", vec![], &http::HeaderMap::new());
    {
        let _attached = cx.clone().attach();
        tracing::info!(token = "s3cr3t", "inside for carol@example.com");
        tracing::debug!("debug is below the default filter");
        log::warn!(target: "legacy_crate", "from log for dave@example.com");
        log::debug!(target: "legacy_crate", "log debug is below the default filter");
    }
    tracing::warn!("outside");
    use opentelemetry::trace::TraceContextExt as _;
    let sc = cx.span().span_context().clone();
    println!("ids {} {}", sc.trace_id(), sc.span_id());
}

#[test]
fn setup_installs_the_subscriber() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["logs::setup_subscriber_child", "--exact", "--nocapture"])
        .env("FAULTLINE_TEST_LOGS_CHILD", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let ids = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids "))
        .expect("ids");
    let (trace_id, span_id) = ids.split_once(' ').unwrap();
    let lines: Vec<Json> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let inside = lines
        .iter()
        .find(|l| l["message"] == "inside for c***@example.com")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(inside["trace_id"], trace_id);
    assert_eq!(inside["span_id"], span_id);
    assert_eq!(inside["token"], "[REDACTED]");
    let outside = lines.iter().find(|l| l["message"] == "outside").unwrap();
    assert!(outside.get("trace_id").is_none(), "{outside}");
    assert!(!stdout.contains("debug is below"), "{stdout}");
    assert!(
        !stdout.contains("s3cr3t") && !stdout.contains("carol@"),
        "{stdout}"
    );
    // A `log` record: its own target and level, the ids, masked, and no
    // `log.*` bookkeeping fields.
    let from_log = lines
        .iter()
        .find(|l| l["message"] == "from log for d***@example.com")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(from_log["target"], "legacy_crate", "{from_log}");
    assert_eq!(from_log["level"], "WARN", "{from_log}");
    assert_eq!(from_log["trace_id"], trace_id);
    assert_eq!(from_log["span_id"], span_id);
    let keys: Vec<&String> = from_log.as_object().unwrap().keys().collect();
    assert!(!keys.iter().any(|k| k.starts_with("log.")), "{from_log}");
    assert!(!stdout.contains("dave@"), "{stdout}");
}

/// A collector that accepts connections and never answers: every request
/// still completes (bounded by a generous timeout, not timed), each one's
/// record is queued or counted as dropped, and shutdown keeps its deadline.
#[test]
fn a_dead_log_collector_never_holds_a_request_up() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for stream in silent.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    let config = quiet_config()
        .logs_exporters(["otlp"])
        .batch(64, 16, Duration::from_millis(10))
        .export_timeout(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let spans = InMemoryExporter::default();
    let otlp = OtlpConfig::new().logs_endpoint(format!("http://127.0.0.1:{port}"));
    let engine = otlp
        .register(faultline::Engine::builder(config))
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
        &engine,
        faultline::tracing::LogLayer::new(&engine).without_lines(),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/work",
            get(|| async {
                tracing::info!(order = 1i64, "working");
                "done"
            }),
        )
        .layer(FaultlineLayer::new(engine.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const REQUESTS: usize = 300;
    let completed = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), async {
            let mut ok = 0;
            for _ in 0..REQUESTS {
                let response = app
                    .clone()
                    .oneshot(
                        http::Request::get("/work")
                            .body(axum::body::Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                ok += usize::from(response.status() == 200);
            }
            ok
        })
        .await
    });
    assert_eq!(completed, Ok(REQUESTS));
    let stats = engine.log_export_stats();
    assert!(
        stats.records_queued + stats.records_dropped_by_queue >= REQUESTS as u64,
        "{stats:?}"
    );
    // Whether the full queue refused some depends on how fast the export
    // thread moved records on to the retry buffer: both bounded, checked
    // by the engine's own tests; here only that nothing waited.
    let report = engine.shutdown();
    let stats = engine.log_export_stats();
    assert_eq!(stats.exporters[0].delivered, 0, "{stats:?}");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.to_string().contains("log records")),
        "{report:?}"
    );
}

/// A collector that accepts a request but rejects some of its records (OTLP
/// partial success, `rejected_log_records`) has them counted on both
/// transports, in the engine's log export counters and on the Prometheus
/// page; the records it accepted count as delivered.
#[test]
fn a_collectors_partial_success_for_logs_is_counted_on_both_transports() {
    for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
        let receiver = LogsReceiver::answering(
            protocol,
            Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "2 records too old, one from alice@example.com".into(),
            }),
        );
        let path = if protocol == OtlpProtocol::Grpc {
            ""
        } else {
            "/v1/logs"
        };
        let config = quiet_config()
            .logs_exporters(["otlp"])
            .batch(4096, 5, Duration::from_secs(600))
            .build()
            .unwrap();
        let otlp = OtlpConfig::new()
            .protocol(protocol)
            .logs_endpoint(format!("http://127.0.0.1:{}{path}", receiver.port));
        let prometheus = faultline::prometheus::Prometheus::new(Default::default());
        let engine = otlp
            .register(faultline::Engine::builder(config))
            .exporter(InMemoryExporter::default())
            .correlator(prometheus.clone())
            .install_global(false)
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
            &engine,
            faultline::tracing::LogLayer::new(&engine).without_lines(),
        ));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..10i64 {
                tracing::info!(i, "record");
            }
        });
        let report = engine.shutdown();
        assert!(report.errors.is_empty(), "{protocol:?}: {report:?}");
        assert_eq!(receiver.records().len(), 10, "{protocol:?}");
        let requests = receiver.requests.lock().unwrap().len() as u64;
        assert!(requests >= 2, "{protocol:?}: {requests} requests");
        let stats = engine.log_export_stats();
        let otlp = &stats.exporters[0];
        assert_eq!(otlp.rejected, 2 * requests, "{protocol:?}: {stats:?}");
        assert_eq!(otlp.delivered, 10, "{protocol:?}: {stats:?}");
        let page = prometheus.render(None, &engine.export_stats()).body;
        let line = format!(
            "faultline_export_log_records_rejected_total{{exporter=\"otlp\"}} {}\n",
            2 * requests
        );
        assert!(page.contains(&line), "{protocol:?}: {page}");
    }
}

/// Records still queued when the engine shuts down (the batch timer far
/// away) are all delivered by the shutdown.
#[test]
fn records_queued_at_shutdown_are_delivered() {
    let records = InMemoryLogExporter::default();
    let config = quiet_config()
        .batch(4096, 512, Duration::from_secs(600))
        .build()
        .unwrap();
    let engine = faultline::Engine::builder(config)
        .log_exporter(records.clone())
        .install_global(false)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
        &engine,
        faultline::tracing::LogLayer::new(&engine).without_lines(),
    ));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..1000i64 {
            tracing::info!(i, "record");
        }
    });
    assert!(records.records().len() < 1000);
    let report = engine.shutdown();
    assert!(report.errors.is_empty(), "{report:?}");
    let got = records.records();
    assert_eq!(got.len(), 1000);
    let order: Vec<i64> = got
        .iter()
        .map(|r| match r.attributes[0].value {
            Value::I64(i) => i,
            _ => -1,
        })
        .collect();
    assert_eq!(order, (0..1000).collect::<Vec<_>>());
    assert!(records.resource().is_some());
}

/// Log exporters are registered by name: `OTEL_LOGS_EXPORTER` names one, a
/// plugin's or the application's own; an unknown name stops the build with
/// one line listing the registered names.
#[test]
fn log_exporters_are_chosen_by_name() {
    let env = |value: &'static str| {
        move |name: &str| (name == "OTEL_LOGS_EXPORTER").then(|| value.to_owned())
    };
    let config = quiet_config()
        .with_env_from(env("warehouse"))
        .unwrap()
        .build()
        .unwrap();
    let err = faultline::setup::engine_builder(config.clone())
        .install_global(false)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "OTEL_LOGS_EXPORTER: unknown log exporter `warehouse` (registered: console, none, otlp"
        ),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    let records = InMemoryLogExporter::default();
    let registered = records.clone();
    let engine = faultline::setup::engine_builder(config)
        .log_exporter_factory("warehouse", move |_config| Ok(Box::new(registered)))
        .install_global(false)
        .build()
        .unwrap();
    assert!(engine.emit_log(LogRecord::new(
        LogSeverity::Error,
        "app",
        "to the warehouse"
    )));
    engine.force_flush();
    assert_eq!(records.records()[0].body, "to the warehouse");
    assert_eq!(records.records()[0].severity.number(), 17);
    assert!(records.resource().is_some());
    engine.shutdown();

    // `none` exports nothing: records are refused at once.
    let config = quiet_config()
        .with_env_from(env("none"))
        .unwrap()
        .build()
        .unwrap();
    let engine = faultline::setup::engine_builder(config)
        .install_global(false)
        .build()
        .unwrap();
    assert!(!engine.logs_enabled());
    assert!(!engine.emit_log(LogRecord::new(LogSeverity::Info, "app", "nowhere")));
}

/// With the Sentry plugin, the events a request logged are the breadcrumbs
/// of its Sentry event (a fake Sentry host over HTTP), masked.
#[test]
fn a_requests_log_events_are_the_breadcrumbs_of_its_sentry_event() {
    use faultline::error::{AppError, ErrorCode};
    use faultline::sentry::{Sentry, SentryConfig};

    const DECLINED: ErrorCode = ErrorCode::new(
        2001,
        "PAYMENT_DECLINED",
        http::StatusCode::INTERNAL_SERVER_ERROR,
    );
    // The fake host runs on the workers while this thread waits; the
    // request itself runs here, under this thread's subscriber.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sentry_port, log) = rt.block_on(crate::sentry::start_fake_sentry());
    let tracing_config = quiet_config().build().unwrap();
    let sentry = Sentry::new(
        SentryConfig::new().dsn(format!(
            "http://3f9c2a7e5b1d4c6e8a0b2d4f6e8c0a1b@127.0.0.1:{sentry_port}/77"
        )),
        faultline::masking::from_config(&tracing_config),
    )
    .unwrap();
    let engine = faultline::Engine::builder(tracing_config)
        .correlator(sentry.clone())
        .install_global(false)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
        &engine,
        faultline::tracing::LogLayer::new(&engine).without_lines(),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    async fn pay() -> Result<&'static str, faultline::axum::Error> {
        tracing::info!(attempt = 1i64, "charging card 4111 1111 1111 1111");
        tracing::warn!(email = "maria.lopez@example.org", "payment declined");
        Err(AppError::new(DECLINED, "declined").into())
    }
    let app = Router::new()
        .route("/pay", get(pay))
        .layer(FaultlineLayer::new(engine.clone()));
    let response = rt.block_on(
        app.oneshot(
            http::Request::get("/pay")
                .body(axum::body::Body::empty())
                .unwrap(),
        ),
    );
    assert_eq!(response.unwrap().status(), 500);
    sentry.flush(Duration::from_secs(10));
    let events = crate::sentry::wait_for_events(&log, "77", 1);
    assert_eq!(events.len(), 1, "{events:#?}");
    let crumbs = events[0]["breadcrumbs"]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no breadcrumbs: {:#}", events[0]));
    let messages: Vec<&str> = crumbs
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["charging card ****-****-****-1111", "payment declined"],
        "{crumbs:#?}"
    );
    assert_eq!(crumbs[1]["level"], "warning");
    assert_eq!(crumbs[1]["data"]["email"], "m***@example.org");
    assert_eq!(crumbs[0]["data"]["attempt"], 1);
    let wire = format!("{events:?}");
    assert!(!wire.contains("maria.lopez") && !wire.contains("4111 1111"));
    engine.shutdown();
}
