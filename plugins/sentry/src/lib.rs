//! faultline's Sentry plugin: application errors and panics become Sentry
//! events that carry the request's OpenTelemetry trace context, masked by
//! the engine's masker before they leave the process.
//!
//! ```
//! use faultline_engine::config::TracingConfig;
//! use faultline_engine::{Engine, masking};
//! use faultline_sentry::{Sentry, SentryConfig};
//!
//! let tracing = TracingConfig::builder().service_name("checkout").exporters([]).build()?;
//! // In production: `SentryConfig::from_env()?` (`None` when SENTRY_DSN is unset).
//! let config = SentryConfig::new()
//!     .dsn("https://0123456789abcdef@o1.ingest.example.com/42")
//!     .environment("staging");
//! // The engine's own masker, so that Sentry events are masked like spans.
//! let sentry = Sentry::new(config, masking::from_config(&tracing))?;
//! let engine = Engine::builder(tracing)
//!     .correlator(sentry.clone())
//!     .install_global(false)
//!     .build()?;
//! sentry.install_panic_hook(); // panics outside traced requests too
//! // ... serve with an adapter (`faultline::axum::FaultlineLayer::new(engine.clone())`) ...
//! engine.shutdown(); // also flushes queued Sentry events
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What becomes an event (see `docs/SENTRY.md` for the whole story):
//! * a request whose handler returned an error at or above
//!   [`SentryConfig::min_severity`] (`Error` by default): level from the
//!   severity (`Critical` is `fatal`), exception `{type, value}` with the
//!   error's type name and masked message;
//! * every panic in a traced request (level `fatal`, mechanism `panic`,
//!   unhandled), and with [`Sentry::install_panic_hook`] every panic
//!   elsewhere;
//! * whatever the application captures through [`Sentry::hub`] (or through
//!   `sentry::capture_*` after [`Sentry::bind_main_hub`]).
//!
//! Request events carry `contexts.trace` with the OpenTelemetry trace id,
//! server span id and parent span id, `op` `http.server` and the span
//! status of the HTTP status; `transaction` `"METHOD route"`; tags
//! `error.code`, `error.name`, `error.severity`, `http.route`,
//! `http.request.method`, `http.response.status_code`. RPC events (a
//! gRPC call through the tonic adapter) are told in RPC terms instead
//! ([`rpc_event`]): `op` `grpc.server`, the span status of the RPC's status
//! code, `transaction` the method (`helloworld.Greeter/SayHello`), tags
//! `rpc.system.name`, `rpc.method`, `rpc.response.status_code`.
//!
//! Capturing never blocks the request: the event is masked and queued, and
//! sentry's transport sends it from its own thread.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `sentry` rather than on this crate.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

mod config;
mod event;
mod rpc;
mod scrub;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use faultline_engine::config::{ConfigError, TracingConfig};
use faultline_engine::correlate::{Correlator, RequestError, RequestOutcome, RpcOutcome};
use faultline_engine::export::LogRecord;
use faultline_engine::masking::Masker;
use faultline_engine::opentelemetry::trace::{TraceContextExt, TraceId};
use sentry::protocol::Breadcrumb;
use sentry::protocol::{Context, Event};
use sentry::{ClientOptions, Hub, Integration, Scope};
use std::collections::HashMap;

pub use config::{
    ENV_VARIABLES, FAULTLINE_SENTRY_MIN_SEVERITY, SENTRY_DSN, SENTRY_ENVIRONMENT, SENTRY_RELEASE,
    SENTRY_SAMPLE_RATE, SentryConfig,
};
pub use event::{
    OP_HTTP_SERVER, ORIGIN, is_reported, level_for, request_event, span_status_for, trace_context,
    transaction_name,
};
pub use rpc::{ORIGIN_RPC, rpc_event, span_status_for_rpc};
pub use scrub::{mask_breadcrumb, mask_event};

