//! The bounded in-memory store: recent traces, their spans and log records.
//!
//! Bounded in bytes (an estimate of what each span and log record holds);
//! when a new item would pass the bound, the traces seen first are evicted
//! whole, and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use faultline_engine::exception::keys;
use faultline_engine::opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use faultline_engine::opentelemetry::{Array, KeyValue, Value};
use faultline_engine::opentelemetry_sdk::trace::SpanData;
use serde::Serialize;
use serde_json::Value as Json;

/// Fixed cost counted for every span and log record besides its strings:
/// the record itself, its id strings and the allocator's share (a
/// conservative estimate, so that the bound holds for the real heap).
const RECORD_OVERHEAD: usize = 512;
/// Fixed cost counted for every trace (its entry in both maps, its key twice).
const TRACE_OVERHEAD: usize = 512;
/// Fixed cost counted for every attribute, event and link besides their text.
const ITEM_OVERHEAD: usize = 96;
/// Most errors `/api/errors` lists.
const MAX_ERRORS_LISTED: usize = 500;

/// A log record, in the fields an OpenTelemetry log record has: what the
/// store keeps of it. The OTLP receiver fills it from `/v1/logs`; an
/// engine-side log exporter fills it from the SDK's record and hands it to
/// [`ViewerStore::add_log_record`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredLogRecord {
    /// When the event happened (or was observed, when that is all there is).
    pub time: SystemTime,
    /// The OpenTelemetry severity number (1..=24; INFO 9, WARN 13, ERROR 17; 0 unset).
    pub severity_number: i32,
    /// The severity as text (`INFO`, `WARN`, ...), possibly empty.
    pub severity_text: String,
    /// The body (the message), as text.
    pub body: String,
    /// The attributes (the event's fields).
    pub attributes: Vec<KeyValue>,
    /// The trace the record was emitted in, if any.
    pub trace_id: Option<TraceId>,
    /// The span the record was emitted in, if any.
    pub span_id: Option<SpanId>,
    /// The emitting service (`service.name` of its resource).
    pub service: String,
}

impl StoredLogRecord {
    /// A record with its time, severity number and body; the other fields
    /// empty (set them on the result).
    pub fn new(time: SystemTime, severity_number: i32, body: impl Into<String>) -> Self {
        StoredLogRecord {
            time,
            severity_number,
            severity_text: String::new(),
            body: body.into(),
            attributes: Vec::new(),
            trace_id: None,
            span_id: None,
            service: String::new(),
        }
    }
}

/// One attribute as the API shows it: the key and a JSON value (string,
/// number, boolean or array).
#[derive(Debug, Clone, Serialize)]
struct Attribute {
    key: String,
    value: Json,
}

#[derive(Debug, Clone, Serialize)]
struct EventRecord {
    name: String,
    time_unix_nano: u64,
    attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Serialize)]
struct LinkRecord {
    trace_id: String,
    span_id: String,
    attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Serialize)]
struct SpanRecord {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    kind: &'static str,
    service: String,
    scope: String,
    start_unix_nano: u64,
    end_unix_nano: u64,
    status: &'static str,
    status_message: String,
    attributes: Vec<Attribute>,
    events: Vec<EventRecord>,
    links: Vec<LinkRecord>,
}

#[derive(Debug, Clone, Serialize)]
struct LogView {
    time_unix_nano: u64,
    severity_number: i32,
    severity_text: String,
    body: String,
    attributes: Vec<Attribute>,
    trace_id: Option<String>,
    span_id: Option<String>,
    service: String,
}

struct TraceEntry {
    /// Order of first arrival (eviction order).
    seq: u64,
    /// The store's version when this trace last changed.
    updated: u64,
    spans: Vec<SpanRecord>,
    logs: Vec<LogView>,
    bytes: usize,
}

#[derive(Default)]
struct State {
    traces: HashMap<String, TraceEntry>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    version: u64,
    bytes: usize,
    spans: usize,
    logs: usize,
    evicted_traces: u64,
    evicted_bytes: u64,
    /// Log records outside any trace are not kept.
    logs_without_trace: u64,
}

