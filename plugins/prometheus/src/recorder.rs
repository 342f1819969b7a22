//! A `metrics` crate recorder whose counters, gauges and histograms appear on
//! the same `/metrics` as faultline's series.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use faultline_engine::masking::Masker;
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;

/// Labels of one series, sanitized and masked, in the order given.
type LabelSet = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Counter<u64>),
    Gauge(Gauge<f64, AtomicU64>),
    Histogram(Histogram),
}

#[derive(Debug)]
struct FamilyState {
    kind: Kind,
    series: BTreeMap<LabelSet, Series>,
}

#[derive(Debug, Default)]
struct State {
    /// Handles already made, by the caller's key (the fast path).
    handles: HashMap<Key, Handle>,
    /// Families by exposition name.
    families: BTreeMap<String, FamilyState>,
    /// Help texts by exposition name (descriptions may come before or after
    /// the first use).
    help: HashMap<String, String>,
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(metrics::Counter),
    Gauge(metrics::Gauge),
    Histogram(metrics::Histogram),
}

/// The shared state behind [`PrometheusRecorder`].
#[derive(Debug)]
pub(crate) struct UserMetrics {
    state: RwLock<State>,
    masker: RwLock<Arc<dyn Masker>>,
    buckets: Vec<f64>,
    /// Names faultline's own series use (a user series with one of them is
    /// ignored: two families with one name break the exposition).
    reserved: &'static [&'static str],
}

impl UserMetrics {
    pub(crate) fn new(
        masker: Arc<dyn Masker>,
        buckets: Vec<f64>,
        reserved: &'static [&'static str],
    ) -> Self {
        UserMetrics {
            state: RwLock::new(State::default()),
            masker: RwLock::new(masker),
            buckets,
            reserved,
        }
    }

    pub(crate) fn set_masker(&self, masker: Arc<dyn Masker>) {
        *self.masker.write().unwrap_or_else(|e| e.into_inner()) = masker;
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        let name = metric_name(key.as_str());
        let help = escape_help(&description);
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .help
            .insert(name, help);
    }

    fn register(&self, key: &Key, kind: Kind) -> Handle {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = state.handles.get(key) {
                return h.clone();
            }
        }
        let name = metric_name(key.name());
        let masker = self
            .masker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut labels: LabelSet = key
            .labels()
            .map(|l| {
                let k = label_name(l.key());
                let v = masker.mask_value(l.key(), l.value()).into_owned();
                (k, v)
            })
            .collect();
        // One value per label name: the last given wins.
        let mut seen = std::collections::HashSet::new();
        labels.reverse();
        labels.retain(|(k, _)| seen.insert(k.clone()));
        labels.reverse();

        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = state.handles.get(key) {
            return h.clone();
        }
        let reserved = self.is_reserved(&name);
        let family = state.families.entry(name).or_insert_with(|| FamilyState {
            kind,
            series: BTreeMap::new(),
        });
        let handle = if reserved || family.kind != kind {
            // A name clash: the exposition keeps one family per name.
            noop(kind)
        } else {
            let series = family.series.entry(labels).or_insert_with(|| match kind {
                Kind::Counter => Series::Counter(Counter::default()),
                Kind::Gauge => Series::Gauge(Gauge::default()),
                Kind::Histogram => Series::Histogram(Histogram::new(self.buckets.iter().copied())),
            });
            match series {
                Series::Counter(c) => Handle::Counter(metrics::Counter::from_arc(Arc::new(
                    CounterHandle(c.clone()),
                ))),
                Series::Gauge(g) => {
                    Handle::Gauge(metrics::Gauge::from_arc(Arc::new(GaugeHandle(g.clone()))))
                }
                Series::Histogram(h) => Handle::Histogram(metrics::Histogram::from_arc(Arc::new(
                    HistogramHandle(h.clone()),
                ))),
            }
        };
        state.handles.insert(key.clone(), handle.clone());
        handle
    }

    fn is_reserved(&self, name: &str) -> bool {
        name.starts_with("faultline_")
            || self
                .reserved
                .iter()
                .any(|r| name == *r || name.strip_suffix("_total") == Some(r))
    }
}

fn noop(kind: Kind) -> Handle {
    match kind {
        Kind::Counter => Handle::Counter(metrics::Counter::noop()),
        Kind::Gauge => Handle::Gauge(metrics::Gauge::noop()),
        Kind::Histogram => Handle::Histogram(metrics::Histogram::noop()),
    }
}

/// A valid metric name: characters outside `[a-zA-Z0-9_:]` become `_`, a
/// leading digit gets a `_` before it, and a counter's `_total` suffix is
/// left to the exposition.
fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    while let Some(stripped) = out.strip_suffix("_total") {
        if stripped.is_empty() {
            break;
        }
        out.truncate(stripped.len());
    }
    out
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, never starting with `__`
/// (reserved by Prometheus).
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    while out.starts_with("__") {
        out.replace_range(0..2, "u_");
    }
    out
}

