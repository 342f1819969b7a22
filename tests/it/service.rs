//! Starting the reference service (`examples/service`) as a real process,
//! the way outside tools meet it, and reading the spans it exports as JSON
//! lines on its standard output (console exporter).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The frameworks the reference service runs on.
#[allow(dead_code)]
pub const FRAMEWORKS: [&str; 3] = ["axum", "poem", "warp"];

/// The compiled reference service (built by `cargo test`, which builds the examples).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path = debug_dir.join("examples").join("service");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --all-features --example service` (scripts/test does)",
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
}

impl Service {
    /// Starts the service on `framework` with a free port, the console
    /// exporter in JSON, a short batch delay, and `env` on top.
    pub fn start(framework: &str, env: &[(&str, &str)]) -> Service {
        Self::start_with_args(framework, &[], env)
    }

    /// Like [`start`](Service::start), with extra command-line arguments.
    pub fn start_with_args(framework: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(binary());
        cmd.args(["--framework", framework, "--port", "0"])
            .args(args)
            .env("OTEL_TRACES_EXPORTER", "console")
            .env("FAULTLINE_CONSOLE_FORMAT", "json")
            .env("OTEL_BSP_SCHEDULE_DELAY", "20")
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
        {
            let spans = spans.clone();
            let lines = lines.clone();
            std::thread::spawn(move || {
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
            });
        }
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(format!("stderr: {line}"));
                }
            });
        }
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "the {framework} service did not start: {:?}",
                    lines.lock().unwrap()
                )
            });
        Service {
            child,
            port,
            spans,
            lines,
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
    pub fn stop(mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.success(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                return (false, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
