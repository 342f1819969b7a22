//! The one-call set-up (`faultline::setup`): configuration from the
//! environment, engine, exporters, Prometheus and Sentry wired together.

use std::collections::HashMap;

use axum::Router;
use axum::routing::get;
use faultline::axum::Error;
use faultline::error::{AppError, ErrorCode, Severity};
use faultline::export::InMemoryExporter;
use faultline::setup::Setup;
use http::StatusCode;

use crate::sentry::{events, start_fake_sentry, wait_for_events};

const CHARGE_FAILED: ErrorCode =
    ErrorCode::new(6001, "CHARGE_FAILED", StatusCode::BAD_GATEWAY).with_severity(Severity::Error);

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// A set-up that leaves nothing process-wide behind (tests run in parallel).
fn local(pairs: &[(&str, &str)]) -> Setup {
    Setup::new("setup-test")
        .env_from(env(pairs))
        .install_global(false)
        .metrics_recorder(false)
        .panic_hook(false)
}

async fn charge() -> Result<&'static str, Error> {
    Err(AppError::new(
        CHARGE_FAILED,
        "card 4111 1111 1111 1111 of jane.roe@example.com declined",
    )
    .into())
}

#[test]
fn one_call_wires_tracing_metrics_and_sentry_from_the_environment() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (sentry_port, log) = start_fake_sentry().await;
        let dsn = format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{sentry_port}/77");
        let spans = InMemoryExporter::default();
        let faultline = local(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("SENTRY_DSN", &dsn),
            ("FAULTLINE_METRICS_PATH", "/internal/metrics"),
        ])
        .exporter(spans.clone())
        .init()
        .expect("set-up");
        assert!(faultline.prometheus().is_some());
        assert!(faultline.sentry().is_some());
        assert_eq!(faultline.engine().metrics_path(), Some("/internal/metrics"));
        assert!(!faultline.metrics_recorder_installed());

        let app = Router::new()
            .route("/charge", get(charge))
            .layer(faultline.axum_layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

        // The error: problem+json with the trace id, masked.
        let r = client.get(url("/charge")).send().await.unwrap();
        assert_eq!(r.status(), 502);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["code"], 6001);
        let trace_id = problem["trace_id"].as_str().unwrap().to_owned();
        assert!(
            !problem.to_string().contains("jane.roe@example.com"),
            "{problem}"
        );

        // The metrics, on the configured path only.
        let metrics = client
            .get(url("/internal/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("faultline_trace_errors_total{") && l.contains(&trace_id)),
            "{metrics}"
        );
        let r = client.get(url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 404, "the default path is not served when moved");

        // Shutting down flushes the spans and the Sentry event.
        let report = faultline.shutdown_async().await;
        assert!(!report.already_shut_down);
        assert!(
            spans
                .spans()
                .iter()
                .any(|s| s.span_context.trace_id().to_string() == trace_id
                    && s.name == "GET /charge"),
            "the server span was exported"
        );
        let sent = wait_for_events(&log, "77", 1);
        let event = sent
            .iter()
            .find(|e| e["contexts"]["trace"]["trace_id"] == trace_id.as_str())
            .unwrap_or_else(|| panic!("no Sentry event for {trace_id}: {sent:#?}"));
        assert_eq!(event["tags"]["error.code"], "6001", "{event:#}");
        let raw = serde_json::to_string(&events(&log, "77")).unwrap();
        assert!(!raw.contains("jane.roe@example.com") && !raw.contains("4111 1111 1111 1111"));
    });
}

#[test]
fn without_a_dsn_there_is_no_sentry_and_metrics_can_be_left_out() {
    let faultline = local(&[("OTEL_TRACES_EXPORTER", "none")])
        .metrics(false)
        .init()
        .unwrap();
    assert!(faultline.sentry().is_none());
    assert!(faultline.prometheus().is_none());
    assert_eq!(faultline.engine().metrics_path(), None);
    assert_eq!(faultline.config().service_name(), "setup-test");

    // The environment wins over the code's name, as OpenTelemetry wants.
    let faultline = local(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_SERVICE_NAME", "from-env"),
    ])
    .init()
    .unwrap();
    assert_eq!(faultline.config().service_name(), "from-env");
    assert_eq!(faultline.engine().metrics_path(), Some("/metrics"));
}

