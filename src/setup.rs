//! One call wires faultline together: configuration from the environment,
//! the engine with the exporters and correlators it names, and what the
//! adapters need.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//!
//! // OTEL_* / FAULTLINE_* / SENTRY_DSN from the environment; exporters,
//! // Prometheus metrics and Sentry as the build's features and the
//! // environment say.
//! let faultline = faultline::setup::init("checkout")?;
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     // traces every request, answers errors as problem+json with the
//!     // trace id, and serves GET /metrics
//!     .layer(faultline.axum_layer());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! axum::serve(listener, app).await?;
//! faultline.shutdown_async().await; // flushes spans and queued Sentry events
//! # Ok(()) }
//! ```
//!
//! What [`init`] (or [`Setup::init`]) does, in order:
//!
//! 1. reads [`TracingConfig`] from the `OTEL_*` and `FAULTLINE_*` variables
//!    over the defaults (and the code's own defaults given through
//!    [`Setup::configure`]); a bad value is an error naming the variable;
//! 2. with the feature `sentry` and `SENTRY_DSN` set: a Sentry client
//!    (`SENTRY_*`, `FAULTLINE_SENTRY_*`) whose events carry the trace
//!    context and pass the engine's masker, bound to the process's main
//!    hub, with a panic hook for panics outside requests;
//! 3. with the feature `prometheus`: the Prometheus correlator
//!    (`FAULTLINE_METRICS_*`), served by the adapters on
//!    `FAULTLINE_METRICS_PATH` (`/metrics`), and the `metrics` crate's
//!    global recorder feeding the same exposition;
//! 4. the engine, with the exporters `OTEL_TRACES_EXPORTER` names (`otlp`,
//!    `jaeger` and `viewer` come from their features; see
//!    [`engine_builder`]) and the log exporters
//!    `OTEL_LOGS_EXPORTER` names (default `otlp`), installed as the
//!    OpenTelemetry global;
//! 5. with the feature `tracing`: the global `tracing` subscriber
//!    ([`Setup::subscriber`] turns it off), filtered by `RUST_LOG` (default
//!    `info`): `tracing` spans and events join the request's trace, log
//!    lines (`FAULTLINE_LOG_FORMAT`: `text` or `json`) carry the trace and
//!    span ids, events become OTLP log records, all masked (see
//!    [`crate::tracing`]).
//!
//! The returned [`Faultline`] hands out the adapter layer of each enabled
//! framework and the traced HTTP client, and shuts everything down, flushing
//! what is pending, when asked or when dropped.

use std::fmt;
use std::sync::Arc;

use faultline_engine::config::{ConfigError, ExporterKind, TracingConfig, TracingConfigBuilder};
use faultline_engine::{Engine, EngineBuilder, EngineError, ShutdownReport};

/// An [`EngineBuilder`] for `config` with
/// the exporter plugins of the enabled features registered under their
/// names, so that the exporters the configuration names
/// (`OTEL_TRACES_EXPORTER`) are found: `otlp` with the feature `otlp`,
/// `jaeger` with the feature `jaeger`, `viewer` with the feature `viewer`;
/// `console` is built into the engine. An application registers its own
/// exporters on the returned builder
/// ([`EngineBuilder::exporter_factory`]). Naming an exporter nobody
/// registered is an error at build time that lists the registered names.
/// The plugins' own settings are read from the process environment
/// (`OTEL_EXPORTER_OTLP_*`, `OTEL_EXPORTER_JAEGER_*`); an invalid one fails
/// the build when its exporter is named. With settings of the code's own,
/// register a plugin on the engine's builder instead
/// (`faultline::otlp::OtlpConfig::register`), or use `Setup::otlp`.
///
/// This is the lower-level half of [`init`]: it registers no correlator.
pub fn engine_builder(config: TracingConfig) -> EngineBuilder {
    let builder = faultline_engine::Engine::builder(config);
    ExporterPlugins::default()
        .with_env_from(&faultline_engine::config::rules::process_env)
        .register(builder)
}

