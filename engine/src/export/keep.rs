//! Error-keeping sampling: every trace id handed out with an error leads to
//! an exported trace, at any sample rate.
//!
//! The sampler records the spans it would drop instead of dropping them
//! ([`KeepErrorsSampler`]: `Drop` becomes `RecordOnly`). Such a span, once
//! ended, waits in a bounded per-trace buffer ([`KeepErrorsProcessor`])
//! until the trace's local root span (the request's server span) ends. The
//! root decides: marked `faultline.sampling.kept = "error"` (the request
//! ended in an error response or a panic), every waiting span of the trace
//! and the root go on to export, flagged sampled; otherwise the buffer is
//! discarded. Slow keeping works the same way: a root that is a server
//! span lasting longer than the threshold (`FAULTLINE_KEEP_SLOW_MS`) is
//! marked `faultline.sampling.kept = "slow"` here, as it ends, and its trace
//! is kept (whether error keeping is on or off; an error mark set first
//! stays). Spans of a trace that ends after its root follow the root's
//! decision for a while (a bounded memory of recent decisions), then are
//! dropped. Sampled spans pass straight through.
//!
//! Bounds: at most `max_traces` traces wait at once and at most
//! `max_spans_per_trace` spans per trace; what the caps cut is counted
//! ([`ErrorKeepingStats::spans_cut`]), never silent. A trace whose root
//! never ends locally is evicted once it has waited [`MAX_WAIT`] and the
//! buffer is full.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    SamplingDecision, SamplingResult, ShouldSample, Span, SpanData, SpanProcessor,
};

/// The attribute that marks the root span of a trace kept for its error
/// (`"error"`) or for being slow (`"slow"`).
pub const KEPT_ATTRIBUTE: &str = "faultline.sampling.kept";

/// How long a trace may wait for its root before a full buffer evicts it.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);

/// Shards of the buffer (requests on different threads rarely meet).
const SHARDS: usize = 16;

/// Recent root decisions remembered per shard, for spans that end after
/// their root.
const DECISIONS_PER_SHARD: usize = 64;

/// The sampler's decision, with `Drop` turned into `RecordOnly`.
#[derive(Debug, Clone)]
pub(crate) struct KeepErrorsSampler(pub(crate) Box<dyn ShouldSample>);

impl ShouldSample for KeepErrorsSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut result =
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if result.decision == SamplingDecision::Drop {
            result.decision = SamplingDecision::RecordOnly;
        }
        result
    }
}

/// What error keeping did, readable at any time (part of
/// [`ExportStats`](super::ExportStats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorKeepingStats {
    /// Unsampled traces exported because their request ended in an error
    /// or was slow (both together).
    pub traces_kept: u64,
    /// Of `traces_kept`, those kept because their request was slow (and
    /// did not end in an error).
    pub traces_kept_slow: u64,
    /// Unsampled traces discarded (no error, not slow).
    pub traces_discarded: u64,
    /// Traces waiting for their root now.
    pub traces_waiting: u64,
    /// Spans of waiting traces cut by the caps (too many traces waiting,
    /// too many spans in one trace, or evicted after waiting too long).
    pub spans_cut: u64,
}

#[derive(Debug, Default)]
pub(crate) struct KeepCounters {
    /// Spans handed on to the batch queue (sampled, or kept), admitted
    /// by its gate or refused.
    ended: AtomicU64,
    kept: AtomicU64,
    kept_slow: AtomicU64,
    discarded: AtomicU64,
    waiting: AtomicU64,
    cut: AtomicU64,
}

