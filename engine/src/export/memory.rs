//! The in-memory exporter, for tests (the engine's and its users').

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::{ExportError, Exporter};

/// Keeps every exported span in memory. Clones share the same store, so a
/// test keeps one clone and registers the other with the engine.
///
/// ```
/// use faultline_engine::config::TracingConfig;
/// use faultline_engine::export::InMemoryExporter;
/// use faultline_engine::Engine;
/// use opentelemetry::trace::{Tracer, Span};
///
/// let spans = InMemoryExporter::default();
/// let config = TracingConfig::builder().exporters([]).build().unwrap();
/// let engine = Engine::builder(config).exporter(spans.clone()).install_global(false).build().unwrap();
/// engine.tracer().start("work").end();
/// engine.force_flush();
/// assert_eq!(spans.spans()[0].name, "work");
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryExporter {
    store: Arc<Mutex<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    spans: Vec<SpanData>,
    resource: Option<Resource>,
    shut_down: bool,
}

impl InMemoryExporter {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every span exported so far, in export order.
    pub fn spans(&self) -> Vec<SpanData> {
        self.lock().spans.clone()
    }

    /// The number of spans exported so far.
    pub fn len(&self) -> usize {
        self.lock().spans.len()
    }

    /// Whether nothing was exported yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resource the engine gave the exporter.
    pub fn resource(&self) -> Option<Resource> {
        self.lock().resource.clone()
    }

    /// Whether the engine shut the exporter down.
    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }

    /// Forgets every span.
    pub fn reset(&self) {
        self.lock().spans.clear();
    }

    /// Waits until at least `count` spans arrived or `timeout` passed, and
    /// returns what arrived.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<SpanData> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[async_trait::async_trait]
impl Exporter for InMemoryExporter {
    fn name(&self) -> &str {
        "memory"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.lock().resource = Some(resource.clone());
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        let mut store = self.lock();
        if store.shut_down {
            return Err(ExportError::ShutDown);
        }
        store.spans.extend_from_slice(batch);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        self.lock().shut_down = true;
        Ok(())
    }
}
