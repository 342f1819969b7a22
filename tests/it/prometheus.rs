//! The Prometheus plugin against independent peers: the official Python
//! client's text and OpenMetrics parsers (`tests/peers/prometheus_parse.py`)
//! read the page the axum layer serves, and a real Prometheus server
//! (Debian package `prometheus`, started here on 127.0.0.1) scrapes it and
//! answers queries for the trace id of an error, as a label and as an
//! exemplar.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use faultline::Engine;
use faultline::axum::{Error, FaultlineLayer};
use faultline::error::{AppError, ErrorCode};
use faultline::export::InMemoryExporter;
use faultline::prometheus::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, Prometheus, PrometheusConfig,
};
use serde_json::{Value as Json, json};

use crate::common::quiet_config;
use crate::peers::run_python;

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");

/// What Prometheus 2.42 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn user(axum::extract::Path(id): axum::extract::Path<String>) -> Result<String, Error> {
    Err(AppError::new(USER_NOT_FOUND, format!("no user {id}")).into())
}

async fn hello() -> &'static str {
    "hello"
}

async fn boom() -> &'static str {
    panic!("payment worker crashed for alice@example.com")
}

/// A traced axum service on 127.0.0.1 with the Prometheus correlator.
struct Service {
    addr: std::net::SocketAddr,
    engine: Engine,
    prometheus: Prometheus,
    _server: tokio::task::JoinHandle<()>,
}