/// Help text on one line, escaped as OpenMetrics asks (`\\`, `\"`, `\n`).
fn escape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug)]
struct CounterHandle(Counter<u64>);

impl metrics::CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }
    fn absolute(&self, value: u64) {
        // A counter never goes down.
        self.0.inner().fetch_max(value, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct GaugeHandle(Gauge<f64, AtomicU64>);

impl metrics::GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        self.0.inc_by(value);
    }
    fn decrement(&self, value: f64) {
        self.0.dec_by(value);
    }
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

#[derive(Debug)]
struct HistogramHandle(Histogram);

impl metrics::HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        if !value.is_nan() {
            self.0.observe(value);
        }
    }
}

fn encode_series(series: &Series, metric: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match series {
        Series::Counter(c) => c.encode(metric),
        Series::Gauge(g) => {
            let v = g.get();
            // The text formats spell infinities `+Inf`/`-Inf`, which the
            // float writer does not: clamp them.
            let v = if v.is_infinite() {
                v.signum() * f64::MAX
            } else {
                v
            };
            ConstGauge::new(v).encode(metric)
        }
        Series::Histogram(h) => h.encode(metric),
    }
}

/// Renders the recorder's families at scrape time.
#[derive(Debug)]
pub(crate) struct UserCollector(pub Arc<UserMetrics>);

/// One family copied out for a scrape: name, help, kind, series.
type Snapshot = (String, String, Kind, Vec<(LabelSet, Series)>);

impl Collector for UserCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Copy the handles out (cheap: Arcs), then encode without the lock.
        let families: Vec<Snapshot> = {
            let state = self.0.state.read().unwrap_or_else(|e| e.into_inner());
            state
                .families
                .iter()
                .filter(|(name, f)| !f.series.is_empty() && !self.0.is_reserved(name))
                .map(|(name, f)| {
                    let help = state
                        .help
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| name.clone());
                    let series = f
                        .series
                        .iter()
                        .map(|(l, s)| (l.clone(), s.clone()))
                        .collect();
                    (name.clone(), help, f.kind, series)
                })
                .collect()
        };
        for (name, help, kind, series) in &families {
            let metric_type = match kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
            match series.as_slice() {
                // The usual unlabelled series: `name 1`, not `name{} 1`.
                [(labels, s)] if labels.is_empty() => encode_series(s, family)?,
                _ => {
                    for (labels, s) in series {
                        encode_series(s, family.encode_family(labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A [`metrics`] recorder feeding the [`Prometheus`](crate::Prometheus)
/// exposition it came from: `metrics::counter!`, `gauge!` and `histogram!`
/// in the application show up on the same `/metrics`.
///
/// Names are made valid for Prometheus (`.` and other characters become
/// `_`; a counter's `_total` suffix is added by the exposition, so
/// `orders_total` and `orders` are the same counter); label names likewise;
/// label values go through the masker (see
/// [`Prometheus::with_masker`](crate::Prometheus::with_masker)) once, when
/// the series is first used. Descriptions become the `# HELP` text; units
/// are not added to names. Histograms use the configured buckets. A name
/// already taken by a series of another kind, or by faultline's own series
/// (any `faultline_*` name, `http_server_request_duration_seconds`), records
/// nothing.
#[derive(Debug, Clone)]
pub struct PrometheusRecorder {
    pub(crate) metrics: Arc<UserMetrics>,
}

impl metrics::Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.metrics.describe(key, description);
    }
    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.metrics.describe(key, description);
    }
    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.metrics.describe(key, description);
    }
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Counter {
        match self.metrics.register(key, Kind::Counter) {
            Handle::Counter(c) => c,
            _ => metrics::Counter::noop(),
        }
    }
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Gauge {
        match self.metrics.register(key, Kind::Gauge) {
            Handle::Gauge(g) => g,
            _ => metrics::Gauge::noop(),
        }
    }
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Histogram {
        match self.metrics.register(key, Kind::Histogram) {
            Handle::Histogram(h) => h,
            _ => metrics::Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid() {
        assert_eq!(metric_name("app.orders"), "app_orders");
        assert_eq!(metric_name("orders_total"), "orders");
        assert_eq!(metric_name("9lives"), "_9lives");
        assert_eq!(metric_name("_total"), "_total");
        assert_eq!(label_name("user.tier"), "user_tier");
        assert_eq!(label_name("__name__"), "u_name__");
        assert_eq!(label_name("1a"), "_1a");
        assert_eq!(escape_help("a \"b\"\\\nc"), "a \\\"b\\\"\\\\\\nc");
    }
}
