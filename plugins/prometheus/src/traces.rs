//! The guard on per-trace error series: at most `limit` live series (least
//! recently updated evicted first), each dropped after `ttl` without a new
//! error. Evictions are counted, so an operator sees the guard working.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::labels::{SpanHex, TraceHex, label};

/// Where the guard reads the time (injectable, so tests need not sleep).
pub(crate) trait Clock: Send + Sync + Debug {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The identity of one per-trace error series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TraceKey {
    pub code: u32,
    pub name: &'static str,
    pub route: Arc<str>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl EncodeLabelSet for TraceKey {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "error_code", &self.code)?;
        label(encoder, "error_name", &self.name)?;
        label(encoder, "http_route", &&*self.route)?;
        label(encoder, "trace_id", &TraceHex(self.trace_id))?;
        label(encoder, "span_id", &SpanHex(self.span_id))
    }
}

#[derive(Debug)]
struct Slot {
    count: u64,
    last_seen: Instant,
    /// The touch that put this series at its place in `order`.
    generation: u64,
}

#[derive(Debug, Default)]
struct State {
    series: HashMap<TraceKey, Slot>,
    /// Touches, oldest first; an entry whose generation is no longer its
    /// series' is stale and skipped (lazy deletion keeps touches O(1)).
    order: VecDeque<(TraceKey, u64)>,
    next_generation: u64,
}

/// The bounded, expiring set of per-trace error series.
#[derive(Debug)]
pub(crate) struct TraceSeries {
    limit: usize,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    evicted_capacity: AtomicU64,
    evicted_idle: AtomicU64,
}