/// The exporter plugins' own settings (each plugin owns its variables),
/// read before the engine is built.
#[derive(Debug, Clone, Default)]
struct ExporterPlugins {
    #[cfg(feature = "otlp")]
    otlp: faultline_otlp::OtlpConfig,
    #[cfg(feature = "jaeger")]
    jaeger: faultline_jaeger::JaegerConfig,
    /// A variable that could not be read, for [`engine_builder`], whose
    /// builder reports it when the plugin is named.
    #[allow(dead_code)]
    errors: Vec<(ExporterKind, ConfigError)>,
}

impl ExporterPlugins {
    /// Each plugin's variables over its settings; an invalid value is kept
    /// in `errors` (see [`first_error`](Self::first_error)).
    #[allow(unused_mut, unused_variables)]
    fn with_env_from(mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        #[cfg(feature = "otlp")]
        match self.otlp.clone().with_env_from(lookup) {
            Ok(otlp) => self.otlp = otlp,
            Err(e) => self.errors.push((ExporterKind::OTLP, e)),
        }
        #[cfg(feature = "jaeger")]
        match self.jaeger.clone().with_env_from(lookup) {
            Ok(jaeger) => self.jaeger = jaeger,
            Err(e) => self.errors.push((ExporterKind::JAEGER, e)),
        }
        self
    }

    /// The first invalid variable, if any.
    fn first_error(&self) -> Option<ConfigError> {
        self.errors.first().map(|(_, e)| e.clone())
    }

    /// Registers the plugins of the enabled features under their names
    /// (a plugin whose settings are invalid fails the engine's build with
    /// the error, when it is named).
    #[allow(unused_mut)]
    fn register(self, mut builder: EngineBuilder) -> EngineBuilder {
        #[cfg(feature = "otlp")]
        {
            builder = self.otlp.register(builder);
        }
        #[cfg(feature = "jaeger")]
        {
            builder = self.jaeger.register(builder);
        }
        for (kind, error) in self.errors {
            let log_error = error.clone();
            if kind == ExporterKind::OTLP {
                builder = builder.log_exporter_factory("otlp", move |_| Err(log_error.into()));
            }
            builder = builder.exporter_factory(kind, move |_| Err(error.into()));
        }
        #[cfg(feature = "viewer")]
        {
            // One viewer (store and listener) for the engine's span and log
            // exporters, started by whichever factory runs first.
            let viewer = faultline_viewer::SharedViewer::new();
            let logs_viewer = viewer.clone();
            builder = builder.exporter_factory(ExporterKind::VIEWER, move |cx| {
                Ok(Box::new(
                    viewer.get_or_start(cx.masker().cloned())?.exporter(),
                ))
            });
            builder = builder.log_exporter_factory("viewer", move |cx| {
                Ok(Box::new(faultline_viewer::ViewerLogExporter::new(
                    logs_viewer.get_or_start(cx.masker().cloned())?,
                )))
            });
        }
        builder
    }
}

/// Sets faultline up for the service `service_name` from the process
/// environment, with everything the build's features offer: see the
/// [module documentation](self). The same as
/// `Setup::new(service_name).init()`.
pub fn init(service_name: &str) -> Result<Faultline, SetupError> {
    Setup::new(service_name).init()
}

