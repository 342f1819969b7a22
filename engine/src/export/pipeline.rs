//! The one SDK `SpanExporter` the engine installs, and the resilient export
//! behind it.
//!
//! The batch span processor hands each batch to [`ExportPipeline::export`],
//! which masks every span, then puts the batch (shared, not copied) into the
//! bounded buffer of every registered [`Exporter`] and returns at once: the
//! batch processor never waits for a backend. Each exporter has its own
//! task on the export thread (a Tokio runtime), which ships its buffer in
//! order:
//!
//! * a failed attempt (transient error, time-out, panic) is retried with
//!   exponential back-off and jitter (`backoff_base`, doubling, capped at
//!   `backoff_max`), at most `max_retries` times;
//! * after that the batch stays in the buffer and the backend is probed
//!   again with growing intervals; when it answers, the buffer drains first,
//!   in order, before anything newer;
//! * the buffer holds at most `buffer_capacity` spans besides the batch
//!   being sent, and `buffer_bytes` of estimated memory with it (the
//!   newest batch is always kept): past the span count the oldest spans are
//!   dropped, past the bytes the oldest whole batches (so that their memory
//!   is freed), each span counted;
//! * a server that asks for a delay (HTTP `Retry-After`, gRPC `RetryInfo`:
//!   [`ExportError::Throttled`]) gets it: the next attempt comes no earlier
//!   than asked (jitter only adds to it), within `backoff_max`; a longer
//!   ask moves the batch to the buffer at once, probed after `backoff_max`;
//! * a permanent error (rejected data, bad credentials) drops the batch,
//!   counted, without retries;
//! * spans a backend accepted and then rejected (OTLP partial success) are
//!   counted ([`ExporterStats::rejected`]), and the first message is logged,
//!   masked.
//!
//! One slow or dead exporter never holds up another, nor a request.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use opentelemetry::{Context, Key};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{Notify, mpsc};

use super::logs::LogQueue;
use super::{ExportError, Exporter, LogExporter, LogRecord, mask_span_with};
use crate::ShutdownError;
use crate::config::ExportRetry;
use crate::masking::Masker;

/// The secret-key cache and the remembered clean texts are looked up for
/// every attribute of every span: a fast hash, not SipHash (`crate::fasthash`).
type KeyHasher = crate::fasthash::FastBuildHasher;

/// Most attribute keys whose secret-key decision is remembered.
const MAX_CACHED_KEYS: usize = 4096;

/// Most texts remembered as clean, and the longest one remembered (longer
/// texts rarely repeat).
const MAX_CLEAN_TEXTS: usize = 4096;
const MAX_CLEAN_TEXT_LEN: usize = 256;

/// A deterministic masker in front of which texts it left unchanged are
/// remembered, so that the user agent, host name or span name that every
/// request repeats is scanned once. Texts it changes are never remembered.
/// For one batch: the remembered texts are read without a lock (the batch
/// holds it), and the texts found clean in the batch join them after it
/// ([`remember_clean`]).
struct Remembering<'a> {
    inner: &'a dyn Masker,
    clean: &'a CleanTexts,
    fresh: Mutex<CleanTexts>,
}

/// The texts a deterministic masker left unchanged.
type CleanTexts = std::collections::HashSet<Box<str>, KeyHasher>;

impl<'a> Remembering<'a> {
    fn new(inner: &'a dyn Masker, clean: &'a CleanTexts) -> Self {
        Remembering {
            inner,
            clean,
            fresh: Mutex::default(),
        }
    }

    /// The texts found clean in the batch, to join the remembered ones
    /// ([`remember_clean`]).
    fn into_fresh(self) -> CleanTexts {
        self.fresh.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `fresh` to the remembered clean texts, forgetting them all when full.
fn remember_clean(clean: &mut CleanTexts, fresh: CleanTexts) {
    for text in fresh {
        if clean.len() >= MAX_CLEAN_TEXTS {
            clean.clear();
        }
        clean.insert(text);
    }
}

impl std::fmt::Debug for Remembering<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembering").finish_non_exhaustive()
    }
}

impl Masker for Remembering<'_> {
    fn mask<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if text.len() > MAX_CLEAN_TEXT_LEN {
            return self.inner.mask(text);
        }
        if self.clean.contains(text) {
            return std::borrow::Cow::Borrowed(text);
        }
        // Not remembered yet: found clean earlier in this batch, or scanned.
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if fresh.contains(text) {
            return std::borrow::Cow::Borrowed(text);
        }
        let masked = self.inner.mask(text);
        if matches!(masked, std::borrow::Cow::Borrowed(_)) {
            fresh.insert(text.into());
        }
        masked
    }
    fn is_secret_key(&self, key: &str) -> bool {
        self.inner.is_secret_key(key)
    }
    fn mask_value<'t>(&self, key: &str, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.inner.is_secret_key(key) {
            std::borrow::Cow::Borrowed(crate::masking::REDACTED)
        } else {
            self.mask(text)
        }
    }
    fn is_deterministic(&self) -> bool {
        true
    }
}

