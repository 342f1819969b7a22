//! What operators load (`deploy/`), checked against real tools: the alert
//! rules by `promtool check rules` and `promtool test rules`, and every query
//! of the Grafana dashboard by a real Prometheus (Debian package
//! `prometheus`, exemplar storage on) scraping the reference service under
//! traffic while the service exports its spans over OTLP to the receiver on
//! the official protobufs. Every query must return data, and every trace id
//! Prometheus hands out (exemplars, the recent-errors table) must be a trace
//! the receiver got.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use crate::otlp::Receiver;
use crate::peers::root;
use crate::prometheus::PrometheusServer;
use crate::service::Service;

const DASHBOARD: &str = "deploy/grafana/faultline.json";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERTS_TEST: &str = "deploy/prometheus/alerts_test.yml";

/// The fixed window that stands for Grafana's interval variables.
const WINDOW: &str = "1m";

/// Runs promtool from the workspace root; fails with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): scripts/test installs it (Debian package `prometheus`)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", ALERTS]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", ALERTS_TEST]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Each alert the issue asks for exists and is unit-tested.
    let rules = std::fs::read_to_string(root().join(ALERTS)).unwrap();
    let tests = std::fs::read_to_string(root().join(ALERTS_TEST)).unwrap();
    for alert in [
        "FaultlineErrorCodeRateHigh",
        "FaultlineSpansDropped",
        "FaultlineExportFailing",
        "FaultlineExportBufferFilling",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} missing"
        );
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} not tested"
        );
    }
}

fn dashboard() -> Json {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// One query of the dashboard.
#[derive(Debug, Clone)]
struct Query {
    panel: String,
    expr: String,
    exemplar: bool,
}

/// Every `expr` in the dashboard, wherever it sits (panels, rows, nested
/// panels), with the title of the panel that holds it.
fn queries(dashboard: &Json) -> Vec<Query> {
    fn walk(value: &Json, panel: &str, out: &mut Vec<Query>) {
        match value {
            Json::Object(map) => {
                let panel = map
                    .get("title")
                    .and_then(Json::as_str)
                    .unwrap_or(panel)
                    .to_owned();
                if let Some(expr) = map.get("expr").and_then(Json::as_str) {
                    out.push(Query {
                        panel: panel.clone(),
                        expr: expr.to_owned(),
                        exemplar: map.get("exemplar") == Some(&Json::Bool(true)),
                    });
                }
                for (key, v) in map {
                    if key != "templating" {
                        walk(v, &panel, out);
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|v| walk(v, panel, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "", &mut out);
    out
}

/// `expr` with Grafana's interval variables replaced by [`WINDOW`] and the
/// dashboard's variables by `vars`; fails on any variable left over.
fn concrete(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = expr.to_owned();
    for interval in ["__rate_interval", "__interval", "__range"] {
        out = out
            .replace(&format!("${{{interval}}}"), WINDOW)
            .replace(&format!("${interval}"), WINDOW);
    }
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "a variable is left in {out:?}");
    out
}

/// A regular expression (in a PromQL string) that matches `value` exactly.
fn promql_regex_literal(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\\\{c}")
            }
        })
        .collect()
}

#[test]
fn the_dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(
        d["uid"], "faultline",
        "the alert annotations link to /d/faultline"
    );
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "{}",
        d["schemaVersion"]
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["job", "instance"] {
        assert_eq!(var(name)["type"], "query");
        assert_eq!(var(name)["allValue"], ".*");
        let definition = var(name)["definition"].as_str().unwrap();
        assert!(
            definition.starts_with("label_values(") && definition.ends_with(&format!(", {name})")),
            "{definition}"
        );
    }
    let trace_url = var("trace_url");
    assert_eq!(trace_url["type"], "custom");
    let options: Vec<&str> = trace_url["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert!(
        options.iter().any(|o| o.contains(":16686/trace/")),
        "no Jaeger option: {options:?}"
    );
    assert!(
        options.iter().any(|o| o.contains(":3200/api/traces/")),
        "no Tempo option: {options:?}"
    );
    for option in &options {
        assert!(
            trace_url["query"].as_str().unwrap().contains(option),
            "option {option} is not in the variable's query"
        );
    }

    // Every panel with queries reads the datasource variable, and every
    // query filters on job and instance.
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id");
        if let Some(targets) = panel["targets"].as_array() {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{}",
                    panel["title"]
                );
            }
        }
    }
    let all = queries(&d);
    assert!(all.len() >= 10, "{all:?}");
    for q in &all {
        assert!(
            q.expr.contains("job=~\"$job\"") && q.expr.contains("instance=~\"$instance\""),
            "{}: {} does not filter on $job and $instance",
            q.panel,
            q.expr
        );
    }

    // The trace id links (recent errors, exemplars) go through $trace_url.
    let text = d.to_string();
    let links = text
        .matches("\"url\":\"${trace_url}${__value.raw}\"")
        .count();
    assert!(links >= 3, "{links} trace links");
    let exemplar_panels: BTreeSet<&str> = all
        .iter()
        .filter(|q| q.exemplar)
        .map(|q| q.panel.as_str())
        .collect();
    for title in &exemplar_panels {
        let panel = panels.iter().find(|p| p["title"] == *title).unwrap();
        assert!(
            panel["fieldConfig"]["overrides"]
                .to_string()
                .contains("${trace_url}${__value.raw}"),
            "{title}: exemplars without a trace link"
        );
    }
}