/// Why [`Setup::init`] failed: one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A configuration value (from the code or the environment) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine could not start (an exporter is unavailable or failed).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The private metrics listener (`FAULTLINE_METRICS_ADDR`) could not start.
    #[cfg(feature = "prometheus")]
    #[error(transparent)]
    MetricsListener(#[from] faultline_prometheus::MetricsServerError),
}

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The one-call set-up, with its few choices. [`init`] is `Setup::new(name).init()`.
pub struct Setup {
    builder: TracingConfigBuilder,
    lookup: Lookup,
    /// Whether `lookup` reads the process environment (whose `FAULTLINE_*`
    /// names can then be checked for misspellings).
    process_env: bool,
    install_global: bool,
    metrics: bool,
    metrics_recorder: bool,
    sentry: bool,
    panic_hook: bool,
    exporters: Vec<Box<dyn faultline_engine::export::Exporter>>,
    plugins: ExporterPlugins,
    subscriber: bool,
    #[cfg(feature = "tracing")]
    log_writer: Option<(tracing_subscriber::fmt::writer::BoxMakeWriter, bool)>,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("builder", &self.builder)
            .field("install_global", &self.install_global)
            .field("metrics", &self.metrics)
            .field("metrics_recorder", &self.metrics_recorder)
            .field("sentry", &self.sentry)
            .field("panic_hook", &self.panic_hook)
            .field("subscriber", &self.subscriber)
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// A set-up for `service_name` (`OTEL_SERVICE_NAME` still wins, as the
    /// OpenTelemetry specification wants), reading the process environment.
    pub fn new(service_name: &str) -> Self {
        Setup {
            builder: TracingConfig::builder().service_name(service_name),
            lookup: Arc::new(|name: &str| std::env::var(name).ok()),
            process_env: true,
            install_global: true,
            metrics: true,
            metrics_recorder: true,
            sentry: true,
            panic_hook: true,
            exporters: Vec::new(),
            plugins: ExporterPlugins::default(),
            subscriber: true,
            #[cfg(feature = "tracing")]
            log_writer: None,
        }
    }

    /// Whether a global `tracing` subscriber is installed with the feature
    /// `tracing` (default true; only with [`install_global`](Setup::install_global)
    /// on, as every process-wide piece): faultline's spans, events, log
    /// lines and log records, filtered by `RUST_LOG` (see [`crate::tracing`]).
    /// Records of the `log` crate (actix-web's, say) go through it too, when
    /// no `log` logger is set yet. An application with a subscriber of its
    /// own turns this off and adds [`crate::tracing::layers`] to its
    /// registry (and, for `log` records, [`crate::tracing::forward_log`]).
    pub fn subscriber(mut self, install: bool) -> Self {
        self.subscriber = install;
        self
    }

    /// The format of the log lines (`FAULTLINE_LOG_FORMAT` still wins).
    pub fn log_format(self, format: faultline_engine::config::LogFormat) -> Self {
        self.configure(|c| c.log_format(format))
    }