impl TraceSeries {
    pub(crate) fn new(limit: usize, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        TraceSeries {
            limit,
            ttl,
            clock,
            state: Mutex::new(State::default()),
            evicted_capacity: AtomicU64::new(0),
            evicted_idle: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state inconsistent in a way
        // that matters for counting: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one error on the series `key`, creating it (and evicting the
    /// least recently updated one beyond the limit) when new.
    pub(crate) fn record(&self, key: TraceKey) {
        if self.limit == 0 {
            return;
        }
        let now = self.clock.now();
        let mut state = self.lock();
        self.expire(&mut state, now);
        let state = &mut *state;
        let generation = state.next_generation;
        state.next_generation += 1;
        if let Some(slot) = state.series.get_mut(&key) {
            slot.count += 1;
            slot.last_seen = now;
            slot.generation = generation;
        } else {
            while state.series.len() >= self.limit {
                if !Self::evict_oldest(state) {
                    break;
                }
                self.evicted_capacity.fetch_add(1, Ordering::Relaxed);
            }
            state.series.insert(
                key.clone(),
                Slot {
                    count: 1,
                    last_seen: now,
                    generation,
                },
            );
        }
        state.order.push_back((key, generation));
        // Repeated touches of the same series leave stale entries: compact
        // once they outnumber the live ones.
        if state.order.len() > 2 * state.series.len() + 64 {
            let State { series, order, .. } = state;
            order.retain(|(k, g)| series.get(k).is_some_and(|s| s.generation == *g));
        }
    }

    /// Removes the least recently updated series; `false` when none is left.
    fn evict_oldest(state: &mut State) -> bool {
        while let Some((key, generation)) = state.order.pop_front() {
            if state
                .series
                .get(&key)
                .is_some_and(|s| s.generation == generation)
            {
                state.series.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops the series idle for `ttl` or longer.
    fn expire(&self, state: &mut State, now: Instant) {
        while let Some((key, generation)) = state.order.front() {
            match state.series.get(key) {
                Some(slot) if slot.generation == *generation => {
                    if now.saturating_duration_since(slot.last_seen) < self.ttl {
                        break;
                    }
                    let key = key.clone();
                    state.series.remove(&key);
                    self.evicted_idle.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            state.order.pop_front();
        }
    }

    /// The live series, least recently updated first, after expiry.
    pub(crate) fn snapshot(&self) -> Vec<(TraceKey, u64)> {
        let now = self.clock.now();
        let mut state = self.lock();
        self.expire(&mut state, now);
        state
            .order
            .iter()
            .filter_map(|(k, g)| {
                state
                    .series
                    .get(k)
                    .filter(|s| s.generation == *g)
                    .map(|s| (k.clone(), s.count))
            })
            .collect()
    }

    /// Series evicted because the limit was reached.
    pub(crate) fn evicted_for_capacity(&self) -> u64 {
        self.evicted_capacity.load(Ordering::Relaxed)
    }

    /// Series dropped because they were idle.
    pub(crate) fn evicted_for_idleness(&self) -> u64 {
        self.evicted_idle.load(Ordering::Relaxed)
    }
}

/// Renders the per-trace series and the guard's own counters at scrape time.
#[derive(Debug)]
pub(crate) struct TraceSeriesCollector(pub Arc<TraceSeries>);

/// The label set of the eviction counter.
#[derive(Debug)]
struct Reason(&'static str);

impl EncodeLabelSet for Reason {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "reason", &self.0)
    }
}

pub(crate) const TRACE_ERRORS: &str = "faultline_trace_errors";
pub(crate) const TRACE_SERIES: &str = "faultline_trace_error_series";
pub(crate) const TRACE_EVICTED: &str = "faultline_trace_error_series_evicted";

impl Collector for TraceSeriesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = &self.0;
        if series.limit == 0 {
            return Ok(());
        }
        let live = series.snapshot();
        {
            let mut family = encoder.encode_descriptor(
                TRACE_ERRORS,
                "Application errors per trace: one series per failed request (trace_id, span_id), bounded and expiring (see faultline_trace_error_series_evicted).",
                None,
                MetricType::Counter,
            )?;
            for (key, count) in &live {
                ConstCounter::new(*count).encode(family.encode_family(key)?)?;
            }
        }
        {
            let gauge = ConstGauge::new(live.len() as i64);
            let family = encoder.encode_descriptor(
                TRACE_SERIES,
                "Live per-trace error series (at most FAULTLINE_METRICS_TRACE_ID_SERIES).",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(family)?;
        }
        let mut family = encoder.encode_descriptor(
            TRACE_EVICTED,
            "Per-trace error series removed by the guard: reason capacity (the limit was reached; the least recently updated went) or idle (no new error within FAULTLINE_METRICS_TRACE_ID_TTL_SECS).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(series.evicted_for_capacity())
            .encode(family.encode_family(&Reason("capacity"))?)?;
        ConstCounter::new(series.evicted_for_idleness())
            .encode(family.encode_family(&Reason("idle"))?)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clock that moves only when told.
    #[derive(Debug)]
    pub(crate) struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        pub(crate) fn new() -> Arc<Self> {
            Arc::new(ManualClock(Mutex::new(Instant::now())))
        }
        pub(crate) fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn key(n: u128) -> TraceKey {
        TraceKey {
            code: 1001,
            name: "USER_NOT_FOUND",
            route: Arc::from("/users/{id}"),
            trace_id: TraceId::from(n),
            span_id: SpanId::from(n as u64),
        }
    }

    fn ids(series: &TraceSeries) -> Vec<u128> {
        series
            .snapshot()
            .into_iter()
            .map(|(k, _)| u128::from_be_bytes(k.trace_id.to_bytes()))
            .collect()
    }

    #[test]
    fn the_limit_evicts_the_least_recently_updated() {
        let clock = ManualClock::new();
        let s = TraceSeries::new(3, Duration::from_secs(60), clock.clone());
        for n in 1..=3 {
            s.record(key(n));
        }
        s.record(key(1)); // 1 is now the most recent
        s.record(key(4)); // evicts 2
        assert_eq!(ids(&s), vec![3, 1, 4]);
        assert_eq!(s.evicted_for_capacity(), 1);
        s.record(key(5)); // evicts 3
        assert_eq!(ids(&s), vec![1, 4, 5]);
        assert_eq!(s.evicted_for_capacity(), 2);
        assert_eq!(s.evicted_for_idleness(), 0);
        let counts: Vec<u64> = s.snapshot().into_iter().map(|(_, c)| c).collect();
        assert_eq!(counts, vec![2, 1, 1]);
    }

    #[test]
    fn idle_series_expire() {
        let clock = ManualClock::new();
        let s = TraceSeries::new(10, Duration::from_secs(60), clock.clone());
        s.record(key(1));
        clock.advance(Duration::from_secs(30));
        s.record(key(2));
        clock.advance(Duration::from_secs(29));
        assert_eq!(ids(&s), vec![1, 2]);
        clock.advance(Duration::from_secs(1)); // 1 idle for 60 s
        assert_eq!(ids(&s), vec![2]);
        assert_eq!(s.evicted_for_idleness(), 1);
        // A new error on 2 keeps it alive.
        clock.advance(Duration::from_secs(20));
        s.record(key(2));
        clock.advance(Duration::from_secs(59));
        assert_eq!(ids(&s), vec![2]);
        clock.advance(Duration::from_secs(1));
        assert!(ids(&s).is_empty());
        assert_eq!(s.evicted_for_idleness(), 2);
        assert_eq!(s.evicted_for_capacity(), 0);
    }

    #[test]
    fn repeated_touches_stay_bounded_in_memory() {
        let clock = ManualClock::new();
        let s = TraceSeries::new(2, Duration::from_secs(60), clock);
        for _ in 0..10_000 {
            s.record(key(1));
            s.record(key(2));
        }
        let state = s.lock();
        assert_eq!(state.series.len(), 2);
        assert!(state.order.len() <= 2 * 2 + 65, "{}", state.order.len());
    }

    #[test]
    fn limit_zero_records_nothing() {
        let s = TraceSeries::new(0, Duration::from_secs(60), Arc::new(SystemClock));
        s.record(key(1));
        assert!(s.snapshot().is_empty());
        assert_eq!(s.evicted_for_capacity(), 0);
    }

    #[test]
    fn many_distinct_traces_keep_the_bound() {
        let clock = ManualClock::new();
        let s = TraceSeries::new(100, Duration::from_secs(60), clock);
        for n in 0..10_000 {
            s.record(key(n));
        }
        let live = ids(&s);
        assert_eq!(live.len(), 100);
        assert_eq!(live, (9_900..10_000).collect::<Vec<u128>>());
        assert_eq!(s.evicted_for_capacity(), 9_900);
        assert!(s.lock().order.len() <= 2 * 100 + 65);
    }
}

#[cfg(test)]
mod size {
    /// docs/METRICS.md states the guard's memory per series from these sizes
    /// (map entry + one place in the order queue, before hash-table slack).
    #[test]
    fn per_series_bookkeeping_stays_as_documented() {
        let map_entry = std::mem::size_of::<super::TraceKey>() + std::mem::size_of::<super::Slot>();
        let queue_entry = std::mem::size_of::<(super::TraceKey, u64)>();
        assert!(map_entry <= 96, "{map_entry}");
        assert!(queue_entry <= 80, "{queue_entry}");
    }
}
