//! docs/METRICS.md names every series the plugin exposes: a live scrape,
//! with every kind of observation the plugin records, is checked against
//! the guide, and every metric name the plugin's code declares must show
//! up in that scrape (so a new family cannot hide from this test by not
//! being observed here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Prometheus, PrometheusConfig};
use faultline_engine::Engine;
use faultline_engine::config::TracingConfig;
use faultline_engine::correlate::{
    Correlator, FailureKind, RequestError, RequestOutcome, RpcOutcome,
};
use faultline_engine::error::{ErrorCode, Severity};
use faultline_engine::export::{ExportStats, ExporterStats};
use opentelemetry::trace::{SpanId, TraceId};

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn outcome<'a>(n: u128, route: &'a str, error: Option<RequestError<'a>>) -> RequestOutcome<'a> {
    let status = if error.is_some() { 404 } else { 200 };
    let mut o = RequestOutcome::new(
        TraceId::from(n),
        SpanId::from(n as u64),
        true,
        "GET",
        route,
        status,
        Duration::from_millis(30),
    );
    o.error = error;
    o
}

/// A page with every family the plugin can expose: a request, an error,
/// an RPC, the export pipeline's counters for one exporter, and the
/// resource an engine hands over.
fn full_scrape() -> String {
    let prometheus = Prometheus::new(PrometheusConfig::default());
    let config = TracingConfig::builder()
        .service_name("documented")
        .exporters([])
        .build()
        .expect("a valid configuration");
    let engine = Engine::builder(config)
        .correlator(prometheus.clone())
        .install_global(false)
        .build()
        .expect("an engine without exporters");
    prometheus.on_request_end(&outcome(1, "/hello", None));
    let mut error = RequestError::new(FailureKind::Error, Severity::Warning, "AppError", "no user");
    error.code = Some(USER_NOT_FOUND);
    prometheus.on_request_end(&outcome(2, "/users/{id}", Some(error)));
    prometheus.on_rpc_end(&RpcOutcome::new(
        outcome(3, "helloworld.Greeter/SayHello", None),
        "grpc",
        "helloworld.Greeter/SayHello",
        "OK",
    ));
    let mut otlp = ExporterStats::default();
    otlp.name = "otlp".into();
    otlp.delivered = 3;
    let mut stats = ExportStats::default();
    stats.spans_ended = 4;
    stats.spans_received = 3;
    stats.exporters = vec![otlp];
    stats.logs.records_queued = 2;
    let mut logs = ExporterStats::default();
    logs.name = "otlp".into();
    logs.delivered = 2;
    stats.logs.exporters = vec![logs];
    let page = prometheus.render(None, &stats).body;
    engine.shutdown();
    page
}

/// The family names the page declares (`# TYPE <name> <type>`).
fn families(page: &str) -> Vec<&str> {
    page.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect()
}

/// The string literals of the plugin's non-test code that are metric names
/// (`faultline_*`, `target_info`, `*_seconds`).
fn declared_names() -> Vec<String> {
    let mut names = Vec::new();
    let src = crate_dir().join("src");
    for entry in std::fs::read_dir(&src).expect("the plugin's src/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        // Every `"name"` whose characters are lower-case letters and `_`
        // (quotes are not paired up: escaped quotes and '"' would skew that).
        for (start, _) in code.match_indices('"') {
            let rest = &code[start + 1..];
            let len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            let literal = &rest[..len];
            let is_metric = rest[len..].starts_with('"')
                && (literal
                    .strip_prefix("faultline_")
                    .is_some_and(|r| !r.is_empty())
                    || literal == "target_info"
                    || literal.ends_with("_seconds"));
            if is_metric {
                names.push(literal.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_series_of_a_scrape_is_named_in_the_metrics_guide() {
    let guide_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/METRICS.md");
    let guide = std::fs::read_to_string(&guide_path).expect("docs/METRICS.md");
    let page = full_scrape();
    let families = families(&page);
    for expected in [
        "http_server_request_duration_seconds",
        "faultline_errors_total",
        "rpc_server_call_duration_seconds",
        "faultline_export_spans_ended_total",
        "faultline_span_limits_cut_total",
        "target_info",
    ] {
        assert!(
            families.contains(&expected),
            "{expected} not scraped:\n{page}"
        );
    }
    let missing: Vec<&str> = families
        .iter()
        .copied()
        .filter(|name| !guide.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "series the plugin exposes that docs/METRICS.md does not name: {missing:?}"
    );
}

#[test]
fn every_metric_name_in_the_plugins_code_is_in_the_scrape() {
    let page = full_scrape();
    let families = families(&page);
    let declared = declared_names();
    assert!(declared.len() >= 20, "{declared:?}");
    let unscraped: Vec<&String> = declared
        .iter()
        .filter(|name| !families.iter().any(|f| f.starts_with(name.as_str())))
        .collect();
    assert!(
        unscraped.is_empty(),
        "declared in plugins/prometheus/src but not produced by full_scrape() (observe it there, and document it): {unscraped:?}"
    );
}