/// The counters of one exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// The exporter's name.
    pub name: String,
    /// Spans the backend accepted.
    pub delivered: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
    /// Attempts that failed (errors, time-outs, panics).
    pub failed_attempts: u64,
    /// Spans waiting in the buffer now.
    pub buffered: u64,
    /// Their estimated memory, in bytes (bounded by
    /// [`ExportRetry::buffer_bytes`](crate::config::ExportRetry::buffer_bytes)).
    pub buffered_bytes: u64,
    /// Spans lost: buffer overflow, permanent errors, and what shutdown could
    /// not deliver.
    pub dropped: u64,
    /// Spans the backend accepted in a request and then rejected (OTLP
    /// partial success); counted in `delivered` too.
    pub rejected: u64,
}

/// Counters of the export pipeline, readable at any time. With several
/// exporters the totals are the worst case over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans handed to the SDK's batch queue (sampled or kept spans that
    /// ended). `spans_ended - spans_received` are in the queue or were
    /// dropped by it when it was full: after a flush or shutdown, exactly
    /// the dropped ones.
    pub spans_ended: u64,
    /// Spans handed to the pipeline by the batch processor.
    pub spans_received: u64,
    /// Spans delivered by every exporter (the smallest `delivered`).
    pub spans_exported: u64,
    /// Spans lost by at least one exporter (the largest `dropped`).
    pub spans_failed: u64,
    /// Spans waiting in a buffer (the largest `buffered`).
    pub spans_buffered: u64,
    /// Retried attempts, all exporters together.
    pub retries: u64,
    /// Failed attempts, all exporters together.
    pub export_errors: u64,
    /// Spans accepted and then rejected by a backend (partial success),
    /// all exporters together.
    pub spans_rejected: u64,
    /// Each exporter's counters.
    pub exporters: Vec<ExporterStats>,
    /// What error-keeping sampling kept, discarded and cut.
    pub error_keeping: super::ErrorKeepingStats,
    /// What the span limits cut.
    pub limits: LimitStats,
    /// The log export's counters (the same as
    /// [`Engine::log_export_stats`](crate::Engine::log_export_stats)), so
    /// that one snapshot serves a metrics scrape.
    pub logs: super::LogExportStats,
}

/// What the span limits ([`Limits`](crate::config::Limits)) cut from
/// exported spans, counted since the engine started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitStats {
    /// String values cut to the value length limit.
    pub values_truncated: u64,
    /// Attributes a span, event or link could not hold (the SDK's count).
    pub attributes_dropped: u64,
    /// Events a span could not hold.
    pub events_dropped: u64,
    /// Links a span could not hold.
    pub links_dropped: u64,
}

#[derive(Debug, Default)]
struct LimitCounters {
    values_truncated: AtomicU64,
    attributes_dropped: AtomicU64,
    events_dropped: AtomicU64,
    links_dropped: AtomicU64,
}

