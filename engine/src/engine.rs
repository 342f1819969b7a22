//! The [`Engine`]: the OpenTelemetry SDK set up from a [`TracingConfig`],
//! with the five plugin points filled.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanLimits,
};

use crate::carrier::{Carrier, CarrierMut};
use crate::config::{ExporterKind, PropagatorKind, TracingConfig};
use crate::correlate::{Correlator, Exposition, RequestOutcome};
use crate::error::{AppError, ErrorCode, ProblemDetails};
use crate::exception::{DefaultExceptionRecorder, ExceptionRecorder, Failure};
use crate::export::keep::{KeepCounters, KeepErrorsProcessor, KeepErrorsSampler};
use crate::export::logs::LogQueue;
use crate::export::pipeline::{
    ExportPipeline, LogSetup, PipelineControl, QUEUE_BYTES_FLOOR, QueueGate, StatsCell,
};
use crate::export::{
    ConsoleExporter, ConsoleLogExporter, ExportError, ExportStats, Exporter, LogExportStats,
    LogExporter, LogExporterFactory, LogRecord,
};
use crate::masking::Masker;
use crate::propagation::{self, Propagator};

/// The instrumentation scope name of spans the engine starts.
pub const SCOPE_NAME: &str = "faultline";

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration names an exporter that nobody registered.
    #[error(
        "exporter `{kind}` (named by OTEL_TRACES_EXPORTER or the configuration) is not registered (registered: {}): build the engine with `faultline::setup::engine_builder(config)`, which registers the exporters of the faultline features turned on (`otlp`, `jaeger`, `viewer`: each is the feature of that name), or register it with `EngineBuilder::exporter_factory(ExporterKind::named(\"{kind}\"), ..)`",
        join_names(.registered)
    )]
    ExporterUnavailable {
        /// The exporter.
        kind: ExporterKind,
        /// The exporters that were registered (the built-in `console` included).
        registered: Vec<ExporterKind>,
    },
    /// The configuration names a propagator that is neither built in nor
    /// registered ([`EngineBuilder::register_propagator`]).
    #[error(
        "propagator `{kind}` (named by OTEL_PROPAGATORS or the configuration) is not registered (registered: {}): register it with `EngineBuilder::register_propagator(PropagatorKind::named(\"{kind}\"), ..)`",
        join_names(.registered)
    )]
    PropagatorUnavailable {
        /// The propagator's name.
        kind: PropagatorKind,
        /// The propagators known: the built-in ones and those registered.
        registered: Vec<PropagatorKind>,
    },
    /// An exporter plugin failed to start.
    #[error("exporter `{kind}` could not start: {source}")]
    ExporterInit {
        /// The exporter.
        kind: ExporterKind,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The configuration names a log exporter that nothing registered.
    #[error(
        "OTEL_LOGS_EXPORTER: unknown log exporter `{name}` (registered: {registered}); enable its faultline feature or register it with EngineBuilder::log_exporter_factory"
    )]
    LogExporterUnknown {
        /// The name configured.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// A log exporter plugin failed to start.
    #[error("log exporter `{name}` could not start: {source}")]
    LogExporterInit {
        /// The exporter's name.
        name: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The export thread could not be started.
    #[error("cannot start the export thread: {0}")]
    Thread(#[from] std::io::Error),
    /// `OTEL_TRACES_SAMPLER` names a sampler that is neither standard nor
    /// registered ([`EngineBuilder::register_sampler`]).
    #[error("OTEL_TRACES_SAMPLER: unknown sampler {name:?}: known samplers are {}", known.join(", "))]
    UnknownSampler {
        /// The name asked for.
        name: String,
        /// The standard names and the registered ones.
        known: Vec<String>,
    },
    /// A registered sampler refused its argument (`OTEL_TRACES_SAMPLER_ARG`).
    #[error("OTEL_TRACES_SAMPLER_ARG: sampler `{name}` cannot start: {source}")]
    SamplerInit {
        /// The sampler's name.
        name: String,
        /// Why (the factory's error).
        #[source]
        source: BoxError,
    },
}

/// `names`, comma-separated, for an error's one line.
fn join_names(names: &[impl std::fmt::Display]) -> String {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// An error of a plugin's own, kept whole as the source of the engine's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What an exporter's factory is given: the configuration and the engine's
/// masker.
#[derive(Debug)]
#[non_exhaustive]
pub struct ExporterContext<'a> {
    config: &'a TracingConfig,
    masker: Option<&'a Arc<dyn Masker>>,
}

impl<'a> ExporterContext<'a> {
    /// The engine's configuration.
    pub fn config(&self) -> &'a TracingConfig {
        self.config
    }
    /// The masker the export pipeline applies to every span before an
    /// exporter sees it, `None` when masking is off. An exporter that also
    /// takes data from elsewhere (a receiver) masks it with this one.
    pub fn masker(&self) -> Option<&'a Arc<dyn Masker>> {
        self.masker
    }
}

