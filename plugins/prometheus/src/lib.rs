//! faultline's Prometheus plugin: request and error metrics tied to traces.
//!
//! [`Prometheus`] is a [`Correlator`]: registered with the engine, it hears
//! every finished request and keeps
//!
//! * `http_server_request_duration_seconds`, a latency histogram by
//!   `http_request_method`, `http_route` and `http_response_status_code`
//!   (its `_count` is the request count);
//! * `faultline_errors_total`, application errors by `error_code`,
//!   `error_name` and `http_route` (panics count with code 5000);
//! * `faultline_trace_errors_total`, one series per failed request with
//!   `trace_id` and `span_id` labels, bounded and expiring
//!   ([`PrometheusConfig::trace_id_series`]);
//! * the export pipeline's counters (`faultline_export_*`, per exporter).
//!
//! The adapters answer `GET /metrics` with [`Prometheus::render`]: OpenMetrics
//! text, whose exemplars carry the `trace_id` and `span_id` of a request on
//! the latency histogram and the error counter, when the scraper asks for
//! `application/openmetrics-text` (Prometheus does); the Prometheus text
//! format 0.0.4 otherwise. `docs/METRICS.md` describes every series.
//!
//! ```
//! use faultline_engine::Engine;
//! use faultline_engine::config::TracingConfig;
//! use faultline_prometheus::{Prometheus, PrometheusConfig};
//!
//! let prometheus = Prometheus::new(PrometheusConfig::from_env()?);
//! // `metrics::counter!(..)` in the application lands on the same /metrics.
//! # let _ = prometheus.recorder();
//! // prometheus.install_recorder()?;
//! let config = TracingConfig::builder().service_name("checkout").exporters([]).build()?;
//! let engine = Engine::builder(config)
//!     .correlator(prometheus.clone())
//!     .install_global(false)
//!     .build()?;
//! // ... serve through an adapter: GET /metrics is answered by the layer ...
//! let scrape = engine.render_metrics(Some("application/openmetrics-text")).unwrap();
//! assert_eq!(scrape.content_type, faultline_prometheus::OPENMETRICS_CONTENT_TYPE);
//! assert!(scrape.body.contains("faultline_export_spans_received_total 0\n"));
//! assert!(scrape.body.ends_with("# EOF\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `prometheus` rather than on this crate.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

mod config;
mod exposition;
mod handles;
mod labels;
mod recorder;
mod rpc;
mod server;
mod traces;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use faultline_engine::correlate::{
    Correlator, Exposition, FailureKind, RequestOutcome, RpcOutcome,
};
use faultline_engine::error::codes;
use faultline_engine::export::ExportStats;
use faultline_engine::masking::{Masker, PiiMasker};
use prometheus_client::collector::Collector;
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::registry::{Metric, Registry};

pub use faultline_engine as engine;
pub use prometheus_client;