/// The store's counters (`/api/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Traces held.
    pub traces: usize,
    /// Spans held.
    pub spans: usize,
    /// Log records held.
    pub logs: usize,
    /// Estimated bytes held.
    pub bytes: usize,
    /// The bound, in bytes.
    pub max_bytes: usize,
    /// Traces evicted to stay within the bound, since start.
    pub evicted_traces: u64,
    /// Estimated bytes evicted, since start.
    pub evicted_bytes: u64,
    /// Log records dropped because they belong to no trace.
    pub logs_without_trace: u64,
    /// Increases on every change (a client polls until it moves).
    pub version: u64,
}

/// What `/api/traces` may filter on; empty fields match everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct TraceFilter {
    /// A service that has at least one span in the trace.
    #[serde(default)]
    pub service: Option<String>,
    /// The root's (or any server span's) `http.route`.
    #[serde(default)]
    pub route: Option<String>,
    /// `ok` or `error`.
    #[serde(default)]
    pub status: Option<String>,
    /// An error code (`faultline.error.code`) seen in the trace.
    #[serde(default)]
    pub code: Option<String>,
    /// A trace id, or its beginning (hex).
    #[serde(default)]
    pub q: Option<String>,
    /// At most this many traces (default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The bounded store behind the viewer: shared by the exporter, the OTLP
