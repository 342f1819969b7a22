//! The Jaeger thrift structures and their encoding, written from Jaeger's
//! `jaeger.thrift` and `agent.thrift` IDL on the `thrift` crate's protocol
//! API, so the same code writes the compact protocol (UDP, agent) and the
//! binary protocol (HTTP, collector).
//!
//! ```text
//! struct Tag     { 1: string key, 2: TagType vType, 3: optional string vStr,
//!                  4: optional double vDouble, 5: optional bool vBool,
//!                  6: optional i64 vLong, 7: optional binary vBinary }
//! struct Log     { 1: i64 timestamp, 2: list<Tag> fields }
//! struct SpanRef { 1: SpanRefType refType, 2: i64 traceIdLow, 3: i64 traceIdHigh, 4: i64 spanId }
//! struct Span    { 1: i64 traceIdLow, 2: i64 traceIdHigh, 3: i64 spanId, 4: i64 parentSpanId,
//!                  5: string operationName, 6: optional list<SpanRef> references, 7: i32 flags,
//!                  8: i64 startTime, 9: i64 duration, 10: optional list<Tag> tags,
//!                  11: optional list<Log> logs }
//! struct Process { 1: string serviceName, 2: optional list<Tag> tags }
//! struct Batch   { 1: Process process, 2: list<Span> spans, 3: optional i64 seqNo, ... }
//! service Agent  { oneway void emitBatch(1: Batch batch) }
//! ```

use std::borrow::Cow;

use thrift::protocol::{
    TFieldIdentifier, TListIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol,
    TStructIdentifier, TType,
};

/// `TagType` of the IDL.
mod tag_type {
    pub(super) const STRING: i32 = 0;
    pub(super) const DOUBLE: i32 = 1;
    pub(super) const BOOL: i32 = 2;
    pub(super) const LONG: i32 = 3;
}

/// The value of a [`Tag`], with its thrift type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TagValue<'a> {
    /// `STRING` (`vStr`).
    Str(Cow<'a, str>),
    /// `DOUBLE` (`vDouble`).
    Double(f64),
    /// `BOOL` (`vBool`).
    Bool(bool),
    /// `LONG` (`vLong`).
    Long(i64),
}

/// A key and a typed value (span tags, log fields, process tags).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tag<'a> {
    pub key: Cow<'a, str>,
    pub value: TagValue<'a>,
}

impl<'a> Tag<'a> {
    pub(crate) fn new(key: impl Into<Cow<'a, str>>, value: TagValue<'a>) -> Self {
        Tag {
            key: key.into(),
            value,
        }
    }
    pub(crate) fn str(key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        Tag::new(key, TagValue::Str(value.into()))
    }
}

/// A timestamped list of fields (an OpenTelemetry event).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Log<'a> {
    /// Microseconds since the epoch.
    pub timestamp: i64,
    pub fields: Vec<Tag<'a>>,
}

/// `SpanRefType` of the IDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefType {
    ChildOf = 0,
    FollowsFrom = 1,
}

/// A reference to another span (the parent, or a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanRef {
    pub ref_type: RefType,
    pub trace_id_low: i64,
    pub trace_id_high: i64,
    pub span_id: i64,
}

/// One Jaeger span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span<'a> {
    pub trace_id_low: i64,
    pub trace_id_high: i64,
    pub span_id: i64,
    /// 0 for a root span.
    pub parent_span_id: i64,
    pub operation_name: Cow<'a, str>,
    pub references: Vec<SpanRef>,
    /// 1 = sampled.
    pub flags: i32,
    /// Microseconds since the epoch.
    pub start_time: i64,
    /// Microseconds.
    pub duration: i64,
    pub tags: Vec<Tag<'a>>,
    /// How many of the first `tags` come from the span's attributes (the
    /// rest are made by the mapping: kind, status, scope, ...). Only those
    /// may be dropped to make an oversized span fit a UDP packet.
    pub attribute_tags: usize,
    pub logs: Vec<Log<'a>>,
}

/// The process that emitted the spans (from the OpenTelemetry resource).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Process {
    pub service_name: String,
    pub tags: Vec<Tag<'static>>,
}

pub(crate) type Result<T> = thrift::Result<T>;