pub use config::{
    DEFAULT_BUCKETS, DEFAULT_TRACE_ID_SERIES, DEFAULT_TRACE_ID_TTL, ENV_BUCKETS, ENV_EXEMPLARS,
    ENV_TRACE_ID_SERIES, ENV_TRACE_ID_TTL_SECS, ENV_VARIABLES, MAX_BUCKETS, MAX_TRACE_ID_SERIES,
    MAX_TRACE_ID_TTL, PrometheusConfig,
};
pub use exposition::{Format, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
pub use labels::{MAX_ROUTES, OTHER_METHOD, OTHER_ROUTE, UNMATCHED_ROUTE};
pub use recorder::PrometheusRecorder;
pub use rpc::RPC_DURATION;
pub use server::{MetricsServer, MetricsServerError};

use exposition::{ExportCollector, TargetInfo};
use labels::{ErrorLabels, RequestLabels, Routes, TraceExemplar};
use recorder::{UserCollector, UserMetrics};
use traces::{Clock, SystemClock, TraceKey, TraceSeries, TraceSeriesCollector};

/// The latency histogram's name (OpenTelemetry's `http.server.request.duration`).
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// The error counter's name (`_total` is added in the exposition).
pub const ERRORS: &str = "faultline_errors";
/// The per-trace error counter's name (`_total` is added in the exposition).
pub const TRACE_ERRORS: &str = traces::TRACE_ERRORS;

/// Names of faultline's own families (as registered; counters without
/// `_total`); the `metrics` recorder leaves them alone.
const RESERVED: &[&str] = &[
    REQUEST_DURATION,
    ERRORS,
    RPC_DURATION,
    exposition::TARGET_INFO,
];

/// Makes a latency histogram with the configured buckets.
#[derive(Debug, Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<HistogramWithExemplars<TraceExemplar>> for Buckets {
    fn new_metric(&self) -> HistogramWithExemplars<TraceExemplar> {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

type DurationFamily = Family<RequestLabels, HistogramWithExemplars<TraceExemplar>, Buckets>;
type ErrorFamily = Family<ErrorLabels, CounterWithExemplar<TraceExemplar>>;

#[derive(Debug)]
struct Inner {
    config: PrometheusConfig,
    registry: Mutex<Registry>,
    durations: DurationFamily,
    rpc_durations: rpc::RpcDurationFamily,
    errors: ErrorFamily,
    traces: Arc<TraceSeries>,
    export_stats: Arc<Mutex<ExportStats>>,
    routes: Routes,
    user: Arc<UserMetrics>,
    /// The engine's resource as `target_info`.
    target_info: TargetInfo,
    /// Keys this correlator's series in the per-thread memo (`handles`).
    owner: u64,
}

/// The Prometheus correlator and exposition: cheap to clone (one `Arc`),
/// `Send + Sync`.
///
/// ```
/// use faultline_prometheus::{Prometheus, PrometheusConfig};
/// use prometheus_client::metrics::counter::Counter;
///
/// let prometheus = Prometheus::new(PrometheusConfig::default());
/// // The application's own prometheus-client metrics, on the same page.
/// let jobs: Counter = Counter::default();
/// prometheus.register("app_jobs", "Jobs run.", jobs.clone());
/// jobs.inc();
/// let page = prometheus.render(Some("application/openmetrics-text"), &Default::default());
/// assert!(page.body.contains("app_jobs_total 1\n"));
/// assert!(page.body.ends_with("# EOF\n"));
/// ```
#[derive(Debug, Clone)]
pub struct Prometheus {
    inner: Arc<Inner>,
}

impl Prometheus {
    /// A correlator with `config`. Never fails: settings made with the
    /// setters and not [validated](PrometheusConfig::validate) are brought
    /// within their bounds (bad buckets fall back to [`DEFAULT_BUCKETS`]).
    /// Label values from the `metrics` recorder are masked by the engine's
    /// default [`PiiMasker`] until [`with_masker`](Self::with_masker).
    pub fn new(config: PrometheusConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    fn with_clock(config: PrometheusConfig, clock: Arc<dyn Clock>) -> Self {
        let config = sanitize(config);
        let buckets = Buckets(config.bucket_bounds().into());
        let durations: DurationFamily = Family::new_with_constructor(buckets.clone());
        let rpc_durations: rpc::RpcDurationFamily = Family::new_with_constructor(buckets);
        let errors = ErrorFamily::default();
        let traces = Arc::new(TraceSeries::new(
            config.trace_id_series_limit(),
            config.trace_id_ttl_duration(),
            clock,
        ));
        let export_stats = Arc::new(Mutex::new(ExportStats::default()));
        let user = Arc::new(UserMetrics::new(
            Arc::new(PiiMasker::default()),
            config.bucket_bounds().to_vec(),
            RESERVED,
        ));
        let mut registry = Registry::default();
        registry.register(
            REQUEST_DURATION,
            "Duration of HTTP server requests, in seconds (OpenTelemetry http.server.request.duration); exemplars carry trace_id and span_id",
            durations.clone(),
        );
        rpc::register(&mut registry, &rpc_durations);
        registry.register(
            ERRORS,
            "Application errors by error code and route (panics count as code 5000); exemplars carry trace_id and span_id",
            errors.clone(),
        );
        registry.register_collector(Box::new(TraceSeriesCollector(traces.clone())));
        registry.register_collector(Box::new(ExportCollector {
            stats: export_stats.clone(),
        }));
        registry.register_collector(Box::new(UserCollector(user.clone())));
        let target_info = TargetInfo::default();
        registry.register_collector(Box::new(TargetInfo {
            labels: target_info.labels.clone(),
        }));
        Prometheus {
            inner: Arc::new(Inner {
                config,
                registry: Mutex::new(registry),
                durations,
                rpc_durations,
                errors,
                traces,
                export_stats,
                routes: Routes::new(),
                user,
                target_info,
                owner: handles::new_owner(),
            }),
        }
    }

    /// Masks label values that come from the application through the
    /// `metrics` recorder with `masker` (use the engine's:
    /// `faultline_engine::masking::from_config(&config)`). faultline's own
    /// labels (method, route template, status, codes, ids) hold no user
    /// data.
    pub fn with_masker(self, masker: Arc<dyn Masker>) -> Self {
        self.inner.user.set_masker(masker);
        self
    }

    /// The configuration in force (after [`new`](Self::new) brought it
    /// within bounds).
    pub fn config(&self) -> &PrometheusConfig {
        &self.inner.config
    }

    /// Registers one of the application's own prometheus-client metrics on
    /// the same exposition (`name` without `_total` for a counter).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    /// Registers a prometheus-client [`Collector`] (metrics computed at
    /// scrape time) on the same exposition.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry().register_collector(collector);
    }

    /// The prometheus-client registry behind the exposition, locked (for
    /// sub-registries, units, prefixes). Do not hold it across a scrape:
    /// rendering waits for it.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A [`metrics`] recorder feeding this exposition, for
    /// `metrics::set_global_recorder` or `metrics::with_local_recorder`.
    pub fn recorder(&self) -> PrometheusRecorder {
        PrometheusRecorder {
            metrics: self.inner.user.clone(),
        }
    }

    /// Installs [`recorder`](Self::recorder) as the process's global
    /// `metrics` recorder, so that `metrics::counter!(..)`, `gauge!(..)` and
    /// `histogram!(..)` anywhere in the application appear on this
    /// `/metrics`. Fails when a global recorder is already installed.
    pub fn install_recorder(&self) -> Result<(), metrics::SetRecorderError<PrometheusRecorder>> {
        metrics::set_global_recorder(self.recorder())
    }

    /// Renders every series for one scrape, in the format `accept` asks for
    /// (see [`Format::negotiate`]); `stats` are the export pipeline's
    /// counters (the engine passes them; `ExportStats::default()` without
    /// an engine).
    pub fn render(&self, accept: Option<&str>, stats: &ExportStats) -> Exposition {
        self.render_format(Format::negotiate(accept), stats)
    }

    /// Renders every series in `format`.
    pub fn render_format(&self, format: Format, stats: &ExportStats) -> Exposition {
        let mut openmetrics = String::with_capacity(4096);
        {
            let registry = self.registry();
            *self
                .inner
                .export_stats
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = stats.clone();
            // Writing into a String cannot fail; an encoder error would
            // mean a bug in a collector: serve what was written.
            let _ = prometheus_client::encoding::text::encode(&mut openmetrics, &registry);
        }
        let body = match format {
            Format::OpenMetrics => {
                if !openmetrics.ends_with("# EOF\n") {
                    openmetrics.push_str("# EOF\n");
                }
                openmetrics
            }
            Format::PrometheusText => exposition::openmetrics_to_text(&openmetrics),
        };
        Exposition::new(format.content_type(), body)
    }
}

/// Brings hand-set values within bounds.
fn sanitize(config: PrometheusConfig) -> PrometheusConfig {
    let limit = config.trace_id_series_limit().min(MAX_TRACE_ID_SERIES);
    let ttl = config
        .trace_id_ttl_duration()
        .clamp(std::time::Duration::from_secs(1), MAX_TRACE_ID_TTL);
    let mut buckets: Vec<f64> = config
        .bucket_bounds()
        .iter()
        .copied()
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    buckets.sort_by(f64::total_cmp);
    buckets.dedup();
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        buckets = DEFAULT_BUCKETS.to_vec();
    }
    config
        .trace_id_series(limit)
        .trace_id_ttl(ttl)
        .buckets(buckets)
}

impl Prometheus {
    /// The exemplar of a finished request and its time, when exemplars are
    /// on. Only a trace that is exported may be pointed at: an exemplar with
    /// the id of a trace that was not sampled would lead nowhere.
    fn exemplar(
        &self,
        outcome: &RequestOutcome<'_>,
    ) -> (Option<TraceExemplar>, Option<SystemTime>) {
        if !(self.inner.config.exemplars_enabled() && outcome.sampled) {
            return (None, None);
        }
        let exemplar = TraceExemplar {
            trace_id: outcome.trace_id,
            span_id: outcome.span_id,
        };
        (Some(exemplar), Some(SystemTime::now()))
    }

    /// Counts a failed request's error (`faultline_errors_total`, and its
    /// per-trace series when the trace is exported).
    fn count_error(
        &self,
        outcome: &RequestOutcome<'_>,
        exemplar: Option<TraceExemplar>,
        now: Option<SystemTime>,
    ) {
        let inner = &*self.inner;
        let traced = outcome.sampled;
        let Some(error) = &outcome.error else {
            return;
        };
        let route = inner.routes.intern(outcome.route);
        let code = match (error.kind, error.code) {
            (FailureKind::Panic, _) | (_, None) => codes::INTERNAL,
            (_, Some(code)) => code,
        };
        inner
            .errors
            .get_or_create(&ErrorLabels {
                code: code.code(),
                name: code.name(),
                route: route.clone(),
            })
            .inc_by(1, exemplar, now);
        // The per-trace series names a trace: only one that is exported.
        if !traced {
            return;
        }
        inner.traces.record(TraceKey {
            code: code.code(),
            name: code.name(),
            route,
            trace_id: outcome.trace_id,
            span_id: outcome.span_id,
        });
    }
}

impl Correlator for Prometheus {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        let inner = &*self.inner;
        let (exemplar, now) = self.exemplar(outcome);
        let method = labels::method(outcome.method);
        handles::with_duration(
            inner.owner,
            method,
            outcome.status,
            outcome.route,
            || {
                inner
                    .durations
                    .get_or_create(&RequestLabels {
                        method,
                        route: inner.routes.intern(outcome.route),
                        status: outcome.status,
                    })
                    .clone()
            },
            |histogram| histogram.observe(outcome.duration.as_secs_f64(), exemplar.clone(), now),
        );
        self.count_error(outcome, exemplar, now);
    }

    fn on_rpc_end(&self, outcome: &RpcOutcome<'_>) {
        rpc::observe(self, outcome);
    }

    fn serves_metrics(&self) -> bool {
        true
    }

    fn render_metrics(&self, accept: Option<&str>, stats: &ExportStats) -> Option<Exposition> {
        Some(self.render(accept, stats))
    }

    fn set_resource(&self, resource: &faultline_engine::opentelemetry_sdk::Resource) {
        self.inner.target_info.set(resource);
    }
}

#[cfg(test)]
mod tests;

// docs/METRICS.md names every series the plugin exposes.
#[cfg(test)]
mod documented;
