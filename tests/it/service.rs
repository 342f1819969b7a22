//! Starting the reference service (`examples/service`) as a real process,
//! the way outside tools meet it, and reading the spans it exports as JSON
//! lines on its standard output (console exporter); and the tests of what
//! only the process shows: signals, the shutdown deadline with every
//! backend down, `--no-tracing` panics, and `RUST_LOG`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::free_port;

/// The frameworks the reference service runs on.
#[allow(dead_code)]
pub const FRAMEWORKS: [&str; 4] = ["axum", "poem", "warp", "actix"];

/// The compiled reference service (built by `cargo test`, which builds the examples).
pub fn binary() -> PathBuf {
    example_binary("service")
}

/// A compiled example (built by `cargo test`, which builds the examples).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path = debug_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --all-features --example {name}` (scripts/test does)",
        path.display()
    );
    path
}

/// A running reference service.
pub struct Service {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a service stopped by [`Service::terminate`] left behind.
pub struct Stopped {
    /// Its exit status (`None`: still running after 15 s, then killed).
    pub status: Option<ExitStatus>,
    /// From SIGTERM to its exit.
    pub took: Duration,
    /// Every line it printed, start to exit (stderr lines prefixed `stderr: `).
    pub lines: Vec<String>,
    /// Every span it exported, start to exit.
    pub spans: Vec<Value>,
}

impl Stopped {
    /// Whether it exited with status 0.
    pub fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// What it printed on standard error.
    pub fn stderr(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("stderr: "))
            .collect()
    }
}

impl Service {
    /// Starts the service on `framework` with a free port, the console
    /// exporter in JSON, a short batch delay, and `env` on top.
    pub fn start(framework: &str, env: &[(&str, &str)]) -> Service {
        Self::start_with_args(framework, &[], env)
    }

    /// Like [`start`](Service::start), with extra command-line arguments.
    pub fn start_with_args(framework: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let args = [&["--framework", framework], args].concat();
        Self::start_example("service", &args, env)
    }

    /// Starts the example `name` (a service printing `listening on
    /// http://ADDRESS`) the same way, with `--port 0` and `args`.
    pub fn start_example(name: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(example_binary(name));
        cmd.args(["--port", "0"])
            .args(args)
            .env("OTEL_TRACES_EXPORTER", "console")
            .env("FAULTLINE_CONSOLE_FORMAT", "json")
            .env("OTEL_BSP_SCHEDULE_DELAY", "20")
            // No log export unless a test asks (tests/it/logs.rs).
            .env("OTEL_LOGS_EXPORTER", "none")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("DOWNSTREAM_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the reference service");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        {
            let spans = spans.clone();
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                        let _ = port_tx.send(port);
                    } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        spans.lock().unwrap().push(v);
                    }
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(format!("stderr: {line}"));
                }
            }));
        }
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!("{name} {args:?} did not start: {:?}", lines.lock().unwrap())
            });
        Service {
            child,
            port,
            spans,
            lines,
            readers,
        }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }

    /// Every line the service printed so far (stderr lines prefixed).
    #[allow(dead_code)]
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `count` spans of `trace_id` arrived (10 s at most).
    pub fn trace(&self, trace_id: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit (15 s at most); returns whether it
    /// exited successfully and how long it took.
    pub fn stop(self) -> (bool, Duration) {
        let stopped = self.terminate();
        (stopped.clean(), stopped.took)
    }

    /// Sends SIGTERM, waits for the exit (15 s at most, then kills it) and
    /// for the end of its output; returns all of it.
    pub fn terminate(mut self) -> Stopped {
        let started = Instant::now();
        sigterm(self.child.id());
        let status = wait_at_most(&mut self.child, Duration::from_secs(15));
        let took = started.elapsed();
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        Stopped {
            status,
            took,
            lines: self.output(),
            spans: self.spans(),
        }
    }
}