fn struct_begin<P: TOutputProtocol + ?Sized>(p: &mut P) -> Result<()> {
    // The name is never written by the compact or binary protocol; an empty
    // `String` does not allocate.
    p.write_struct_begin(&TStructIdentifier {
        name: String::new(),
    })
}

fn struct_end<P: TOutputProtocol + ?Sized>(p: &mut P) -> Result<()> {
    p.write_field_stop()?;
    p.write_struct_end()
}

fn field<P: TOutputProtocol + ?Sized>(p: &mut P, field_type: TType, id: i16) -> Result<()> {
    p.write_field_begin(&TFieldIdentifier {
        name: None,
        field_type,
        id: Some(id),
    })
}

fn list<P: TOutputProtocol + ?Sized>(p: &mut P, element_type: TType, len: usize) -> Result<()> {
    let size = i32::try_from(len).map_err(|_| {
        thrift::Error::Protocol(thrift::ProtocolError::new(
            thrift::ProtocolErrorKind::SizeLimit,
            "list longer than i32::MAX",
        ))
    })?;
    p.write_list_begin(&TListIdentifier { element_type, size })
}

fn i64_field<P: TOutputProtocol + ?Sized>(p: &mut P, id: i16, value: i64) -> Result<()> {
    field(p, TType::I64, id)?;
    p.write_i64(value)?;
    p.write_field_end()
}

fn string_field<P: TOutputProtocol + ?Sized>(p: &mut P, id: i16, value: &str) -> Result<()> {
    field(p, TType::String, id)?;
    p.write_string(value)?;
    p.write_field_end()
}

fn struct_list_field<P, T>(
    p: &mut P,
    id: i16,
    items: &[T],
    write: impl Fn(&T, &mut P) -> Result<()>,
) -> Result<()>
where
    P: TOutputProtocol + ?Sized,
{
    field(p, TType::List, id)?;
    list(p, TType::Struct, items.len())?;
    for item in items {
        write(item, p)?;
    }
    p.write_list_end()?;
    p.write_field_end()
}

impl Tag<'_> {
    pub(crate) fn write<P: TOutputProtocol + ?Sized>(&self, p: &mut P) -> Result<()> {
        struct_begin(p)?;
        string_field(p, 1, &self.key)?;
        field(p, TType::I32, 2)?;
        let v_type = match self.value {
            TagValue::Str(_) => tag_type::STRING,
            TagValue::Double(_) => tag_type::DOUBLE,
            TagValue::Bool(_) => tag_type::BOOL,
            TagValue::Long(_) => tag_type::LONG,
        };
        p.write_i32(v_type)?;
        p.write_field_end()?;
        match &self.value {
            TagValue::Str(s) => string_field(p, 3, s)?,
            TagValue::Double(d) => {
                field(p, TType::Double, 4)?;
                p.write_double(*d)?;
                p.write_field_end()?;
            }
            TagValue::Bool(b) => {
                field(p, TType::Bool, 5)?;
                p.write_bool(*b)?;
                p.write_field_end()?;
            }
            TagValue::Long(n) => i64_field(p, 6, *n)?,
        }
        struct_end(p)
    }
}

impl Log<'_> {
    pub(crate) fn write<P: TOutputProtocol + ?Sized>(&self, p: &mut P) -> Result<()> {
        struct_begin(p)?;
        i64_field(p, 1, self.timestamp)?;
        struct_list_field(p, 2, &self.fields, |t, p| t.write(p))?;
        struct_end(p)
    }
}

impl SpanRef {
    pub(crate) fn write<P: TOutputProtocol + ?Sized>(&self, p: &mut P) -> Result<()> {
        struct_begin(p)?;
        field(p, TType::I32, 1)?;
        p.write_i32(self.ref_type as i32)?;
        p.write_field_end()?;
        i64_field(p, 2, self.trace_id_low)?;
        i64_field(p, 3, self.trace_id_high)?;
        i64_field(p, 4, self.span_id)?;
        struct_end(p)
    }
}