    /// Where the subscriber writes log lines (default standard output) and
    /// whether text lines colour their level.
    #[cfg(feature = "tracing")]
    pub fn log_writer<W>(mut self, writer: W, ansi: bool) -> Self
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_writer = Some((
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(writer),
            ansi,
        ));
        self
    }

    /// Adds an exporter of the application's own, beside those the
    /// configuration names.
    pub fn exporter(mut self, exporter: impl faultline_engine::export::Exporter + 'static) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }

    /// The OTLP exporter's settings (feature `otlp`), before the
    /// environment (`OTEL_EXPORTER_OTLP_*`, which overrides them):
    /// `setup.otlp(OtlpConfig::new().header("x-api-key", key))`.
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, config: faultline_otlp::OtlpConfig) -> Self {
        self.plugins.otlp = config;
        self
    }

    /// The Jaeger exporter's settings (feature `jaeger`), before the
    /// environment (`OTEL_EXPORTER_JAEGER_*`, which overrides them).
    #[cfg(feature = "jaeger")]
    pub fn jaeger(mut self, config: faultline_jaeger::JaegerConfig) -> Self {
        self.plugins.jaeger = config;
        self
    }

    /// The application's own defaults, applied before the environment
    /// (which overrides them): `setup.configure(|c| c.service_version("1.2.0"))`.
    pub fn configure(
        mut self,
        f: impl FnOnce(TracingConfigBuilder) -> TracingConfigBuilder,
    ) -> Self {
        self.builder = f(self.builder);
        self
    }

    /// Reads variables through `lookup` instead of the process environment
    /// (tests, or configuration kept elsewhere).
    pub fn env_from(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.lookup = Arc::new(lookup);
        self.process_env = false;
        self
    }

    /// Whether the engine becomes the OpenTelemetry global (tracer provider
    /// and propagator) and the Sentry client the main hub's (default true;
    /// off for tests that build several).
    pub fn install_global(mut self, install: bool) -> Self {
        self.install_global = install;
        self
    }

    /// Whether the Prometheus correlator is registered when the feature
    /// `prometheus` is on (default true).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Whether the `metrics` crate's global recorder feeds the Prometheus
    /// exposition (default true; only one recorder can be installed per
    /// process, so a second set-up leaves the first one's in place).
    pub fn metrics_recorder(mut self, on: bool) -> Self {
        self.metrics_recorder = on;
        self
    }

    /// Whether Sentry is set up when the feature `sentry` is on and
    /// `SENTRY_DSN` is set (default true).
    pub fn sentry(mut self, on: bool) -> Self {
        self.sentry = on;
        self
    }

    /// Whether panics outside requests are reported to Sentry through a
    /// process-wide panic hook (default true; requests' own panics are
    /// always reported, with their trace context).
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// Reads the configuration and builds everything. Nothing is installed
    /// process-wide unless every part was built.
    pub fn init(self) -> Result<Faultline, SetupError> {
        let lookup = Arc::clone(&self.lookup);
        let config = self
            .builder
            .with_env_from(move |name| lookup(name))?
            .build()?;
        let plugins = self.plugins.with_env_from(&*self.lookup);
        if let Some(error) = plugins.first_error() {
            return Err(error.into());
        }
        let masker = faultline_engine::masking::from_config(&config);
        #[allow(unused_mut)]
        let mut builder = plugins
            .register(faultline_engine::Engine::builder(config))
            .masker(Arc::clone(&masker))
            .install_global(self.install_global);
        for exporter in self.exporters {
            builder = builder.boxed_exporter(exporter);
        }

        #[cfg(feature = "prometheus")]
        let prometheus = if self.metrics {
            let lookup = Arc::clone(&self.lookup);
            let metrics_config =
                faultline_prometheus::PrometheusConfig::with_env_from(move |name| lookup(name))?;
            let prometheus = faultline_prometheus::Prometheus::new(metrics_config)
                .with_masker(Arc::clone(&masker));
            builder = builder.correlator(prometheus.clone());
            Some(prometheus)
        } else {
            None
        };

        #[cfg(feature = "sentry")]
        let sentry = {
            let lookup = Arc::clone(&self.lookup);
            match faultline_sentry::SentryConfig::with_env_from(move |name| lookup(name))? {
                Some(sentry_config) if self.sentry => {
                    let sentry = faultline_sentry::Sentry::new(sentry_config, Arc::clone(&masker))?;
                    builder = builder.correlator(sentry.clone());
                    Some(sentry)
                }
                _ => None,
            }
        };

        let engine = builder.build()?;
        #[allow(unused_mut)]
        let mut subscriber_installed = false;
        #[cfg(feature = "tracing")]
        if self.subscriber && self.install_global {
            subscriber_installed = install_subscriber(&engine, self.log_writer);
        }
        if self.process_env {
            let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
            for (name, hint) in unknown_variables(names) {
                ::tracing::warn!(
                    variable = name.as_str(),
                    "{name} is not a faultline setting and is ignored{hint}"
                );
            }
        }
        #[allow(unused_mut)]
        let mut recorder_installed = false;
        #[cfg(feature = "prometheus")]
        if let (Some(prometheus), true) = (&prometheus, self.metrics_recorder) {
            recorder_installed = prometheus.install_recorder().is_ok();
        }
        // FAULTLINE_METRICS_ADDR: /metrics on a listener of its own (the
        // engine then gives the adapters no metrics path); stopped when the
        // Faultline is shut down or dropped.
        #[cfg(feature = "prometheus")]
        let metrics_server = match (engine.config().metrics_addr(), &prometheus) {
            (Some(addr), Some(_)) => Some(faultline_prometheus::MetricsServer::start(
                addr,
                engine.clone(),
            )?),
            _ => None,
        };
        #[cfg(feature = "sentry")]
        if let Some(sentry) = &sentry {
            if self.install_global {
                sentry.bind_main_hub();
            }
            if self.panic_hook {
                sentry.install_panic_hook();
            }
        }
        Ok(Faultline {
            engine,
            recorder_installed,
            subscriber_installed,
            #[cfg(feature = "prometheus")]
            prometheus,
            #[cfg(feature = "prometheus")]
            metrics_server,
            #[cfg(feature = "sentry")]
            sentry,
        })
    }
}