/// Sends SIGTERM to `pid` (at once: no `kill` process to start first).
fn sigterm(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a process id");
    // SAFETY: kill(2) with a child's process id and a valid signal number
    // touches no memory of this process.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(
        sent,
        0,
        "kill -TERM {pid}: {}",
        std::io::Error::last_os_error()
    );
}

/// Waits for `child` to exit, `limit` at most.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend that is down the hard way: a TCP listener that accepts every
/// connection and never answers (nor closes it).
struct HungBackend {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl HungBackend {
    fn start() -> HungBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                held.push(stream);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        HungBackend { port, accepted }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits until `n` connections reached it (20 s at most).
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.accepted.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "no call reached the hung backend"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends one HTTP/1.1 request on a raw connection and leaves it open (the
/// answer, if any, is read and dropped by a thread).
fn send_raw(port: u16, method: &str, path: &str, body: &str) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    });
}

/// What a tool that waits for the `listening on` line and signals at once
/// meets: the signal handlers are in place before the line is printed, so
/// the shutdown is the graceful one (exit 0), never the default action of
/// the signal (killed, status 143).
fn sigterm_right_after_the_listening_line(framework: &str) {
    for run in 0..10 {
        let mut child = Command::new(binary())
            .args(["--framework", framework, "--port", "0"])
            .env("OTEL_TRACES_EXPORTER", "console")
            .env("FAULTLINE_CONSOLE_FORMAT", "json")
            .env_remove("DOWNSTREAM_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the reference service");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read stdout");
            assert!(n > 0, "{framework}: exited before the listening line");
            if line.starts_with("listening on http://") {
                break;
            }
        }
        sigterm(child.id());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let status = wait_at_most(&mut child, Duration::from_secs(15));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let errors = errors.join().unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "{framework}, run {run}: SIGTERM right after the listening line: {status:?}\n{errors}"
        );
    }
}

#[test]
fn axum_shuts_down_gracefully_on_a_sigterm_right_after_the_listening_line() {
    sigterm_right_after_the_listening_line("axum");
}

#[test]
fn poem_shuts_down_gracefully_on_a_sigterm_right_after_the_listening_line() {
    sigterm_right_after_the_listening_line("poem");
}

#[test]
fn warp_shuts_down_gracefully_on_a_sigterm_right_after_the_listening_line() {
    sigterm_right_after_the_listening_line("warp");
}

#[test]
fn actix_shuts_down_gracefully_on_a_sigterm_right_after_the_listening_line() {
    sigterm_right_after_the_listening_line("actix");
}

/// Every backend down (the downstream and the collector accept connections
/// and never answer), requests in flight on them: SIGTERM still ends the
/// process within 10 s, cleanly, and the spans of the requests cut short are
/// exported with the rest.
fn exits_within_10_s_with_every_backend_hung(framework: &str) {
    let backend = HungBackend::start();
    let collector = HungBackend::start();
    let svc = Service::start(
        framework,
        &[
            ("DOWNSTREAM_URL", &backend.url()),
            ("OTEL_TRACES_EXPORTER", "console,otlp"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{}", collector.port),
            ),
        ],
    );
    send_raw(svc.port, "GET", "/downstream", "");
    let calls = serde_json::json!([
        { "url": backend.url(), "arguments": [] },
        { "url": backend.url(), "arguments": [] },
        { "url": backend.url(), "arguments": [] },
    ]);
    send_raw(svc.port, "POST", "/test", &calls.to_string());
    // Both requests are waiting on the backend.
    backend.wait_for(2);
    let stopped = svc.terminate();
    assert!(
        stopped.clean(),
        "{framework}: exit {:?} after {:?}:\n{}",
        stopped.status,
        stopped.took,
        stopped.lines.join("\n")
    );
    assert!(
        stopped.took < Duration::from_secs(10),
        "{framework}: took {:?} to exit:\n{}",
        stopped.took,
        stopped.lines.join("\n")
    );
    for path in ["/downstream", "/test"] {
        assert!(
            stopped
                .spans
                .iter()
                .any(|s| s["kind"] == "SERVER" && s["attributes"]["url.path"] == path),
            "{framework}: the span of {path}, cut short, was not exported: {:#?}",
            stopped.spans
        );
    }
}

