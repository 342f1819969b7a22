//! The agent path: `Agent.emitBatch` in the thrift compact protocol, one
//! oneway message per UDP datagram, no datagram larger than the packet
//! limit (65,000 bytes by default, the Jaeger agent's own limit).
//!
//! Each span is encoded once into a shared buffer; the packets are then
//! assembled from those bytes, as many whole spans per packet as fit, so no
//! span is ever split or sent twice. A span too large for a packet on its
//! own is trimmed (see [`trim`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use opentelemetry_sdk::trace::SpanData;
use thrift::protocol::TCompactOutputProtocol;
use tokio::net::UdpSocket;

use crate::mapping;
use crate::model::{self, Process, Span, Tag, TagValue};

/// The tag added to a span that was trimmed to fit a packet: how many tags
/// and logs were removed plus how many strings were shortened.
pub const TRUNCATED_TAG: &str = "faultline.jaeger.truncated";

/// The longest a kept string (operation name, status description, ...) may
/// stay when removing the span's attributes and logs was not enough.
const KEPT_STRING_LIMIT: usize = 1024;

/// Room kept in a trimmed span for the [`TRUNCATED_TAG`] and for list headers.
const TRIM_RESERVE: usize = 64;

/// A `Write` into a buffer that the code driving the protocol can also
/// append to: the packet assembly splices already-encoded spans between the
/// protocol's own writes.
pub(crate) struct CellWriter<'a>(pub &'a RefCell<Vec<u8>>);

impl Write for CellWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The compact encoding of `write`'s output.
fn compact_len(
    write: impl FnOnce(&mut TCompactOutputProtocol<&mut Vec<u8>>) -> model::Result<()>,
) -> usize {
    let mut buf = Vec::new();
    let mut p = TCompactOutputProtocol::new(&mut buf);
    // Writing into a Vec cannot fail; a failure would only make the length 0.
    let _ = write(&mut p);
    drop(p);
    buf.len()
}

/// Bytes of a packet that are not spans, at most: the message header, the
/// process, the sequence number, the field stops and the longest list header.
pub(crate) fn envelope_overhead(process: &Process) -> usize {
    let len = compact_len(|p| model::write_emit_batch(p, process, i64::MIN, 0, |_| Ok(())));
    // The list header grows from 1 byte to at most 1 + 5 (varint count);
    // the message's i32 sequence id from 1 byte to at most 5.
    len + 5 + 4
}

/// What happened to one span that did not fit a packet as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Trimmed to fit; `n` tags/logs removed or strings shortened.
    Trimmed(usize),
    /// Could not be made to fit (only when the kept parts alone are too large).
    TooLarge,
}

