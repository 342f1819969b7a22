//! OTLP export checked by independent peers: a receiver built on the official
//! OpenTelemetry protobuf definitions (Python `opentelemetry-proto` with
//! `grpcio`, `tests/peers/otlp_receiver.py`) compares every field, and a real
//! collector (`rotel`) relays.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfigBuilder};
use faultline::export::InMemoryExporter;
use faultline::otlp::{Compression, OtlpConfig, OtlpProtocol};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value as Json;

use crate::common::free_port;
use crate::peers::root;

/// A running receiver.
pub struct Receiver {
    child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    pub(crate) requests: Arc<Mutex<Vec<Json>>>,
}

impl Receiver {
    pub fn start(args: &[&str]) -> Receiver {
        let mut child = Command::new("python3")
            .arg(root().join("tests/peers/otlp_receiver.py"))
            .args(args)
            .env("GRPC_VERBOSITY", "NONE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 for the OTLP receiver (run scripts/test, which installs it)");
        let stdout = child.stdout.take().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(ports) = line.strip_prefix("ready ") {
                        let p: Vec<u16> = ports.split(' ').filter_map(|p| p.parse().ok()).collect();
                        let _ = tx.send(p);
                    } else if let Ok(v) = serde_json::from_str::<Json>(&line) {
                        requests.lock().unwrap().push(v);
                    }
                }
            });
        }
        let ports = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the OTLP receiver did not start (missing opentelemetry-proto or grpcio? run scripts/test)");
        Receiver {
            child,
            grpc_port: ports[0],
            http_port: ports[1],
            requests,
        }
    }

    pub fn requests(&self) -> Vec<Json> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests seen, waiting until at least `count` are recorded (15 s
    /// at most): the receiver reports each one on its output after it has
    /// answered, so the exporter may know the answer before the record
    /// reaches the test.
    pub fn requests_at_least(&self, count: usize) -> Vec<Json> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() > deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every accepted span, waiting until `count` arrived (15 s at most).
    pub fn spans(&self, count: usize) -> Vec<Json> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<Json> = self
                .requests()
                .into_iter()
                .filter(|r| r["rejected"] == false)
                .flat_map(|r| r["spans"].as_array().cloned().unwrap_or_default())
                .collect();
            if spans.len() >= count || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine's settings and the OTLP plugin's, for one test.
struct Config {
    engine: TracingConfigBuilder,
    otlp: OtlpConfig,
}

impl Config {
    fn engine(mut self, f: impl FnOnce(TracingConfigBuilder) -> TracingConfigBuilder) -> Self {
        self.engine = f(self.engine);
        self
    }
    fn otlp(mut self, f: impl FnOnce(OtlpConfig) -> OtlpConfig) -> Self {
        self.otlp = f(self.otlp);
        self
    }
}

fn config(protocol: OtlpProtocol, endpoint: &str) -> Config {
    Config {
        engine: faultline::config::TracingConfig::builder()
            .service_name("otlp-test")
            .service_version("9.8.7")
            .deployment_environment("ci")
            .exporters([ExporterKind::OTLP])
            .export_timeout(Duration::from_secs(5))
            .backoff(Duration::from_millis(10), Duration::from_millis(100))
            .batch(2048, 512, Duration::from_millis(20)),
        otlp: OtlpConfig::new().protocol(protocol).endpoint(endpoint),
    }
}

fn start_engine(config: Config, memory: &InMemoryExporter) -> Engine {
    let engine = Engine::builder(config.engine.build().unwrap());
    config
        .otlp
        .register(engine)
        .exporter(memory.clone())
        .install_global(false)
        .build()
        .unwrap()
}

/// Spans that use every field OTLP carries.
fn make_spans(engine: &Engine) {
    let tracer = engine.tracer();
    let remote = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "v1")]).unwrap(),
    );
    let linked = SpanContext::new(
        TraceId::from(0x11112222333344445555666677778888),
        SpanId::from(0x1234567890abcdef),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let parent = Context::new().with_remote_span_context(remote);
    let mut root = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes(vec![
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("app.flag", true),
            KeyValue::new("app.count", 42_i64),
            KeyValue::new("app.ratio", 0.25_f64),
            KeyValue::new(
                "app.tags",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from("b"),
                ])),
            ),
            KeyValue::new("app.ids", Value::Array(Array::I64(vec![1, 2, 3]))),
            KeyValue::new("app.customer.email", "bob@example.com"),
        ])
        .with_links(vec![Link::new(
            linked,
            vec![KeyValue::new("link.kind", "retry-of")],
            0,
        )])
        .start_with_context(tracer, &parent);
    root.add_event(
        "cache.miss",
        vec![
            KeyValue::new("cache.key", "order:7"),
            KeyValue::new("cache.size", 3_i64),
        ],
    );
    let cx = parent.with_remote_span_context(root.span_context().clone());
    let mut child = tracer
        .span_builder("SELECT orders")
        .with_kind(SpanKind::Client)
        .start_with_context(tracer, &cx);
    child.set_attribute(KeyValue::new("db.system.name", "postgresql"));
    child.end();
    root.set_status(Status::error("order service unavailable"));
    root.end();
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn typed(v: &Value) -> Json {
    match v {
        Value::Bool(b) => serde_json::json!({"type": "bool", "value": b}),
        Value::I64(i) => serde_json::json!({"type": "int", "value": i}),
        Value::F64(f) => serde_json::json!({"type": "double", "value": f}),
        Value::String(s) => serde_json::json!({"type": "string", "value": s.as_str()}),
        Value::Array(Array::String(a)) => serde_json::json!({"type": "array", "value":
            a.iter().map(|s| serde_json::json!({"type": "string", "value": s.as_str()})).collect::<Vec<_>>()}),
        Value::Array(Array::I64(a)) => serde_json::json!({"type": "array", "value":
            a.iter().map(|i| serde_json::json!({"type": "int", "value": i})).collect::<Vec<_>>()}),
        other => panic!("unexpected value {other:?}"),
    }
}