/// Installs faultline's layers, filtered by `RUST_LOG`, as the global
/// `tracing` subscriber, and forwards `log` records to it; false when the
/// process has a subscriber already.
#[cfg(feature = "tracing")]
fn install_subscriber(
    engine: &Engine,
    writer: Option<(tracing_subscriber::fmt::writer::BoxMakeWriter, bool)>,
) -> bool {
    use tracing_subscriber::layer::SubscriberExt as _;

    let (writer, ansi) = writer.unwrap_or_else(|| {
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        )
    });
    let events = crate::tracing::LogLayer::new(engine)
        .writer(writer)
        .ansi(ansi);
    let (asked, cap) = crate::tracing::default_filters();
    let subscriber = tracing_subscriber::registry()
        .with(asked)
        .with(cap)
        .with(crate::tracing::layers_with(engine, events));
    let installed = ::tracing::subscriber::set_global_default(subscriber).is_ok();
    if installed {
        crate::tracing::forward_log();
    }
    installed
}

/// The `FAULTLINE_*` variables among `names` that no part of faultline
/// reads, each with a hint: the known variable it most likely misspells, or
/// the feature that would read it. A misspelt variable is otherwise
/// silently ignored (`FAULTLINE_TRUST_INCOMING_CONTXT=false` would leave
/// incoming trace context trusted).
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    #[allow(unused_mut)]
    let mut known: Vec<&str> = faultline_engine::config::ENV_VARIABLES.to_vec();
    #[cfg(feature = "prometheus")]
    known.extend_from_slice(faultline_prometheus::ENV_VARIABLES);
    #[cfg(feature = "sentry")]
    known.extend_from_slice(faultline_sentry::ENV_VARIABLES);
    #[cfg(feature = "viewer")]
    known.extend_from_slice(faultline_viewer::ENV_VARIABLES);
    #[cfg(feature = "otlp")]
    known.extend_from_slice(faultline_otlp::ENV_VARIABLES);
    #[cfg(feature = "jaeger")]
    known.extend_from_slice(faultline_jaeger::ENV_VARIABLES);
    let mut unknown: Vec<(String, String)> = names
        .into_iter()
        .filter(|name| name.starts_with("FAULTLINE_") && !known.contains(&name.as_str()))
        // faultline's own benchmarks and tests.
        .filter(|name| {
            !name.starts_with("FAULTLINE_BENCH_") && !name.starts_with("FAULTLINE_TEST_")
        })
        .map(|name| {
            let closest = known
                .iter()
                .filter(|k| k.starts_with("FAULTLINE_"))
                .map(|k| (edit_distance(&name, k), *k))
                .min();
            let hint = match closest {
                Some((distance, k)) if distance <= 3 => format!(" (did you mean {k}?)"),
                _ if cfg!(not(feature = "prometheus"))
                    && name.starts_with("FAULTLINE_METRICS_") =>
                {
                    " (read by the prometheus feature, which is off)".to_owned()
                }
                _ if cfg!(not(feature = "sentry")) && name.starts_with("FAULTLINE_SENTRY_") => {
                    " (read by the sentry feature, which is off)".to_owned()
                }
                _ if cfg!(not(feature = "viewer")) && name.starts_with("FAULTLINE_VIEWER_") => {
                    " (read by the viewer feature, which is off)".to_owned()
                }
                _ => String::new(),
            };
            (name, hint)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Levenshtein distance, in bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// faultline, set up: the engine, its correlators, and the adapters'
/// layers. Dropping it shuts the engine down (flushing pending spans and
/// Sentry events within the configured shutdown timeout); call
/// [`shutdown`](Faultline::shutdown) or
/// [`shutdown_async`](Faultline::shutdown_async) to see the report.
pub struct Faultline {
    engine: Engine,
    recorder_installed: bool,
    subscriber_installed: bool,
    #[cfg(feature = "prometheus")]
    prometheus: Option<faultline_prometheus::Prometheus>,
    /// The private metrics listener, when `FAULTLINE_METRICS_ADDR` is set.
    #[cfg(feature = "prometheus")]
    metrics_server: Option<faultline_prometheus::MetricsServer>,
    #[cfg(feature = "sentry")]
    sentry: Option<faultline_sentry::Sentry>,
}

impl fmt::Debug for Faultline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Faultline");
        d.field("engine", &self.engine);
        #[cfg(feature = "prometheus")]
        d.field("prometheus", &self.prometheus.is_some());
        #[cfg(feature = "sentry")]
        d.field("sentry", &self.sentry.is_some());
        d.field("metrics_recorder", &self.recorder_installed)
            .finish()
    }
}