/// Makes an exporter when the configuration names it (how plugins, and
/// applications' own exporters, register themselves under a name).
pub type ExporterFactory =
    Box<dyn FnOnce(&ExporterContext<'_>) -> Result<Box<dyn Exporter>, BoxError> + Send>;

/// Makes a registered sampler from `OTEL_TRACES_SAMPLER_ARG` (how samplers
/// of the application's own are chosen by name).
pub type SamplerFactory =
    Box<dyn FnOnce(Option<&str>) -> Result<Box<dyn ShouldSample>, BoxError> + Send>;

/// What [`Engine::shutdown`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// True when an earlier call had already shut the engine down (this call did nothing).
    pub already_shut_down: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// Whether the deadline passed before everything was flushed.
    pub timed_out: bool,
    /// Errors reported while flushing and closing the exporters.
    pub errors: Vec<ShutdownError>,
    /// The export counters at the end.
    pub stats: ExportStats,
}

/// One thing that went wrong while the engine shut down (an entry of
/// [`ShutdownReport::errors`]); each names the exporter it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// An export failed: a batch rejected, or the last failure of a batch
    /// still undelivered at the deadline, or the exporter's own shutdown.
    #[error("{exporter}: {source}")]
    Export {
        /// The exporter's name.
        exporter: String,
        /// What it returned.
        #[source]
        source: ExportError,
    },
    /// Spans (or log records) were still waiting at the deadline and are lost.
    #[error("{exporter}: {count} {unit} not delivered before the shutdown deadline")]
    Undelivered {
        /// The exporter's name.
        exporter: String,
        /// How many.
        count: usize,
        /// `spans` or `log records`.
        unit: &'static str,
    },
    /// The exporter panicked while closing.
    #[error("{exporter}: the exporter panicked on shutdown")]
    Panicked {
        /// The exporter's name.
        exporter: String,
    },
    /// The exporter did not close before the deadline.
    #[error("{exporter}: shutdown timed out")]
    TimedOut {
        /// The exporter's name.
        exporter: String,
    },
    /// The OpenTelemetry SDK's tracer provider failed to shut down.
    #[error(transparent)]
    Provider(#[from] opentelemetry_sdk::error::OTelSdkError),
}

impl ShutdownReport {
    /// True when every span handed to the pipeline was delivered by every
    /// exporter and no error occurred.
    pub fn is_clean(&self) -> bool {
        !self.timed_out
            && self.errors.is_empty()
            && self.stats.spans_failed == 0
            && self.stats.spans_buffered == 0
            && self.stats.spans_exported == self.stats.spans_received
    }
}