fn attrs(kvs: &[KeyValue]) -> Json {
    kvs.iter()
        .map(|kv| {
            let mut v = typed(&kv.value);
            v["key"] = kv.key.as_str().into();
            v
        })
        .collect()
}

/// Compares a received span with what the engine exported in memory, field by field.
fn assert_same(got: &Json, want: &SpanData) {
    let sc = &want.span_context;
    assert_eq!(got["trace_id"], sc.trace_id().to_string());
    assert_eq!(got["span_id"], sc.span_id().to_string());
    let parent = if want.parent_span_id == SpanId::INVALID {
        String::new()
    } else {
        want.parent_span_id.to_string()
    };
    assert_eq!(got["parent_span_id"], parent, "{}", want.name);
    assert_eq!(got["name"], want.name.as_ref());
    let kind = match want.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    assert_eq!(got["kind"], kind);
    assert_eq!(got["trace_state"], sc.trace_state().header());
    assert_eq!(got["start_time_unix_nano"], nanos(want.start_time));
    assert_eq!(got["end_time_unix_nano"], nanos(want.end_time));
    assert_eq!(got["attributes"], attrs(&want.attributes), "{}", want.name);
    let events: Vec<Json> = want
        .events
        .iter()
        .map(|e| serde_json::json!({"name": e.name.as_ref(), "time_unix_nano": nanos(e.timestamp), "attributes": attrs(&e.attributes)}))
        .collect();
    assert_eq!(got["events"], Json::Array(events));
    let links: Vec<Json> = want
        .links
        .iter()
        .map(|l| {
            serde_json::json!({
                "trace_id": l.span_context.trace_id().to_string(),
                "span_id": l.span_context.span_id().to_string(),
                "trace_state": l.span_context.trace_state().header(),
                "attributes": attrs(&l.attributes),
            })
        })
        .collect();
    assert_eq!(got["links"], Json::Array(links));
    let (code, message) = match &want.status {
        Status::Unset => (0, String::new()),
        Status::Ok => (1, String::new()),
        Status::Error { description } => (2, description.to_string()),
    };
    assert_eq!(
        got["status"],
        serde_json::json!({"code": code, "message": message})
    );
    assert_eq!(got["scope"]["name"], "faultline");
    let resource = got["resource"].as_array().unwrap();
    let res = |k: &str| {
        resource
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
    };
    assert_eq!(res("service.name"), Some("otlp-test".into()));
    assert_eq!(res("service.version"), Some("9.8.7".into()));
    assert_eq!(res("deployment.environment.name"), Some("ci".into()));
    assert_eq!(res("telemetry.sdk.language"), Some("rust".into()));
}