impl Span<'_> {
    pub(crate) fn write<P: TOutputProtocol + ?Sized>(&self, p: &mut P) -> Result<()> {
        struct_begin(p)?;
        i64_field(p, 1, self.trace_id_low)?;
        i64_field(p, 2, self.trace_id_high)?;
        i64_field(p, 3, self.span_id)?;
        i64_field(p, 4, self.parent_span_id)?;
        string_field(p, 5, &self.operation_name)?;
        if !self.references.is_empty() {
            struct_list_field(p, 6, &self.references, |r, p| r.write(p))?;
        }
        field(p, TType::I32, 7)?;
        p.write_i32(self.flags)?;
        p.write_field_end()?;
        i64_field(p, 8, self.start_time)?;
        i64_field(p, 9, self.duration)?;
        if !self.tags.is_empty() {
            struct_list_field(p, 10, &self.tags, |t, p| t.write(p))?;
        }
        if !self.logs.is_empty() {
            struct_list_field(p, 11, &self.logs, |l, p| l.write(p))?;
        }
        struct_end(p)
    }
}

impl Process {
    pub(crate) fn write<P: TOutputProtocol + ?Sized>(&self, p: &mut P) -> Result<()> {
        struct_begin(p)?;
        string_field(p, 1, &self.service_name)?;
        if !self.tags.is_empty() {
            struct_list_field(p, 2, &self.tags, |t, p| t.write(p))?;
        }
        struct_end(p)
    }
}