/// Registers plugins and builds an [`Engine`].
///
/// ```
/// use faultline_engine::{Engine, config::{TracingConfig, ExporterKind}};
///
/// let config = TracingConfig::builder().service_name("demo").exporters([ExporterKind::CONSOLE]).build()?;
/// let engine = Engine::builder(config).install_global(false).build()?;
/// assert_eq!(engine.config().service_name(), "demo");
/// engine.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EngineBuilder {
    config: TracingConfig,
    propagator: Option<Arc<dyn Propagator>>,
    propagators: BTreeMap<PropagatorKind, Arc<dyn Propagator>>,
    masker: Option<Arc<dyn Masker>>,
    recorder: Option<Arc<dyn ExceptionRecorder>>,
    exporters: Vec<Box<dyn Exporter>>,
    factories: BTreeMap<ExporterKind, ExporterFactory>,
    log_exporters: Vec<Box<dyn LogExporter>>,
    log_factories: BTreeMap<String, LogExporterFactory>,
    correlators: Vec<Arc<dyn Correlator>>,
    install_global: bool,
    sampler: Option<Box<dyn ShouldSample>>,
    samplers: BTreeMap<String, SamplerFactory>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .field("exporters", &self.exporters)
            .field("factories", &self.factories.keys().collect::<Vec<_>>())
            .field("propagators", &self.propagators.keys().collect::<Vec<_>>())
            .field(
                "log_factories",
                &self.log_factories.keys().collect::<Vec<_>>(),
            )
            .field("correlators", &self.correlators)
            .field("sampler", &self.sampler)
            .field("samplers", &self.samplers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EngineBuilder {
    /// Samples with `sampler` (the OpenTelemetry SDK's [`ShouldSample`]),
    /// whatever `OTEL_TRACES_SAMPLER` says. Error keeping and slow keeping
    /// still apply on top: a request it leaves out is exported after all
    /// when it ends in an error or is slow.
    pub fn sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }
    /// Registers a sampler under `name` (lowercase letters, digits and `_`),
    /// chosen when `OTEL_TRACES_SAMPLER=name`; `factory` receives
    /// `OTEL_TRACES_SAMPLER_ARG` and may refuse it (the engine then does not
    /// start). The last registration of a name wins; the six standard names
    /// always mean the standard samplers.
    ///
    /// ```
    /// use faultline_engine::{Engine, config::{ExporterKind, TracingConfig}};
    /// use faultline_engine::opentelemetry_sdk::trace::Sampler;
    ///
    /// let config = TracingConfig::builder()
    ///     .exporters([ExporterKind::CONSOLE])
    ///     .with_env_from(|name| match name {
    ///         "OTEL_TRACES_SAMPLER" => Some("half".to_owned()),
    ///         _ => None,
    ///     })?
    ///     .build()?;
    /// let engine = Engine::builder(config)
    ///     .register_sampler("half", |_arg| Ok(Sampler::TraceIdRatioBased(0.5)))
    ///     .install_global(false)
    ///     .build()?;
    /// engine.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_sampler<S: ShouldSample + 'static>(
        mut self,
        name: &str,
        factory: impl FnOnce(Option<&str>) -> Result<S, BoxError> + Send + 'static,
    ) -> Self {
        self.samplers.insert(
            name.to_ascii_lowercase(),
            Box::new(move |arg| factory(arg).map(|s| Box::new(s) as Box<dyn ShouldSample>)),
        );
        self
    }
    /// Replaces the propagator (default: the configuration's propagators,
    /// W3C Trace Context then W3C Baggage unless `OTEL_PROPAGATORS` says
    /// otherwise); the configuration's names are then not used.
    pub fn propagator(mut self, propagator: impl Propagator + 'static) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }
    /// Registers `propagator` under the name `kind`, used when the
    /// configuration names it (`OTEL_PROPAGATORS=tracecontext,mine`), in the
    /// order the names are given. `tracecontext`, `baggage`, `b3`, `b3multi`
    /// and `jaeger` are built in; registering one of those names replaces
    /// the built-in one, and the last registration of a name wins. Naming a
    /// propagator that is neither fails the build with one line listing the
    /// known names.
    ///
    /// ```
    /// use faultline_engine::{Engine, config::{ExporterKind, PropagatorKind, TracingConfig}};
    /// use faultline_engine::propagation::b3::{B3Encoding, B3Propagator};
    ///
    /// let config = TracingConfig::builder()
    ///     .exporters([ExporterKind::CONSOLE])
    ///     .with_env_from(|name| match name {
    ///         "OTEL_PROPAGATORS" => Some("tracecontext,edge".to_owned()),
    ///         _ => None,
    ///     })?
    ///     .build()?;
    /// let engine = Engine::builder(config)
    ///     .register_propagator(PropagatorKind::named("edge"), B3Propagator::new(B3Encoding::Single))
    ///     .install_global(false)
    ///     .build()?;
    /// assert_eq!(engine.propagator().fields()[..2], ["traceparent", "tracestate"]);
    /// engine.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_propagator(
        mut self,
        kind: PropagatorKind,
        propagator: impl Propagator + 'static,
    ) -> Self {
        self.propagators.insert(kind, Arc::new(propagator));
        self
    }
    /// Replaces the masker (default: [`PiiMasker`](crate::masking::PiiMasker) from the configuration;
    /// none when the configuration turns masking off).
    pub fn masker(mut self, masker: impl Masker + 'static) -> Self {
        self.masker = Some(Arc::new(masker));
        self
    }
    /// Replaces the exception recorder (default: [`DefaultExceptionRecorder`]).
    pub fn exception_recorder(mut self, recorder: impl ExceptionRecorder + 'static) -> Self {
        self.recorder = Some(Arc::new(recorder));
        self
    }
    /// Adds an exporter, beside those the configuration names.
    pub fn exporter(mut self, exporter: impl Exporter + 'static) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }
    /// Adds an exporter already boxed.
    pub fn boxed_exporter(mut self, exporter: Box<dyn Exporter>) -> Self {
        self.exporters.push(exporter);
        self
    }
    /// Registers the exporter `kind` under its name, made by `factory` when the
    /// configuration names it (`OTEL_TRACES_EXPORTER=otlp,mine`); plugins and
    /// applications' own exporters alike. The last registration for a name
    /// wins; `console` is registered from the start.
    ///
    /// ```
    /// use faultline_engine::{Engine, config::{ExporterKind, TracingConfig}};
    /// use faultline_engine::export::NoneExporter;
    ///
    /// let config = TracingConfig::builder().exporters([ExporterKind::named("mine")]).build()?;
    /// let engine = Engine::builder(config)
    ///     .exporter_factory(ExporterKind::named("mine"), |_cx| Ok(Box::new(NoneExporter)))
    ///     .install_global(false)
    ///     .build()?;
    /// engine.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exporter_factory(
        mut self,
        kind: ExporterKind,
        factory: impl FnOnce(&ExporterContext<'_>) -> Result<Box<dyn Exporter>, BoxError>
        + Send
        + 'static,
    ) -> Self {
        self.factories.insert(kind, Box::new(factory));
        self
    }
    /// Adds a log exporter, beside those the configuration names.
    pub fn log_exporter(mut self, exporter: impl LogExporter + 'static) -> Self {
        self.log_exporters.push(Box::new(exporter));
        self
    }
    /// Registers the log exporter `name` (lowercase: `otlp`, `viewer`, an
    /// application's own), made by `factory` when the configuration names
    /// it (`OTEL_LOGS_EXPORTER`). `console` and `none` are built in; the
    /// last registration for a name wins (a registered `console` replaces
    /// the built-in one). Naming an unregistered exporter fails the build
    /// with one line listing the registered names.
    pub fn log_exporter_factory(
        mut self,
        name: &str,
        factory: impl FnOnce(&ExporterContext<'_>) -> Result<Box<dyn LogExporter>, BoxError>
        + Send
        + 'static,
    ) -> Self {
        self.log_factories
            .insert(name.trim().to_ascii_lowercase(), Box::new(factory));
        self
    }
    /// Adds a correlator.
    pub fn correlator(mut self, correlator: impl Correlator + 'static) -> Self {
        self.correlators.push(Arc::new(correlator));
        self
    }
    /// Whether `build` makes this engine's tracer provider and propagator the
    /// OpenTelemetry globals (default true), so that spans made through
    /// `opentelemetry::global` (by the application or by libraries) take the
    /// same masked export path. When several engines are built, the last one
    /// built with this on is the global one.
    pub fn install_global(mut self, install: bool) -> Self {
        self.install_global = install;
        self
    }

    /// Builds the engine: the resource, the sampler, the batch span processor
    /// and the export pipeline, with every exporter the configuration names
    /// plus those added. Building several engines is safe: each has its own
    /// pipeline and export thread.
    pub fn build(self) -> Result<Engine, EngineError> {
        let EngineBuilder {
            config,
            propagator,
            propagators,
            masker,
            recorder,
            mut exporters,
            mut factories,
            mut log_exporters,
            mut log_factories,
            correlators,
            install_global,
            sampler,
            mut samplers,
        } = self;

        let sampler = match sampler {
            Some(sampler) => sampler,
            None => build_sampler(&config, &mut samplers)?,
        };
        // A propagator replaced whole makes the configuration's names moot;
        // otherwise each is found (or the build stops) before anything starts.
        // A propagator of the application's own may read any header: only
        // the built-in ones are known to read a fixed list.
        let (propagator, read_headers): (Arc<dyn Propagator>, _) = match propagator {
            Some(propagator) => (propagator, None),
            None => {
                let (composite, read) = propagation::resolve(config.propagators(), &propagators)
                    .map_err(|e| EngineError::PropagatorUnavailable {
                        kind: e.kind,
                        registered: e.known,
                    })?;
                (Arc::new(composite), read)
            }
        };
        let resource = crate::resource::build(&config);
        let masker: Arc<dyn Masker> =
            masker.unwrap_or_else(|| crate::masking::from_config(&config));
        let stats = Arc::new(StatsCell::default());
        let keep_counters = Arc::new(KeepCounters::default());
        let last_errors = Arc::new(Mutex::new(Vec::new()));

        let mut control = None;
        let log_stats = Arc::new(StatsCell::default());
        let mut log_queue = None;
        let provider = if config.enabled() {
            // Every name is checked before any exporter starts.
            if let Some(kind) = config
                .exporters()
                .iter()
                .find(|k| !factories.contains_key(*k))
            {
                return Err(EngineError::ExporterUnavailable {
                    kind: kind.clone(),
                    registered: factories.into_keys().collect(),
                });
            }
            let cx = ExporterContext {
                config: &config,
                masker: config.pii_masking().then_some(&masker),
            };
            let logs = config.logs();
            for name in logs.exporters() {
                let exporter: Box<dyn LogExporter> =
                    match (log_factories.remove(name), name.as_str()) {
                        (Some(factory), _) => {
                            factory(&cx).map_err(|source| EngineError::LogExporterInit {
                                name: name.clone(),
                                source,
                            })?
                        }
                        (None, "console") => Box::new(ConsoleLogExporter::stdout()),
                        // The default `otlp` without the OTLP plugin: no log export.
                        (None, "otlp") if !logs.exporters_chosen() => continue,
                        (None, _) => {
                            let mut registered: Vec<&str> = log_factories
                                .keys()
                                .map(String::as_str)
                                .chain(["console", "none"])
                                .collect();
                            registered.sort_unstable();
                            registered.dedup();
                            return Err(EngineError::LogExporterUnknown {
                                name: name.clone(),
                                registered: registered.join(", "),
                            });
                        }
                    };
                log_exporters.push(exporter);
            }
            for exporter in log_exporters.iter_mut() {
                exporter.set_resource(&resource);
            }
            let log_setup = (!log_exporters.is_empty()).then(|| {
                let batch = config.batch();
                let queue = Arc::new(LogQueue::new(
                    batch.max_queue_size(),
                    batch.max_export_batch_size(),
                    (config.export_retry().buffer_bytes() / 4).max(QUEUE_BYTES_FLOOR),
                ));
                log_queue = Some(queue.clone());
                LogSetup {
                    exporters: std::mem::take(&mut log_exporters),
                    queue,
                    stats: log_stats.clone(),
                    scheduled_delay: batch.scheduled_delay(),
                }
            });
            for kind in config.exporters() {
                if let Some(factory) = factories.remove(kind) {
                    let exporter = factory(&cx).map_err(|source| EngineError::ExporterInit {
                        kind: kind.clone(),
                        source,
                    })?;
                    exporters.push(exporter);
                }
            }
            for exporter in exporters.iter_mut() {
                exporter.set_resource(&resource);
            }
            // The batch queue in front of the pipeline, bounded in bytes
            // too: a quarter of the retry buffer's bytes, at least 8 MiB.
            let gate = Arc::new(QueueGate::new(
                config.batch().max_queue_size(),
                config.batch().max_export_batch_size(),
                (config.export_retry().buffer_bytes() / 4).max(QUEUE_BYTES_FLOOR),
            ));
            let pipeline = ExportPipeline::start(
                config.pii_masking().then(|| masker.clone()),
                config.limits().attribute_value_length(),
                exporters,
                *config.export_retry(),
                gate.clone(),
                stats.clone(),
                last_errors.clone(),
                log_setup,
            )?;
            control = Some(pipeline.control());
            let batch = config.batch();
            let processor = BatchSpanProcessor::builder(pipeline)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(batch.max_queue_size())
                        .with_max_export_batch_size(batch.max_export_batch_size())
                        .with_scheduled_delay(batch.scheduled_delay())
                        .build(),
                )
                .build();
            let keep = config.keep_errors();
            // Unsampled requests are recorded and held when error keeping
            // or slow keeping can still export them.
            let holding = keep.enabled() || config.keep_slow().is_some();
            let l = config.limits();
            let builder = SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_span_limits(SpanLimits {
                    max_events_per_span: l.events_per_span(),
                    max_attributes_per_span: l.attributes_per_span(),
                    max_links_per_span: l.links_per_span(),
                    max_attributes_per_event: l.attributes_per_event(),
                    max_attributes_per_link: l.attributes_per_link(),
                });
            // The processor in front counts what reaches the batch queue
            // (so that what the queue drops is known), and holds the
            // unsampled spans when error keeping is on.
            let processor = KeepErrorsProcessor::new(
                processor,
                holding,
                config.keep_slow(),
                keep.max_traces(),
                keep.max_spans_per_trace(),
                keep_counters.clone(),
                gate,
            );
            if holding {
                builder
                    .with_sampler(KeepErrorsSampler(sampler))
                    .with_span_processor(processor)
                    .build()
            } else {
                builder
                    .with_sampler(sampler)
                    .with_span_processor(processor)
                    .build()
            }
        } else {
            SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_sampler(Sampler::AlwaysOff)
                .build()
        };

        for correlator in &correlators {
            let _ =
                std::panic::catch_unwind(AssertUnwindSafe(|| correlator.set_resource(&resource)));
        }
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder(SCOPE_NAME)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        if install_global {
            opentelemetry::global::set_tracer_provider(provider.clone());
            opentelemetry::global::set_text_map_propagator(GlobalPropagator::new(
                propagator.clone(),
            ));
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                resource,
                provider,
                tracer,
                propagator,
                read_headers,
                masker,
                recorder: recorder.unwrap_or_else(|| Arc::new(DefaultExceptionRecorder::default())),
                metrics: correlators.iter().find(|c| c.serves_metrics()).cloned(),
                correlators,
                stats,
                keep_counters,
                last_errors,
                control,
                log_queue,
                log_stats,
                shut_down: AtomicBool::new(false),
            }),
        })
    }
}