impl LimitCounters {
    fn add(&self, cut: &LimitStats) {
        for (counter, n) in [
            (&self.values_truncated, cut.values_truncated),
            (&self.attributes_dropped, cut.attributes_dropped),
            (&self.events_dropped, cut.events_dropped),
            (&self.links_dropped, cut.links_dropped),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self) -> LimitStats {
        LimitStats {
            values_truncated: self.values_truncated.load(Ordering::Relaxed),
            attributes_dropped: self.attributes_dropped.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            links_dropped: self.links_dropped.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    retries: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

/// What a lane's buffer holds now: items and estimated bytes.
trait LaneGauge: Send + Sync + std::fmt::Debug {
    fn gauge(&self) -> (usize, usize);
}

impl<T: Send + Sync + std::fmt::Debug> LaneGauge for Lane<T> {
    fn gauge(&self) -> (usize, usize) {
        let s = self.lock();
        (s.buffered, s.buffered_bytes)
    }
}

/// One exporter's name, counters and buffer, as the stats see them.
type LaneStats = (String, Arc<Counters>, Arc<dyn LaneGauge>);

/// The pipeline's counters, shared with the engine.
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    pub(crate) spans_received: AtomicU64,
    limits: LimitCounters,
    lanes: Mutex<Vec<LaneStats>>,
}

impl StatsCell {
    pub(crate) fn snapshot(&self) -> ExportStats {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let exporters: Vec<ExporterStats> = lanes
            .iter()
            .map(|(name, c, lane)| {
                let (buffered, buffered_bytes) = lane.gauge();
                let (buffered, buffered_bytes) = (buffered as u64, buffered_bytes as u64);
                ExporterStats {
                    name: name.clone(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    retries: c.retries.load(Ordering::Relaxed),
                    failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
                    buffered,
                    buffered_bytes,
                    dropped: c.dropped.load(Ordering::Relaxed),
                    rejected: c.rejected.load(Ordering::Relaxed),
                }
            })
            .collect();
        let received = self.spans_received.load(Ordering::Relaxed);
        ExportStats {
            spans_ended: 0,
            spans_received: received,
            spans_exported: exporters
                .iter()
                .map(|e| e.delivered)
                .min()
                .unwrap_or(received),
            spans_failed: exporters.iter().map(|e| e.dropped).max().unwrap_or(0),
            spans_buffered: exporters.iter().map(|e| e.buffered).max().unwrap_or(0),
            retries: exporters.iter().map(|e| e.retries).sum(),
            export_errors: exporters.iter().map(|e| e.failed_attempts).sum(),
            spans_rejected: exporters.iter().map(|e| e.rejected).sum(),
            exporters,
            error_keeping: super::ErrorKeepingStats::default(),
            limits: self.limits.snapshot(),
            logs: super::LogExportStats::default(),
        }
    }
}

/// The least estimated memory the batch queue may hold (its bound is a
/// quarter of the retry buffer's bytes, but never less than this).
pub(crate) const QUEUE_BYTES_FLOOR: usize = 8 << 20;

/// The bound on the SDK's batch queue in front of the pipeline: spans
/// admitted (by the processor in front of the batch processor) and not yet
/// handed to [`PipelineControl::push`], counted in spans and in estimated
/// bytes. The SDK bounds its queue by span count only, so a burst of large
/// spans could otherwise hold `max_queue_size` of them; the gate refuses a
/// span that would pass either bound (the SDK then never has to), and the
/// pipeline releases what it receives, estimated on the same unchanged
/// spans, so the two sums meet.
///
/// The byte bound applies only once the queue holds a full export batch:
/// the SDK ships a batch when the queue reaches that many spans (or its
/// timer fires), so a smaller queue would wait for the timer and refuse
/// everything meanwhile.
#[derive(Debug)]
pub(crate) struct QueueGate {
    spans: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicUsize,
    max_spans: usize,
    batch_spans: usize,
    max_bytes: usize,
}

impl QueueGate {
    /// A gate for a queue of `max_spans` spans, shipped in batches of
    /// `batch_spans`, and `max_bytes` once a batch is waiting.
    pub(crate) fn new(max_spans: usize, batch_spans: usize, max_bytes: usize) -> Self {
        QueueGate {
            spans: Default::default(),
            bytes: Default::default(),
            max_spans,
            batch_spans,
            max_bytes,
        }
    }

    /// Whether a span of `size` estimated bytes may enter the queue; if so
    /// it is counted in.
    pub(crate) fn admit(&self, size: usize) -> bool {
        let before = self.bytes.fetch_add(size, Ordering::Relaxed);
        let spans = self.spans.fetch_add(1, Ordering::Relaxed);
        if spans >= self.max_spans || (spans >= self.batch_spans && before + size > self.max_bytes)
        {
            self.release(1, size);
            return false;
        }
        true
    }

    /// Counts out spans that left the queue.
    pub(crate) fn release(&self, spans: usize, bytes: usize) {
        self.spans.fetch_sub(spans, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What one exporter's buffer may hold.
#[derive(Debug, Clone, Copy)]
struct BufferLimits {
    spans: usize,
    bytes: usize,
}

/// One batch (or what is left of it) waiting for one exporter.
#[derive(Debug)]
struct Entry<T> {
    seq: u64,
    batch: Arc<Vec<T>>,
    /// The whole batch's estimated memory: held until the entry goes.
    bytes: usize,
    start: usize,
    attempts: u32,
}

impl<T> Entry<T> {
    fn len(&self) -> usize {
        self.batch.len() - self.start
    }
}

/// One exporter's buffer, shared by the batch thread (which pushes) and the
/// exporter's task (which sends).
#[derive(Debug)]
struct LaneState<T> {
    entries: VecDeque<Entry<T>>,
    buffered: usize,
    /// Sum of the entries' `bytes`.
    buffered_bytes: usize,
    in_flight: Option<u64>,
    next_seq: u64,
}

#[derive(Debug)]
struct Lane<T> {
    state: Mutex<LaneState<T>>,
    wake: Notify,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            state: Mutex::new(LaneState {
                entries: VecDeque::new(),
                buffered: 0,
                buffered_bytes: 0,
                in_flight: None,
                next_seq: 0,
            }),
            wake: Notify::new(),
        }
    }
}

impl<T> Lane<T> {
    fn lock(&self) -> MutexGuard<'_, LaneState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a batch of `bytes` estimated memory, dropping the oldest spans
    /// (never the batch being sent) beyond `limits.spans`, then the oldest
    /// whole batches beyond `limits.bytes` (at least the new batch is kept).
    fn push(&self, batch: Arc<Vec<T>>, bytes: usize, limits: BufferLimits, counters: &Counters) {
        let len = batch.len();
        if len == 0 {
            return;
        }
        let capacity = limits.spans;
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.entries.push_back(Entry {
            seq,
            batch,
            bytes,
            start: 0,
            attempts: 0,
        });
        s.buffered += len;
        s.buffered_bytes += bytes;
        let limit = capacity.max(len);
        let in_flight = s.in_flight;
        let in_flight_len = s
            .entries
            .front()
            .filter(|e| Some(e.seq) == in_flight)
            .map_or(0, |e| e.len());
        let mut dropped = 0usize;
        while s.buffered - in_flight_len > limit {
            let index = usize::from(
                in_flight.is_some() && s.entries.front().is_some_and(|e| Some(e.seq) == in_flight),
            );
            let excess = s.buffered - in_flight_len - limit;
            let Some(oldest) = s.entries.get_mut(index) else {
                break;
            };
            let cut = excess.min(oldest.len());
            oldest.start += cut;
            let empty = oldest.len() == 0;
            let freed = if empty { oldest.bytes } else { 0 };
            s.buffered -= cut;
            s.buffered_bytes -= freed;
            dropped += cut;
            if empty {
                s.entries.remove(index);
            }
        }
        // Memory: whole batches, oldest first, never the one in flight nor
        // the newest (a span cut from a batch frees nothing while the rest
        // of the batch waits). The batch in flight counts: it is held too.
        let in_flight_bytes = s
            .entries
            .front()
            .filter(|e| Some(e.seq) == in_flight)
            .map_or(0, |e| e.bytes);
        while s.buffered_bytes > limits.bytes.max(bytes + in_flight_bytes) {
            let index = usize::from(
                in_flight.is_some() && s.entries.front().is_some_and(|e| Some(e.seq) == in_flight),
            );
            if index + 1 >= s.entries.len() {
                break;
            }
            let Some(oldest) = s.entries.remove(index) else {
                break;
            };
            s.buffered -= oldest.len();
            s.buffered_bytes -= oldest.bytes;
            dropped += oldest.len();
        }
        drop(s);
        if dropped > 0 {
            counters
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }
}

enum Command {
    Flush(std::sync::mpsc::SyncSender<Result<(), String>>),
    Shutdown(Instant, std::sync::mpsc::SyncSender<Vec<ShutdownError>>),
}

/// What a lane ships to: a span [`Exporter`] or a [`LogExporter`], seen
/// alike by the resilient export.
#[async_trait::async_trait]
pub(crate) trait Ship<T>: Send + Sync {
    fn name(&self) -> &str;
    /// What one item is called in messages (`spans`, `log records`).
    fn unit(&self) -> &'static str;
    async fn export(&self, batch: &[T]) -> Result<(), ExportError>;
    async fn shutdown(&self) -> Result<(), ExportError>;
    /// What the backend rejected of the last successful export (OTLP
    /// partial success), taken once.
    fn take_partial_success(&self) -> Option<crate::export::PartialSuccess> {
        None
    }
}

#[async_trait::async_trait]
impl Ship<SpanData> for Box<dyn Exporter> {
    fn name(&self) -> &str {
        Exporter::name(self.as_ref())
    }
    fn unit(&self) -> &'static str {
        "spans"
    }
    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        Exporter::export(self.as_ref(), batch).await
    }
    async fn shutdown(&self) -> Result<(), ExportError> {
        Exporter::shutdown(self.as_ref()).await
    }
    fn take_partial_success(&self) -> Option<crate::export::PartialSuccess> {
        Exporter::take_partial_success(self.as_ref())
    }
}

#[async_trait::async_trait]
impl Ship<LogRecord> for Box<dyn LogExporter> {
    fn name(&self) -> &str {
        LogExporter::name(self.as_ref())
    }
    fn unit(&self) -> &'static str {
        "log records"
    }
    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError> {
        LogExporter::export(self.as_ref(), batch).await
    }
    async fn shutdown(&self) -> Result<(), ExportError> {
        LogExporter::shutdown(self.as_ref()).await
    }
    fn take_partial_success(&self) -> Option<crate::export::PartialSuccess> {
        LogExporter::take_partial_success(self.as_ref())
    }
}

struct Task<T> {
    exporter: Box<dyn Ship<T>>,
    lane: Arc<Lane<T>>,
    counters: Arc<Counters>,
    retry: ExportRetry,
    rng: u64,
    /// Masks what a backend says about rejected spans before it is logged.
    masker: Option<Arc<dyn Masker>>,
    /// Whether a partial success was logged already (once per exporter).
    partial_logged: bool,
}

impl<T: Send + Sync + 'static> Task<T> {
    /// `delay` with equal jitter: a random duration in `[delay/2, delay]`.
    fn jitter(&mut self, delay: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = delay / 2;
        let nanos = half.as_nanos().max(1) as u64;
        half + Duration::from_nanos(self.rng % nanos)
    }

    fn backoff(&mut self, attempts: u32) -> Duration {
        let base = self.retry.backoff_base();
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let delay = base.saturating_mul(factor).min(self.retry.backoff_max());
        self.jitter(delay)
    }

    /// The delay before the attempt after a server asked for `asked`
    /// (at most `backoff_max`): never earlier than asked, jitter adding up
    /// to a quarter more, within `backoff_max`.
    fn at_least(&mut self, asked: Duration) -> Duration {
        let extra = self.jitter(asked / 2).saturating_sub(asked / 4);
        (asked + extra).min(self.retry.backoff_max()).max(asked)
    }

    /// Counts what a successful export's backend rejected, and logs the
    /// first message, masked.
    fn note_partial_success(&mut self) {
        let Some(partial) = self.exporter.take_partial_success() else {
            return;
        };
        self.counters
            .rejected
            .fetch_add(partial.rejected, Ordering::Relaxed);
        if self.partial_logged {
            return;
        }
        self.partial_logged = true;
        let message = match &self.masker {
            Some(m) => m.mask(&partial.message).into_owned(),
            None => partial.message,
        };
        let unit = self.exporter.unit();
        tracing::warn!(
            exporter = self.exporter.name(),
            rejected = partial.rejected,
            "the backend accepted the export but rejected some {unit} (logged once; \
             counted in faultline_export_{}_rejected_total): {message}",
            unit.replace(' ', "_")
        );
    }

    fn unavailable(&self) -> String {
        let buffered = self.lane.lock().buffered;
        format!(
            "{}: backend unavailable, {buffered} {} buffered",
            self.exporter.name(),
            self.exporter.unit()
        )
    }

    /// One attempt at `spans`, bounded in time, a panic turned into an error.
    async fn attempt(&self, spans: &[T], timeout: Duration) -> Result<(), ExportError> {
        let call = AssertUnwindSafe(self.exporter.export(spans)).catch_unwind();
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(result)) => result,
            Ok(Err(_panic)) => Err(ExportError::transient("the exporter panicked")),
            Err(_) => Err(ExportError::Timeout(timeout)),
        }
    }