/// Requests of every kind, round after round, until `stop`: successes,
/// 404s with code 1001, a declined checkout (402, code 2001), a panic (500,
/// code 5000) and a downstream call. Returns the trace ids of the errors.
async fn traffic(base: String, stop: Arc<AtomicBool>, errors: Arc<Mutex<Vec<String>>>) {
    let client = reqwest::Client::new();
    let problem = |json: Json, code: u64| {
        assert_eq!(json["code"], code, "{json}");
        json["trace_id"].as_str().expect("trace_id").to_owned()
    };
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for path in ["/hello", "/hello", "/users/7", "/downstream"] {
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
        let r = client
            .get(format!("{base}/users/{}", 5000 + round))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let id = problem(r.json().await.unwrap(), 1001);
        errors.lock().unwrap().push(id);
        let r = client
            .post(format!("{base}/checkout"))
            .json(&json!({"email": "bob@example.com", "phone": "+1 415 555 0100", "card": "4111 1111 1111 1111"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402);
        let id = problem(r.json().await.unwrap(), 2001);
        errors.lock().unwrap().push(id);
        let r = client.get(format!("{base}/panic")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let id = problem(r.json().await.unwrap(), 5000);
        errors.lock().unwrap().push(id);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The trace ids that carry a label `trace_id` in an API answer's `data`
/// (query results and exemplars alike).
fn trace_ids(data: &Json, into: &mut BTreeSet<String>) {
    match data {
        Json::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("trace_id", Json::String(id)) => {
                        into.insert(id.clone());
                    }
                    _ => trace_ids(v, into),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| trace_ids(v, into)),
        _ => {}
    }
}

/// Whether an instant query's result holds at least one finite number.
fn has_number(data: &Json) -> bool {
    let values: Vec<&Json> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|r| r.iter().map(|s| &s["value"][1]).collect())
            .unwrap_or_default(),
        Some("scalar") => vec![&data["result"][1]],
        _ => Vec::new(),
    };
    values.iter().any(|v| {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

/// Waits until the receiver got a span of every trace in `wanted` (60 s at
/// most, to catch a hang); fails naming the ones it never got.
fn assert_received(receiver: &Receiver, wanted: &BTreeSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received: BTreeSet<String> = receiver
            .requests()
            .iter()
            .filter(|r| r["rejected"] == false)
            .flat_map(|r| r["spans"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s["trace_id"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<&String> = wanted.difference(&received).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the OTLP receiver never got the traces {missing:?} ({} traces received)",
            received.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let receiver = Receiver::start(&[]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let service = Service::start(
        "axum",
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "dashboards-it"),
        ],
    );
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", service.port).parse().unwrap();
    let mut prometheus = PrometheusServer::start(target);

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let load = tokio::spawn(traffic(service.url(""), stop.clone(), errors.clone()));
    // A few seconds of traffic (a few scrapes) before the first query; the
    // traffic goes on while the queries run.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let client = reqwest::Client::new();
    let instance = target.to_string();
    let instance_regex = promql_regex_literal(&instance);
    let vars = [("job", "faultline"), ("instance", instance_regex.as_str())];
    let d = dashboard();

    // The job and instance variables list this target.
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let definition = concrete(v["definition"].as_str().unwrap(), &vars);
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not label_values(..): {definition}"));
        let (selector, label) = inner.rsplit_once(", ").unwrap();
        let expected = if label == "job" {
            "faultline"
        } else {
            instance.as_str()
        };
        prometheus
            .poll(
                &client,
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", selector.to_owned())],
                &format!("the values of variable {} ({definition})", v["name"]),
                |data| {
                    data.as_array()
                        .is_some_and(|values| values.iter().any(|x| x == expected))
                },
            )
            .await;
    }

    // Every query of every panel returns data.
    let all = queries(&d);
    let mut from_queries = BTreeSet::new();
    for q in &all {
        let expr = concrete(&q.expr, &vars);
        let answer = Mutex::new(Json::Null);
        prometheus
            .poll(
                &client,
                "/api/v1/query",
                &[("query", expr.clone())],
                &format!("data for panel {:?}: {expr}", q.panel),
                |data| {
                    *answer.lock().unwrap() = data.clone();
                    has_number(data)
                },
            )
            .await;
        trace_ids(&answer.lock().unwrap(), &mut from_queries);
    }
    // The recent-errors table lists trace ids, and the error responses' ones among them.
    assert!(!from_queries.is_empty(), "no query returned a trace id");
    let handed_out: BTreeSet<String> = errors.lock().unwrap().iter().cloned().collect();
    assert!(
        from_queries.iter().any(|id| handed_out.contains(id)),
        "none of {from_queries:?} was in an error response"
    );

    // The exemplar queries return trace ids: the latency histogram's and the
    // error counter's.
    let exemplar_queries: Vec<&Query> = all.iter().filter(|q| q.exemplar).collect();
    for metric in [
        "http_server_request_duration_seconds_bucket",
        "faultline_errors_total",
    ] {
        assert!(
            exemplar_queries.iter().any(|q| q.expr.contains(metric)),
            "no panel shows the exemplars of {metric}"
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut from_exemplars = BTreeSet::new();
    for q in &exemplar_queries {
        let expr = concrete(&q.expr, &vars);
        let answer = Mutex::new(Json::Null);
        prometheus
            .poll(
                &client,
                "/api/v1/query_exemplars",
                &[
                    ("query", expr.clone()),
                    ("start", (now - 600).to_string()),
                    ("end", (now + 600).to_string()),
                ],
                &format!("exemplars for panel {:?}: {expr}", q.panel),
                |data| {
                    *answer.lock().unwrap() = data.clone();
                    let mut ids = BTreeSet::new();
                    trace_ids(data, &mut ids);
                    !ids.is_empty()
                },
            )
            .await;
        let mut ids = BTreeSet::new();
        trace_ids(&answer.lock().unwrap(), &mut ids);
        for id in &ids {
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
        }
        from_exemplars.extend(ids);
    }

    stop.store(true, Ordering::Relaxed);
    load.await.expect("the traffic saw an unexpected response");

    // Every trace id Prometheus hands out leads to a trace the receiver got.
    assert_received(&receiver, &from_exemplars, "exemplars");
    assert_received(&receiver, &from_queries, "the recent-errors table");
    drop(prometheus);
    drop(service);
}
