//! faultline's built-in trace viewer: recent traces and their log records,
//! kept in a bounded in-memory store and shown in a web page on a listener
//! of its own, with no backend to install. The same listener accepts
//! OTLP/HTTP (`POST /v1/traces`, `/v1/logs`, protobuf or JSON), so services
//! in any language can send to it.
//!
//! Applications depend on `faultline` with the feature `viewer` and name
//! the exporter (`OTEL_TRACES_EXPORTER=viewer`, or `otlp,viewer`); the
//! facade's `setup::engine_builder` registers it, and the page is served on
//! `FAULTLINE_VIEWER_ADDR` (default `127.0.0.1:16686`). Used directly:
//!
//! ```
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_viewer::{Viewer, ViewerConfig};
//!
//! let viewer = Viewer::start(ViewerConfig::default().with_addr("127.0.0.1:0".parse()?), None)?;
//! let config = TracingConfig::builder().exporters([ExporterKind::VIEWER]).build()?;
//! let exporter = viewer.exporter();
//! let engine = Engine::builder(config)
//!     .exporter_factory(ExporterKind::VIEWER, move |_| Ok(Box::new(exporter)))
//!     .install_global(false)
//!     .build()?;
//! println!("traces at {}", viewer.url());
//! engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It sees only what passed the masking step: spans come from the export
//! pipeline after masking, and what the receiver takes is masked by the
//! engine's masker before it is stored. It is a development and
//! small-deployment tool, not a tracing backend: nothing is kept on disk,
//! and the oldest traces make room for new ones (see `docs/VIEWER.md`).
//!
//! # The JSON API
//!
//! The page uses it; scripts may too (fields are only ever added):
//!
//! * `GET /api/traces?service=&route=&status=ok|error&code=&q=&limit=`:
//!   `{"traces": [summary], "services": [..], "routes": [..], "stats": {..}}`,
//!   newest first; a summary has `trace_id`, `name` (the root span's, or
//!   the earliest span's until the root arrives), `has_root`, `services`,
//!   `span_count`, `log_count`, `start_unix_nano`, `duration_ns`, `status`
//!   (`ok`, `error`, `unset`), `error_count`, `error_code`, `error_name`,
//!   `route` and `updated` (changes whenever the trace does);
//! * `GET /api/traces/{trace_id}`: `{"summary", "spans": [..], "logs": [..]}`,
//!   spans by start time (ids, `parent_span_id`, `name`, `kind`, `service`,
//!   times, `status`, `status_message`, `attributes`, `events`, `links`),
//!   log records in time order (`time_unix_nano`, `severity_number`,
//!   `severity_text`, `body`, `attributes`, `trace_id`, `span_id`,
//!   `service`); 404 when the trace is not held;
//! * `GET /api/errors`: `{"errors": [..]}`, every span in error, newest first,
//!   with `trace_id`, `code`, `name`, `route`, `service`, `span_name`, `message`;
//! * `GET /api/stats`: the store's counters ([`StoreStats`]).

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod config;
mod otlp;
mod server;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use faultline_engine::ExporterContext;
use faultline_engine::config::ConfigError;
use faultline_engine::export::{ExportError, Exporter, LogExporter};
use faultline_engine::masking::Masker;
use faultline_engine::opentelemetry::Key;
use faultline_engine::opentelemetry_sdk::Resource;
use faultline_engine::opentelemetry_sdk::trace::SpanData;

pub use config::{
    DEFAULT_ADDR, DEFAULT_MAX_BYTES, ENV_ADDR, ENV_MAX_BYTES, ENV_TOKEN, ENV_VARIABLES,
    MIN_MAX_BYTES, MIN_TOKEN_LEN, ViewerConfig,
};
pub use store::{StoreStats, StoredLogRecord, TraceFilter, ViewerStore};

/// Why the viewer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewerError {
    /// A setting is invalid (a non-loopback address without a token, ...).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be listened on.
    #[error("{ENV_ADDR}: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The viewer's thread could not be started.
    #[error("cannot start the viewer's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running viewer: its store and its listener. Cheap to clone; the
/// listener stops when the last clone (exporters included) is dropped, or
/// on [`stop`](Viewer::stop).
#[derive(Debug, Clone)]
pub struct Viewer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<ViewerStore>,
    addr: SocketAddr,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