#[test]
fn a_bad_variable_stops_the_set_up_with_its_name_and_no_secret() {
    for (var, value) in [
        ("OTEL_TRACES_EXPORTER", "zip kin"),
        ("OTEL_SERVICE_NAME", "no spaces allowed"),
        ("FAULTLINE_METRICS_PATH", "metrics"),
        ("FAULTLINE_METRICS_TRACE_ID_SERIES", "lots"),
        ("FAULTLINE_SENTRY_MIN_SEVERITY", "loud"),
        ("SENTRY_DSN", "https://secretkey0123@"),
    ] {
        let mut pairs = vec![(var, value)];
        if var != "OTEL_TRACES_EXPORTER" {
            pairs.push(("OTEL_TRACES_EXPORTER", "none"));
        }
        if var == "FAULTLINE_SENTRY_MIN_SEVERITY" {
            pairs.push(("SENTRY_DSN", "http://abc@127.0.0.1:9/1"));
        }
        let err = local(&pairs).init().expect_err(var).to_string();
        assert!(err.starts_with(var), "{var}={value}: {err}");
        assert!(!err.contains("secretkey0123"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A well-formed name nobody registered: one line naming the variable
    // and the registered exporters.
    let err = local(&[("OTEL_TRACES_EXPORTER", "zipkin")])
        .init()
        .expect_err("zipkin")
        .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`zipkin`") && err.contains("OTEL_TRACES_EXPORTER"),
        "{err}"
    );
    assert!(
        err.contains("(registered: console, jaeger, otlp, viewer)"),
        "{err}"
    );
}

/// A `FAULTLINE_*` variable no part of faultline reads is named, with the
/// variable it most likely misspells; known ones and faultline's own
/// benchmark variables are not.
#[test]
fn unknown_faultline_variables_are_named_with_the_likely_intended_one() {
    let names = [
        "FAULTLINE_TRUST_INCOMING_CONTXT",
        "FAULTLINE_TRUST_INCOMING_CONTEXT",
        "FAULTLINE_METRICS_EXEMPLAR",
        "FAULTLINE_SENTRY_MIN_SEVERITY",
        "FAULTLINE_BOGUS",
        "FAULTLINE_BENCH_COUNT",
        "OTEL_SERVICE_NAME",
        "PATH",
    ]
    .map(String::from);
    let unknown = faultline::setup::unknown_variables(names);
    assert_eq!(
        unknown,
        [
            ("FAULTLINE_BOGUS".to_owned(), String::new()),
            (
                "FAULTLINE_METRICS_EXEMPLAR".to_owned(),
                " (did you mean FAULTLINE_METRICS_EXEMPLARS?)".to_owned()
            ),
            (
                "FAULTLINE_TRUST_INCOMING_CONTXT".to_owned(),
                " (did you mean FAULTLINE_TRUST_INCOMING_CONTEXT?)".to_owned()
            ),
        ]
    );
}

/// The variables named in README.md's configuration table (the section
/// `### Configuration`), with its shorthands expanded: `_AGENT_PORT` after
/// `OTEL_EXPORTER_JAEGER_AGENT_HOST` in the same row,
/// `OTEL_EXPORTER_OTLP_[TRACES_\|LOGS_]{ENDPOINT,PROTOCOL}`.
fn readme_configuration_variables(known: &[&str]) -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(crate::peers::root().join("README.md")).unwrap();
    let table = readme
        .split("### Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a configuration section");
    let mut named = std::collections::BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with('|')) {
        let spans: Vec<&str> = row.split('`').skip(1).step_by(2).collect();
        let mut first: Option<String> = None;
        for span in spans {
            let span = span.replace("\\|", "|");
            let upper = |s: &str| s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            let is_name = |s: &str| {
                ["OTEL_", "FAULTLINE_", "SENTRY_", "RUST_LOG"]
                    .iter()
                    .any(|p| s.starts_with(p))
            };
            if let Some((head, rest)) = span.split_once('{').filter(|(h, _)| is_name(h)) {
                // PREFIX_[A_|B_]{X,Y}
                let names = rest.trim_end_matches('}').split(',');
                let (prefix, options) = match head.split_once('[') {
                    Some((p, o)) => (p, o.trim_end_matches(']').split('|').collect()),
                    None => (head, vec![]),
                };
                let mut options: Vec<&str> = options;
                options.push("");
                for name in names {
                    for option in &options {
                        named.insert(format!("{prefix}{option}{name}"));
                    }
                }
            } else if is_name(&span) && upper(&span) {
                first.get_or_insert_with(|| span.clone());
                named.insert(span);
            } else if span.starts_with('_') && upper(&span) {
                // A shorthand: the first full name's longest prefix that
                // makes a known variable.
                let first = first
                    .as_deref()
                    .expect("a shorthand follows a full name in its row");
                let parts: Vec<&str> = first.split('_').collect();
                let full = (1..=parts.len())
                    .rev()
                    .map(|n| format!("{}{span}", parts[..n].join("_")))
                    .find(|candidate| known.contains(&candidate.as_str()))
                    .unwrap_or_else(|| panic!("{span} in `{row}` expands to no known variable"));
                named.insert(full);
            }
        }
    }
    named
}

/// README.md's configuration table and the variables faultline reads (the
/// engine's and every plugin's) are the same list: a variable added to the
/// code without its row, or a row for a variable nobody reads, fails here.
#[test]
fn the_readme_configuration_table_names_every_variable_and_no_other() {
    let mut known: Vec<&str> = faultline::config::ENV_VARIABLES.to_vec();
    for plugin in [
        faultline::otlp::ENV_VARIABLES,
        faultline::jaeger::ENV_VARIABLES,
        faultline::sentry::ENV_VARIABLES,
        faultline::prometheus::ENV_VARIABLES,
        faultline::viewer::ENV_VARIABLES,
    ] {
        known.extend_from_slice(plugin);
    }
    known.push("RUST_LOG");
    let named = readme_configuration_variables(&known);
    let known: std::collections::BTreeSet<String> = known.iter().map(|v| (*v).to_owned()).collect();
    let missing: Vec<&String> = known.difference(&named).collect();
    let unknown: Vec<&String> = named.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's configuration table: missing {missing:?}, not read by faultline {unknown:?}"
    );
}