/// Writes `Batch { process, spans }` (what the collector's `/api/traces` takes).
pub(crate) fn write_batch<P: TOutputProtocol + ?Sized>(
    p: &mut P,
    process: &Process,
    spans: &[Span<'_>],
) -> Result<()> {
    struct_begin(p)?;
    field(p, TType::Struct, 1)?;
    process.write(p)?;
    p.write_field_end()?;
    struct_list_field(p, 2, spans, |s, p| s.write(p))?;
    struct_end(p)?;
    p.flush()
}

/// Writes the `Agent.emitBatch` oneway message around `span_count` spans
/// that `write_spans` writes (already encoded elsewhere, or encoded by it):
///
/// `emitBatch_args { 1: Batch { 1: process, 2: spans, 3: seqNo } }`.
pub(crate) fn write_emit_batch<P: TOutputProtocol + ?Sized>(
    p: &mut P,
    process: &Process,
    seq_no: i64,
    span_count: usize,
    write_spans: impl FnOnce(&mut P) -> Result<()>,
) -> Result<()> {
    p.write_message_begin(&TMessageIdentifier::new(
        "emitBatch",
        TMessageType::OneWay,
        // The message's sequence id is an i32: it wraps.
        seq_no as i32,
    ))?;
    struct_begin(p)?; // emitBatch_args
    field(p, TType::Struct, 1)?;
    struct_begin(p)?; // Batch
    field(p, TType::Struct, 1)?;
    process.write(p)?;
    p.write_field_end()?;
    field(p, TType::List, 2)?;
    list(p, TType::Struct, span_count)?;
    write_spans(p)?;
    p.write_list_end()?;
    p.write_field_end()?;
    i64_field(p, 3, seq_no)?;
    struct_end(p)?; // Batch
    p.write_field_end()?;
    struct_end(p)?; // emitBatch_args
    p.write_message_end()?;
    p.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use thrift::protocol::{
        TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
        TInputProtocol,
    };

    fn sample_span() -> Span<'static> {
        Span {
            trace_id_low: -2,
            trace_id_high: 0x0102_0304_0506_0708,
            span_id: 42,
            parent_span_id: 7,
            operation_name: "GET /users/{id}".into(),
            references: vec![SpanRef {
                ref_type: RefType::FollowsFrom,
                trace_id_low: 3,
                trace_id_high: 4,
                span_id: 5,
            }],
            flags: 1,
            start_time: 1_700_000_000_000_000,
            duration: 1234,
            tags: vec![
                Tag::str("s", "v"),
                Tag::new("d", TagValue::Double(1.5)),
                Tag::new("b", TagValue::Bool(true)),
                Tag::new("l", TagValue::Long(-9)),
            ],
            attribute_tags: 4,
            logs: vec![Log {
                timestamp: 10,
                fields: vec![Tag::str("event", "retry")],
            }],
        }
    }

    /// Reads a Tag back with the crate's own input protocol (the
    /// integration tests decode with Apache Thrift's Python library).
    fn read_tag(p: &mut dyn TInputProtocol) -> (String, i32, String) {
        p.read_struct_begin().unwrap();
        let (mut key, mut ty, mut val) = (String::new(), -1, String::new());
        loop {
            let f = p.read_field_begin().unwrap();
            match (f.field_type, f.id) {
                (TType::Stop, _) => break,
                (_, Some(1)) => key = p.read_string().unwrap(),
                (_, Some(2)) => ty = p.read_i32().unwrap(),
                (_, Some(3)) => val = p.read_string().unwrap(),
                (_, Some(4)) => val = p.read_double().unwrap().to_string(),
                (_, Some(5)) => val = p.read_bool().unwrap().to_string(),
                (_, Some(6)) => val = p.read_i64().unwrap().to_string(),
                (t, _) => p.skip(t).unwrap(),
            }
            p.read_field_end().unwrap();
        }
        p.read_struct_end().unwrap();
        (key, ty, val)
    }

    #[test]
    fn tags_round_trip_in_both_protocols() {
        let tags = sample_span().tags;
        let expected = [
            ("s", 0, "v"),
            ("d", 1, "1.5"),
            ("b", 2, "true"),
            ("l", 3, "-9"),
        ];
        for compact in [true, false] {
            let mut buf = Vec::new();
            {
                let mut p: Box<dyn TOutputProtocol> = if compact {
                    Box::new(TCompactOutputProtocol::new(&mut buf))
                } else {
                    Box::new(TBinaryOutputProtocol::new(&mut buf, true))
                };
                for t in &tags {
                    t.write(p.as_mut()).unwrap();
                }
            }
            let mut input = &buf[..];
            let mut p: Box<dyn TInputProtocol> = if compact {
                Box::new(TCompactInputProtocol::new(&mut input))
            } else {
                Box::new(TBinaryInputProtocol::new(&mut input, true))
            };
            for (k, t, v) in expected {
                assert_eq!(read_tag(p.as_mut()), (k.to_owned(), t, v.to_owned()));
            }
        }
    }

    #[test]
    fn emit_batch_is_a_oneway_compact_message() {
        let process = Process {
            service_name: "svc".into(),
            tags: vec![Tag::str("host.name", "h")],
        };
        let span = sample_span();
        let mut buf = Vec::new();
        {
            let mut p = TCompactOutputProtocol::new(&mut buf);
            write_emit_batch(&mut p, &process, 9, 1, |p| span.write(p)).unwrap();
        }
        let mut input = &buf[..];
        let mut p = TCompactInputProtocol::new(&mut input);
        let m = p.read_message_begin().unwrap();
        assert_eq!(m.name, "emitBatch");
        assert_eq!(m.message_type, TMessageType::OneWay);
        assert_eq!(m.sequence_number, 9);
        // Walk the whole message: it must be well formed to the last byte.
        p.read_struct_begin().unwrap();
        let f = p.read_field_begin().unwrap();
        assert_eq!((f.field_type, f.id), (TType::Struct, Some(1)));
        p.skip(TType::Struct).unwrap();
        p.read_field_end().unwrap();
        assert_eq!(p.read_field_begin().unwrap().field_type, TType::Stop);
        p.read_struct_end().unwrap();
        p.read_message_end().unwrap();
        assert!(input.is_empty(), "{} bytes left over", input.len());
    }

    #[test]
    fn a_span_encoded_alone_is_the_same_bytes_as_inside_a_batch() {
        // The UDP path encodes each span once and splices the bytes into
        // the packet: that is only right if a struct's compact encoding does
        // not depend on what surrounds it.
        let process = Process {
            service_name: "svc".into(),
            tags: vec![],
        };
        let span = sample_span();
        let mut alone = Vec::new();
        span.write(&mut TCompactOutputProtocol::new(&mut alone))
            .unwrap();
        let mut whole = Vec::new();
        write_emit_batch(
            &mut TCompactOutputProtocol::new(&mut whole),
            &process,
            1,
            2,
            |p| {
                span.write(p)?;
                span.write(p)
            },
        )
        .unwrap();
        let at = whole
            .windows(alone.len())
            .position(|w| w == alone.as_slice())
            .expect("span bytes inside the batch");
        assert_eq!(&whole[at + alone.len()..at + 2 * alone.len()], &alone[..]);
    }
}