/// The engine this plugin is built on.
pub use faultline_engine as engine;
/// The `sentry` crate this plugin is built on (use it rather than a second
/// copy: its `Hub`, `Level`, `protocol` types).
pub use sentry;

/// The Sentry correlator: a Sentry client and hub of its own, fed by the
/// engine with every finished request.
///
/// Cheap to clone (clones share the client); `Send + Sync`. Its `Debug`
/// shows no secret.
#[derive(Clone)]
pub struct Sentry {
    inner: Arc<Inner>,
}

struct Inner {
    config: SentryConfig,
    client: Arc<sentry::Client>,
    hub: Arc<Hub>,
    panic_hook: AtomicBool,
    /// The log records of requests in flight, by trace: the breadcrumbs of
    /// the request's event, should it have one.
    crumbs: std::sync::Mutex<HashMap<TraceId, Vec<Breadcrumb>>>,
    /// How many requests `crumbs` holds records for, readable without its
    /// lock: a request that logged nothing ends without taking the lock.
    held: std::sync::atomic::AtomicUsize,
}

/// Most requests whose log records are held as breadcrumbs at once (past
/// it, a new request's records are not kept).
const MAX_REQUESTS_WITH_CRUMBS: usize = 4096;

impl Sentry {
    /// A Sentry client for `config` whose `before_send` and
    /// `before_breadcrumb` hooks mask with `masker` (pass the engine's:
    /// [`faultline_engine::masking::from_config`]). `send_default_pii` is
    /// off, sentry's `debug` output is off. The client has its own hub, so
    /// that several instances in one process share nothing.
    ///
    /// Fails when the DSN is missing or malformed (the error names
    /// `SENTRY_DSN` and never shows the DSN) or the sample rate is out of
    /// `0.0..=1.0`.
    pub fn new(config: SentryConfig, masker: Arc<dyn Masker>) -> Result<Sentry, ConfigError> {
        let dsn = config.parsed_dsn()?;
        config.validate()?;

        let mut options = ClientOptions::new();
        options.dsn = Some(dsn);
        options.debug = false;
        options.send_default_pii = false;
        options.attach_stacktrace = false;
        options.auto_session_tracking = false;
        options.release = config.release.clone().map(Cow::Owned);
        options.environment = config.environment.clone().map(Cow::Owned);
        options.server_name = config.server_name.clone().map(Cow::Owned);
        options.max_breadcrumbs = config.max_breadcrumbs;
        options.shutdown_timeout = config.shutdown_timeout;
        options = options.sample_rate(config.sample_rate);
        // Chosen one by one: sentry's panic integration would install a
        // process-wide hook reporting through whatever hub is current,
        // panics of traced requests included (those are reported here, with
        // their trace context): `install_panic_hook` replaces it.
        options.default_integrations = false;
        options.integrations = vec![
            Arc::new(sentry::integrations::backtrace::AttachStacktraceIntegration),
            Arc::new(sentry::integrations::contexts::ContextIntegration::default()),
            Arc::new(sentry::integrations::backtrace::ProcessStacktraceIntegration),
            Arc::new(OtelTraceIntegration),
        ];
        options.transport = Some(match &config.transport {
            Some(t) => t.clone(),
            None => Arc::new(sentry::transports::DefaultTransportFactory),
        });
        let send_masker = masker.clone();
        options.before_send = Some(Arc::new(move |event| {
            Some(scrub::mask_event(&*send_masker, event))
        }));
        let crumb_masker = masker;
        options.before_breadcrumb = Some(Arc::new(move |breadcrumb| {
            Some(scrub::mask_breadcrumb(&*crumb_masker, breadcrumb))
        }));

        let client = Arc::new(sentry::Client::with_options(options));
        let hub = Arc::new(Hub::new(Some(client.clone()), Arc::new(Scope::default())));
        Ok(Sentry {
            inner: Arc::new(Inner {
                config,
                client,
                hub,
                panic_hook: AtomicBool::new(false),
                crumbs: std::sync::Mutex::new(HashMap::new()),
                held: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// The plugin from the process environment ([`SentryConfig::from_env`])
    /// with the masker an engine built from `tracing` uses: `None` when
    /// `SENTRY_DSN` is unset or empty.
    pub fn from_env(tracing: &TracingConfig) -> Result<Option<Sentry>, ConfigError> {
        match SentryConfig::from_env()? {
            Some(config) => Ok(Some(Sentry::new(
                config,
                faultline_engine::masking::from_config(tracing),
            )?)),
            None => Ok(None),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SentryConfig {
        &self.inner.config
    }

    /// This plugin's hub, for the application's own captures
    /// (`hub.capture_message(..)`, `hub.capture_error(..)`, breadcrumbs).
    /// They go through the same masking client; inside a traced request
    /// they carry the request's trace and span ids.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The client (for `flush`, `close`, or a hub of the application's own).
    pub fn client(&self) -> &Arc<sentry::Client> {
        &self.inner.client
    }

    /// Makes this plugin's client the client of sentry's main hub, so that
    /// `sentry::capture_*` anywhere in the process (and other sentry
    /// integrations) go through the masking client. Call it early: a thread
    /// that used sentry before keeps the hub it had.
    pub fn bind_main_hub(&self) {
        Hub::main().bind_client(Some(self.inner.client.clone()));
    }

    /// Installs a process-wide panic hook that reports panics outside traced
    /// requests (a panic in a traced request reaches
    /// [`on_request_end`](Correlator::on_request_end) with its trace
    /// context and is skipped here, see
    /// [`faultline_engine::panic::caught_by_request`]). The hook reports as
    /// `fatal`, waits up to the configured shutdown timeout for the event to
    /// leave (the process may be about to end), then calls the hook that was
    /// installed before it. A second call on the same plugin (or a clone)
    /// does nothing; the hook holds the plugin weakly.
    pub fn install_panic_hook(&self) {
        if self.inner.panic_hook.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !faultline_engine::panic::caught_by_request()
                && let Some(inner) = weak.upgrade()
            {
                inner.report_panic(info);
            }
            previous(info);
        }));
    }

    /// Sends the queued events, waiting `timeout` at most; `false` when the
    /// queue did not drain in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.client.flush(Some(timeout))
    }

    /// Whether the request's outcome becomes an event at this plugin's
    /// threshold.
    pub fn reports(&self, outcome: &RequestOutcome<'_>) -> bool {
        outcome
            .error
            .as_ref()
            .is_some_and(|e| is_reported(e, self.inner.config.min_severity))
    }
}

thread_local! {
    /// Set while this thread reports a panic (a panic inside the report
    /// must not report again).
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

impl Inner {
    fn report_panic(&self, info: &PanicHookInfo<'_>) {
        if REPORTING.with(|r| r.replace(true)) {
            return;
        }
        let event =
            sentry::integrations::panic::PanicIntegration::new().event_from_panic_info(info);
        self.hub.capture_event(event);
        self.client.flush(Some(self.config.shutdown_timeout));
        REPORTING.with(|r| r.set(false));
    }
}

impl Inner {
    fn crumbs(&self) -> std::sync::MutexGuard<'_, HashMap<TraceId, Vec<Breadcrumb>>> {
        self.crumbs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breadcrumbs held for the request of `trace_id`, forgotten.
    fn take_crumbs(&self, trace_id: TraceId) -> Vec<Breadcrumb> {
        use std::sync::atomic::Ordering;
        if self.held.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let mut crumbs = self.crumbs();
        let taken = crumbs.remove(&trace_id).unwrap_or_default();
        self.held.store(crumbs.len(), Ordering::Relaxed);
        taken
    }
}

/// A log record as a breadcrumb: its level, target (category), message
/// and fields (data), all already masked.
pub fn breadcrumb(record: &LogRecord) -> Breadcrumb {
    use faultline_engine::export::LogSeverity;
    use faultline_engine::opentelemetry::Value;
    let level = match record.severity {
        LogSeverity::Error => sentry::Level::Error,
        LogSeverity::Warn => sentry::Level::Warning,
        LogSeverity::Info => sentry::Level::Info,
        _ => sentry::Level::Debug,
    };
    let data = record
        .attributes
        .iter()
        .map(|kv| {
            let value = match &kv.value {
                Value::Bool(b) => (*b).into(),
                Value::I64(i) => (*i).into(),
                Value::F64(f) => (*f).into(),
                other => other.to_string().into(),
            };
            (kv.key.as_str().to_owned(), value)
        })
        .collect();
    Breadcrumb {
        timestamp: record.time,
        ty: "default".to_owned(),
        category: Some(record.target.to_string()),
        level,
        message: Some(record.body.clone()),
        data,
    }
}

impl Correlator for Sentry {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        self.capture(outcome, |error| request_event(outcome, error));
    }

    fn on_rpc_end(&self, outcome: &RpcOutcome<'_>) {
        self.capture(&outcome.request, |error| rpc_event(outcome, error));
    }

    fn on_log(&self, record: &LogRecord) {
        let max = self.inner.config.max_breadcrumbs;
        if max == 0 || !record.has_span() {
            return;
        }
        let mut crumbs = self.inner.crumbs();
        if crumbs.len() >= MAX_REQUESTS_WITH_CRUMBS && !crumbs.contains_key(&record.trace_id) {
            return;
        }
        let list = crumbs.entry(record.trace_id).or_default();
        if list.len() >= max {
            list.remove(0);
        }
        list.push(breadcrumb(record));
        let held = crumbs.len();
        self.inner
            .held
            .store(held, std::sync::atomic::Ordering::Relaxed);
    }

    fn flush(&self, timeout: Duration) {
        self.inner.client.flush(Some(timeout));
    }
}

impl Sentry {
    /// Captures the event `make` builds when the request failed at or above
    /// the threshold.
    fn capture(
        &self,
        outcome: &RequestOutcome<'_>,
        make: impl FnOnce(&RequestError<'_>) -> Event<'static>,
    ) {
        let crumbs = self.inner.take_crumbs(outcome.trace_id);
        let Some(error) = &outcome.error else {
            return;
        };
        if !is_reported(error, self.inner.config.min_severity) {
            return;
        }
        // Only queues: masking runs here, sending on the transport's thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut event = make(error);
            event.breadcrumbs.values = crumbs;
            self.inner.hub.capture_event(event);
        }));
    }
}

impl fmt::Debug for Sentry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentry")
            .field("config", &self.inner.config)
            .field("enabled", &self.inner.client.is_enabled())
            .finish_non_exhaustive()
    }
}

/// Gives events captured inside a traced request (through the hub, not by
/// the correlator) the trace and span ids of the current OpenTelemetry
/// span, so that they too lead to the trace.
#[derive(Debug)]
struct OtelTraceIntegration;

impl Integration for OtelTraceIntegration {
    fn name(&self) -> &'static str {
        "faultline-otel-trace"
    }

    fn process_event(
        &self,
        mut event: Event<'static>,
        _options: &ClientOptions,
    ) -> Option<Event<'static>> {
        let ours = matches!(
            event.contexts.get("trace"),
            Some(Context::Trace(t)) if matches!(t.origin.as_deref(), Some(ORIGIN | ORIGIN_RPC))
        );
        if ours {
            return Some(event);
        }
        let cx = faultline_engine::opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let mut trace = trace_context(sc.trace_id(), sc.span_id(), None, None, None, None);
            trace.origin = Some("manual".to_owned());
            event
                .contexts
                .insert("trace".to_owned(), Context::Trace(Box::new(trace)));
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests;