    /// The oldest entry, marked in flight.
    fn take_front(&self) -> Option<(u64, Arc<Vec<T>>, usize, u32)> {
        let mut s = self.lane.lock();
        let front = s
            .entries
            .front()
            .map(|e| (e.seq, e.batch.clone(), e.start, e.attempts));
        s.in_flight = front.as_ref().map(|f| f.0);
        front
    }

    /// Settles the in-flight entry: removed (delivered or dropped) or kept
    /// with one more attempt counted.
    fn settle(&self, seq: u64, remove: bool) -> u32 {
        let mut s = self.lane.lock();
        s.in_flight = None;
        match s.entries.front_mut() {
            Some(e) if e.seq == seq => {
                if remove {
                    let n = e.len();
                    let bytes = e.bytes;
                    s.buffered -= n;
                    s.buffered_bytes -= bytes;
                    s.entries.pop_front();
                    0
                } else {
                    e.attempts += 1;
                    e.attempts
                }
            }
            _ => 0,
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut backoff_until: Option<tokio::time::Instant> = None;
        let mut probe = self.retry.backoff_base();
        let mut flushes: Vec<std::sync::mpsc::SyncSender<Result<(), String>>> = Vec::new();
        // Retries spent on the oldest batch: the backend is down.
        let mut exhausted = false;
        loop {
            // Commands first, without waiting.
            while let Ok(command) = commands.try_recv() {
                match command {
                    Command::Flush(reply) if exhausted => {
                        let _ = reply.send(Err(self.unavailable()));
                    }
                    Command::Flush(reply) => flushes.push(reply),
                    Command::Shutdown(deadline, reply) => {
                        let errors = self.shutdown(deadline).await;
                        for f in flushes.drain(..) {
                            let _ = f.send(Ok(()));
                        }
                        let _ = reply.send(errors);
                        return;
                    }
                }
            }
            let wait_until = backoff_until.filter(|t| *t > tokio::time::Instant::now());
            let front = if wait_until.is_none() {
                self.take_front()
            } else {
                None
            };
            let Some((seq, batch, start, attempts)) = front else {
                if wait_until.is_none() {
                    for f in flushes.drain(..) {
                        let _ = f.send(Ok(()));
                    }
                }
                let sleep = async {
                    match wait_until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(Command::Flush(reply)) if exhausted => {
                            let _ = reply.send(Err(self.unavailable()));
                        }
                        Some(Command::Flush(reply)) => flushes.push(reply),
                        Some(Command::Shutdown(deadline, reply)) => {
                            let errors = self.shutdown(deadline).await;
                            let _ = reply.send(errors);
                            return;
                        }
                        None => return,
                    },
                    _ = self.lane.wake.notified(), if wait_until.is_none() => {}
                    _ = sleep => { backoff_until = None; }
                }
                continue;
            };
            let spans = &batch[start..];
            let result = self.attempt(spans, self.retry.timeout()).await;
            if attempts > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            match result {
                Ok(()) => {
                    self.counters
                        .delivered
                        .fetch_add(spans.len() as u64, Ordering::Relaxed);
                    self.settle(seq, true);
                    self.note_partial_success();
                    probe = self.retry.backoff_base();
                    exhausted = false;
                }
                Err(ExportError::Permanent { reason, .. }) => {
                    self.counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .dropped
                        .fetch_add(spans.len() as u64, Ordering::Relaxed);
                    self.settle(seq, true);
                    tracing::warn!(
                        exporter = self.exporter.name(),
                        spans = spans.len(),
                        "export rejected, {} dropped: {reason}",
                        self.exporter.unit()
                    );
                }
                Err(error) => {
                    self.counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    let attempts = self.settle(seq, false);
                    let max = self.retry.backoff_max();
                    let asked = error.retry_after();
                    // Retries spent, or the server asks for longer than the
                    // longest back-off: the batch waits in the buffer.
                    let to_buffer =
                        attempts > self.retry.max_retries() || asked.is_some_and(|d| d > max);
                    let delay = if !to_buffer {
                        match asked {
                            Some(asked) => self.at_least(asked),
                            None => self.backoff(attempts),
                        }
                    } else {
                        // Keep the spans, probe with growing intervals (or
                        // as the server asked, within the longest back-off).
                        if !exhausted {
                            tracing::warn!(
                                exporter = self.exporter.name(),
                                "export failing, {} kept in the buffer: {error}",
                                self.exporter.unit()
                            );
                        }
                        exhausted = true;
                        for f in flushes.drain(..) {
                            let _ = f.send(Err(format!("{}: {error}", self.exporter.name())));
                        }
                        let d = match asked {
                            Some(asked) => self.at_least(asked.min(max)),
                            None => self.jitter(probe),
                        };
                        probe = (probe * 2).min(max);
                        d
                    };
                    backoff_until = Some(tokio::time::Instant::now() + delay);
                }
            }
        }
    }