fn shorten(s: &mut Cow<'_, str>, limit: usize) -> bool {
    if s.len() <= limit {
        return false;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    *s = Cow::Owned(s[..end].to_owned());
    true
}

/// Makes `span`'s compact encoding at most `budget` bytes, keeping its
/// identity (ids, references, times, flags, name) and the tags the mapping
/// adds (kind, status, error, scope), and removing the largest of its
/// attribute tags and logs first, as few as needed. The span then carries
/// [`TRUNCATED_TAG`] with the number of items removed. If that is not
/// enough, the remaining strings are cut to 1 KiB each (counted too).
pub(crate) fn trim(span: &mut Span<'_>, budget: usize) -> Fit {
    let target = budget.saturating_sub(TRIM_RESERVE);
    let mut size = compact_len(|p| span.write(p));
    // (size, is_log, index) of everything that may go.
    let mut items: Vec<(usize, bool, usize)> = Vec::new();
    for (i, tag) in span.tags[..span.attribute_tags].iter().enumerate() {
        items.push((compact_len(|p| tag.write(p)), false, i));
    }
    for (i, log) in span.logs.iter().enumerate() {
        items.push((compact_len(|p| log.write(p)), true, i));
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    let mut drop_tag = vec![false; span.attribute_tags];
    let mut drop_log = vec![false; span.logs.len()];
    let mut removed = 0usize;
    for (item_size, is_log, index) in items {
        if size <= target {
            break;
        }
        size -= item_size;
        removed += 1;
        if is_log {
            drop_log[index] = true;
        } else {
            drop_tag[index] = true;
        }
    }
    let mut i = 0;
    span.tags.retain(|_| {
        let keep = i >= drop_tag.len() || !drop_tag[i];
        i += 1;
        keep
    });
    span.attribute_tags -= drop_tag.iter().filter(|d| **d).count();
    let mut i = 0;
    span.logs.retain(|_| {
        let keep = !drop_log[i];
        i += 1;
        keep
    });
    if size > target {
        // Removing every attribute and log was not enough: shorten what is left.
        removed += usize::from(shorten(&mut span.operation_name, KEPT_STRING_LIMIT));
        for tag in span.tags.iter_mut() {
            removed += usize::from(shorten(&mut tag.key, KEPT_STRING_LIMIT));
            if let TagValue::Str(s) = &mut tag.value {
                removed += usize::from(shorten(s, KEPT_STRING_LIMIT));
            }
        }
    }
    span.tags.push(Tag::new(
        TRUNCATED_TAG,
        TagValue::Long(i64::try_from(removed).unwrap_or(i64::MAX)),
    ));
    if compact_len(|p| span.write(p)) <= budget {
        Fit::Trimmed(removed)
    } else {
        Fit::TooLarge
    }
}

/// Spans of one export encoded for the agent.
#[derive(Debug, Default)]
pub(crate) struct EncodedSpans {
    /// Every span's compact encoding, one after the other.
    pub bytes: Vec<u8>,
    /// Where each span is in `bytes`, in batch order.
    pub spans: Vec<Range<usize>>,
    /// Spans that were trimmed to fit.
    pub truncated: usize,
    /// Spans that could not be made to fit and are not sent.
    pub too_large: usize,
}

impl EncodedSpans {
    /// Encodes `batch`, each span at most `max_span_bytes` long, reusing
    /// this value's buffers.
    pub(crate) fn encode(
        &mut self,
        batch: &[SpanData],
        max_span_bytes: usize,
    ) -> model::Result<()> {
        self.bytes.clear();
        self.spans.clear();
        self.truncated = 0;
        self.too_large = 0;
        let cell = RefCell::new(std::mem::take(&mut self.bytes));
        let result = (|| {
            let mut p = TCompactOutputProtocol::new(CellWriter(&cell));
            for data in batch {
                let mut span = mapping::span(data);
                let start = cell.borrow().len();
                span.write(&mut p)?;
                let end = cell.borrow().len();
                if end - start <= max_span_bytes {
                    self.spans.push(start..end);
                    continue;
                }
                cell.borrow_mut().truncate(start);
                match trim(&mut span, max_span_bytes) {
                    Fit::Trimmed(_) => {
                        span.write(&mut p)?;
                        self.spans.push(start..cell.borrow().len());
                        self.truncated += 1;
                    }
                    Fit::TooLarge => self.too_large += 1,
                }
            }
            Ok(())
        })();
        self.bytes = cell.into_inner();
        result
    }

    /// Groups the spans into packets: consecutive spans, as many as fit in
    /// `max_spans_bytes` (the packet limit less the envelope).
    pub(crate) fn packets(&self, max_spans_bytes: usize) -> Vec<Range<usize>> {
        let mut packets = Vec::new();
        let mut first = 0;
        let mut size = 0;
        for (i, span) in self.spans.iter().enumerate() {
            let len = span.len();
            if i > first && size + len > max_spans_bytes {
                packets.push(first..i);
                first = i;
                size = 0;
            }
            size += len;
        }
        if first < self.spans.len() {
            packets.push(first..self.spans.len());
        }
        packets
    }

    /// Writes the `emitBatch` message for the spans `which` into `out`.
    pub(crate) fn write_packet(
        &self,
        process: &Process,
        seq_no: i64,
        which: Range<usize>,
        out: &mut Vec<u8>,
    ) -> model::Result<()> {
        out.clear();
        let cell = RefCell::new(std::mem::take(out));
        let result = {
            let mut p = TCompactOutputProtocol::new(CellWriter(&cell));
            let spans = &self.spans[which];
            model::write_emit_batch(&mut p, process, seq_no, spans.len(), |_| {
                let mut buf = cell.borrow_mut();
                for span in spans {
                    buf.extend_from_slice(&self.bytes[span.clone()]);
                }
                Ok(())
            })
        };
        *out = cell.into_inner();
        result
    }
}

/// Resolves the agent's address, preferring IPv4 (an agent listening on
/// `0.0.0.0` is not reachable on `::1`), and opens a UDP socket connected to
/// it (so that an unreachable agent shows as an error on a later send).
pub(crate) async fn connect(host: &str, port: u16) -> std::io::Result<UdpSocket> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no address for the Jaeger agent host {host}"),
            )
        })?;
    let local = match addr.ip() {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Log, Span};
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    fn process() -> Process {
        Process {
            service_name: "svc".into(),
            tags: vec![Tag::str("host.name", "h")],
        }
    }

    fn data(i: u64, attr_bytes: usize) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(i) + 1),
                SpanId::from(i + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: format!("span-{i}").into(),
            start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            end_time: UNIX_EPOCH + Duration::from_secs(1_700_000_001),
            attributes: vec![KeyValue::new("payload", "x".repeat(attr_bytes))],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("t").build(),
        }
    }

    #[test]
    fn packets_hold_whole_spans_within_the_limit() {
        let limit = 65_000;
        let batch: Vec<SpanData> = (0..300)
            .map(|i| data(i, 1000 + (i as usize * 37) % 5000))
            .collect();
        let process = process();
        let budget = limit - envelope_overhead(&process);
        let mut enc = EncodedSpans::default();
        enc.encode(&batch, budget).unwrap();
        assert_eq!(enc.spans.len(), 300);
        let packets = enc.packets(budget);
        assert!(packets.len() > 1);
        // Every span exactly once, in order.
        let flat: Vec<usize> = packets.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..300).collect::<Vec<_>>());
        let mut out = Vec::new();
        for (seq, which) in packets.into_iter().enumerate() {
            enc.write_packet(&process, seq as i64, which, &mut out)
                .unwrap();
            assert!(out.len() <= limit, "packet of {} bytes", out.len());
        }
    }

    #[test]
    fn a_span_larger_than_a_packet_is_trimmed_not_lost() {
        let mut big = data(1, 70_000);
        big.attributes.push(KeyValue::new("small", "kept"));
        big.events.events.push(opentelemetry::trace::Event::new(
            "kept-event",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            vec![],
            0,
        ));
        let process = process();
        let budget = 65_000 - envelope_overhead(&process);
        let mut enc = EncodedSpans::default();
        enc.encode(&[data(0, 10), big, data(2, 10)], budget)
            .unwrap();
        assert_eq!((enc.spans.len(), enc.truncated, enc.too_large), (3, 1, 0));
        assert!(enc.spans[1].len() <= budget);

        let d = {
            let mut d = data(1, 70_000);
            d.attributes.push(KeyValue::new("small", "kept"));
            d
        };
        let mut span = mapping::span(&d);
        assert_eq!(trim(&mut span, budget), Fit::Trimmed(1));
        assert!(span.tags.iter().all(|t| t.key != "payload"));
        assert!(span.tags.iter().any(|t| t.key == "small"));
        assert!(span.tags.iter().any(|t| t.key == "span.kind"));
        assert_eq!(
            span.tags.last(),
            Some(&Tag::new(TRUNCATED_TAG, TagValue::Long(1)))
        );
    }

    #[test]
    fn logs_go_largest_first_and_kept_strings_are_shortened_last() {
        let small = data(1, 10);
        let mut span = mapping::span(&small);
        span.logs = (0..200)
            .map(|i| Log {
                timestamp: i,
                fields: vec![Tag::str("event", "e".repeat(100 + i as usize))],
            })
            .collect();
        let before = compact_len(|p| span.write(p));
        let budget = before / 2;
        let Fit::Trimmed(n) = trim(&mut span, budget) else {
            panic!("not trimmed")
        };
        assert!(compact_len(|p| span.write(p)) <= budget);
        assert_eq!(span.logs.len(), 200 - n);
        // The smallest (earliest here) logs stay.
        assert_eq!(span.logs[0].timestamp, 0);

        let mut huge_name: Span<'_> = mapping::span(&small);
        huge_name.operation_name = "n".repeat(100_000).into();
        assert!(matches!(trim(&mut huge_name, 2000), Fit::Trimmed(2)));
        assert_eq!(huge_name.operation_name.len(), KEPT_STRING_LIMIT);
        // Nothing can make a span fit 10 bytes.
        assert_eq!(trim(&mut mapping::span(&small), 10), Fit::TooLarge);
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        let mut s: Cow<'_, str> = "ééé".into();
        assert!(shorten(&mut s, 3));
        assert_eq!(s, "é");
    }
}
