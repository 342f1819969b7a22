//! Jaeger's native propagation: the `uber-trace-id` header
//! (`{trace-id}:{span-id}:{parent-span-id}:{flags}`).

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::Propagator;
use crate::carrier::{Carrier, CarrierMut};

pub(crate) const UBER_TRACE_ID: &str = "uber-trace-id";

/// The Jaeger propagator.
#[derive(Debug, Clone, Copy, Default)]
pub struct JaegerPropagator;

impl JaegerPropagator {
    /// A new propagator.
    pub fn new() -> Self {
        JaegerPropagator
    }
}

fn hex(s: &str, max: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

fn parse(value: &str) -> Option<SpanContext> {
    if value.len() > 256 {
        return None;
    }
    let decoded = value.trim().replace("%3A", ":").replace("%3a", ":");
    let mut parts = decoded.split(':');
    let trace = hex(parts.next()?, 32)?;
    let span = hex(parts.next()?, 16)? as u64;
    let _parent = hex(parts.next()?, 16)?;
    let flags = hex(parts.next()?, 2)? as u8;
    if parts.next().is_some() || trace == 0 || span == 0 {
        return None;
    }
    // Bit 1 sampled, bit 2 debug (which implies sampled).
    let sampled = flags & 0x01 != 0 || flags & 0x02 != 0;
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        true,
        TraceState::NONE,
    ))
}

impl Propagator for JaegerPropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        match carrier.get(UBER_TRACE_ID).and_then(parse) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let flags = u8::from(sc.is_sampled());
        carrier.set(
            UBER_TRACE_ID,
            format!("{}:{}:0:{flags}", sc.trace_id(), sc.span_id()),
        );
    }

    fn fields(&self) -> Vec<String> {
        vec![UBER_TRACE_ID.to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(v: &str) -> SpanContext {
        let mut m: HashMap<String, String> = HashMap::new();
        m.insert(UBER_TRACE_ID.into(), v.into());
        JaegerPropagator
            .extract(&m, &Context::new())
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn reads_full_short_encoded_and_refuses_bad() {
        let sc = extract("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled());
        let sc = extract("abc%3Adef%3A0%3A2");
        assert_eq!(
            sc.trace_id().to_string(),
            "00000000000000000000000000000abc"
        );
        assert!(sc.is_sampled(), "debug implies sampled");
        assert!(!extract("abc:def:0:0").is_sampled());
        for bad in [
            "",
            "0:1:0:1",
            "1:0:0:1",
            "x:1:0:1",
            "1:1:0",
            "1:1:0:1:9",
            "1:1:0:100",
        ] {
            assert!(!extract(bad).is_valid(), "{bad}");
        }
    }

    #[test]
    fn writes_the_header() {
        let sc = SpanContext::new(
            TraceId::from(0xabc),
            SpanId::from(0xdef),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let mut out: HashMap<String, String> = HashMap::new();
        JaegerPropagator.inject(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(
            out[UBER_TRACE_ID],
            "00000000000000000000000000000abc:0000000000000def:0:1"
        );
    }
}
