//! Zipkin B3 propagation, single header (`b3`) and multiple headers
//! (`X-B3-*`), for fleets that have not moved to W3C Trace Context.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::Propagator;
use crate::carrier::{Carrier, CarrierMut};

const B3: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";
const PARENT: &str = "x-b3-parentspanid";
/// Every header extraction reads, in either encoding.
pub(crate) const READ: [&str; 6] = [B3, TRACE_ID, SPAN_ID, SAMPLED, FLAGS, PARENT];

/// Which B3 headers are written (both forms are always read, single first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum B3Encoding {
    /// One `b3` header.
    #[default]
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multiple,
}

/// The B3 propagator.
#[derive(Debug, Clone, Copy, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// A propagator writing `encoding`.
    pub fn new(encoding: B3Encoding) -> Self {
        B3Propagator { encoding }
    }
}

/// Parses 16 or 32 lowercase-or-uppercase hex digits as a trace id (B3 allows 64-bit ids).
fn trace_id(s: &str) -> Option<TraceId> {
    if (s.len() != 16 && s.len() != 32) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u128::from_str_radix(s, 16).ok()?;
    (id != 0).then(|| TraceId::from(id))
}

fn span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u64::from_str_radix(s, 16).ok()?;
    (id != 0).then(|| SpanId::from(id))
}

/// `Some(true)` sampled or debug, `Some(false)` denied, `None` deferred; `Err` invalid.
fn sampling(s: &str) -> Result<Option<bool>, ()> {
    match s {
        "1" | "d" | "true" => Ok(Some(true)),
        "0" | "false" => Ok(Some(false)),
        _ => Err(()),
    }
}

fn context(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(trace, span, flags, true, TraceState::NONE)
}

fn extract_single(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    if value.len() > 128 {
        return None;
    }
    let mut parts = value.split('-');
    let (t, s) = (parts.next()?, parts.next()?);
    let sampled = match parts.next() {
        Some(x) => sampling(x).ok()?,
        None => None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(context(trace_id(t)?, span_id(s)?, sampled.unwrap_or(false)))
}

fn extract_multi(carrier: &dyn Carrier) -> Option<SpanContext> {
    let t = trace_id(carrier.get(TRACE_ID)?.trim())?;
    let s = span_id(carrier.get(SPAN_ID)?.trim())?;
    if let Some(p) = carrier.get(PARENT) {
        span_id(p.trim())?;
    }
    let debug = carrier.get(FLAGS).map(str::trim) == Some("1");
    let sampled = match carrier.get(SAMPLED) {
        Some(x) => sampling(x.trim()).ok()?.unwrap_or(false),
        None => false,
    };
    Some(context(t, s, sampled || debug))
}

impl Propagator for B3Propagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        let found = match carrier.get(B3) {
            Some(v) => extract_single(v),
            None => extract_multi(carrier),
        };
        match found {
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
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        match self.encoding {
            B3Encoding::Single => {
                carrier.set(B3, format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id()));
            }
            B3Encoding::Multiple => {
                carrier.set(TRACE_ID, sc.trace_id().to_string());
                carrier.set(SPAN_ID, sc.span_id().to_string());
                carrier.set(SAMPLED, sampled.to_owned());
            }
        }
    }

    fn fields(&self) -> Vec<String> {
        match self.encoding {
            B3Encoding::Single => vec![B3.to_owned()],
            B3Encoding::Multiple => {
                vec![TRACE_ID.to_owned(), SPAN_ID.to_owned(), SAMPLED.to_owned()]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn extracted(pairs: &[(&str, &str)]) -> SpanContext {
        B3Propagator::default()
            .extract(&map(pairs), &Context::new())
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn single_header_forms() {
        let sc = extracted(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]);
        assert_eq!(
            sc.trace_id().to_string(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(sc.span_id().to_string(), "e457b5a2e4d86bd1");
        assert!(sc.is_sampled() && sc.is_remote());
        let sc = extracted(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]);
        assert_eq!(
            sc.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(sc.is_sampled());
        assert!(!extracted(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1")]).is_sampled());
        for bad in [
            "0",
            "x-y",
            "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            "64fe8b2a57d3eff7-0000000000000000-1",
            "a-b-c-d-e",
            "",
        ] {
            assert!(!extracted(&[("b3", bad)]).is_valid(), "{bad}");
        }
    }

    #[test]
    fn multi_header_forms() {
        let sc = extracted(&[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
        ]);
        assert!(sc.is_valid() && sc.is_sampled());
        let sc = extracted(&[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-flags", "1"),
        ]);
        assert!(sc.is_sampled(), "debug implies sampled");
        assert!(!extracted(&[("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124")]).is_valid());
    }

    #[test]
    fn inject_both_encodings() {
        let sc = SpanContext::new(
            TraceId::from(0x463ac35c9f6413ad48485a3953bb6124),
            SpanId::from(0xa2fb4a1d1a96d312),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut out: HashMap<String, String> = HashMap::new();
        B3Propagator::new(B3Encoding::Single).inject(&cx, &mut out);
        assert_eq!(
            out["b3"],
            "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"
        );
        let mut out: HashMap<String, String> = HashMap::new();
        B3Propagator::new(B3Encoding::Multiple).inject(&cx, &mut out);
        assert_eq!(out["x-b3-spanid"], "a2fb4a1d1a96d312");
        assert_eq!(out["x-b3-sampled"], "1");
    }
}
