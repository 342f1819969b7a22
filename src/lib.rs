//! # faultline
//!
//! Distributed tracing for Rust web services that engineers trust in
//! production: every request traced across services with OpenTelemetry,
//! every error tied to its trace id, personal data masked before anything
//! leaves the process.
//!
//! Add one dependency, `faultline`, with the features you need: `axum`,
//! `poem`, `warp`, `actix`, `tonic` (adapters), `reqwest` (outgoing calls), `tracing` (`tracing` spans, events and log lines with trace ids, OTLP logs), `otlp`, `jaeger` (exporters), `sentry`,
//! `prometheus` (correlation), `viewer` (a trace viewer in the browser), or `full`.
//!
//! ```
//! use faultline::config::{ExporterKind, TracingConfig};
//! use faultline::Engine;
//!
//! // Defaults, then the standard OTEL_* and FAULTLINE_* variables.
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([ExporterKind::CONSOLE])
//!     .build()?;
//! let engine = Engine::builder(config).install_global(false).build()?;
//! // ... serve requests through an adapter ...
//! let report = engine.shutdown();
//! assert!(!report.already_shut_down);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

pub use faultline_engine::*;

pub mod setup;

/// The actix-web adapter (feature `actix`).
#[cfg(feature = "actix")]
pub use faultline_actix as actix;
/// The axum adapter (feature `axum`).
#[cfg(feature = "axum")]
pub use faultline_axum as axum;
/// The Jaeger exporter (feature `jaeger`).
#[cfg(feature = "jaeger")]
pub use faultline_jaeger as jaeger;
#[cfg(feature = "tracing")]
pub mod tracing;
/// The OTLP exporter (feature `otlp`).
#[cfg(feature = "otlp")]
pub use faultline_otlp as otlp;
/// The poem adapter (feature `poem`).
#[cfg(feature = "poem")]
pub use faultline_poem as poem;
/// The Prometheus correlator (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub use faultline_prometheus as prometheus;
/// The outbound reqwest integration (feature `reqwest`).
#[cfg(feature = "reqwest")]
pub use faultline_reqwest as reqwest;
/// The Sentry correlator (feature `sentry`).
#[cfg(feature = "sentry")]
pub use faultline_sentry as sentry;
/// The gRPC adapter for tonic servers and clients (feature `tonic`).
#[cfg(feature = "tonic")]
pub use faultline_tonic as tonic;
/// The built-in trace viewer and OTLP/HTTP receiver (feature `viewer`).
#[cfg(feature = "viewer")]
pub use faultline_viewer as viewer;
/// The warp adapter (feature `warp`).
#[cfg(feature = "warp")]
pub use faultline_warp as warp;

/// The Rust blocks of README.md and of every guide in docs/, compiled by
/// `cargo test --doc` (and run, unless marked `no_run`): one item per file,
/// whose documentation is the file. README.md is not the crate's
/// documentation because its links to docs/ and its screenshot are relative
/// to the repository and would be dead on docs.rs.
macro_rules! compiled_guides {
    ($($item:ident: $path:literal),* $(,)?) => {
        $(
            #[cfg(doctest)]
            #[doc = include_str!(concat!("../", $path))]
            pub struct $item;
        )*

        /// Every guide in docs/ is listed in `compiled_guides!` (a guide
        /// added without its line fails here, so its examples cannot go
        /// uncompiled), linked from README.md's guide list and named in its
        /// layout.
        ///
        /// ```
        #[doc = concat!("let listed = [", $("\"", $path, "\", ",)* "];")]
        /// let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        /// let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        /// let layout = &readme[readme.find("## Layout").unwrap()..];
        /// let (mut uncompiled, mut unlinked) = (Vec::new(), Vec::new());
        /// for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        ///     let name = entry.unwrap().file_name().into_string().unwrap();
        ///     let path = format!("docs/{name}");
        ///     if !name.ends_with(".md") {
        ///         continue;
        ///     }
        ///     if !listed.contains(&path.as_str()) {
        ///         uncompiled.push(path.clone());
        ///     }
        ///     if !readme.contains(&format!("]({path})")) || !layout.contains(&name) {
        ///         unlinked.push(path);
        ///     }
        /// }
        /// assert!(uncompiled.is_empty(), "add to compiled_guides! in src/lib.rs: {uncompiled:?}");
        /// assert!(unlinked.is_empty(), "add to README.md's guides and layout: {unlinked:?}");
        /// ```
        #[cfg(doctest)]
        pub struct EveryGuideCompiled;
    };
}

compiled_guides! {
    Readme: "README.md",
    BenchmarksGuide: "docs/BENCHMARKS.md",
    DashboardsGuide: "docs/DASHBOARDS.md",
    ErrorsGuide: "docs/ERRORS.md",
    ExportersGuide: "docs/EXPORTERS.md",
    GettingStartedGuide: "docs/GETTING_STARTED.md",
    LogsGuide: "docs/LOGS.md",
    MetricsGuide: "docs/METRICS.md",
    PiiMaskingGuide: "docs/PII_MASKING.md",
    PropagationGuide: "docs/PROPAGATION.md",
    ReliabilityGuide: "docs/RELIABILITY.md",
    SamplingGuide: "docs/SAMPLING.md",
    SentryGuide: "docs/SENTRY.md",
    TestingGuide: "docs/TESTING.md",
    TroubleshootingGuide: "docs/TROUBLESHOOTING.md",
    TuningGuide: "docs/TUNING.md",
    ViewerGuide: "docs/VIEWER.md",
}
