//! Secrets never leave through faultline's own output: OTLP header values,
//! the Sentry DSN key, the TLS client key and the PII hash key appear in no
//! `Debug` output (configuration, builders, engine, exporters, Sentry,
//! set-up), in no log line, at any level, while exports are rejected (401,
//! 403, gRPC `Unauthenticated`) or the collector is unreachable, and in
//! nothing the reference service prints with `RUST_LOG=trace`. TLS
//! verification of the collector is always on: no setting turns it off.
//!
//! Logs are written on faultline's export thread, which a thread-scoped
//! subscriber does not see; so the log test runs its exports in a child
//! process of this test binary with a process-wide subscriber at TRACE
//! (every target, dependencies included) and checks everything the child printed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfig, TracingConfigBuilder};
use faultline::masking::PiiMasker;
use faultline::otlp::{OtlpConfig, OtlpExporter, OtlpProtocol, Signal};
use faultline::sentry::{Sentry, SentryConfig};
use faultline::setup::{Setup, engine_builder};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};

use crate::common::free_port;
use crate::otlp::Receiver;
use crate::service::FRAMEWORKS;

const OTLP_TOKEN: &str = "otlp-token-7Hq2Zp9XvBw4";
const OTLP_API_KEY: &str = "otlp-apikey-4Lm8Rt3WqKs1";
const SENTRY_KEY: &str = "5e3b9c0d7a1f4e2b8c6d0a9f1e3b5c7d";
const HASH_KEY: &str = "pii-hash-key-Kd82Jx0QpLzz";
/// Sent by clients of the reference service: never printed either.
const REQUEST_AUTH: &str = "request-bearer-Vb61Nc0Tq";
const REQUEST_COOKIE: &str = "session-cookie-Ws93Fe2Lh";