#[test]
fn axum_exits_within_10_s_with_every_backend_hung() {
    exits_within_10_s_with_every_backend_hung("axum");
}

#[test]
fn poem_exits_within_10_s_with_every_backend_hung() {
    exits_within_10_s_with_every_backend_hung("poem");
}

#[test]
fn warp_exits_within_10_s_with_every_backend_hung() {
    exits_within_10_s_with_every_backend_hung("warp");
}

#[test]
fn actix_exits_within_10_s_with_every_backend_hung() {
    exits_within_10_s_with_every_backend_hung("actix");
}

/// `--no-tracing` serves the same routes: `/panic` answers 500 problem+json,
/// code 5000, nothing of the panic text in it, the service keeps serving,
/// and the panic message is printed nowhere raw.
#[test]
fn without_tracing_a_panic_is_a_500_problem_and_is_not_printed_raw() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for framework in FRAMEWORKS {
        let svc = Service::start_with_args(framework, &["--no-tracing"], &[("RUST_LOG", "info")]);
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let response = client.get(svc.url("/panic")).send().await;
            let response =
                response.unwrap_or_else(|e| panic!("{framework}: GET /panic got no answer: {e}"));
            assert_eq!(response.status(), 500, "{framework}");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                content_type.starts_with("application/problem+json"),
                "{framework}: {content_type}"
            );
            let body = response.text().await.unwrap();
            let problem: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["code"], 5000, "{framework}: {body}");
            assert_eq!(problem["status"], 500, "{framework}: {body}");
            for member in ["type", "title", "detail"] {
                assert!(problem[member].is_string(), "{framework}: {member}: {body}");
            }
            assert!(
                problem.get("trace_id").is_none(),
                "{framework}: nothing is traced: {body}"
            );
            for text in ["payment worker", "alice", "example.com"] {
                assert!(!body.contains(text), "{framework}: {text} in {body}");
            }
            let hello = client.get(svc.url("/hello")).send().await.unwrap();
            assert_eq!(hello.status(), 200, "{framework}: still serving");
        });
        let stopped = svc.terminate();
        assert!(stopped.clean(), "{framework}: exit {:?}", stopped.status);
        let printed = stopped.lines.join("\n");
        assert!(
            !printed.contains("alice@example.com"),
            "{framework}: the raw panic message was printed:\n{printed}"
        );
        // Reported all the same, masked.
        assert!(
            printed.contains("payment worker crashed for a***@example.com"),
            "{framework}: the panic was not logged masked:\n{printed}"
        );
    }
}

/// Runs the service on `framework` with `env`, sends it a few requests (one
/// that panics, one that calls out), stops it and returns its standard error.
fn logs_of_a_run(framework: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let svc = Service::start_with_args(framework, args, env);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for path in ["/hello", "/users/7", "/users/5000", "/panic", "/downstream"] {
            client.get(svc.url(path)).send().await.expect(path);
        }
    });
    let stopped = svc.terminate();
    assert!(stopped.clean(), "{framework}: exit {:?}", stopped.status);
    stopped.stderr().into_iter().map(String::from).collect()
}

/// `RUST_LOG=off` silences every log line, the dependencies' (poem's
/// `listening`, `server started`), faultline's (export failures) and the
/// service's own (the shutdown summary of spans not delivered); so does
/// `poem=off` for poem's.
#[test]
fn rust_log_off_prints_nothing() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let undeliverable = [
        ("OTEL_TRACES_EXPORTER", "console,otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "1000"),
    ];
    for framework in FRAMEWORKS {
        let mut env = undeliverable.to_vec();
        env.push(("RUST_LOG", "off"));
        let printed = logs_of_a_run(framework, &[], &env);
        assert!(
            printed.is_empty(),
            "{framework}: RUST_LOG=off, yet printed:\n{}",
            printed.join("\n")
        );
    }
    let printed = logs_of_a_run("poem", &["--no-tracing"], &[("RUST_LOG", "off")]);
    assert!(
        printed.is_empty(),
        "poem --no-tracing: RUST_LOG=off, yet printed:\n{}",
        printed.join("\n")
    );
    for filter in ["error", "poem=off"] {
        let printed = logs_of_a_run("poem", &[], &[("RUST_LOG", filter)]);
        assert!(
            !printed.iter().any(|l| l.contains("poem::")),
            "RUST_LOG={filter}, yet poem logged:\n{}",
            printed.join("\n")
        );
    }
}

