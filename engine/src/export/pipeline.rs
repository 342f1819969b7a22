//! The one SDK `SpanExporter` the engine installs: it masks every span, then
//! hands the batch to the export worker, a dedicated thread running a Tokio
//! runtime, which fans it out to every registered [`Exporter`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use std::collections::HashMap;

use futures_util::FutureExt;
use opentelemetry::{Context, Key};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{mpsc, oneshot};

use super::{ExportError, Exporter, mask_span_with};
use crate::masking::Masker;

/// Most attribute keys whose secret-key decision is remembered.
const MAX_CACHED_KEYS: usize = 4096;

/// Counters of the export pipeline, readable at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans handed to the pipeline by the batch processor.
    pub spans_received: u64,
    /// Spans that every exporter accepted.
    pub spans_exported: u64,
    /// Spans of batches that at least one exporter failed to ship.
    pub spans_failed: u64,
    /// Failed exporter calls (errors, time-outs and panics).
    pub export_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    spans_received: AtomicU64,
    spans_exported: AtomicU64,
    spans_failed: AtomicU64,
    export_errors: AtomicU64,
}

impl StatsCell {
    pub(crate) fn snapshot(&self) -> ExportStats {
        ExportStats {
            spans_received: self.spans_received.load(Ordering::Relaxed),
            spans_exported: self.spans_exported.load(Ordering::Relaxed),
            spans_failed: self.spans_failed.load(Ordering::Relaxed),
            export_errors: self.export_errors.load(Ordering::Relaxed),
        }
    }
}

enum Job {
    Export(Vec<SpanData>, oneshot::Sender<Result<(), String>>),
    Flush(std::sync::mpsc::SyncSender<Vec<String>>),
    Shutdown(std::sync::mpsc::SyncSender<Vec<String>>),
}

#[derive(Debug)]
pub(crate) struct ExportPipeline {
    masker: Option<Arc<dyn Masker>>,
    /// The masker's secret-key decision per attribute key: keys repeat from
    /// span to span, so each is decided once (bounded; cleared when full).
    secret_keys: Mutex<HashMap<Key, bool>>,
    jobs: mpsc::UnboundedSender<Job>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<StatsCell>,
    last_errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Export(..) => "Export",
            Job::Flush(..) => "Flush",
            Job::Shutdown(..) => "Shutdown",
        })
    }
}

impl ExportPipeline {
    /// Starts the export worker thread.
    pub(crate) fn start(
        masker: Option<Arc<dyn Masker>>,
        exporters: Vec<Box<dyn Exporter>>,
        export_timeout: Duration,
        stats: Arc<StatsCell>,
        last_errors: Arc<Mutex<Vec<String>>>,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("faultline-export")
            .build()?;
        let worker_stats = stats.clone();
        let worker = std::thread::Builder::new()
            .name("faultline-export".to_owned())
            .spawn(move || {
                // Nothing the exporters do (HTTP clients, gRPC) is traced.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                runtime.block_on(run_worker(rx, exporters, export_timeout, worker_stats));
            })?;
        Ok(ExportPipeline {
            masker,
            secret_keys: Mutex::new(HashMap::new()),
            jobs,
            worker: Mutex::new(Some(worker)),
            stats,
            last_errors,
        })
    }

    fn wait_worker(
        &self,
        job: impl FnOnce(std::sync::mpsc::SyncSender<Vec<String>>) -> Job,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.jobs.send(job(tx)).is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match rx.recv_timeout(timeout) {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => {
                let joined = errors.join("; ");
                if let Ok(mut last) = self.last_errors.lock() {
                    last.extend(errors);
                }
                Err(OTelSdkError::InternalFailure(joined))
            }
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
}

impl SpanExporter for ExportPipeline {
    fn export(&self, mut batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.stats
            .spans_received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(masker) = &self.masker {
            let masker = masker.as_ref();
            let mut cache = self.secret_keys.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > MAX_CACHED_KEYS {
                cache.clear();
            }
            let mut is_secret = |key: &Key| match cache.get(key) {
                Some(secret) => *secret,
                None => {
                    let secret = masker.is_secret_key(key.as_str());
                    cache.insert(key.clone(), secret);
                    secret
                }
            };
            for span in batch.iter_mut() {
                mask_span_with(masker, span, &mut is_secret);
            }
        }
        let (tx, rx) = oneshot::channel();
        let sent = self.jobs.send(Job::Export(batch, tx)).is_ok();
        async move {
            if !sent {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(OTelSdkError::InternalFailure(message)),
                Err(_) => Err(OTelSdkError::AlreadyShutdown),
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.wait_worker(Job::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.wait_worker(Job::Shutdown, timeout);
        if result.is_ok()
            && let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take())
        {
            let _ = handle.join();
        }
        result
    }
}

async fn run_worker(
    mut rx: mpsc::UnboundedReceiver<Job>,
    exporters: Vec<Box<dyn Exporter>>,
    timeout: Duration,
    stats: Arc<StatsCell>,
) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Export(batch, reply) => {
                let mut errors = Vec::new();
                for exporter in &exporters {
                    if let Err(e) = guarded(exporter.name(), timeout, exporter.export(&batch)).await
                    {
                        stats.export_errors.fetch_add(1, Ordering::Relaxed);
                        errors.push(e);
                    }
                }
                let n = batch.len() as u64;
                if errors.is_empty() {
                    stats.spans_exported.fetch_add(n, Ordering::Relaxed);
                    let _ = reply.send(Ok(()));
                } else {
                    stats.spans_failed.fetch_add(n, Ordering::Relaxed);
                    let _ = reply.send(Err(errors.join("; ")));
                }
            }
            Job::Flush(reply) => {
                let mut errors = Vec::new();
                for exporter in &exporters {
                    if let Err(e) = guarded(exporter.name(), timeout, exporter.force_flush()).await
                    {
                        errors.push(e);
                    }
                }
                let _ = reply.send(errors);
            }
            Job::Shutdown(reply) => {
                let mut errors = Vec::new();
                for exporter in &exporters {
                    if let Err(e) = guarded(exporter.name(), timeout, exporter.shutdown()).await {
                        errors.push(e);
                    }
                }
                let _ = reply.send(errors);
                break;
            }
        }
    }
}

/// Runs one exporter call with a time limit, turning a panic into an error.
async fn guarded<F>(name: &str, timeout: Duration, call: F) -> Result<(), String>
where
    F: Future<Output = Result<(), ExportError>>,
{
    match tokio::time::timeout(timeout, AssertUnwindSafe(call).catch_unwind()).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("{name}: {e}")),
        Ok(Err(_panic)) => Err(format!("{name}: the exporter panicked")),
        Err(_) => Err(format!("{name}: {}", ExportError::Timeout(timeout))),
    }
}