/// A CA, a server certificate for 127.0.0.1/localhost signed by it, and a
/// client certificate with its private key, as PEM files in a fresh
/// temporary directory (removed on drop).
struct Pki {
    dir: PathBuf,
    client_key_pem: String,
    /// Whether dropping it removes the directory.
    owned: bool,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("faultline-secrets-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "faultline secrets CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["faultline-client".to_owned()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let client_key_pem = client_key.serialize_pem();
        for (name, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key_pem.clone()),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pki {
            dir,
            client_key_pem,
            owned: true,
        }
    }

    /// The files another process made (this one does not remove them).
    fn open(dir: PathBuf) -> Pki {
        let client_key_pem = std::fs::read_to_string(dir.join("client.key")).unwrap();
        Pki {
            dir,
            client_key_pem,
            owned: false,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The base64 lines of the client key: any one of them printed is a leak.
    fn key_lines(&self) -> Vec<String> {
        self.client_key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every secret value of this module, with the client key's lines.
fn secrets(pki: &Pki) -> Vec<String> {
    let mut all: Vec<String> = [
        OTLP_TOKEN,
        OTLP_API_KEY,
        SENTRY_KEY,
        HASH_KEY,
        REQUEST_AUTH,
        REQUEST_COOKIE,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.extend(pki.key_lines());
    all
}

/// Fails naming the secret and the line it is on.
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        if let Some(at) = text.find(secret.as_str()) {
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} holds the secret {secret:?}:\n{}", &text[start..end]);
        }
    }
}

/// A configuration (the engine's and the OTLP plugin's) holding every
/// secret the library knows of.
fn secret_config(
    pki: &Pki,
    protocol: OtlpProtocol,
    endpoint: &str,
) -> (TracingConfigBuilder, OtlpConfig) {
    let otlp = OtlpConfig::new()
        .protocol(protocol)
        .endpoint(endpoint)
        .header("authorization", format!("Bearer {OTLP_TOKEN}"))
        .header("x-api-key", OTLP_API_KEY)
        .ca_file(pki.path("ca.pem"))
        .client_identity(pki.path("client.pem"), pki.path("client.key"));
    let engine = TracingConfig::builder()
        .service_name("secrets")
        .exporters([ExporterKind::OTLP])
        .pii_hash_key(HASH_KEY)
        .max_export_retries(1)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .export_timeout(Duration::from_secs(2))
        .shutdown_timeout(Duration::from_secs(2));
    (engine, otlp)
}

/// The environment of a set-up (and of the reference service) with every secret.
fn secret_env(pki: &Pki, otlp_endpoint: &str, sentry_port: u16) -> Vec<(String, String)> {
    vec![
        ("OTEL_TRACES_EXPORTER".into(), "otlp".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp_endpoint.into()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS".into(),
            format!("authorization=Bearer%20{OTLP_TOKEN},x-api-key={OTLP_API_KEY}"),
        ),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE".into(), pki.path("ca.pem")),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE".into(),
            pki.path("client.pem"),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY".into(),
            pki.path("client.key"),
        ),
        ("FAULTLINE_PII_HASH_KEY".into(), HASH_KEY.into()),
        (
            "SENTRY_DSN".into(),
            format!("http://{SENTRY_KEY}@127.0.0.1:{sentry_port}/42"),
        ),
        ("FAULTLINE_EXPORT_MAX_RETRIES".into(), "1".into()),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS".into(), "2000".into()),
    ]
}

fn set_up(env: Vec<(String, String)>) -> Setup {
    Setup::new("secrets")
        .env_from(move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .install_global(false)
        .metrics_recorder(false)
        .panic_hook(false)
}

#[test]
fn debug_output_holds_no_secret() {
    let pki = Pki::new();
    let secrets = secrets(&pki);
    let mut shown: Vec<(&str, String)> = Vec::new();
    let mut show = |what: &'static str, plain: String, pretty: String| {
        shown.push((what, plain));
        shown.push((what, pretty));
    };

    for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
        let endpoint = format!("https://127.0.0.1:{}", free_port());
        let (builder, otlp) = secret_config(&pki, protocol, &endpoint);
        show("builder", format!("{builder:?}"), format!("{builder:#?}"));
        show("otlp config", format!("{otlp:?}"), format!("{otlp:#?}"));
        let traces = otlp.resolve(Signal::Traces).unwrap();
        show("otlp traces", format!("{traces:?}"), format!("{traces:#?}"));
        let config = builder.build().unwrap();
        show("config", format!("{config:?}"), format!("{config:#?}"));
        // The configuration does hold them (the test is about showing).
        assert_eq!(config.pii_hash_key(), Some(HASH_KEY.as_bytes()));
        assert!(traces.headers().iter().any(|(_, v)| v.contains(OTLP_TOKEN)));

        let exporter = OtlpExporter::new(&otlp, &config).unwrap();
        show(
            "exporter",
            format!("{exporter:?}"),
            format!("{exporter:#?}"),
        );
        let masker = PiiMasker::from_config(&config);
        assert!(masker.is_hashing());
        show("masker", format!("{masker:?}"), format!("{masker:#?}"));

        let engine_builder = engine_builder(config.clone())
            .exporter(exporter)
            .install_global(false);
        show(
            "engine builder",
            format!("{engine_builder:?}"),
            format!("{engine_builder:#?}"),
        );
        let engine = engine_builder.build().unwrap();
        show("engine", format!("{engine:?}"), format!("{engine:#?}"));
        let report = engine.shutdown();
        show("report", format!("{report:?}"), format!("{report:#?}"));
    }

    let dsn = format!("http://{SENTRY_KEY}@127.0.0.1:{}/42", free_port());
    let sentry_config = SentryConfig::new().dsn(&dsn);
    show(
        "sentry config",
        format!("{sentry_config:?}"),
        format!("{sentry_config:#?}"),
    );
    let masker = faultline::masking::from_config(&TracingConfig::default());
    let sentry = Sentry::new(sentry_config, masker).unwrap();
    show("sentry", format!("{sentry:?}"), format!("{sentry:#?}"));

    let env = secret_env(
        &pki,
        &format!("https://127.0.0.1:{}", free_port()),
        free_port(),
    );
    let setup = set_up(env.clone())
        .otlp(OtlpConfig::new().header("authorization", format!("Bearer {OTLP_TOKEN}")))
        .configure(|c| c.pii_hash_key(HASH_KEY));
    show("setup", format!("{setup:?}"), format!("{setup:#?}"));
    let faultline = set_up(env).init().unwrap();
    assert!(faultline.sentry().is_some(), "SENTRY_DSN turns Sentry on");
    show(
        "faultline",
        format!("{faultline:?}"),
        format!("{faultline:#?}"),
    );
    show(
        "faultline config",
        format!("{:?}", faultline.config()),
        format!("{:#?}", faultline.config()),
    );
    show(
        "faultline sentry",
        format!("{:?}", faultline.sentry()),
        format!("{:#?}", faultline.sentry()),
    );
    let report = faultline.shutdown();
    show(
        "setup report",
        format!("{report:?}"),
        format!("{report:#?}"),
    );

    // Bad values that hold a secret: the error names the variable, not the value.
    let bad = [
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%zz{OTLP_TOKEN}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer {OTLP_TOKEN}\u{7f}"),
        ),
        ("FAULTLINE_PII_HASH_KEY", "short-key".to_owned()),
        ("SENTRY_DSN", format!("http://{SENTRY_KEY}@")),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("https://user:{OTLP_TOKEN}@collector:4317"),
        ),
    ];
    for (var, value) in bad {
        let err = set_up(vec![
            ("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned()),
            (var.to_owned(), value.clone()),
        ])
        .init()
        .expect_err(var);
        show(
            "set-up error",
            format!("{err} / {err:?}"),
            format!("{err:#?}"),
        );
        assert!(err.to_string().contains(var), "{err}");
    }

    assert!(shown.len() > 20);
    for (what, text) in &shown {
        assert_no_secret(what, text, &secrets);
    }
    // The redaction is visible, so a reader knows the value is there.
    assert!(
        shown
            .iter()
            .any(|(_, t)| t.contains("authorization: [REDACTED]"))
    );
}

