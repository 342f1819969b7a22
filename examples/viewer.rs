//! faultline's trace viewer on its own: a local trace backend for services
//! in any language. It serves the page and accepts OTLP/HTTP on one address.
//!
//! ```text
//! cargo run --example viewer
//! # then point any OpenTelemetry SDK at it:
//! OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:16686 ./your-service
//! ```
//!
//! The configuration comes from the environment like every example's:
//! `FAULTLINE_VIEWER_ADDR` (default `127.0.0.1:16686`; port 0 picks a free
//! one), `FAULTLINE_VIEWER_TOKEN` (required for a non-loopback address),
//! `FAULTLINE_VIEWER_MAX_BYTES`, and the masking settings
//! (`FAULTLINE_PII_*`, `FAULTLINE_SECRET_KEYS`, ...): what it receives is
//! masked as faultline masks its own spans. It prints the page's address,
//! then serves until Ctrl-C or SIGTERM (then it stops and exits with
//! status 0). A bad setting prints one line naming it on
//! standard error and exits with status 2.

use faultline::config::TracingConfig;
use faultline::viewer::{Viewer, ViewerConfig};

/// One line on standard error, exit status 2.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("viewer: {message}");
    std::process::exit(2);
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_requested() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tracing = TracingConfig::from_env().unwrap_or_else(|e| fail(e));
    let config = ViewerConfig::from_env().unwrap_or_else(|e| fail(e));
    let viewer = Viewer::start(config, Some(faultline::masking::from_config(&tracing)))
        .unwrap_or_else(|e| fail(e));
    println!("faultline viewer: {}", viewer.url());
    println!(
        "  OTLP/HTTP: {}v1/traces and {}v1/logs (protobuf or JSON)",
        viewer.url(),
        viewer.url()
    );
    if let Err(e) = stop_requested().await {
        fail(format!("cannot wait for Ctrl-C or SIGTERM: {e}"));
    }
    viewer.stop();
}