/// The configured sampler: a registered one when `OTEL_TRACES_SAMPLER`
/// names it, otherwise the standard one of the rate and parent rule.
fn build_sampler(
    config: &TracingConfig,
    registered: &mut BTreeMap<String, SamplerFactory>,
) -> Result<Box<dyn ShouldSample>, EngineError> {
    let Some(name) = config.custom_sampler() else {
        return Ok(Box::new(standard_sampler(config)));
    };
    match registered.remove(name) {
        Some(factory) => factory(config.sampler_arg()).map_err(|source| EngineError::SamplerInit {
            name: name.to_owned(),
            source,
        }),
        None => Err(EngineError::UnknownSampler {
            name: name.to_owned(),
            known: crate::config::STANDARD_SAMPLERS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(registered.keys().cloned())
                .collect(),
        }),
    }
}

fn standard_sampler(config: &TracingConfig) -> Sampler {
    let rate = config.sample_rate();
    let root = if rate >= 1.0 {
        Sampler::AlwaysOn
    } else if rate <= 0.0 {
        Sampler::AlwaysOff
    } else {
        Sampler::TraceIdRatioBased(rate)
    };
    if config.parent_based() {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    }
}

struct Inner {
    config: TracingConfig,
    resource: Resource,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: Arc<dyn Propagator>,
    /// Every header `propagator` reads, when it is the configuration's: a
    /// request with none of them skips extraction.
    read_headers: Option<Vec<http::HeaderName>>,
    masker: Arc<dyn Masker>,
    recorder: Arc<dyn ExceptionRecorder>,
    correlators: Vec<Arc<dyn Correlator>>,
    /// The first correlator that serves metrics.
    metrics: Option<Arc<dyn Correlator>>,
    stats: Arc<StatsCell>,
    keep_counters: Arc<KeepCounters>,
    last_errors: Arc<Mutex<Vec<ShutdownError>>>,
    control: Option<Arc<PipelineControl>>,
    /// The log records' queue, when log exporters are configured.
    log_queue: Option<Arc<LogQueue>>,
    log_stats: Arc<StatsCell>,
    shut_down: AtomicBool,
}