impl Faultline {
    /// The engine (cheap to clone): its own spans, problem details, flush.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TracingConfig {
        self.engine.config()
    }

    /// The axum layer: `.layer(faultline.axum_layer())` on a `Router`.
    #[cfg(feature = "axum")]
    pub fn axum_layer(&self) -> faultline_axum::FaultlineLayer {
        faultline_axum::FaultlineLayer::new(self.engine.clone())
    }

    /// The tonic server layer:
    /// `tonic::transport::Server::builder().layer(faultline.tonic_layer())`.
    #[cfg(feature = "tonic")]
    pub fn tonic_layer(&self) -> faultline_tonic::FaultlineLayer {
        faultline_tonic::FaultlineLayer::new(self.engine.clone())
    }

    /// The tonic client layer, CLIENT spans for outgoing calls:
    /// `tower::ServiceBuilder::new().layer(faultline.tonic_client_layer()).service(channel)`.
    #[cfg(feature = "tonic")]
    pub fn tonic_client_layer(&self) -> faultline_tonic::ClientLayer {
        faultline_tonic::ClientLayer::new(self.engine.clone())
    }

    /// The poem middleware: `.with(faultline.poem_middleware())` on a `Route`.
    #[cfg(feature = "poem")]
    pub fn poem_middleware(&self) -> faultline_poem::FaultlineMiddleware {
        faultline_poem::FaultlineMiddleware::new(self.engine.clone())
    }

    /// The actix-web middleware: `.wrap(faultline.actix_middleware())` on an
    /// `App` (cheap: clone it into `HttpServer::new`'s factory or call it there).
    #[cfg(feature = "actix")]
    pub fn actix_middleware(&self) -> faultline_actix::FaultlineMiddleware {
        faultline_actix::FaultlineMiddleware::new(self.engine.clone())
    }

    /// A warp filter traced: `faultline.warp(routes).serve(listener).run().await`.
    #[cfg(feature = "warp")]
    pub fn warp<F, R>(&self, filter: F) -> faultline_warp::Traced<F>
    where
        F: faultline_warp::warp::Filter<Extract = (R,), Error = faultline_warp::warp::Rejection>
            + Clone
            + Send
            + Sync
            + 'static,
        R: faultline_warp::warp::Reply + 'static,
    {
        faultline_warp::traced(self.engine.clone(), filter)
    }

    /// An outgoing HTTP client whose requests carry the trace context, each
    /// in its own CLIENT span.
    #[cfg(feature = "reqwest")]
    pub fn http_client(
        &self,
        client: faultline_reqwest::reqwest::Client,
    ) -> faultline_reqwest::reqwest_middleware::ClientWithMiddleware {
        faultline_reqwest::client(&self.engine, client)
    }

    /// The Prometheus correlator, when registered: its registry takes the
    /// application's own series.
    #[cfg(feature = "prometheus")]
    pub fn prometheus(&self) -> Option<&faultline_prometheus::Prometheus> {
        self.prometheus.as_ref()
    }

    /// Where the private metrics listener listens (`FAULTLINE_METRICS_ADDR`,
    /// with the port chosen when it asked for port 0); `None` when the
    /// adapters serve `/metrics` on the application's port.
    #[cfg(feature = "prometheus")]
    pub fn metrics_listener_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server
            .as_ref()
            .map(faultline_prometheus::MetricsServer::local_addr)
    }

    /// Whether the global `tracing` subscriber is this set-up's (not when
    /// turned off, without the feature `tracing`, or when the process had
    /// one already).
    pub fn subscriber_installed(&self) -> bool {
        self.subscriber_installed
    }

    /// Whether the `metrics` crate's global recorder is this set-up's.
    pub fn metrics_recorder_installed(&self) -> bool {
        self.recorder_installed
    }

    /// The Sentry plugin, when `SENTRY_DSN` set it up.
    #[cfg(feature = "sentry")]
    pub fn sentry(&self) -> Option<&faultline_sentry::Sentry> {
        self.sentry.as_ref()
    }

    /// Flushes every pending span and Sentry event and closes the
    /// exporters, within the configured shutdown timeout. Blocking: from
    /// async code use [`shutdown_async`](Faultline::shutdown_async).
    pub fn shutdown(self) -> ShutdownReport {
        self.engine.shutdown()
    }

    /// [`shutdown`](Faultline::shutdown) on tokio's blocking pool.
    pub async fn shutdown_async(self) -> ShutdownReport {
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || engine.shutdown()).await {
            Ok(report) => report,
            // The blocking pool is gone (runtime shutting down): do it here.
            Err(_) => self.engine.shutdown(),
        }
    }
}

