//! The OTLP trace request, encoded by hand: a resource and a batch of
//! [`SpanData`] straight to the protobuf bytes of an
//! `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
//!
//! The bytes are the ones prost writes for what opentelemetry-proto's
//! `group_spans_by_resource_and_scope` builds from the same batch (one
//! `ResourceSpans`; a `ScopeSpans` per instrumentation scope, in the order the
//! scopes first appear; the spans in batch order), but nothing is built on
//! the way: no protobuf structs, no copy of the spans, no `String` per key or
//! value. Encoding runs in two passes over the borrowed batch: the first
//! measures every nested message (the lengths are kept in a scratch list, in
//! the order the second pass needs them), the second writes into one buffer
//! allocated at its exact final size. The encoding is canonical: minimal
//! varints, fields in field-number order, proto3 default values left out.
//!
//! ```
//! use faultline_otlp::encode::TraceEncoder;
//! use faultline_otlp::engine::opentelemetry_sdk::Resource;
//!
//! let resource = Resource::builder_empty().with_service_name("checkout").build();
//! let mut encoder = TraceEncoder::new();
//! let bytes = encoder.encode(&resource, &[]);
//! assert_eq!(bytes[0], 0x0a); // field 1 (resource_spans), length-delimited
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use faultline_engine::opentelemetry::trace::{Event, Link, SpanId, SpanKind, Status, TraceState};
use faultline_engine::opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use faultline_engine::opentelemetry_sdk::Resource;
use faultline_engine::opentelemetry_sdk::trace::SpanData;

/// Protobuf wire types.
pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

/// The one-byte key of field `number` (1 to 15) with `wire` type.
pub(crate) const fn key(number: u8, wire: u8) -> u8 {
    (number << 3) | wire
}