impl Viewer {
    /// Starts the viewer on `config`'s address, on a thread of its own (no
    /// runtime of the caller's is needed). `masker` masks what the OTLP
    /// receiver takes (the engine's: [`ExporterContext::masker`]); `None`
    /// stores it as received.
    pub fn start(
        config: ViewerConfig,
        masker: Option<Arc<dyn Masker>>,
    ) -> Result<Viewer, ViewerError> {
        let config = config.validate()?;
        let listener = std::net::TcpListener::bind(config.addr())
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ViewerError::Bind {
                addr: config.addr(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ViewerError::Bind {
            addr: config.addr(),
            source,
        })?;
        let store = Arc::new(ViewerStore::new(config.max_bytes()));
        let app = server::App {
            store: store.clone(),
            masker,
            token: config.token().map(Arc::from),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ViewerError::Thread)?;
        std::thread::Builder::new()
            .name("faultline-viewer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, server::router(app))
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(ViewerError::Thread)?;
        Ok(Viewer {
            inner: Arc::new(Inner {
                store,
                addr,
                stop: Mutex::new(Some(stop)),
            }),
        })
    }

    /// The address listened on (the port chosen when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The page's address, `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.inner.addr)
    }

    /// The store (to add log records: [`ViewerStore::add_log_record`]).
    pub fn store(&self) -> &Arc<ViewerStore> {
        &self.inner.store
    }

    /// An exporter feeding this viewer's store.
    pub fn exporter(&self) -> ViewerExporter {
        ViewerExporter {
            viewer: self.clone(),
            service: String::new(),
        }
    }

    /// Stops the listener (the store stays readable).
    pub fn stop(&self) {
        if let Some(stop) = self
            .inner
            .stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = stop.send(());
        }
    }
}

/// One viewer shared by an engine's exporters: the span exporter and the
/// log exporter registered as `viewer` (`OTEL_TRACES_EXPORTER=viewer`,
/// `OTEL_LOGS_EXPORTER=viewer`) feed one store behind one listener, started
/// by whichever factory runs first. Cheap to clone.
///
/// ```
/// use faultline_viewer::SharedViewer;
///
/// let shared = SharedViewer::new();
/// let spans_side = shared.clone();
/// // In each exporter factory:
/// // let viewer = spans_side.get_or_start(cx.masker().cloned())?;
/// # let _ = spans_side;
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedViewer(Arc<std::sync::OnceLock<Viewer>>);

impl SharedViewer {
    /// A handle that has not started anything yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The viewer, started on first use from the environment
    /// ([`ViewerConfig::from_env`]) with `masker` for its receiver.
    pub fn get_or_start(&self, masker: Option<Arc<dyn Masker>>) -> Result<Viewer, ViewerError> {
        if let Some(viewer) = self.0.get() {
            return Ok(viewer.clone());
        }
        let started = Viewer::start(ViewerConfig::from_env()?, masker)?;
        Ok(self.0.get_or_init(|| started).clone())
    }
}

/// The exporter registered as `viewer`: finished (masked) spans go to the
/// viewer's store, off the request path, like every exporter's.
#[derive(Debug)]
pub struct ViewerExporter {
    viewer: Viewer,
    service: String,
}

impl ViewerExporter {
    /// Starts a viewer configured from the environment
    /// ([`ViewerConfig::from_env`]), masking what its receiver takes with
    /// the engine's masker, and returns its exporter: what the facade's
    /// `setup::engine_builder` registers as `viewer`.
    pub fn from_context(cx: &ExporterContext<'_>) -> Result<Self, ViewerError> {
        let viewer = Viewer::start(ViewerConfig::from_env()?, cx.masker().cloned())?;
        Ok(viewer.exporter())
    }

    /// The viewer this exporter feeds.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }
}

#[async_trait::async_trait]
impl Exporter for ViewerExporter {
    fn name(&self) -> &str {
        "viewer"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = service_name(resource);
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        self.viewer.store().add_spans(&self.service, batch);
        Ok(())
    }
}

/// The log exporter registered as `viewer` (`OTEL_LOGS_EXPORTER=viewer`):
/// the engine's (already masked) log records go to the viewer's store,
/// beside their trace, off the request path.
#[derive(Debug)]
pub struct ViewerLogExporter {
    viewer: Viewer,
    service: String,
}

impl ViewerLogExporter {
    /// The log exporter of `viewer` (the same store and listener as its
    /// span exporter).
    pub fn new(viewer: Viewer) -> Self {
        ViewerLogExporter {
            viewer,
            service: String::new(),
        }
    }
}

#[async_trait::async_trait]
impl LogExporter for ViewerLogExporter {
    fn name(&self) -> &str {
        "viewer"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = service_name(resource);
    }

    async fn export(
        &self,
        batch: &[faultline_engine::export::LogRecord],
    ) -> Result<(), ExportError> {
        let store = self.viewer.store();
        for r in batch {
            let mut record =
                StoredLogRecord::new(r.time, i32::from(r.severity.number()), r.body.clone());
            record.severity_text = r.severity.text().to_owned();
            record.attributes = r.attributes.clone();
            record.trace_id = Some(r.trace_id);
            record.span_id = Some(r.span_id);
            record.service = self.service.clone();
            store.add_log_record(record);
        }
        Ok(())
    }
}

/// The resource's `service.name` (empty without one).
fn service_name(resource: &Resource) -> String {
    resource
        .get(&Key::from_static_str("service.name"))
        .map(|name| name.to_string())
        .unwrap_or_default()
}