async fn serve(config: PrometheusConfig) -> Service {
    let prometheus = Prometheus::new(config);
    let engine = Engine::builder(quiet_config().build().unwrap())
        .exporter(InMemoryExporter::default())
        .correlator(prometheus.clone())
        .install_global(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/hello", get(hello))
        .route("/panic", get(boom))
        .layer(FaultlineLayer::new(engine.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Service {
        addr,
        engine,
        prometheus,
        _server: server,
    }
}

/// Requests `/users/42` and returns the problem's trace id.
async fn failing_request(client: &reqwest::Client, service: &Service) -> String {
    let response = client
        .get(format!("http://{}/users/42", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let problem: Json = response.json().await.unwrap();
    assert_eq!(problem["code"], 1001, "{problem}");
    let trace_id = problem["trace_id"].as_str().expect("trace_id").to_owned();
    assert_eq!(trace_id.len(), 32, "{problem}");
    trace_id
}

async fn scrape(
    client: &reqwest::Client,
    service: &Service,
    accept: Option<&str>,
) -> (String, String) {
    let mut request = client.get(format!("http://{}/metrics", service.addr));
    if let Some(accept) = accept {
        request = request.header(http::header::ACCEPT, accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

pub fn parse(format: &str, body: &str) -> Vec<Json> {
    let parsed = run_python(
        "prometheus_parse.py",
        &json!({"format": format, "body": body}),
    );
    assert!(
        parsed.get("error").is_none(),
        "the {format} parser rejected the page: {}\n{body}",
        parsed["error"]
    );
    parsed["families"].as_array().unwrap().clone()
}

pub fn samples<'a>(families: &'a [Json], name: &str) -> Vec<&'a Json> {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_formats_parse_with_the_official_client_and_carry_the_trace_id() {
    let service = serve(PrometheusConfig::default()).await;
    let client = reqwest::Client::new();
    let trace_id = failing_request(&client, &service).await;
    let ok = client
        .get(format!("http://{}/hello", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let panicked = client
        .get(format!("http://{}/panic", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    let unmatched = client
        .get(format!("http://{}/no/such/page", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(unmatched.status(), 404);

    // OpenMetrics, as Prometheus asks for it: exemplars with the trace id.
    let (content_type, body) = scrape(&client, &service, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
    assert!(body.ends_with("# EOF\n"));
    let families = parse("openmetrics", &body);
    let per_trace = samples(&families, "faultline_trace_errors_total");
    let mine = per_trace
        .iter()
        .find(|s| s["labels"]["trace_id"] == trace_id.as_str())
        .unwrap_or_else(|| panic!("no per-trace series for {trace_id}:\n{body}"));
    assert_eq!(mine["labels"]["error_code"], "1001");
    assert_eq!(mine["labels"]["error_name"], "USER_NOT_FOUND");
    assert_eq!(mine["labels"]["http_route"], "/users/{id}");
    assert_eq!(mine["labels"]["span_id"].as_str().unwrap().len(), 16);
    assert_eq!(mine["value"], 1.0);
    let errors = samples(&families, "faultline_errors_total");
    let coded = errors
        .iter()
        .find(|s| s["labels"]["error_code"] == "1001")
        .unwrap_or_else(|| panic!("no error counter:\n{body}"));
    assert_eq!(
        coded["exemplar"]["labels"]["trace_id"],
        trace_id.as_str(),
        "{body}"
    );
    assert_eq!(
        coded["exemplar"]["labels"]["span_id"],
        mine["labels"]["span_id"]
    );
    // The panic counts as code 5000.
    assert!(
        errors
            .iter()
            .any(|s| s["labels"]["error_code"] == "5000" && s["labels"]["http_route"] == "/panic"),
        "{body}"
    );
    let buckets = samples(&families, "http_server_request_duration_seconds_bucket");
    assert!(
        buckets
            .iter()
            .any(|s| s["labels"]["http_route"] == "/users/{id}"
                && s["exemplar"]["labels"]["trace_id"] == trace_id.as_str()),
        "no latency exemplar for {trace_id}:\n{body}"
    );
    let counts = samples(&families, "http_server_request_duration_seconds_count");
    let routes: Vec<&str> = counts
        .iter()
        .map(|s| s["labels"]["http_route"].as_str().unwrap())
        .collect();
    assert!(
        routes.contains(&"/hello") && routes.contains(&"unmatched"),
        "{routes:?}"
    );
    // Scrapes are untraced: /metrics is not a route of its own, and no raw path leaks.
    assert!(
        !body.contains("/metrics") && !body.contains("/no/such/page"),
        "{body}"
    );
    assert!(!body.contains("alice"), "{body}");

    // The Prometheus text format: same series, no exemplars.
    let (content_type, text) = scrape(&client, &service, None).await;
    assert_eq!(content_type, PROMETHEUS_TEXT_CONTENT_TYPE);
    assert!(!text.contains("# EOF"));
    let families = parse("text", &text);
    let types: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    for expected in [
        ("faultline_errors", "counter"),
        ("faultline_trace_errors", "counter"),
        ("http_server_request_duration_seconds", "histogram"),
        ("faultline_export_spans_received", "counter"),
    ] {
        assert!(types.contains(&expected), "{expected:?} not in {types:?}");
    }
    assert!(
        samples(&families, "faultline_trace_errors_total")
            .iter()
            .any(|s| s["labels"]["trace_id"] == trace_id.as_str()),
        "{text}"
    );
    for family in &families {
        for s in family["samples"].as_array().unwrap() {
            assert!(s["exemplar"].is_null(), "exemplar in the text format: {s}");
        }
    }
    service.engine.shutdown();
}

/// A Prometheus server, killed and its data removed on drop.
pub(crate) struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PrometheusServer {
    pub(crate) fn start(target: std::net::SocketAddr) -> PrometheusServer {
        if Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            panic!(
                "the prometheus binary is missing: scripts/test installs it (Debian package `prometheus`)"
            );
        }
        let dir = std::env::temp_dir().join(format!(
            "faultline-prometheus-it-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: faultline\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        PrometheusServer { child, dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls `path` with `query` until `found` accepts the API's `data`
    /// (60 s at most, to catch a hang; never a timing assertion).
    pub(crate) async fn poll(
        &mut self,
        client: &reqwest::Client,
        path: &str,
        query: &[(&str, String)],
        what: &str,
        found: impl Fn(&Json) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            let url = format!("{}?{}", self.url(path), form(query));
            if let Ok(response) = client.get(url).send().await
                && let Ok(answer) = response.json::<Json>().await
            {
                if answer["status"] == "success" && found(&answer["data"]) {
                    return;
                }
                last = answer.to_string();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let targets = client.get(self.url("/api/v1/targets")).send().await.ok();
        let targets = match targets {
            Some(r) => r.text().await.unwrap_or_default(),
            None => String::new(),
        };
        panic!(
            "Prometheus never showed {what}.\nlast answer: {last}\ntargets: {targets}\nlog:\n{}",
            self.log()
        );
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `application/x-www-form-urlencoded` query parameters.
fn form(pairs: &[(&str, String)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn has_exemplar_for(data: &Json, trace_id: &str) -> bool {
    data.as_array().is_some_and(|series| {
        series.iter().any(|s| {
            s["exemplars"]
                .as_array()
                .is_some_and(|ex| ex.iter().any(|e| e["labels"]["trace_id"] == trace_id))
        })
    })
}

/// What a real Prometheus must find for the error of `trace_id`: the
/// per-trace series by its label, and the exemplar on the error counter and
/// on the latency histogram.
pub(crate) async fn finds_by_trace_id(
    client: &reqwest::Client,
    prometheus: &mut PrometheusServer,
    trace_id: &str,
) {
    let trace_id = trace_id.to_owned();
    // The per-trace series, by its trace_id label.
    let query = format!("faultline_trace_errors_total{{trace_id=\"{trace_id}\"}}");
    prometheus
        .poll(
            client,
            "/api/v1/query",
            &[("query", query)],
            "the per-trace error series",
            |data| {
                data["result"].as_array().is_some_and(|r| {
                    r.iter().any(|s| {
                        s["metric"]["trace_id"] == trace_id.as_str()
                            && s["metric"]["error_code"] == "1001"
                            && s["metric"]["http_route"] == "/users/{id}"
                            && s["value"][1] == "1"
                    })
                })
            },
        )
        .await;

    // Exemplars: on the error counter and on the latency histogram.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let range = |q: &str| {
        vec![
            ("query", q.to_owned()),
            ("start", (now - 3600).to_string()),
            ("end", (now + 3600).to_string()),
        ]
    };
    prometheus
        .poll(
            client,
            "/api/v1/query_exemplars",
            &range("faultline_errors_total{error_code=\"1001\"}"),
            "an exemplar with the trace id on faultline_errors_total",
            |data| has_exemplar_for(data, &trace_id),
        )
        .await;
    prometheus
        .poll(
            client,
            "/api/v1/query_exemplars",
            &range("http_server_request_duration_seconds_bucket{http_route=\"/users/{id}\"}"),
            "an exemplar with the trace id on the latency histogram",
            |data| has_exemplar_for(data, &trace_id),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_finds_the_error_by_trace_id_as_label_and_exemplar() {
    let service = serve(PrometheusConfig::default()).await;
    let client = reqwest::Client::new();
    let trace_id = failing_request(&client, &service).await;
    let mut prometheus = PrometheusServer::start(service.addr);
    finds_by_trace_id(&client, &mut prometheus, &trace_id).await;

    // The scrape itself went through the layer, untraced.
    let ok = |data: &Json| data["result"].as_array().is_some_and(|r| !r.is_empty());
    prometheus
        .poll(
            &client,
            "/api/v1/query",
            &[("query", "up{job=\"faultline\"} == 1".to_owned())],
            "the target up",
            ok,
        )
        .await;
    let page = service
        .prometheus
        .render(None, &faultline::export::ExportStats::default());
    assert!(
        !page.body.contains("http_route=\"/metrics\""),
        "{}",
        page.body
    );
    service.engine.shutdown();
    drop(prometheus);
}

/// The same against the reference service (`examples/service`, set up by
/// `faultline::setup`), as an outside Prometheus meets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_reference_service() {
    let svc = crate::service::Service::start("poem", &[]);
    let client = reqwest::Client::new();
    let response = client.get(svc.url("/users/0")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let problem: Json = response.json().await.unwrap();
    assert_eq!(problem["code"], 1001, "{problem}");
    let trace_id = problem["trace_id"].as_str().expect("trace_id").to_owned();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", svc.port).parse().unwrap();
    let mut prometheus = PrometheusServer::start(addr);
    finds_by_trace_id(&client, &mut prometheus, &trace_id).await;
    drop(prometheus);
    let (ok, _) = svc.stop();
    assert!(ok, "clean exit");
}