fn check_every_field(receiver: &Receiver, memory: &InMemoryExporter) {
    let received = receiver.spans(2);
    let exported = memory.wait_for(2, Duration::from_secs(5));
    assert_eq!(received.len(), 2, "{:?}", receiver.requests());
    for want in &exported {
        let got = received
            .iter()
            .find(|s| s["span_id"] == want.span_context.span_id().to_string())
            .unwrap_or_else(|| panic!("{} not received", want.name));
        assert_same(got, want);
    }
    // Masked on the way out, like every exporter's copy.
    let root = received
        .iter()
        .find(|s| s["name"] == "GET /orders/{id}")
        .unwrap();
    let email = root["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "app.customer.email")
        .unwrap();
    assert_eq!(email["value"], "b***@example.com");
}

#[test]
fn otlp_grpc_arrives_field_by_field() {
    let receiver = Receiver::start(&["--require-header", "authorization=Bearer t0ken"]);
    let memory = InMemoryExporter::default();
    let engine = start_engine(
        config(
            OtlpProtocol::Grpc,
            &format!("http://127.0.0.1:{}", receiver.grpc_port),
        )
        .otlp(|o| o.header("authorization", "Bearer t0ken"))
        .otlp(|o| o.compression(Compression::Gzip)),
        &memory,
    );
    make_spans(&engine);
    engine.force_flush();
    check_every_field(&receiver, &memory);
    assert_eq!(receiver.requests()[0]["transport"], "grpc");
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_batch_past_the_grpc_message_limit_goes_in_several_requests() {
    // grpcio's server, like the Collector's, refuses messages over 4 MiB.
    let receiver = Receiver::start(&[]);
    let memory = InMemoryExporter::default();
    let engine = start_engine(
        config(
            OtlpProtocol::Grpc,
            &format!("http://127.0.0.1:{}", receiver.grpc_port),
        )
        .engine(|e| e.batch(2048, 1000, Duration::from_secs(600))),
        &memory,
    );
    // 600 spans of 10 kB: one batch of about 6 MB.
    let payload = "p".repeat(10_000);
    for i in 0..600 {
        let mut span = engine.tracer().start(format!("big-{i}"));
        span.set_attribute(KeyValue::new("payload", payload.clone()));
        span.end();
    }
    engine.force_flush();
    let spans = receiver.spans(600);
    assert_eq!(spans.len(), 600, "{:?}", engine.export_stats());
    let requests = receiver.requests();
    assert!(
        requests.iter().all(|r| r["rejected"] == false),
        "no request refused"
    );
    assert!(requests.len() >= 2, "{} requests", requests.len());
    let names: Vec<String> = spans
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (0..600).map(|i| format!("big-{i}")).collect();
    assert_eq!(names, want, "every span once, in order");
    let stats = engine.export_stats();
    assert_eq!((stats.spans_exported, stats.spans_failed), (600, 0));
    assert!(engine.shutdown().is_clean());
}

#[test]
fn otlp_http_protobuf_arrives_field_by_field() {
    let receiver = Receiver::start(&["--require-header", "x-api-key=k3y"]);
    let memory = InMemoryExporter::default();
    let engine = start_engine(
        config(
            OtlpProtocol::HttpProtobuf,
            &format!("http://127.0.0.1:{}", receiver.http_port),
        )
        .otlp(|o| o.header("x-api-key", "k3y"))
        .otlp(|o| o.compression(Compression::Gzip)),
        &memory,
    );
    make_spans(&engine);
    engine.force_flush();
    check_every_field(&receiver, &memory);
    let request = &receiver.requests()[0];
    assert_eq!(request["transport"], "http");
    assert_eq!(request["content_type"], "application/x-protobuf");
    assert_eq!(request["gzip"], true);
    assert!(engine.shutdown().is_clean());
}

#[test]
fn a_wrong_or_missing_auth_header_is_rejected_and_reported() {
    let receiver = Receiver::start(&["--require-header", "authorization=Bearer right"]);
    let cases = [
        (OtlpProtocol::Grpc, receiver.grpc_port, Some("Bearer wrong")),
        (
            OtlpProtocol::HttpProtobuf,
            receiver.http_port,
            Some("Bearer wrong"),
        ),
        (OtlpProtocol::Grpc, receiver.grpc_port, None),
        (OtlpProtocol::HttpProtobuf, receiver.http_port, None),
    ];
    for (protocol, port, header) in cases {
        let memory = InMemoryExporter::default();
        let mut cfg = config(protocol, &format!("http://127.0.0.1:{port}"));
        if let Some(h) = header {
            cfg = cfg.otlp(|o| o.header("authorization", h));
        }
        let engine = start_engine(cfg, &memory);
        make_spans(&engine);
        engine.force_flush();
        let stats = engine.export_stats();
        let otlp = stats.exporters.iter().find(|e| e.name == "otlp").unwrap();
        assert_eq!(otlp.delivered, 0, "{protocol:?}: {stats:?}");
        assert_eq!(
            otlp.dropped, 2,
            "{protocol:?}: a rejected credential is permanent: {stats:?}"
        );
        assert_eq!(otlp.retries, 0, "{protocol:?}: not retried");
        let report = engine.shutdown();
        assert!(!report.is_clean());
    }
    let requests = receiver.requests_at_least(4);
    assert!(requests.iter().all(|r| r["rejected"] == true));
    assert_eq!(requests.len(), 4);
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate, written as PEM files in a fresh temporary directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!(
            "faultline-pki-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "faultline test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params =
            CertificateParams::new(vec!["faultline-client".to_owned()]).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "faultline-client");
        let client = client_params.signed_by(&client_key, &issuer).unwrap();
        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pki { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn otlp_over_tls_and_mutual_tls() {
    let pki = Pki::new();
    let receiver = Receiver::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
        "--tls-client-ca",
        &pki.path("ca.pem"),
    ]);
    for (protocol, port) in [
        (OtlpProtocol::Grpc, receiver.grpc_port),
        (OtlpProtocol::HttpProtobuf, receiver.http_port),
    ] {
        // With the CA and a client certificate: accepted.
        let memory = InMemoryExporter::default();
        let engine = start_engine(
            config(protocol, &format!("https://localhost:{port}"))
                .otlp(|o| o.ca_file(pki.path("ca.pem")))
                .otlp(|o| o.client_identity(pki.path("client.pem"), pki.path("client.key"))),
            &memory,
        );
        make_spans(&engine);
        engine.force_flush();
        assert!(engine.shutdown().is_clean(), "{protocol:?} with mTLS");

        // Without a client certificate: the handshake fails, reported as a failed export.
        let memory = InMemoryExporter::default();
        let engine = start_engine(
            config(protocol, &format!("https://localhost:{port}"))
                .otlp(|o| o.ca_file(pki.path("ca.pem")))
                .engine(|e| e.max_export_retries(0)),
            &memory,
        );
        make_spans(&engine);
        engine.force_flush();
        let stats = engine.export_stats();
        let otlp = stats.exporters.iter().find(|e| e.name == "otlp").unwrap();
        assert_eq!(
            otlp.delivered, 0,
            "{protocol:?} without a client certificate: {stats:?}"
        );
        assert!(otlp.failed_attempts >= 1);
        drop(engine);
    }
    assert_eq!(
        receiver.spans(4).len(),
        4,
        "two spans per protocol over mTLS"
    );
}

#[test]
fn otlp_verifies_the_server_certificate() {
    let pki = Pki::new();
    let other = Pki::new();
    let receiver = Receiver::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
    ]);
    let memory = InMemoryExporter::default();
    // Trusting another CA: the server's certificate is refused.
    let engine = start_engine(
        config(
            OtlpProtocol::Grpc,
            &format!("https://localhost:{}", receiver.grpc_port),
        )
        .otlp(|o| o.ca_file(other.path("ca.pem")))
        .engine(|e| e.max_export_retries(0)),
        &memory,
    );
    make_spans(&engine);
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(
        stats
            .exporters
            .iter()
            .find(|e| e.name == "otlp")
            .unwrap()
            .delivered,
        0
    );
    assert!(receiver.requests().is_empty());
}