impl KeepCounters {
    pub(crate) fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> ErrorKeepingStats {
        ErrorKeepingStats {
            traces_kept: self.kept.load(Ordering::Relaxed),
            traces_kept_slow: self.kept_slow.load(Ordering::Relaxed),
            traces_discarded: self.discarded.load(Ordering::Relaxed),
            traces_waiting: self.waiting.load(Ordering::Relaxed),
            spans_cut: self.cut.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Waiting {
    since: Instant,
    spans: Vec<SpanData>,
}

#[derive(Debug, Default)]
struct Shard {
    waiting: HashMap<TraceId, Waiting>,
    /// Recent roots: trace id and whether the trace was kept.
    decided: VecDeque<(TraceId, bool)>,
}

/// The span processor in front of the batch processor; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct KeepErrorsProcessor<P> {
    inner: P,
    /// Off: sampled spans pass (counted), nothing else is held.
    enabled: bool,
    /// A root server span longer than this is kept (slow keeping).
    slow: Option<Duration>,
    shards: Box<[Mutex<Shard>]>,
    max_traces_per_shard: usize,
    max_spans_per_trace: usize,
    counters: std::sync::Arc<KeepCounters>,
    gate: std::sync::Arc<super::pipeline::QueueGate>,
}

impl<P: SpanProcessor> KeepErrorsProcessor<P> {
    pub(crate) fn new(
        inner: P,
        enabled: bool,
        slow: Option<Duration>,
        max_traces: usize,
        max_spans_per_trace: usize,
        counters: std::sync::Arc<KeepCounters>,
        gate: std::sync::Arc<super::pipeline::QueueGate>,
    ) -> Self {
        KeepErrorsProcessor {
            inner,
            enabled,
            slow,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_traces_per_shard: max_traces.div_ceil(SHARDS).max(1),
            max_spans_per_trace: max_spans_per_trace.max(1),
            counters,
            gate,
        }
    }

    fn shard(&self, trace_id: TraceId) -> std::sync::MutexGuard<'_, Shard> {
        let bytes = trace_id.to_bytes();
        self.shards[bytes[15] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn export(&self, mut span: SpanData) {
        let sc = &span.span_context;
        span.span_context = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().with_sampled(true),
            sc.is_remote(),
            sc.trace_state().clone(),
        );
        self.forward(span);
    }

    /// Hands a span on to the batch queue if its gate admits it (counted
    /// either way: what the queue refuses is `ended - received`).
    fn forward(&self, span: SpanData) {
        self.counters.ended.fetch_add(1, Ordering::Relaxed);
        if self.gate.admit(super::estimated_size(&span)) {
            self.inner.on_end(span);
        }
    }

    fn cut(&self, n: usize) {
        self.counters.cut.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A root ended: export or discard its trace.
    fn decide(&self, mut root: SpanData) {
        let trace_id = root.span_context.trace_id();
        let mut keep = root
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == KEPT_ATTRIBUTE);
        if !keep && self.is_slow(&root) {
            root.attributes.push(KeyValue::new(KEPT_ATTRIBUTE, "slow"));
            self.counters.kept_slow.fetch_add(1, Ordering::Relaxed);
            keep = true;
        }
        let waiting = {
            let mut shard = self.shard(trace_id);
            if shard.decided.len() == DECISIONS_PER_SHARD {
                shard.decided.pop_front();
            }
            shard.decided.push_back((trace_id, keep));
            shard.waiting.remove(&trace_id)
        };
        if waiting.is_some() {
            self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if keep {
            self.counters.kept.fetch_add(1, Ordering::Relaxed);
            for span in waiting.into_iter().flat_map(|w| w.spans) {
                self.export(span);
            }
            self.export(root);
        } else {
            self.counters.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether `root` is a request's server span that lasted longer than
    /// the slow threshold.
    fn is_slow(&self, root: &SpanData) -> bool {
        let Some(threshold) = self.slow else {
            return false;
        };
        root.span_kind == SpanKind::Server
            && root
                .end_time
                .duration_since(root.start_time)
                .is_ok_and(|lasted| lasted > threshold)
    }

    /// A span of an unsampled trace ended before (or after) its root.
    fn hold(&self, span: SpanData) {
        let trace_id = span.span_context.trace_id();
        let mut shard = self.shard(trace_id);
        if let Some(&(_, keep)) = shard.decided.iter().rev().find(|(t, _)| *t == trace_id) {
            drop(shard);
            if keep {
                self.export(span);
            }
            return;
        }
        if let Some(waiting) = shard.waiting.get_mut(&trace_id) {
            if waiting.spans.len() < self.max_spans_per_trace {
                waiting.spans.push(span);
            } else {
                drop(shard);
                self.cut(1);
            }
            return;
        }
        if shard.waiting.len() >= self.max_traces_per_shard {
            // Full: traces whose root has not ended for too long go first.
            let now = Instant::now();
            let mut evicted = 0;
            shard.waiting.retain(|_, w| {
                let stale = now.duration_since(w.since) >= MAX_WAIT;
                if stale {
                    evicted += w.spans.len();
                    self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                }
                !stale
            });
            self.cut(evicted);
            if shard.waiting.len() >= self.max_traces_per_shard {
                drop(shard);
                self.cut(1);
                return;
            }
        }
        let mut spans = Vec::with_capacity(4);
        spans.push(span);
        shard.waiting.insert(
            trace_id,
            Waiting {
                since: Instant::now(),
                spans,
            },
        );
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
    }
}

impl<P: SpanProcessor> SpanProcessor for KeepErrorsProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            return self.forward(span);
        }
        if !self.enabled {
            return;
        }
        let local_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        if local_root {
            self.decide(span);
        } else {
            self.hold(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // What still waits has no decision: it is dropped, counted.
        let mut left = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            left += shard
                .waiting
                .drain()
                .map(|(_, w)| w.spans.len())
                .sum::<usize>();
        }
        self.counters.waiting.store(0, Ordering::Relaxed);
        self.cut(left);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