/// `Span.flags` is field 16: its key takes two bytes.
const SPAN_FLAGS_KEY: [u8; 2] = [(16 << 3) | I32 | 0x80, 0x01];

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`.
const IS_REMOTE: u32 = 0x200;

/// Encodes batches of spans as OTLP `ExportTraceServiceRequest` bytes.
///
/// Keeps its scratch lists between batches: reuse one encoder for every
/// batch of an exporter.
#[derive(Debug, Default)]
pub struct TraceEncoder {
    /// Lengths of the nested messages, in the order they are written.
    sizes: Vec<usize>,
    /// Where the writing pass is in `sizes`.
    next: usize,
    /// For each instrumentation scope of the batch, in order of first
    /// appearance, the index of its first span.
    scopes: Vec<usize>,
    /// The scope of each span (an index into `scopes`).
    scope_of: Vec<u32>,
    /// Span indices grouped by scope (stable).
    order: Vec<u32>,
    /// Where each scope's spans end in `order`.
    ends: Vec<usize>,
}

impl TraceEncoder {
    /// An encoder with empty scratch lists.
    pub fn new() -> TraceEncoder {
        TraceEncoder::default()
    }

    /// The request for `spans` of `resource`, in a buffer of exactly its size.
    pub fn encode(&mut self, resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(resource, spans, &mut out);
        out
    }

    /// Appends the request for `spans` of `resource` to `out`, reserving
    /// exactly the room it takes.
    pub fn encode_into(&mut self, resource: &Resource, spans: &[SpanData], out: &mut Vec<u8>) {
        let _ = self.encode_within(resource, spans, usize::MAX, out);
    }

    /// [`encode`](Self::encode) if the request takes at most `max` bytes;
    /// else nothing is written and its length is returned (measured
    /// exactly, by the same pass that precedes every encoding, so a request
    /// within the limit costs nothing more).
    pub fn encode_within(
        &mut self,
        resource: &Resource,
        spans: &[SpanData],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), usize> {
        self.group(spans);
        self.sizes.clear();
        let resource_spans = self.measure_resource_spans(resource, spans);
        let total = delimited(resource_spans);
        if total > max {
            return Err(total);
        }
        out.reserve_exact(total);
        let start = out.len();
        self.next = 0;
        out.push(key(1, LEN));
        self.write_resource_spans(out, resource, spans);
        debug_assert_eq!(
            out.len() - start,
            total,
            "measured and written lengths differ"
        );
        debug_assert_eq!(self.next, self.sizes.len(), "every measured length written");
        Ok(())
    }

    /// Sorts the spans by instrumentation scope: scopes in order of first
    /// appearance, spans in batch order within each. Scopes are told apart
    /// by `InstrumentationScope`'s equality (name, version, schema URL,
    /// attributes in any order), as opentelemetry-proto's grouping does.
    fn group(&mut self, spans: &[SpanData]) {
        self.scopes.clear();
        self.scope_of.clear();
        let mut last = 0usize;
        for (i, span) in spans.iter().enumerate() {
            let scope = &span.instrumentation_scope;
            let found = if !self.scopes.is_empty()
                && same_scope(&spans[self.scopes[last]].instrumentation_scope, scope)
            {
                Some(last)
            } else {
                self.scopes
                    .iter()
                    .position(|&first| same_scope(&spans[first].instrumentation_scope, scope))
            };
            let group = found.unwrap_or_else(|| {
                self.scopes.push(i);
                self.scopes.len() - 1
            });
            last = group;
            self.scope_of.push(group as u32);
        }
        // A stable counting sort of the span indices by scope.
        self.ends.clear();
        self.ends.resize(self.scopes.len(), 0);
        for &g in &self.scope_of {
            self.ends[g as usize] += 1;
        }
        let mut start = 0;
        for end in self.ends.iter_mut() {
            start += *end;
            *end = start - *end;
        }
        // `ends` now holds each scope's start; filling moves it to its end.
        self.order.clear();
        self.order.resize(spans.len(), 0);
        for (i, &g) in self.scope_of.iter().enumerate() {
            let at = &mut self.ends[g as usize];
            self.order[*at] = i as u32;
            *at += 1;
        }
    }

    /// The span indices of scope `g`, as a range of `order`.
    fn members(&self, g: usize) -> std::ops::Range<usize> {
        let start = if g == 0 { 0 } else { self.ends[g - 1] };
        start..self.ends[g]
    }

    /// Keeps a place for the length of a message about to be measured.
    fn reserve(&mut self) -> usize {
        self.sizes.push(0);
        self.sizes.len() - 1
    }

    /// The next measured length, in writing order.
    fn take(&mut self) -> usize {
        let len = self.sizes[self.next];
        self.next += 1;
        len
    }

    // The measuring pass. Each `measure_*` returns the length of a
    // message's content and records it; the parent adds key and length.

    fn measure_resource_spans(&mut self, resource: &Resource, spans: &[SpanData]) -> usize {
        let slot = self.reserve();
        let mut len = delimited(self.measure_resource(resource));
        for g in 0..self.scopes.len() {
            len += delimited(self.measure_scope_spans(g, spans));
        }
        len += string_field(resource.schema_url().unwrap_or_default());
        self.sizes[slot] = len;
        len
    }

    fn measure_resource(&mut self, resource: &Resource) -> usize {
        let slot = self.reserve();
        let len = self.measure_attributes(resource.iter().map(|(k, v)| (k.as_str(), v)));
        self.sizes[slot] = len;
        len
    }

    fn measure_scope_spans(&mut self, g: usize, spans: &[SpanData]) -> usize {
        let slot = self.reserve();
        let scope = &spans[self.scopes[g]].instrumentation_scope;
        let mut len = delimited(self.measure_scope(scope));
        for k in self.members(g) {
            let span = &spans[self.order[k] as usize];
            len += delimited(self.measure_span(span));
        }
        len += string_field(scope.schema_url().unwrap_or_default());
        self.sizes[slot] = len;
        len
    }

    fn measure_scope(&mut self, scope: &InstrumentationScope) -> usize {
        let slot = self.reserve();
        let len = string_field(scope.name())
            + string_field(scope.version().unwrap_or_default())
            + self.measure_attributes(pairs(scope.attributes()));
        self.sizes[slot] = len;
        len
    }

    fn measure_span(&mut self, span: &SpanData) -> usize {
        let slot = self.reserve();
        let context = &span.span_context;
        let mut len = delimited(16) + delimited(8);
        len += string_field_len(trace_state_len(context.trace_state()));
        if span.parent_span_id != SpanId::INVALID {
            len += delimited(8);
        }
        len += string_field(&span.name);
        len += 2; // kind, never 0
        len += fixed64_field(nanos(span.start_time));
        len += fixed64_field(nanos(span.end_time));
        len += self.measure_attributes(pairs(span.attributes.iter()));
        len += uint_field(span.dropped_attributes_count.into());
        for event in span.events.iter() {
            len += delimited(self.measure_event(event));
        }
        len += uint_field(span.events.dropped_count.into());
        for link in span.links.iter() {
            len += delimited(self.measure_link(link));
        }
        len += uint_field(span.links.dropped_count.into());
        len += delimited(status_len(&span.status));
        len += SPAN_FLAGS_KEY.len() + 4; // flags, never 0
        self.sizes[slot] = len;
        len
    }

    fn measure_event(&mut self, event: &Event) -> usize {
        let slot = self.reserve();
        let len = fixed64_field(nanos(event.timestamp))
            + string_field(&event.name)
            + self.measure_attributes(pairs(event.attributes.iter()))
            + uint_field(event.dropped_attributes_count.into());
        self.sizes[slot] = len;
        len
    }

    fn measure_link(&mut self, link: &Link) -> usize {
        let slot = self.reserve();
        let len = delimited(16)
            + delimited(8)
            + string_field_len(trace_state_len(link.span_context.trace_state()))
            + self.measure_attributes(pairs(link.attributes.iter()))
            + uint_field(link.dropped_attributes_count.into())
            + 5; // flags (field 6), never 0
        self.sizes[slot] = len;
        len
    }

    /// Repeated `KeyValue` fields: their lengths are recorded one by one
    /// (the writing pass would otherwise measure each value again).
    fn measure_attributes<'a>(
        &mut self,
        attributes: impl Iterator<Item = (&'a str, &'a Value)>,
    ) -> usize {
        let mut len = 0;
        for (k, v) in attributes {
            let kv = key_value_len(k, v);
            self.sizes.push(kv);
            len += delimited(kv);
        }
        len
    }

    // The writing pass, in the measuring pass's order. Each `write_*` writes
    // a message's length and content; the caller has written its key.

    fn write_resource_spans(&mut self, out: &mut Vec<u8>, resource: &Resource, spans: &[SpanData]) {
        put_varint(out, self.take() as u64);
        out.push(key(1, LEN));
        self.write_resource(out, resource);
        for g in 0..self.scopes.len() {
            out.push(key(2, LEN));
            self.write_scope_spans(out, g, spans);
        }
        put_string_field(out, 3, resource.schema_url().unwrap_or_default());
    }

    fn write_resource(&mut self, out: &mut Vec<u8>, resource: &Resource) {
        put_varint(out, self.take() as u64);
        self.write_attributes(out, 1, resource.iter().map(|(k, v)| (k.as_str(), v)));
    }

    fn write_scope_spans(&mut self, out: &mut Vec<u8>, g: usize, spans: &[SpanData]) {
        put_varint(out, self.take() as u64);
        let scope = &spans[self.scopes[g]].instrumentation_scope;
        out.push(key(1, LEN));
        self.write_scope(out, scope);
        for k in self.members(g) {
            let span = &spans[self.order[k] as usize];
            out.push(key(2, LEN));
            self.write_span(out, span);
        }
        put_string_field(out, 3, scope.schema_url().unwrap_or_default());
    }

    fn write_scope(&mut self, out: &mut Vec<u8>, scope: &InstrumentationScope) {
        put_varint(out, self.take() as u64);
        put_string_field(out, 1, scope.name());
        put_string_field(out, 2, scope.version().unwrap_or_default());
        self.write_attributes(out, 3, pairs(scope.attributes()));
    }

    fn write_span(&mut self, out: &mut Vec<u8>, span: &SpanData) {
        put_varint(out, self.take() as u64);
        let context = &span.span_context;
        put_bytes_field(out, 1, &context.trace_id().to_bytes());
        put_bytes_field(out, 2, &context.span_id().to_bytes());
        put_trace_state_field(out, 3, context.trace_state());
        if span.parent_span_id != SpanId::INVALID {
            put_bytes_field(out, 4, &span.parent_span_id.to_bytes());
        }
        put_string_field(out, 5, &span.name);
        out.push(key(6, VARINT));
        out.push(span_kind(&span.span_kind));
        put_fixed64_field(out, 7, nanos(span.start_time));
        put_fixed64_field(out, 8, nanos(span.end_time));
        self.write_attributes(out, 9, pairs(span.attributes.iter()));
        put_uint_field(out, 10, span.dropped_attributes_count.into());
        for event in span.events.iter() {
            out.push(key(11, LEN));
            self.write_event(out, event);
        }
        put_uint_field(out, 12, span.events.dropped_count.into());
        for link in span.links.iter() {
            out.push(key(13, LEN));
            self.write_link(out, link);
        }
        put_uint_field(out, 14, span.links.dropped_count.into());
        out.push(key(15, LEN));
        put_status(out, &span.status);
        out.extend_from_slice(&SPAN_FLAGS_KEY);
        let flags = span_flags(
            span.parent_span_is_remote,
            context.trace_flags().to_u8().into(),
        );
        out.extend_from_slice(&flags.to_le_bytes());
    }

    fn write_event(&mut self, out: &mut Vec<u8>, event: &Event) {
        put_varint(out, self.take() as u64);
        put_fixed64_field(out, 1, nanos(event.timestamp));
        put_string_field(out, 2, &event.name);
        self.write_attributes(out, 3, pairs(event.attributes.iter()));
        put_uint_field(out, 4, event.dropped_attributes_count.into());
    }

    fn write_link(&mut self, out: &mut Vec<u8>, link: &Link) {
        put_varint(out, self.take() as u64);
        let context = &link.span_context;
        put_bytes_field(out, 1, &context.trace_id().to_bytes());
        put_bytes_field(out, 2, &context.span_id().to_bytes());
        put_trace_state_field(out, 3, context.trace_state());
        self.write_attributes(out, 4, pairs(link.attributes.iter()));
        put_uint_field(out, 5, link.dropped_attributes_count.into());
        out.push(key(6, I32));
        let flags = span_flags(context.is_remote(), context.trace_flags().to_u8().into());
        out.extend_from_slice(&flags.to_le_bytes());
    }

    fn write_attributes<'a>(
        &mut self,
        out: &mut Vec<u8>,
        number: u8,
        attributes: impl Iterator<Item = (&'a str, &'a Value)>,
    ) {
        for (k, v) in attributes {
            out.push(key(number, LEN));
            put_varint(out, self.take() as u64);
            put_string_field(out, 1, k);
            out.push(key(2, LEN));
            put_any_value(out, v);
        }
    }
}

/// `InstrumentationScope`'s equality, without the two sorted lists it
/// builds to compare attributes when neither scope has any.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    if a.attributes().next().is_none() && b.attributes().next().is_none() {
        a.name() == b.name() && a.version() == b.version() && a.schema_url() == b.schema_url()
    } else {
        a == b
    }
}

/// The OTLP span flags: the W3C trace flags, plus "whether the parent is
/// remote is known" and, when it is, "the parent is remote".
fn span_flags(remote: bool, trace_flags: u32) -> u32 {
    let flags = trace_flags | HAS_IS_REMOTE;
    if remote { flags | IS_REMOTE } else { flags }
}

fn span_kind(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the epoch; 0 (left out) before it.
pub(crate) fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The bytes a varint of `value` takes.
fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A length-delimited field (one-byte key) whose content is `len` bytes.
pub(crate) fn delimited(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn string_field(s: &str) -> usize {
    string_field_len(s.len())
}

fn string_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { delimited(len) }
}

fn uint_field(value: u64) -> usize {
    if value == 0 { 0 } else { 1 + varint_len(value) }
}

fn fixed64_field(value: u64) -> usize {
    if value == 0 { 0 } else { 9 }
}

/// The W3C header form of a trace state (`k1=v1,k2=v2`), measured.
fn trace_state_len(state: &TraceState) -> usize {
    let mut len = 0;
    for (i, (k, v)) in state.into_iter().enumerate() {
        len += usize::from(i > 0) + k.len() + 1 + v.len();
    }
    len
}

/// `Status`: message (2), code (3).
fn status_len(status: &Status) -> usize {
    match status {
        Status::Unset => 0,
        Status::Ok => 2,
        Status::Error { description } => string_field(description) + 2,
    }
}

/// Attributes as key and value.
fn pairs<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
) -> impl Iterator<Item = (&'a str, &'a Value)> {
    attributes.map(|kv| (kv.key.as_str(), &kv.value))
}

/// `KeyValue`: key (1), value (2, always present).
pub(crate) fn key_value_len(key: &str, value: &Value) -> usize {
    string_field(key) + delimited(any_value_len(value))
}

/// `AnyValue`: one field of its `value` oneof, written even when it holds
/// the default (a oneof member is always written).
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        Value::String(s) => delimited(s.as_str().len()),
        Value::Array(array) => delimited(array_len(array)),
        // No other kind exists in this OpenTelemetry release; an empty
        // AnyValue would stand for one.
        _ => 0,
    }
}

/// `ArrayValue`: repeated `AnyValue` (1).
fn array_len(array: &Array) -> usize {
    match array {
        Array::Bool(v) => v.len() * delimited(2),
        Array::I64(v) => v.iter().map(|i| delimited(1 + varint_len(*i as u64))).sum(),
        Array::F64(v) => v.len() * delimited(9),
        Array::String(v) => v
            .iter()
            .map(|s| delimited(delimited(s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_bytes_field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        out.push(key(number, LEN));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

pub(crate) fn put_string_field(out: &mut Vec<u8>, number: u8, s: &str) {
    put_bytes_field(out, number, s.as_bytes());
}

pub(crate) fn put_uint_field(out: &mut Vec<u8>, number: u8, value: u64) {
    if value != 0 {
        out.push(key(number, VARINT));
        put_varint(out, value);
    }
}

pub(crate) fn put_fixed64_field(out: &mut Vec<u8>, number: u8, value: u64) {
    if value != 0 {
        out.push(key(number, I64));
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// The trace state as its W3C header (`k1=v1,k2=v2`), without building it.
fn put_trace_state_field(out: &mut Vec<u8>, number: u8, state: &TraceState) {
    let len = trace_state_len(state);
    if len == 0 {
        return;
    }
    out.push(key(number, LEN));
    put_varint(out, len as u64);
    for (i, (k, v)) in state.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
    }
}

fn put_status(out: &mut Vec<u8>, status: &Status) {
    put_varint(out, status_len(status) as u64);
    match status {
        Status::Unset => {}
        Status::Ok => {
            out.push(key(3, VARINT));
            out.push(1);
        }
        Status::Error { description } => {
            put_string_field(out, 2, description);
            out.push(key(3, VARINT));
            out.push(2);
        }
    }
}

pub(crate) fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    put_varint(out, any_value_len(value) as u64);
    match value {
        Value::Bool(b) => put_bool(out, *b),
        Value::I64(i) => put_int(out, *i),
        Value::F64(f) => put_double(out, *f),
        Value::String(s) => put_str(out, s.as_str()),
        Value::Array(array) => {
            out.push(key(5, LEN));
            put_varint(out, array_len(array) as u64);
            match array {
                Array::Bool(v) => {
                    for b in v {
                        out.extend_from_slice(&[key(1, LEN), 2]);
                        put_bool(out, *b);
                    }
                }
                Array::I64(v) => {
                    for i in v {
                        out.push(key(1, LEN));
                        put_varint(out, 1 + varint_len(*i as u64) as u64);
                        put_int(out, *i);
                    }
                }
                Array::F64(v) => {
                    for f in v {
                        out.extend_from_slice(&[key(1, LEN), 9]);
                        put_double(out, *f);
                    }
                }
                Array::String(v) => {
                    for s in v {
                        out.push(key(1, LEN));
                        put_varint(out, delimited(s.as_str().len()) as u64);
                        put_str(out, s.as_str());
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// `AnyValue.string_value` (1): written even when empty (a oneof member).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.push(key(1, LEN));
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// `AnyValue.bool_value` (2).
fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(&[key(2, VARINT), u8::from(b)]);
}

/// `AnyValue.int_value` (3): a negative number takes ten bytes.
fn put_int(out: &mut Vec<u8>, i: i64) {
    out.push(key(3, VARINT));
    put_varint(out, i as u64);
}

/// `AnyValue.double_value` (4).
fn put_double(out: &mut Vec<u8>, f: f64) {
    out.push(key(4, I64));
    out.extend_from_slice(&f.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use faultline_engine::opentelemetry::trace::{SpanContext, TraceFlags, TraceId};
    use faultline_engine::opentelemetry::{Key, StringValue};
    use faultline_engine::opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    /// What opentelemetry-proto and prost make of the same batch.
    fn reference(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.to_vec(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
        .encode_to_vec()
    }

    /// Encodes with a fresh encoder and with one that has seen other
    /// batches, checks both against the reference, and that the reference
    /// decodes.
    fn assert_same(resource: &Resource, spans: &[SpanData]) {
        let want = reference(resource, spans);
        let got = TraceEncoder::new().encode(resource, spans);
        assert_eq!(got, want, "bytes differ from prost's");
        assert_eq!(got.capacity(), got.len(), "allocated at its exact size");
        let mut reused = TraceEncoder::new();
        reused.encode(resource, &spans[spans.len() / 2..]);
        let mut out = vec![0xff];
        reused.encode_into(resource, spans, &mut out);
        assert_eq!(&out[1..], &want[..], "a reused encoder, appending");
        ExportTraceServiceRequest::decode(&got[..]).expect("decodes");
    }

    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    fn context(trace: u128, span: u64, remote: bool, state: TraceState) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state,
        )
    }

    fn plain_span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
        SpanData {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0xf067aa0ba902b7,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: at(1_700_000_000_123_456_789),
            end_time: at(1_700_000_000_223_456_789),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    /// One attribute of every kind, the edge values included.
    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("empty.string", ""),
            KeyValue::new("", "an empty key"),
            KeyValue::new("utf8", "naïve café ☕"),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("bool.true", true),
            KeyValue::new("bool.false", false),
            KeyValue::new("int.zero", 0_i64),
            KeyValue::new("int.big", i64::MAX),
            KeyValue::new("int.negative", -1_i64),
            KeyValue::new("int.min", i64::MIN),
            KeyValue::new("double", 0.25_f64),
            KeyValue::new("double.zero", 0.0_f64),
            KeyValue::new("double.negative.zero", -0.0_f64),
            KeyValue::new("double.nan", f64::NAN),
            KeyValue::new("double.inf", f64::NEG_INFINITY),
            KeyValue::new(
                "array.string",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from(""),
                    StringValue::from("y".repeat(200)),
                ])),
            ),
            KeyValue::new(
                "array.int",
                Value::Array(Array::I64(vec![1, 0, -7, i64::MAX])),
            ),
            KeyValue::new("array.double", Value::Array(Array::F64(vec![1.5, 0.0]))),
            KeyValue::new("array.bool", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("array.empty", Value::Array(Array::I64(Vec::new()))),
            KeyValue::new(
                "array.empty.string",
                Value::Array(Array::String(Vec::new())),
            ),
        ]
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_schema_url(
                [
                    KeyValue::new("service.name", "checkout"),
                    KeyValue::new("service.version", "1.2.3"),
                    KeyValue::new("process.pid", 4242_i64),
                    KeyValue::new(
                        "host.arch",
                        Value::Array(Array::String(vec!["x86_64".into()])),
                    ),
                ],
                "https://opentelemetry.io/schemas/1.26.0",
            )
            .build()
    }

    fn scopes() -> (
        InstrumentationScope,
        InstrumentationScope,
        InstrumentationScope,
    ) {
        let plain = InstrumentationScope::builder("faultline").build();
        let full = InstrumentationScope::builder("orders-db")
            .with_version("0.9.1")
            .with_schema_url("https://opentelemetry.io/schemas/1.24.0")
            .with_attributes([
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new("pool", 4_i64),
            ])
            .build();
        // Equal to `full` (attributes in another order): the same scope.
        let full_reordered = InstrumentationScope::builder("orders-db")
            .with_version("0.9.1")
            .with_schema_url("https://opentelemetry.io/schemas/1.24.0")
            .with_attributes([
                KeyValue::new("pool", 4_i64),
                KeyValue::new("db.system", "postgresql"),
            ])
            .build();
        (plain, full, full_reordered)
    }

    /// Spans that use every field OTLP carries, from three scopes (two of
    /// them equal), interleaved.
    fn varied_spans() -> Vec<SpanData> {
        let (plain, full, full_reordered) = scopes();
        let kinds = [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ];
        let statuses = [
            Status::Unset,
            Status::Ok,
            Status::error("order service unavailable"),
            Status::error(""),
        ];
        let state =
            TraceState::from_key_value([("vendor", "v1"), ("other@tenant", "a-b_c.d")]).unwrap();
        let mut spans = Vec::new();
        for i in 0..20u64 {
            let scope = match i % 3 {
                0 => &plain,
                1 => &full,
                _ => &full_reordered,
            };
            let mut span = plain_span("GET /orders/{id}", scope);
            span.span_context = context(
                0x11112222333344445555666677778888 + u128::from(i),
                0x1234567890abcdef + i,
                false,
                if i % 2 == 0 {
                    state.clone()
                } else {
                    TraceState::NONE
                },
            );
            span.span_kind = kinds[i as usize % kinds.len()].clone();
            span.status = statuses[i as usize % statuses.len()].clone();
            match i % 4 {
                0 => {} // no parent
                1 => {
                    span.parent_span_id = SpanId::from(0xaa + i);
                    span.parent_span_is_remote = true;
                }
                _ => span.parent_span_id = SpanId::from(0xbb + i),
            }
            if i % 5 == 0 {
                span.span_context = SpanContext::new(
                    span.span_context.trace_id(),
                    span.span_context.span_id(),
                    TraceFlags::default(),
                    false,
                    TraceState::NONE,
                );
            }
            span.attributes = every_value();
            span.attributes
                .truncate(every_value().len() - (i as usize % 7));
            span.dropped_attributes_count = (i as u32 % 3) * 200;
            let mut events = SpanEvents::default();
            for e in 0..(i % 3) {
                events.events.push(Event::new(
                    if e == 0 { "exception" } else { "" },
                    at(1_700_000_000_150_000_000 + e),
                    if e == 0 {
                        vec![
                            KeyValue::new("exception.type", "Timeout"),
                            KeyValue::new("exception.message", "no answer in 5 s"),
                            KeyValue::new("attempt", 3_i64),
                        ]
                    } else {
                        Vec::new()
                    },
                    e as u32,
                ));
            }
            events.dropped_count = (i as u32 % 2) * 130;
            span.events = events;
            let mut links = SpanLinks::default();
            if i % 3 == 1 {
                links.links.push(Link::new(
                    context(
                        0x99,
                        0x98,
                        true,
                        TraceState::from_key_value([("rojo", "00f067aa0ba902b7")]).unwrap(),
                    ),
                    vec![KeyValue::new("link.kind", "retry-of")],
                    2,
                ));
                links.links.push(Link::new(
                    context(0x97, 0x96, false, TraceState::NONE),
                    Vec::new(),
                    0,
                ));
                links.dropped_count = 1;
            }
            span.links = links;
            if i == 7 {
                // Before the epoch: the times are left out.
                span.start_time = UNIX_EPOCH - Duration::from_secs(1);
                span.end_time = UNIX_EPOCH;
            }
            spans.push(span);
        }
        spans
    }

    #[test]
    fn varied_spans_encode_as_prost_encodes_the_transform() {
        assert_same(&resource(), &varied_spans());
    }

    #[test]
    fn scopes_group_in_order_of_first_appearance() {
        let (plain, full, full_reordered) = scopes();
        let spans: Vec<SpanData> = [&full, &plain, &full_reordered, &plain, &full]
            .into_iter()
            .map(|scope| plain_span("s", scope))
            .collect();
        assert_same(&resource(), &spans);
        let decoded =
            ExportTraceServiceRequest::decode(&TraceEncoder::new().encode(&resource(), &spans)[..])
                .unwrap();
        let groups: Vec<(String, usize)> = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| (s.scope.as_ref().unwrap().name.clone(), s.spans.len()))
            .collect();
        assert_eq!(
            groups,
            [("orders-db".to_owned(), 3), ("faultline".to_owned(), 2)]
        );
    }

    #[test]
    fn encoding_within_a_limit_measures_exactly_and_writes_nothing_past_it() {
        // One resource: its attributes' order is the map's, per instance.
        let resource = resource();
        let spans = varied_spans();
        let whole = TraceEncoder::new().encode(&resource, &spans);
        let mut encoder = TraceEncoder::new();
        let mut out = Vec::new();
        assert_eq!(
            encoder.encode_within(&resource, &spans, whole.len() - 1, &mut out),
            Err(whole.len())
        );
        assert!(out.is_empty());
        assert_eq!(
            encoder.encode_within(&resource, &spans, whole.len(), &mut out),
            Ok(())
        );
        assert!(out == whole, "the same bytes as encode");
    }

    #[test]
    fn edge_batches() {
        let (plain, ..) = scopes();
        // No spans, an empty resource, a resource without schema.
        assert_same(&Resource::builder_empty().build(), &[]);
        assert_same(&resource(), &[]);
        let mut span = plain_span("", &plain);
        span.name = Cow::Owned(String::new());
        assert_same(&Resource::builder_empty().build(), &[span.clone()]);
        assert_same(
            &Resource::builder_empty().with_service_name("s").build(),
            &[span],
        );
        // A big span: lengths of two and three varint bytes.
        let mut big = plain_span("big", &plain);
        big.attributes = (0..2000)
            .map(|i| KeyValue::new(format!("k{i}"), "v".repeat(i % 50)))
            .collect();
        assert_same(&resource(), &[big]);
    }

    #[test]
    fn varint_lengths_are_minimal() {
        for (value, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(value), len, "{value}");
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), len, "{value}");
        }
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<f64>().prop_map(Value::F64),
            ".{0,40}".prop_map(|s| Value::String(s.into())),
            prop::collection::vec(".{0,10}", 0..4).prop_map(|v| Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect()
            ))),
            prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
            prop::collection::vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
            prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
        ]
    }

    fn attributes_strategy() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec((".{0,20}", value_strategy()), 0..12).prop_map(|kvs| {
            kvs.into_iter()
                .map(|(k, v)| KeyValue::new(Key::from(k), v))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_spans_encode_as_prost_encodes_the_transform(
            names in prop::collection::vec(".{0,30}", 1..6),
            attributes in prop::collection::vec(attributes_strategy(), 1..6),
            event_attributes in attributes_strategy(),
            resource_attributes in attributes_strategy(),
            scope_name in ".{0,12}",
            status_message in ".{0,30}",
            times in prop::collection::vec(any::<u64>(), 2),
            ids in (any::<u128>(), any::<u64>(), any::<u64>()),
            dropped in any::<u32>(),
            remote in any::<bool>(),
        ) {
            let scope = InstrumentationScope::builder(scope_name).build();
            let other = InstrumentationScope::builder("other").with_version("1").build();
            let resource = Resource::builder_empty().with_attributes(resource_attributes).build();
            let spans: Vec<SpanData> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut span = plain_span("", if i % 2 == 0 { &scope } else { &other });
                    span.name = Cow::Owned(name.clone());
                    span.span_context = context(ids.0, ids.1, remote, TraceState::NONE);
                    span.parent_span_id = SpanId::from(ids.2);
                    span.parent_span_is_remote = remote;
                    span.start_time = at(times[0]);
                    span.end_time = at(times[1]);
                    span.attributes = attributes[i % attributes.len()].clone();
                    span.dropped_attributes_count = dropped;
                    span.events.events.push(Event::new(name.clone(), at(times[1]), event_attributes.clone(), dropped));
                    span.status = Status::error(status_message.clone());
                    span
                })
                .collect();
            let want = reference(&resource, &spans);
            prop_assert_eq!(TraceEncoder::new().encode(&resource, &spans), want);
        }
    }
}
