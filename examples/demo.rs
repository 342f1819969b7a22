//! faultline's demo: a few nested spans, one of them failing with an
//! application error, printed by the console exporter, then the RFC 9457
//! problem details a client would receive, with the trace id that leads to
//! the trace.
//!
//! ```text
//! cargo run --example demo
//! OTEL_SERVICE_NAME=my-demo FAULTLINE_CONSOLE_FORMAT=json cargo run --example demo
//! ```
//!
//! Configuration comes from the environment (the standard `OTEL_*`
//! variables and `FAULTLINE_*`), over the demo's defaults (console exporter).

use std::time::Duration;

use faultline::config::{ExporterKind, TracingConfig};
use faultline::error::{AppError, ErrorCode, Severity};
use faultline::exception::Failure;
use http::StatusCode;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};

const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED)
        .with_title("Payment declined")
        .with_severity(Severity::Warning);

fn main() {
    let config = TracingConfig::builder()
        .service_name("faultline-demo")
        .service_version(env!("CARGO_PKG_VERSION"))
        .exporters([ExporterKind::Console])
        .batch(2048, 512, Duration::from_millis(200))
        .with_env()
        .and_then(|b| b.build());
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("faultline-demo: {e}");
            std::process::exit(2);
        }
    };
    let engine = match faultline::setup::engine_builder(config).build() {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("faultline-demo: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "faultline demo: service `{}`, exporting to {:?}\n",
        engine.config().service_name(),
        engine.config().exporters()
    );

    // An incoming request from a caller that is already tracing.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    headers.insert("baggage", http::HeaderValue::from_static("tenant=acme"));

    let cx = engine.start_server_span(
        "POST /checkout",
        vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/checkout"),
            KeyValue::new("url.path", "/checkout"),
            // Secret keys are redacted on the way out, whatever their value.
            KeyValue::new(
                "http.request.header.authorization",
                "Bearer eyJhbGciOi.demo.token",
            ),
            KeyValue::new("app.user.password", "hunter2"),
        ],
        &headers,
    );
    let problem = {
        let _guard = cx.clone().attach();
        let tracer = engine.tracer();

        let mut load = tracer.start("SELECT orders");
        load.set_attribute(KeyValue::new("db.system.name", "postgresql"));
        std::thread::sleep(Duration::from_millis(3));
        load.end();

        let mut charge = tracer.start_with_context("charge card", &Context::current());
        std::thread::sleep(Duration::from_millis(2));
        let err = AppError::new(PAYMENT_DECLINED, "the card issuer declined the payment")
            .with_source(std::io::Error::other("issuer answered 05 (do not honor)"));
        // The failure goes on the server span; the child is marked failed too.
        charge.set_status(opentelemetry::trace::Status::error("declined"));
        charge.end();
        engine.record_failure(&cx, &Failure::error(&err));
        engine.problem_details(&cx, &err).with_instance("/checkout")
    };
    cx.span()
        .set_attribute(KeyValue::new("http.response.status_code", 402));
    cx.span().end();

    engine.force_flush();
    println!(
        "\nproblem details sent to the client ({}):",
        faultline::error::PROBLEM_JSON
    );
    println!("{}", problem.to_json());
    println!(
        "\nthe trace id in the response, {}, is the trace above: the caller's trace, continued.",
        problem.trace_id.as_deref().unwrap_or("-")
    );

    let report = engine.shutdown();
    println!(
        "\nshutdown: {} spans exported, {} failed, in {:?}{}",
        report.stats.spans_exported,
        report.stats.spans_failed,
        report.elapsed,
        if report.is_clean() {
            ""
        } else {
            " (not clean, see errors)"
        }
    );
    for error in &report.errors {
        eprintln!("  export error: {error}");
    }
}