impl Drop for Faultline {
    fn drop(&mut self) {
        // Idempotent: after `shutdown` this returns at once.
        let _ = self.engine.shutdown();
    }
}

#[cfg(all(test, feature = "otlp", feature = "jaeger"))]
mod tests {
    use super::*;

    /// The plugins' settings as `engine_builder` reads them, through
    /// `lookup` instead of the process environment.
    fn build(names: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Engine, EngineError> {
        let config = TracingConfig::builder()
            .exporters(names.split(',').map(|n| ExporterKind::named(n.to_owned())))
            .logs_exporters(["none"])
            .build()
            .unwrap();
        ExporterPlugins::default()
            .with_env_from(lookup)
            .register(faultline_engine::Engine::builder(config))
            .install_global(false)
            .build()
    }

    #[test]
    fn a_bad_plugin_variable_fails_the_build_when_its_exporter_is_named() {
        let bad =
            |name: &str| (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".to_owned());
        let error = build("otlp", &bad).unwrap_err();
        let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_PROTOCOL: invalid value"),
            "{text}"
        );
        // Not named: the engine starts; the Jaeger plugin's variable is its own.
        build("jaeger", &bad).unwrap().shutdown();
        let bad_port =
            |name: &str| (name == "OTEL_EXPORTER_JAEGER_AGENT_PORT").then(|| "0".to_owned());
        let error = build("jaeger", &bad_port).unwrap_err();
        let text = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(text.contains("OTEL_EXPORTER_JAEGER_AGENT_PORT"), "{text}");
        build("otlp", &bad_port).unwrap().shutdown();
    }
}