/// Answers every HTTP request with `status` and an empty body.
fn rejecting_server(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16384];
                let _ = stream.read(&mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            });
        }
    });
    port
}

/// Set for the child: the directory of the parent's PEM files.
const CHILD_ENV: &str = "FAULTLINE_TEST_SECRETS_CHILD";
const CHILD_DONE: &str = "secrets-child: done";

/// Not a test of its own: the body of `export_logs_hold_no_secret`, run in a
/// child process (it does nothing unless that test started it).
#[test]
fn export_logs_child() {
    let Some(pki_dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // Every event of every target, faultline's and its dependencies', from
    // every thread (the export thread included).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();

    let pki = Pki::open(PathBuf::from(pki_dir));
    // Rejects with gRPC Unauthenticated and HTTP 401: the header it wants is not ours.
    let receiver = Receiver::start(&["--require-header", "authorization=Bearer other"]);
    let forbidden = rejecting_server("403 Forbidden");
    let down = free_port();
    let targets = [
        (
            OtlpProtocol::Grpc,
            format!("http://127.0.0.1:{}", receiver.grpc_port),
        ),
        (
            OtlpProtocol::HttpProtobuf,
            format!("http://127.0.0.1:{}", receiver.http_port),
        ),
        (
            OtlpProtocol::HttpProtobuf,
            format!("http://127.0.0.1:{forbidden}"),
        ),
        (OtlpProtocol::Grpc, format!("http://127.0.0.1:{down}")),
        (
            OtlpProtocol::HttpProtobuf,
            format!("http://127.0.0.1:{down}"),
        ),
        // TLS with the client key loaded: a plain-text peer, and nobody.
        (OtlpProtocol::Grpc, format!("https://127.0.0.1:{forbidden}")),
        (
            OtlpProtocol::HttpProtobuf,
            format!("https://127.0.0.1:{forbidden}"),
        ),
        (OtlpProtocol::Grpc, format!("https://localhost:{down}")),
        (
            OtlpProtocol::HttpProtobuf,
            format!("https://localhost:{down}"),
        ),
    ];
    for (protocol, endpoint) in targets {
        eprintln!("secrets-child: exporting over {protocol:?} to {endpoint}");
        let (config, otlp) = secret_config(&pki, protocol, &endpoint);
        let engine = otlp
            .register(Engine::builder(config.build().unwrap()))
            .install_global(false)
            .build()
            .unwrap();
        let mut span = engine.tracer().start("GET /orders/{id}");
        span.set_attribute(KeyValue::new(
            "http.request.header.authorization",
            format!("Bearer {REQUEST_AUTH}"),
        ));
        span.set_attribute(KeyValue::new("app.cookie", REQUEST_COOKIE));
        span.end();
        engine.force_flush();
        // Long enough for the retry to fail too ("export failing" is logged then).
        std::thread::sleep(Duration::from_millis(300));
        let stats = engine.export_stats();
        let report = engine.shutdown();
        eprintln!("secrets-child: stats {stats:?}");
        eprintln!("secrets-child: report {report:?}");
    }

    // The whole set-up, Sentry included, its DSN pointing nowhere.
    let env = secret_env(&pki, &format!("http://127.0.0.1:{down}"), free_port());
    let faultline = set_up(env).init().unwrap();
    let sentry = faultline.sentry().expect("Sentry is on");
    sentry
        .hub()
        .capture_message("checkout failed", faultline::sentry::sentry::Level::Error);
    let _ = sentry.flush(Duration::from_millis(500));
    let mut span = faultline.engine().tracer().start("POST /checkout");
    span.set_attribute(KeyValue::new("app.note", "nothing secret"));
    span.end();
    eprintln!("secrets-child: setup report {:?}", faultline.shutdown());
    eprintln!("{CHILD_DONE}");
}

#[test]
fn export_logs_hold_no_secret() {
    let pki = Pki::new();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "secrets::export_logs_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &pki.dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(text.contains(CHILD_DONE), "{text}");
    // The capture sees the export thread, faultline's warnings and the
    // dependencies' TRACE events.
    assert!(text.contains("export rejected, spans dropped"), "{text}");
    assert!(
        text.contains("export failing, spans kept in the buffer"),
        "{text}"
    );
    assert!(text.contains(" TRACE "), "no TRACE event was captured");
    assert!(text.contains(" DEBUG "), "no DEBUG event was captured");
    let mut secrets = secrets(&pki);
    secrets.push("PRIVATE KEY-----".to_owned());
    assert_no_secret("the export logs", &text, &secrets);
}

/// Runs the reference service on `framework` with `env`, sends it requests
/// that carry credentials and personal data, stops it with SIGTERM and
/// returns everything it printed, start to exit (standard output and error).
fn run_service(framework: &str, env: &[(String, String)]) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};

    let mut cmd = Command::new(crate::service::binary());
    cmd.args(["--framework", framework, "--port", "0"])
        .env("FAULTLINE_CONSOLE_FORMAT", "json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "20")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("DOWNSTREAM_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the reference service");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let readers = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let lines = lines.clone();
        let port_tx = port_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .strip_prefix("listening on http://")
                    .and_then(|a| a.rsplit(':').next()?.parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
                lines.lock().unwrap().push(line);
            }
        })
    })
    .collect::<Vec<_>>();
    let port = port_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{framework}: no start: {:?}", lines.lock().unwrap()));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let send = |req: reqwest::RequestBuilder| {
            req.header("authorization", format!("Bearer {REQUEST_AUTH}"))
                .header("cookie", format!("sid={REQUEST_COOKIE}"))
                .send()
        };
        for path in ["/hello", "/users/7", "/users/5000", "/panic", "/downstream"] {
            send(client.get(url(path))).await.expect(path);
        }
        let checkout = serde_json::json!({
            "email": "dana.reyes@example.com",
            "phone": "+1 415 555 0134",
            "card": "4111 1111 1111 1111",
        });
        let response = send(client.post(url("/checkout")).json(&checkout))
            .await
            .expect("/checkout");
        assert_eq!(response.status(), 402);
    });
    // Let the batch reach both exporters (the OTLP one is refused).
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    assert!(status.success(), "{framework}: exit {status}");
    lines.lock().unwrap().join("\n")
}