    /// Ships what it can before `deadline`: a batch that fails for a
    /// passing reason (the backend restarting, a time-out) is tried again
    /// with a short back-off until the deadline, so that a collector that
    /// blinks during a deploy loses nothing; what is left then is counted
    /// as dropped; closes the exporter.
    async fn shutdown(&mut self, deadline: Instant) -> Vec<ShutdownError> {
        let mut errors = Vec::new();
        let mut last_error = None;
        let mut pause = self.retry.backoff_base().min(Duration::from_millis(100));
        'batches: while let Some((seq, batch, start, _)) = self.take_front() {
            let spans = &batch[start..];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.settle(seq, false);
                    break 'batches;
                }
                match self.attempt(spans, left.min(self.retry.timeout())).await {
                    Ok(()) => {
                        self.counters
                            .delivered
                            .fetch_add(spans.len() as u64, Ordering::Relaxed);
                        self.settle(seq, true);
                        self.note_partial_success();
                        continue 'batches;
                    }
                    Err(e @ ExportError::Permanent { .. }) => {
                        self.counters
                            .failed_attempts
                            .fetch_add(1, Ordering::Relaxed);
                        self.counters
                            .dropped
                            .fetch_add(spans.len() as u64, Ordering::Relaxed);
                        self.settle(seq, true);
                        errors.push(self.shutdown_error(e));
                        continue 'batches;
                    }
                    Err(e) => {
                        self.counters
                            .failed_attempts
                            .fetch_add(1, Ordering::Relaxed);
                        let asked = e.retry_after();
                        last_error = Some(e);
                        let left = deadline.saturating_duration_since(Instant::now());
                        // A server's ask is honoured here too, as far as
                        // the deadline allows.
                        let wait = asked.unwrap_or(Duration::ZERO).max(pause);
                        if left <= wait {
                            self.settle(seq, false);
                            break 'batches;
                        }
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        let delay = match asked {
                            Some(asked) if asked >= pause => asked,
                            _ => self.jitter(pause),
                        };
                        tokio::time::sleep(delay).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        if let Some(e) = last_error {
            errors.push(self.shutdown_error(e));
        }
        let undelivered = {
            let mut s = self.lane.lock();
            let n = s.buffered;
            s.entries.clear();
            s.buffered = 0;
            s.buffered_bytes = 0;
            n
        };
        if undelivered > 0 {
            self.counters
                .dropped
                .fetch_add(undelivered as u64, Ordering::Relaxed);
            errors.push(ShutdownError::Undelivered {
                exporter: self.exporter.name().to_owned(),
                count: undelivered,
                unit: self.exporter.unit(),
            });
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        let close = AssertUnwindSafe(self.exporter.shutdown()).catch_unwind();
        match tokio::time::timeout(left, close).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(self.shutdown_error(e)),
            Ok(Err(_)) => errors.push(ShutdownError::Panicked {
                exporter: self.exporter.name().to_owned(),
            }),
            Err(_) => errors.push(ShutdownError::TimedOut {
                exporter: self.exporter.name().to_owned(),
            }),
        }
        errors
    }

    /// `error`, as the shutdown reports it (named after the exporter).
    fn shutdown_error(&self, error: ExportError) -> ShutdownError {
        ShutdownError::Export {
            exporter: self.exporter.name().to_owned(),
            source: error,
        }
    }
}

#[derive(Debug)]
struct LaneHandle<T> {
    lane: Arc<Lane<T>>,
    counters: Arc<Counters>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Flush(_) => "Flush",
            Command::Shutdown(..) => "Shutdown",
        })
    }
}