#[test]
fn a_collector_down_at_start_gets_every_span_later() {
    let port = free_port();
    let memory = InMemoryExporter::default();
    let engine = start_engine(
        config(OtlpProtocol::Grpc, &format!("http://127.0.0.1:{port}")),
        &memory,
    );
    for i in 0..300 {
        engine.tracer().start(format!("early-{i}")).end();
    }
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_buffered, 300, "{stats:?}");
    let receiver = Receiver::start(&["--grpc-port", &port.to_string()]);
    let got = receiver.spans(300);
    assert_eq!(got.len(), 300, "every buffered span arrives");
    let names: std::collections::HashSet<_> = got
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 300, "each exactly once");
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
    let otlp = report
        .stats
        .exporters
        .iter()
        .find(|e| e.name == "otlp")
        .unwrap();
    assert_eq!((otlp.delivered, otlp.dropped), (300, 0));
}

fn rotel_agent() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the rotel package is missing: run scripts/test, which installs it"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn a_real_collector_relays_the_spans() {
    let receiver = Receiver::start(&[]);
    let (grpc, http) = (free_port(), free_port());
    let mut rotel = Command::new(rotel_agent())
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            &format!("http://127.0.0.1:{}", receiver.grpc_port),
            "--otlp-exporter-protocol",
            "grpc",
            "--batch-timeout",
            "50ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rotel-agent starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(Instant::now() < deadline, "rotel-agent did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let memory = InMemoryExporter::default();
    let engine = start_engine(
        config(OtlpProtocol::Grpc, &format!("http://127.0.0.1:{grpc}")),
        &memory,
    );
    make_spans(&engine);
    engine.force_flush();
    let received = receiver.spans(2);
    let _ = rotel.kill();
    let _ = rotel.wait();
    assert_eq!(received.len(), 2, "the collector relayed both spans");
    for want in memory.spans() {
        let got = received
            .iter()
            .find(|s| s["span_id"] == want.span_context.span_id().to_string())
            .expect("relayed span");
        assert_eq!(got["trace_id"], want.span_context.trace_id().to_string());
        assert_eq!(got["name"], want.name.as_ref());
        assert_eq!(got["start_time_unix_nano"], nanos(want.start_time));
    }
    assert!(engine.shutdown().is_clean());
}