/// The dependencies whose debug logs can hold secrets or raw personal data
/// print at most `info`, whatever `RUST_LOG` asks.
#[test]
fn rust_log_trace_never_prints_the_capped_dependencies_debug_logs() {
    let capped = regex::Regex::new(
        r"\b(DEBUG|TRACE)\b.*?\b(warp|poem|hyper|hyper_util|h2|tonic|tower|tower_http|reqwest|opentelemetry|opentelemetry_sdk|opentelemetry_otlp|opentelemetry_http)(::[a-z0-9_]+)*:",
    )
    .unwrap();
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    for framework in FRAMEWORKS {
        let printed = logs_of_a_run(
            framework,
            &[],
            &[
                ("RUST_LOG", "trace"),
                ("OTEL_TRACES_EXPORTER", "console,otlp"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "1000"),
            ],
        );
        let plain: Vec<String> = printed
            .iter()
            .map(|l| ansi.replace_all(l, "").into_owned())
            .collect();
        let leaked: Vec<&String> = plain.iter().filter(|l| capped.is_match(l)).collect();
        assert!(
            leaked.is_empty(),
            "{framework}: debug logs of capped dependencies:\n{}",
            leaked
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        // RUST_LOG=trace did reach the service: faultline's own lines show.
        assert!(
            plain.iter().any(|l| l.contains("faultline")),
            "{framework}: nothing from faultline at trace level:\n{}",
            plain.join("\n")
        );
    }
}

/// A well-formed value that breaks a rule checked when the configuration is
/// built (a range, a relation to a default, a file's contents) stops the
/// service at start with exit status 2 and one line naming the variable.
#[test]
fn a_bad_value_stops_the_service_with_one_line_naming_its_variable() {
    let dir = std::env::temp_dir().join(format!("faultline-bad-values-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("hostname");
    std::fs::write(&not_pem, "build-host\n").unwrap();
    let not_pem = not_pem.to_str().unwrap().to_owned();
    let cases: [(&str, &str); 8] = [
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "600000"),
        ("FAULTLINE_EXCLUDED_ROUTES", "/health,ready"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "10000"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &not_pem),
        (
            "FAULTLINE_PII_PATTERNS",
            r#"{"x":{"regex":"foo","replacement":"L1\nL2"}}"#,
        ),
    ];
    for (var, value) in cases {
        let out = Command::new(binary())
            .args(["--framework", "axum", "--port", "0"])
            .env(var, value)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .output()
            .expect("run the service");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(out.status.code(), Some(2), "{var}={value:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{var}={value:?}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("service: {var}")),
            "{var}={value:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{var}: never listening");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A misspelt faultline variable is not silently ignored: the service warns,
/// naming it and the variable it most likely means, and runs on.
#[test]
fn a_misspelt_variable_is_named_in_a_warning() {
    let svc = Service::start(
        "axum",
        &[
            ("FAULTLINE_TRUST_INCOMING_CONTXT", "false"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    );
    let stopped = svc.terminate();
    assert!(stopped.clean(), "exit {:?}", stopped.status);
    let warning = stopped
        .stderr()
        .into_iter()
        .find(|l| l.contains("FAULTLINE_TRUST_INCOMING_CONTXT"))
        .map(str::to_owned);
    let warning = warning.expect("a warning naming the variable");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("did you mean FAULTLINE_TRUST_INCOMING_CONTEXT?"),
        "{warning}"
    );
}