/// The SDK-facing exporter; the engine keeps the [`PipelineControl`] to
/// flush and shut down (the batch processor does not ask its exporter to
/// flush, and closes it with a fixed deadline).
#[derive(Debug)]
pub(crate) struct ExportPipeline {
    control: Arc<PipelineControl>,
}

#[derive(Debug)]
pub(crate) struct PipelineControl {
    masker: Option<Arc<dyn Masker>>,
    /// The longest string value exported, in bytes.
    value_limit: usize,
    /// The masker's secret-key decision per attribute key: keys repeat from
    /// span to span, so each is decided once (bounded; cleared when full).
    secret_keys: Mutex<HashMap<Key, bool, KeyHasher>>,
    /// Short texts a deterministic masker left unchanged (bounded; cleared
    /// when full): they are not scanned again.
    clean_texts: Mutex<CleanTexts>,
    lanes: Vec<LaneHandle<SpanData>>,
    /// The log records' queue and lanes, when log exporters are configured.
    logs: Option<Arc<LogLanes>>,
    limits: BufferLimits,
    gate: Arc<QueueGate>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<StatsCell>,
    last_errors: Arc<Mutex<Vec<ShutdownError>>>,
    shut_down: std::sync::atomic::AtomicBool,
}

/// What the pipeline needs to ship log records besides spans.
pub(crate) struct LogSetup {
    pub(crate) exporters: Vec<Box<dyn LogExporter>>,
    pub(crate) queue: Arc<LogQueue>,
    pub(crate) stats: Arc<StatsCell>,
    pub(crate) scheduled_delay: Duration,
}