/// receiver and the web server.
#[derive(Debug)]
pub struct ViewerStore {
    state: Mutex<State>,
    max_bytes: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("traces", &self.traces.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl ViewerStore {
    /// An empty store holding at most about `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        ViewerStore {
            state: Mutex::new(State::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // change is applied whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds finished spans of `service` (already masked: the export
    /// pipeline's output, or the receiver's after masking).
    pub fn add_spans(&self, service: &str, spans: &[SpanData]) {
        let records: Vec<SpanRecord> = spans.iter().map(|s| span_record(service, s)).collect();
        let mut state = self.lock();
        for record in records {
            let bytes = span_bytes(&record);
            let trace_id = record.trace_id.clone();
            self.insert(&mut state, trace_id, bytes, |t| t.spans.push(record));
        }
    }

    /// Adds one log record (already masked: the engine's log path masks
    /// before any exporter, the receiver before calling this). A record
    /// without a trace id is counted and not kept: the viewer shows log
    /// records beside their trace.
    ///
    /// This is the entry point for an engine-side log exporter registered
    /// as `viewer` (`OTEL_LOGS_EXPORTER=viewer`).
    pub fn add_log_record(&self, record: StoredLogRecord) {
        let mut state = self.lock();
        let Some(trace_id) = record.trace_id.filter(|t| *t != TraceId::INVALID) else {
            state.logs_without_trace += 1;
            state.version += 1;
            return;
        };
        let view = LogView {
            time_unix_nano: unix_nanos(record.time),
            severity_number: record.severity_number,
            severity_text: record.severity_text,
            body: record.body,
            attributes: attributes(&record.attributes),
            trace_id: Some(trace_id.to_string()),
            span_id: record
                .span_id
                .filter(|s| *s != SpanId::INVALID)
                .map(|s| s.to_string()),
            service: record.service,
        };
        let bytes = RECORD_OVERHEAD
            + view.body.len()
            + view.severity_text.len()
            + view.service.len()
            + attributes_bytes(&view.attributes);
        self.insert(&mut state, trace_id.to_string(), bytes, |t| {
            t.logs.push(view)
        });
    }

    fn insert(
        &self,
        state: &mut State,
        trace_id: String,
        bytes: usize,
        add: impl FnOnce(&mut TraceEntry),
    ) {
        state.version += 1;
        let version = state.version;
        let is_new = !state.traces.contains_key(&trace_id);
        let extra = bytes + if is_new { TRACE_OVERHEAD } else { 0 };
        // Larger than the whole bound on its own: dropped, counted.
        if extra > self.max_bytes {
            state.evicted_bytes += bytes as u64;
            return;
        }
        // Make room, oldest traces first (the one being added to last).
        while state.bytes + extra > self.max_bytes {
            let victim = state.order.values().find(|id| **id != trace_id).cloned();
            match victim {
                Some(victim) => evict(state, &victim),
                None => {
                    evict(state, &trace_id);
                    state.evicted_bytes += bytes as u64;
                    return;
                }
            }
        }
        if is_new {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.order.insert(seq, trace_id.clone());
            state.traces.insert(
                trace_id.clone(),
                TraceEntry {
                    seq,
                    updated: version,
                    spans: Vec::new(),
                    logs: Vec::new(),
                    bytes: TRACE_OVERHEAD,
                },
            );
        }
        let Some(entry) = state.traces.get_mut(&trace_id) else {
            return;
        };
        let (spans_before, logs_before) = (entry.spans.len(), entry.logs.len());
        add(entry);
        entry.bytes += bytes;
        entry.updated = version;
        let (spans_added, logs_added) = (
            entry.spans.len() - spans_before,
            entry.logs.len() - logs_before,
        );
        state.spans += spans_added;
        state.logs += logs_added;
        state.bytes += extra;
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        let state = self.lock();
        StoreStats {
            traces: state.traces.len(),
            spans: state.spans,
            logs: state.logs,
            bytes: state.bytes,
            max_bytes: self.max_bytes,
            evicted_traces: state.evicted_traces,
            evicted_bytes: state.evicted_bytes,
            logs_without_trace: state.logs_without_trace,
            version: state.version,
        }
    }

    /// `/api/traces`: the summaries of the traces matching `filter`, newest
    /// first, with the services and routes seen (for the filters) and the
    /// counters.
    pub fn traces_json(&self, filter: &TraceFilter) -> Json {
        let state = self.lock();
        let mut services = std::collections::BTreeSet::new();
        let mut routes = std::collections::BTreeSet::new();
        let mut summaries: Vec<Summary> = state
            .traces
            .iter()
            .map(|(id, t)| summarize(id, t))
            .inspect(|s| {
                services.extend(s.services.iter().cloned());
                routes.extend(s.route.iter().cloned());
            })
            .filter(|s| s.matches(filter))
            .collect();
        summaries.sort_by(|a, b| {
            b.start_unix_nano
                .cmp(&a.start_unix_nano)
                .then(b.seq.cmp(&a.seq))
        });
        summaries.truncate(filter.limit.unwrap_or(200).clamp(1, 5000));
        serde_json::json!({
            "traces": summaries,
            "services": services,
            "routes": routes,
            "stats": stats_of(&state, self.max_bytes),
        })
    }

    /// `/api/traces/{trace_id}`: the trace's summary, spans (by start time)
    /// and log records (in time order), or `None` when it is not held.
    pub fn trace_json(&self, trace_id: &str) -> Option<Json> {
        let state = self.lock();
        let entry = state.traces.get(&trace_id.to_ascii_lowercase())?;
        let mut spans = entry.spans.clone();
        spans.sort_by_key(|s| (s.start_unix_nano, s.end_unix_nano));
        let mut logs = entry.logs.clone();
        logs.sort_by_key(|l| l.time_unix_nano);
        // Times as offsets from the trace's start too: nanoseconds since
        // 1970 do not fit a JavaScript number exactly, offsets do.
        let t0 = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let offset = |t: u64| t as i128 - t0 as i128;
        let spans: Vec<Json> = spans
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["offset_ns"] = Json::from(offset(s.start_unix_nano) as i64);
                v["duration_ns"] = Json::from(s.end_unix_nano.saturating_sub(s.start_unix_nano));
                for (e, event) in s
                    .events
                    .iter()
                    .zip(v["events"].as_array_mut().into_iter().flatten())
                {
                    event["offset_ns"] = Json::from(offset(e.time_unix_nano) as i64);
                }
                v
            })
            .collect();
        let logs: Vec<Json> = logs
            .iter()
            .map(|l| {
                let mut v = serde_json::to_value(l).unwrap_or_default();
                v["offset_ns"] = Json::from(offset(l.time_unix_nano) as i64);
                v
            })
            .collect();
        Some(serde_json::json!({
            "summary": summarize(trace_id, entry),
            "spans": spans,
            "logs": logs,
        }))
    }

    /// `/api/errors`: every failed span (status error, or an exception
    /// recorded: a 4xx's application error leaves the status unset), newest
    /// first, with its code, name, route and trace id.
    pub fn errors_json(&self) -> Json {
        let state = self.lock();
        let mut errors: Vec<Json> = Vec::new();
        for entry in state.traces.values() {
            let route = trace_route(&entry.spans);
            for span in entry.spans.iter().filter(|s| is_failure(s)) {
                let (code, name) = error_of(span);
                errors.push(serde_json::json!({
                    "trace_id": span.trace_id,
                    "span_id": span.span_id,
                    "time_unix_nano": span.end_unix_nano,
                    "code": code,
                    "name": name,
                    "route": route,
                    "service": span.service,
                    "span_name": span.name,
                    "message": span.status_message,
                }));
            }
        }
        errors.sort_by_key(|e| std::cmp::Reverse(e["time_unix_nano"].as_u64().unwrap_or(0)));
        errors.truncate(MAX_ERRORS_LISTED);
        serde_json::json!({ "errors": errors, "stats": stats_of(&state, self.max_bytes) })
    }
}

fn stats_of(state: &State, max_bytes: usize) -> StoreStats {
    StoreStats {
        traces: state.traces.len(),
        spans: state.spans,
        logs: state.logs,
        bytes: state.bytes,
        max_bytes,
        evicted_traces: state.evicted_traces,
        evicted_bytes: state.evicted_bytes,
        logs_without_trace: state.logs_without_trace,
        version: state.version,
    }
}

fn evict(state: &mut State, trace_id: &str) {
    if let Some(entry) = state.traces.remove(trace_id) {
        state.order.remove(&entry.seq);
        state.bytes -= entry.bytes;
        state.spans -= entry.spans.len();
        state.logs -= entry.logs.len();
        state.evicted_traces += 1;
        state.evicted_bytes += entry.bytes as u64;
        state.version += 1;
    }
}

#[derive(Serialize)]
struct Summary {
    trace_id: String,
    #[serde(skip)]
    seq: u64,
    updated: u64,
    /// The root span's name, or the earliest span's while the root has not arrived.
    name: String,
    has_root: bool,
    services: Vec<String>,
    span_count: usize,
    log_count: usize,
    start_unix_nano: u64,
    duration_ns: u64,
    status: &'static str,
    error_count: usize,
    error_code: Option<Json>,
    error_name: Option<String>,
    route: Option<String>,
    #[serde(skip)]
    codes: Vec<String>,
}

impl Summary {
    fn matches(&self, f: &TraceFilter) -> bool {
        fn set(o: &Option<String>) -> Option<&str> {
            o.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        if let Some(service) = set(&f.service)
            && !self.services.iter().any(|s| s == service)
        {
            return false;
        }
        if let Some(route) = set(&f.route)
            && self.route.as_deref() != Some(route)
        {
            return false;
        }
        if let Some(status) = set(&f.status)
            && status != self.status
        {
            return false;
        }
        if let Some(code) = set(&f.code)
            && !self.codes.iter().any(|c| c == code)
        {
            return false;
        }
        if let Some(q) = set(&f.q)
            && !self.trace_id.starts_with(&q.to_ascii_lowercase())
        {
            return false;
        }
        true
    }
}

fn summarize(trace_id: &str, t: &TraceEntry) -> Summary {
    let ids: std::collections::HashSet<&str> = t.spans.iter().map(|s| s.span_id.as_str()).collect();
    let root = t
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .min_by_key(|s| s.start_unix_nano);
    // Until the root arrives: the earliest span whose parent is not here.
    let top = root.or_else(|| {
        t.spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
            .min_by_key(|s| s.start_unix_nano)
    });
    let start = t.spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let end = t.spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
    let mut services: Vec<String> = t.spans.iter().map(|s| s.service.clone()).collect();
    services.sort();
    services.dedup();
    let errors: Vec<&SpanRecord> = t.spans.iter().filter(|s| is_failure(s)).collect();
    // The code shown is the innermost error's (the latest to start), where
    // the error was raised.
    let first_coded = errors
        .iter()
        .rev()
        .map(|s| error_of(s))
        .find(|(code, _)| code.is_some());
    let codes = errors
        .iter()
        .filter_map(|s| error_of(s).0)
        .map(|c| match c {
            Json::String(s) => s,
            other => other.to_string(),
        })
        .collect();
    let (error_code, error_name) = first_coded
        .or_else(|| errors.first().map(|s| error_of(s)))
        .unwrap_or((None, None));
    Summary {
        trace_id: trace_id.to_owned(),
        seq: t.seq,
        updated: t.updated,
        name: top.map(|s| s.name.clone()).unwrap_or_default(),
        has_root: root.is_some(),
        services,
        span_count: t.spans.len(),
        log_count: t.logs.len(),
        start_unix_nano: start,
        duration_ns: end.saturating_sub(start),
        status: if t.spans.iter().any(|s| s.status == "error") {
            "error"
        } else if t.spans.iter().any(|s| s.status == "ok") {
            "ok"
        } else {
            "unset"
        },
        error_count: errors.len(),
        error_code,
        error_name,
        route: trace_route(&t.spans),
        codes,
    }
}

/// A span that failed: its status is error, or it recorded an exception
/// (an application error answered 4xx leaves the status unset).
fn is_failure(span: &SpanRecord) -> bool {
    span.status == "error" || span.events.iter().any(|e| e.name == "exception")
}

/// The route of the trace: the root's `http.route`, else the first server span's.
fn trace_route(spans: &[SpanRecord]) -> Option<String> {
    let route_of = |s: &SpanRecord| {
        s.attributes
            .iter()
            .find(|a| a.key == "http.route")
            .and_then(|a| a.value.as_str().map(str::to_owned))
    };
    spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .find_map(route_of)
        .or_else(|| {
            spans
                .iter()
                .filter(|s| s.kind == "server")
                .find_map(route_of)
        })
}

/// A span's error code and name: faultline's attributes on the span or its
/// exception events, else `error.type` / `exception.type`.
fn error_of(span: &SpanRecord) -> (Option<Json>, Option<String>) {
    let lists = std::iter::once(&span.attributes).chain(span.events.iter().map(|e| &e.attributes));
    let mut code = None;
    let mut name = None;
    let mut fallback = None;
    for list in lists {
        for a in list {
            match a.key.as_str() {
                keys::ERROR_CODE if code.is_none() => code = Some(a.value.clone()),
                keys::ERROR_NAME if name.is_none() => name = a.value.as_str().map(str::to_owned),
                "error.type" | "exception.type" if fallback.is_none() => {
                    fallback = a.value.as_str().map(str::to_owned)
                }
                _ => {}
            }
        }
    }
    (code, name.or(fallback))
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn span_record(service: &str, s: &SpanData) -> SpanRecord {
    SpanRecord {
        trace_id: s.span_context.trace_id().to_string(),
        span_id: s.span_context.span_id().to_string(),
        parent_span_id: (s.parent_span_id != SpanId::INVALID).then(|| s.parent_span_id.to_string()),
        name: s.name.to_string(),
        kind: match s.span_kind {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        },
        service: service.to_owned(),
        scope: s.instrumentation_scope.name().to_owned(),
        start_unix_nano: unix_nanos(s.start_time),
        end_unix_nano: unix_nanos(s.end_time),
        status: match &s.status {
            Status::Error { .. } => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        },
        status_message: match &s.status {
            Status::Error { description } => description.to_string(),
            _ => String::new(),
        },
        attributes: attributes(&s.attributes),
        events: s
            .events
            .iter()
            .map(|e| EventRecord {
                name: e.name.to_string(),
                time_unix_nano: unix_nanos(e.timestamp),
                attributes: attributes(&e.attributes),
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| LinkRecord {
                trace_id: l.span_context.trace_id().to_string(),
                span_id: l.span_context.span_id().to_string(),
                attributes: attributes(&l.attributes),
            })
            .collect(),
    }
}

fn attributes(list: &[KeyValue]) -> Vec<Attribute> {
    list.iter()
        .map(|kv| Attribute {
            key: kv.key.to_string(),
            value: json_value(&kv.value),
        })
        .collect()
}

fn json_value(v: &Value) -> Json {
    fn list<T: Clone + Into<Json>>(items: &[T]) -> Json {
        Json::Array(items.iter().cloned().map(Into::into).collect())
    }
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::from(*i),
        Value::F64(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| Json::String(f.to_string()), Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::Array(Array::Bool(items)) => list(items),
        Value::Array(Array::I64(items)) => list(items),
        Value::Array(Array::F64(items)) => {
            Json::Array(items.iter().map(|f| json_value(&Value::F64(*f))).collect())
        }
        Value::Array(Array::String(items)) => {
            Json::Array(items.iter().map(|s| Json::String(s.to_string())).collect())
        }
        other => Json::String(other.to_string()),
    }
}

fn attributes_bytes(list: &[Attribute]) -> usize {
    list.iter()
        .map(|a| ITEM_OVERHEAD + a.key.len() + json_bytes(&a.value))
        .sum()
}

fn json_bytes(v: &Json) -> usize {
    match v {
        Json::String(s) => s.len(),
        Json::Array(items) => items.iter().map(|i| 32 + json_bytes(i)).sum::<usize>(),
        _ => 0,
    }
}

fn span_bytes(s: &SpanRecord) -> usize {
    RECORD_OVERHEAD
        + s.name.len()
        + s.service.len()
        + s.scope.len()
        + s.status_message.len()
        + attributes_bytes(&s.attributes)
        + s.events
            .iter()
            .map(|e| ITEM_OVERHEAD + e.name.len() + attributes_bytes(&e.attributes))
            .sum::<usize>()
        + s.links
            .iter()
            .map(|l| ITEM_OVERHEAD + 64 + attributes_bytes(&l.attributes))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(trace: u128, body: &str) -> StoredLogRecord {
        let mut r = StoredLogRecord::new(UNIX_EPOCH, 9, body);
        r.trace_id = Some(TraceId::from(trace));
        r
    }

    #[test]
    fn oldest_traces_are_evicted_and_counted() {
        let store = ViewerStore::new(4096);
        for t in 1..=100u128 {
            store.add_log_record(log(t, &"x".repeat(200)));
        }
        let stats = store.stats();
        assert!(stats.bytes <= 4096, "{stats:?}");
        assert!(stats.evicted_traces > 0);
        assert_eq!(stats.traces as u64 + stats.evicted_traces, 100);
        // The newest is kept, the oldest is gone.
        assert!(
            store
                .trace_json(&TraceId::from(100u128).to_string())
                .is_some()
        );
        assert!(
            store
                .trace_json(&TraceId::from(1u128).to_string())
                .is_none()
        );
    }

    #[test]
    fn a_record_larger_than_the_bound_is_dropped_whole() {
        let store = ViewerStore::new(2048);
        store.add_log_record(log(1, "small"));
        store.add_log_record(log(2, &"y".repeat(4096)));
        let stats = store.stats();
        assert!(stats.bytes <= 2048, "{stats:?}");
        let held = |t: u128| store.trace_json(&TraceId::from(t).to_string()).is_some();
        assert!(!held(2));
        // The others stay.
        assert!(held(1));
        assert_eq!(stats.evicted_traces, 0);
        assert!(stats.evicted_bytes >= 4096);
    }

    #[test]
    fn log_records_without_a_trace_are_counted_not_kept() {
        let store = ViewerStore::new(1 << 20);
        store.add_log_record(StoredLogRecord::new(UNIX_EPOCH, 9, "no trace"));
        assert_eq!(store.stats().logs_without_trace, 1);
        assert_eq!(store.stats().logs, 0);
    }
}