#[test]
fn the_service_prints_no_secret_at_trace_level() {
    let pki = Pki::new();
    let mut secrets = secrets(&pki);
    // Raw personal data sent to /checkout and in the panic message: printed nowhere either.
    secrets.extend(
        [
            "dana.reyes@example.com",
            "4111111111111111",
            "4111 1111 1111 1111",
            "415 555 0134",
            "alice@example.com",
        ]
        .map(String::from),
    );
    let refusing = rejecting_server("401 Unauthorized");
    let mut env = secret_env(&pki, &format!("http://127.0.0.1:{refusing}"), free_port());
    env.retain(|(k, _)| k != "OTEL_TRACES_EXPORTER");
    env.extend(
        [
            ("OTEL_TRACES_EXPORTER", "console,otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("RUST_LOG", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    for framework in FRAMEWORKS {
        let text = run_service(framework, &env);
        // RUST_LOG=trace reached faultline, and the collector said no.
        assert!(
            text.contains("export rejected"),
            "{framework}: the OTLP rejection was not logged:\n{text}"
        );
        // Both streams were read: the spans (stdout) and the logs (stderr),
        // the panic's log line with its email as a keyed hash.
        assert!(
            text.contains("\"trace_id\""),
            "{framework}: no span printed"
        );
        assert!(
            text.contains("request handler panicked: payment worker crashed for email:hmac:"),
            "{framework}: the panic was not logged masked:\n{text}"
        );
        assert_no_secret(
            &format!("the {framework} service's output"),
            &text,
            &secrets,
        );
    }
}

#[test]
fn tls_verification_is_always_on() {
    // There is no setting that turns verification off: a server certificate
    // from an unknown CA is refused on both protocols, with the system roots
    // and with a configured CA that did not sign it; the right CA is accepted.
    let pki = Pki::new();
    let other = Pki::new();
    let receiver = Receiver::start(&[
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server.key"),
    ]);
    for (protocol, port) in [
        (OtlpProtocol::Grpc, receiver.grpc_port),
        (OtlpProtocol::HttpProtobuf, receiver.http_port),
    ] {
        for ca in [None, Some(other.path("ca.pem")), Some(pki.path("ca.pem"))] {
            let trusted = ca.as_deref() == Some(pki.path("ca.pem").as_str());
            let config = TracingConfig::builder()
                .service_name("tls")
                .exporters([ExporterKind::OTLP])
                .max_export_retries(0)
                .export_timeout(Duration::from_secs(5))
                .shutdown_timeout(Duration::from_secs(1));
            let mut otlp = OtlpConfig::new()
                .protocol(protocol)
                .endpoint(format!("https://localhost:{port}"));
            if let Some(ca) = &ca {
                otlp = otlp.ca_file(ca);
            }
            let engine = otlp
                .register(Engine::builder(config.build().unwrap()))
                .install_global(false)
                .build()
                .unwrap();
            engine.tracer().start("tls check").end();
            engine.force_flush();
            let stats = engine.export_stats();
            let otlp = stats.exporters.iter().find(|e| e.name == "otlp").unwrap();
            let case = format!("{protocol:?} with CA {ca:?}");
            if trusted {
                assert_eq!(otlp.delivered, 1, "{case}: {stats:?}");
            } else {
                assert_eq!(otlp.delivered, 0, "{case}: {stats:?}");
                assert!(otlp.failed_attempts >= 1, "{case}: {stats:?}");
            }
            drop(engine);
        }
    }
    // Only the two trusted exports arrived.
    assert_eq!(receiver.spans(2).len(), 2);
}