/// The log records' queue and one lane per log exporter.
#[derive(Debug)]
pub(crate) struct LogLanes {
    queue: Arc<LogQueue>,
    lanes: Vec<LaneHandle<LogRecord>>,
    stats: Arc<StatsCell>,
}

impl LogLanes {
    /// Moves every queued record into every log exporter's buffer, in
    /// batches of the configured size.
    fn drain(&self, limits: BufferLimits) {
        let (mut records, _) = self.queue.take();
        if records.is_empty() {
            return;
        }
        self.stats
            .spans_received
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(self.queue.batch_size()));
            let bytes = records.iter().map(LogRecord::estimated_size).sum();
            let batch = Arc::new(std::mem::replace(&mut records, rest));
            for lane in &self.lanes {
                lane.lane.push(batch.clone(), bytes, limits, &lane.counters);
            }
        }
    }

    /// Ships the queue every `delay`, or as soon as it holds a batch,
    /// until the queue is closed.
    async fn run(self: Arc<Self>, delay: Duration, limits: BufferLimits) {
        loop {
            let _ = tokio::time::timeout(delay, self.queue.wake.notified()).await;
            self.drain(limits);
            if self.queue.closed.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

type TaskFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// One lane and its task per exporter; the tasks are returned to be
/// spawned on the export thread.
fn lanes<T: Send + Sync + std::fmt::Debug + 'static>(
    exporters: Vec<Box<dyn Ship<T>>>,
    retry: ExportRetry,
    masker: &Option<Arc<dyn Masker>>,
    stats: &StatsCell,
    seed: u64,
    tasks: &mut Vec<TaskFuture>,
) -> Vec<LaneHandle<T>> {
    let mut lanes = Vec::with_capacity(exporters.len());
    for exporter in exporters {
        let lane = Arc::new(Lane::default());
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::unbounded_channel();
        stats.lanes.lock().unwrap_or_else(|e| e.into_inner()).push((
            exporter.name().to_owned(),
            counters.clone(),
            lane.clone() as Arc<dyn LaneGauge>,
        ));
        let task = Task {
            exporter,
            lane: lane.clone(),
            counters: counters.clone(),
            retry,
            rng: seed.wrapping_mul(tasks.len() as u64 * 2 + 1),
            masker: masker.clone(),
            partial_logged: false,
        };
        tasks.push(Box::pin(task.run(rx)));
        lanes.push(LaneHandle {
            lane,
            counters,
            commands: tx,
        });
    }
    lanes
}

impl ExportPipeline {
    /// Starts the export thread with one task per exporter (span and log
    /// exporters alike).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        masker: Option<Arc<dyn Masker>>,
        value_limit: usize,
        exporters: Vec<Box<dyn Exporter>>,
        retry: ExportRetry,
        gate: Arc<QueueGate>,
        stats: Arc<StatsCell>,
        last_errors: Arc<Mutex<Vec<ShutdownError>>>,
        logs: Option<LogSetup>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("faultline-export")
            .build()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        let limits = BufferLimits {
            spans: retry.buffer_capacity(),
            bytes: retry.buffer_bytes(),
        };
        let mut tasks: Vec<TaskFuture> = Vec::new();
        let span_exporters = exporters
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn Ship<SpanData>>)
            .collect();
        let span_lanes = lanes(span_exporters, retry, &masker, &stats, seed, &mut tasks);
        let logs = logs.map(|setup| {
            let exporters = setup
                .exporters
                .into_iter()
                .map(|e| Box::new(e) as Box<dyn Ship<LogRecord>>)
                .collect();
            let log_lanes = Arc::new(LogLanes {
                lanes: lanes(exporters, retry, &masker, &setup.stats, seed, &mut tasks),
                queue: setup.queue,
                stats: setup.stats,
            });
            tasks.push(Box::pin(
                log_lanes.clone().run(setup.scheduled_delay, limits),
            ));
            log_lanes
        });
        let worker = std::thread::Builder::new()
            .name("faultline-export".to_owned())
            .spawn(move || {
                // Nothing the exporters do (HTTP clients, gRPC) is traced.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                runtime.block_on(async move {
                    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
                    for h in handles {
                        let _ = h.await;
                    }
                });
            })?;
        Ok(ExportPipeline {
            control: Arc::new(PipelineControl {
                masker,
                value_limit,
                secret_keys: Mutex::new(HashMap::default()),
                clean_texts: Mutex::new(std::collections::HashSet::default()),
                lanes: span_lanes,
                logs,
                limits,
                gate,
                worker: Mutex::new(Some(worker)),
                stats,
                last_errors,
                shut_down: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The handle the engine keeps.
    pub(crate) fn control(&self) -> Arc<PipelineControl> {
        self.control.clone()
    }
}

impl PipelineControl {
    /// The command channel of every lane, span and log exporters'.
    fn commands(&self) -> impl Iterator<Item = &mpsc::UnboundedSender<Command>> {
        let logs = self.logs.iter().flat_map(|l| l.lanes.iter());
        self.lanes
            .iter()
            .map(|l| &l.commands)
            .chain(logs.map(|l| &l.commands))
    }

    /// Keeps `errors` for the engine's shutdown report; returns their text.
    fn remember(&self, errors: Vec<ShutdownError>) -> Vec<String> {
        let text = errors.iter().map(ToString::to_string).collect();
        if !errors.is_empty()
            && let Ok(mut last) = self.last_errors.lock()
        {
            last.extend(errors);
        }
        text
    }
}

impl SpanExporter for ExportPipeline {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.control.push(batch);
        std::future::ready(Ok(()))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let (errors, timed_out) = self.control.shutdown(Instant::now() + timeout);
        if timed_out {
            Err(OTelSdkError::Timeout(timeout))
        } else if errors.is_empty() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(errors.join("; ")))
        }
    }
}