/// The configured tracing engine: cheap to clone (one `Arc`), `Send + Sync`.
///
/// Adapters call it on every request; applications use it to start their own
/// spans, record errors, build problem details and shut down.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("service_name", &self.inner.config.service_name())
            .field("propagator", &self.inner.propagator)
            .field("masker", &self.inner.masker)
            .field("recorder", &self.inner.recorder)
            .field("correlators", &self.inner.correlators)
            .field("stats", &self.inner.stats.snapshot())
            .finish()
    }
}

impl Engine {
    /// A builder for an engine with `config`.
    pub fn builder(config: TracingConfig) -> EngineBuilder {
        EngineBuilder {
            config,
            propagator: None,
            propagators: BTreeMap::new(),
            masker: None,
            recorder: None,
            exporters: Vec::new(),
            factories: BTreeMap::from([(
                ExporterKind::CONSOLE,
                Box::new(|cx: &ExporterContext<'_>| {
                    Ok(
                        Box::new(ConsoleExporter::stdout(cx.config().console_format()))
                            as Box<dyn Exporter>,
                    )
                }) as ExporterFactory,
            )]),
            log_exporters: Vec::new(),
            log_factories: BTreeMap::new(),
            correlators: Vec::new(),
            install_global: true,
            sampler: None,
            samplers: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TracingConfig {
        &self.inner.config
    }
    /// The resource every span, log record and metric carries: detected,
    /// then configured (see [`crate::resource`]). The one place exporters
    /// of any signal read it.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }
    /// The engine's tracer (scope `faultline`).
    pub fn tracer(&self) -> &SdkTracer {
        &self.inner.tracer
    }
    /// The tracer provider, to make tracers with other scopes.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.inner.provider
    }
    /// The masker.
    pub fn masker(&self) -> &dyn Masker {
        self.inner.masker.as_ref()
    }
    /// The propagator.
    pub fn propagator(&self) -> &dyn Propagator {
        self.inner.propagator.as_ref()
    }
    /// The export counters.
    pub fn export_stats(&self) -> ExportStats {
        let mut stats = self.inner.stats.snapshot();
        stats.error_keeping = self.inner.keep_counters.snapshot();
        stats.spans_ended = self.inner.keep_counters.ended();
        stats.logs = self.log_export_stats();
        stats
    }