impl PipelineControl {
    /// Masks a batch and puts it into every exporter's buffer.
    fn push(&self, mut batch: Vec<SpanData>) {
        self.stats
            .spans_received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Out of the batch queue: estimated as the gate estimated them on
        // the way in (nothing changed them since).
        let queued: usize = batch.iter().map(super::estimated_size).sum();
        self.gate.release(batch.len(), queued);
        // Limits first (masking a megabyte value would cost for nothing),
        // each cut counted.
        let mut cut = LimitStats::default();
        for span in batch.iter_mut() {
            cut.attributes_dropped += u64::from(span.dropped_attributes_count);
            cut.events_dropped += u64::from(span.events.dropped_count);
            cut.links_dropped += u64::from(span.links.dropped_count);
            super::dedupe_span_attributes(span);
            cut.values_truncated += super::truncate_span_values(span, self.value_limit);
        }
        self.stats.limits.add(&cut);
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
            if masker.is_deterministic() {
                let mut clean = self.clean_texts.lock().unwrap_or_else(|e| e.into_inner());
                let remembering = Remembering::new(masker, &clean);
                for span in batch.iter_mut() {
                    mask_span_with(&remembering, span, &mut is_secret);
                }
                let fresh = remembering.into_fresh();
                remember_clean(&mut clean, fresh);
            } else {
                for span in batch.iter_mut() {
                    mask_span_with(masker, span, &mut is_secret);
                }
            }
        }
        // The buffer's estimate is the queue's: masking and the limits
        // change a span's strings little, and never upwards by much.
        let bytes = queued;
        let batch = Arc::new(batch);
        for lane in &self.lanes {
            lane.lane
                .push(batch.clone(), bytes, self.limits, &lane.counters);
        }
    }

    /// Waits until every exporter shipped its buffer, or reported its
    /// backend down, or 30 s passed.
    pub(crate) fn flush(&self) -> OTelSdkResult {
        if let Some(logs) = &self.logs {
            logs.drain(self.limits);
        }
        let mut waiting = Vec::with_capacity(self.lanes.len());
        for commands in self.commands() {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if commands.send(Command::Flush(tx)).is_ok() {
                waiting.push(rx);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut errors = Vec::new();
        for rx in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("flush timed out".to_owned()),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(errors.join("; ")))
        }
    }

    /// Ships what each exporter can before `deadline`, then closes them.
    /// Returns the errors and whether an exporter did not answer in time.
    /// Only the first call does anything.
    pub(crate) fn shutdown(&self, deadline: Instant) -> (Vec<String>, bool) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return (Vec::new(), false);
        }
        if let Some(logs) = &self.logs {
            // Whatever is queued goes into the buffers, then the queue
            // closes (later records are refused, counted) and its task ends.
            logs.drain(self.limits);
            logs.queue.closed.store(true, Ordering::Release);
            logs.queue.wake.notify_one();
            logs.drain(self.limits);
        }
        let mut waiting = Vec::with_capacity(self.lanes.len());
        for commands in self.commands() {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if commands.send(Command::Shutdown(deadline, tx)).is_ok() {
                waiting.push(rx);
            }
        }
        let mut errors = Vec::new();
        let mut timed_out = false;
        for rx in waiting {
            // A little grace beyond the deadline for the reply itself.
            let left =
                deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(200);
            match rx.recv_timeout(left) {
                Ok(errs) => errors.extend(errs),
                Err(_) => timed_out = true,
            }
        }
        let errors = self.remember(errors);
        if !timed_out && let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
        (errors, timed_out)
    }
}

#[cfg(test)]
mod tests;