    /// Whether log records are exported (a log exporter is configured and
    /// the engine is not shut down): when not, building a record is wasted.
    pub fn logs_enabled(&self) -> bool {
        self.inner.log_queue.is_some() && !self.inner.shut_down.load(Ordering::Relaxed)
    }

    /// Hands a log record (already masked) to the log exporters, off the
    /// request path: it is queued and `true` returned, or, with the queue
    /// full (its bound is in records and bytes) or no log exporter, dropped
    /// (counted when the queue refused it) and `false` returned. Never blocks.
    pub fn emit_log(&self, record: LogRecord) -> bool {
        self.inner
            .log_queue
            .as_ref()
            .is_some_and(|queue| queue.push(record))
    }

    /// Tells every correlator about a log record (already masked), on the
    /// emitting thread; a correlator that panics is skipped.
    pub fn notify_log(&self, record: &LogRecord) {
        for correlator in &self.inner.correlators {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| correlator.on_log(record)));
        }
    }

    /// The log export counters.
    pub fn log_export_stats(&self) -> LogExportStats {
        let snapshot = self.inner.log_stats.snapshot();
        let mut stats = LogExportStats::default();
        if let Some(queue) = &self.inner.log_queue {
            stats.records_queued = queue.queued.load(Ordering::Relaxed);
            stats.records_dropped_by_queue = queue.dropped.load(Ordering::Relaxed);
        }
        stats.exporters = snapshot.exporters;
        stats
    }

    /// The parent context for a request with `headers`, and a link to the
    /// incoming span when the incoming context is not trusted
    /// ([`TracingConfig::trust_incoming_context`]): then the request starts a
    /// new trace linked to the caller's, and the caller's baggage is dropped.
    pub fn extract(&self, headers: &dyn Carrier) -> (Context, Option<Link>) {
        self.extract_from(headers, None)
    }

    /// [`extract`](Engine::extract) for a request from `client`: with
    /// [trusted peers](TracingConfig::trusted_peers) configured, the
    /// incoming context is the parent only for a request from one of them
    /// (otherwise a link, and its baggage dropped), so that nobody outside
    /// can join a trace or force it sampled.
    pub fn extract_from(
        &self,
        headers: &dyn Carrier,
        client: Option<std::net::IpAddr>,
    ) -> (Context, Option<Link>) {
        if let Some(names) = &self.inner.read_headers
            && headers.lacks_all(names)
        {
            // Most requests carry no trace header: nothing to extract, and
            // nothing to link.
            return (Context::new(), None);
        }
        let cx = self.inner.propagator.extract(headers, &Context::new());
        if self.inner.config.trusts(client) {
            return (cx, None);
        }
        let incoming = cx.span().span_context().clone();
        let link = incoming.is_valid().then(|| Link::with_context(incoming));
        (Context::new(), link)
    }

    /// Writes `cx`'s trace context and baggage into outgoing `headers`.
    pub fn inject(&self, cx: &Context, headers: &mut dyn CarrierMut) {
        self.inner.propagator.inject(cx, headers);
    }

    /// Writes the current context (`Context::current()`) into `headers`.
    pub fn inject_current(&self, headers: &mut dyn CarrierMut) {
        self.inject(&Context::current(), headers);
    }

    /// Starts a client span named `name` for an outgoing call, child of the
    /// current context, and writes its context into the call's `headers`.
    /// Returns the context holding the span: run the call in it, then end
    /// the span (`cx.span().end()`) with the call's outcome recorded.
    pub fn start_client_span(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: Vec<KeyValue>,
        headers: &mut dyn CarrierMut,
    ) -> Context {
        let parent = Context::current();
        let span = self
            .inner
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.inner.tracer, &parent);
        let cx = parent.with_span(span);
        self.inject(&cx, headers);
        cx
    }

    /// Starts a server span named `name` for a request with `headers`: the
    /// parent (or link) comes from [`extract`](Engine::extract). Returns the
    /// context holding the span; end it with `cx.span().end()`.
    pub fn start_server_span(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: Vec<KeyValue>,
        headers: &dyn Carrier,
    ) -> Context {
        self.start_server(
            name,
            attributes,
            headers,
            None,
            std::time::SystemTime::now(),
        )
        .0
    }

    /// [`start_server_span`](Engine::start_server_span), also returning the
    /// id of the incoming parent span, when there is one.
    pub(crate) fn start_server(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: Vec<KeyValue>,
        headers: &dyn Carrier,
        client: Option<std::net::IpAddr>,
        start: std::time::SystemTime,
    ) -> (Context, Option<opentelemetry::trace::SpanId>) {
        let (parent, link) = self.extract_from(headers, client);
        // Set in place: each `with_*` moves the (large) builder.
        let mut builder = self.inner.tracer.span_builder(name);
        builder.span_kind = Some(SpanKind::Server);
        builder.start_time = Some(start);
        builder.attributes = Some(attributes);
        builder.links = link.map(|link| vec![link]);
        let span = builder.start_with_context(&self.inner.tracer, &parent);
        let parent_span_id = {
            let parent_span = parent.span();
            let sc = parent_span.span_context();
            sc.is_valid().then(|| sc.span_id())
        };
        (parent.with_span(span), parent_span_id)
    }

    /// Records `failure` on the span of `cx` with the exception recorder;
    /// returns the error code found.
    pub fn record_failure(&self, cx: &Context, failure: &Failure<'_>) -> Option<ErrorCode> {
        let span = cx.span();
        let recorder = &self.inner.recorder;
        std::panic::catch_unwind(AssertUnwindSafe(|| recorder.record(&span, failure)))
            .unwrap_or_else(|_| failure.error_code())
    }

    /// The trace id of `cx` as 32 lowercase hex digits, when it holds a valid span.
    pub fn trace_id(cx: &Context) -> Option<String> {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// Problem details for `err` carrying the trace id of `cx`, masked.
    pub fn problem_details(&self, cx: &Context, err: &AppError) -> ProblemDetails {
        let mut problem = ProblemDetails::from_app_error(err);
        if let Some(trace_id) = Engine::trace_id(cx) {
            problem = problem.with_trace_id(trace_id);
        }
        problem.masked(self.masker())
    }

    /// Whether any correlator is registered.
    pub fn has_correlators(&self) -> bool {
        !self.inner.correlators.is_empty()
    }

    /// The path on which adapters serve metrics: the configured
    /// [`metrics_path`](TracingConfig::metrics_path) when a registered
    /// correlator serves metrics, otherwise `None`; `None` too when the
    /// metrics are served on a private address
    /// ([`metrics_addr`](TracingConfig::metrics_addr)), not on the
    /// application's port.
    pub fn metrics_path(&self) -> Option<&str> {
        self.inner.metrics.as_ref()?;
        if self.inner.config.metrics_addr().is_some() {
            return None;
        }
        self.inner.config.metrics_path()
    }

    /// Renders the metrics for one scrape (`accept`: the scraper's `Accept`
    /// header), with the export pipeline's counters as they are now. `None`
    /// when no correlator serves metrics. A correlator that panics yields
    /// `None` too.
    pub fn render_metrics(&self, accept: Option<&str>) -> Option<Exposition> {
        let correlator = self.inner.metrics.as_ref()?;
        let stats = self.export_stats();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            correlator.render_metrics(accept, &stats)
        }))
        .ok()
        .flatten()
    }

    /// Tells every correlator that a request ended. A correlator that panics
    /// is skipped; the others still hear.
    pub fn notify_request_end(&self, outcome: &RequestOutcome<'_>) {
        for correlator in &self.inner.correlators {
            let _ =
                std::panic::catch_unwind(AssertUnwindSafe(|| correlator.on_request_end(outcome)));
        }
    }

    /// Tells every correlator that an RPC ended
    /// ([`Correlator::on_rpc_end`](crate::correlate::Correlator::on_rpc_end));
    /// a correlator that panics is skipped.
    pub fn notify_rpc_end(&self, outcome: &crate::correlate::RpcOutcome<'_>) {
        for correlator in &self.inner.correlators {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| correlator.on_rpc_end(outcome)));
        }
    }

    /// Exports every finished span now, waiting for the exporters (blocking,
    /// 30 s at most). An exporter whose backend is down keeps its spans
    /// buffered and does not hold the flush up.
    pub fn force_flush(&self) {
        let _ = self.inner.provider.force_flush();
        if let Some(control) = &self.inner.control {
            let _ = control.flush();
        }
        self.flush_correlators(Duration::from_secs(2));
    }

    /// Flushes every correlator, each within `timeout` (a panicking one is
    /// skipped).
    fn flush_correlators(&self, timeout: Duration) {
        for correlator in &self.inner.correlators {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| correlator.flush(timeout)));
        }
    }

    /// Flushes every pending span and closes the exporters, within the
    /// configured shutdown timeout. Blocking: from async code, call it
    /// through `tokio::task::spawn_blocking`.
    ///
    /// Safe to call more than once and from clones: the first call does the
    /// work; later calls return at once with `already_shut_down` set. Spans
    /// ended after shutdown are dropped. (Dropping the last clone of an
    /// engine that was not installed as the global also shuts it down.)
    pub fn shutdown(&self) -> ShutdownReport {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return ShutdownReport {
                already_shut_down: true,
                elapsed: Duration::ZERO,
                timed_out: false,
                errors: Vec::new(),
                stats: self.export_stats(),
            };
        }
        let start = Instant::now();
        let deadline = start + self.inner.config.shutdown_timeout();
        // The batch processor's queue into the buffers, then the buffers out
        // within the deadline, then the processor's thread closed.
        let _ = self.inner.provider.force_flush();
        let mut lanes_timed_out = false;
        if let Some(control) = &self.inner.control {
            lanes_timed_out = control.shutdown(deadline).1;
        }
        let result = self.inner.provider.shutdown_with_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50)),
        );
        // Correlators (queued Sentry events) within what is left, half a
        // second at least.
        self.flush_correlators(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(500)),
        );
        let mut errors: Vec<ShutdownError> = self
            .inner
            .last_errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        let mut timed_out = lanes_timed_out;
        if let Err(e) = result {
            let text = e.to_string();
            timed_out = text.to_ascii_lowercase().contains("timed out")
                || text.to_ascii_lowercase().contains("timeout");
            if !errors.iter().any(|x| text.contains(&x.to_string())) {
                errors.push(ShutdownError::Provider(e));
            }
        }
        ShutdownReport {
            already_shut_down: false,
            elapsed: start.elapsed(),
            timed_out,
            errors,
            stats: self.export_stats(),
        }
    }
}

/// Serves an engine's [`Propagator`] as OpenTelemetry's global text map
/// propagator, for libraries that inject through `opentelemetry::global`.
#[derive(Debug)]
struct GlobalPropagator {
    inner: Arc<dyn Propagator>,
    fields: Vec<String>,
}

impl GlobalPropagator {
    fn new(inner: Arc<dyn Propagator>) -> Self {
        let fields = inner.fields();
        GlobalPropagator { inner, fields }
    }
}

struct ExtractorCarrier<'a>(&'a dyn Extractor);

impl Carrier for ExtractorCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.0.get_all(key).unwrap_or_default()
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

struct InjectorCarrier<'a>(&'a mut dyn Injector);

impl CarrierMut for InjectorCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set(key, value);
    }
}

impl TextMapPropagator for GlobalPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inner.inject(cx, &mut InjectorCarrier(injector));
    }
    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.inner.extract(&ExtractorCarrier(extractor), cx)
    }
    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&self.fields)
    }
}
