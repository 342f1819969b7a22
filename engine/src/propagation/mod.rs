//! Reading and writing trace context across service boundaries.
//!
//! The engine extracts the incoming context of every request with its
//! [`Propagator`] and injects the current context into outgoing requests.
//! The default is W3C Trace Context ([`w3c::TraceContextPropagator`]) then
//! W3C Baggage ([`baggage::BaggagePropagator`]); B3 ([`b3::B3Propagator`])
//! and Jaeger ([`jaeger::JaegerPropagator`]) serve fleets that use those.
//! [`CompositePropagator`] runs several in order; [`OtelPropagator`] adapts
//! any OpenTelemetry `TextMapPropagator` (X-Ray, OT, ...).

pub mod b3;
pub mod baggage;
pub mod jaeger;
pub mod w3c;

use std::fmt::Debug;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;

use crate::carrier::{AsExtractor, AsInjector, Carrier, CarrierMut};

/// Extracts and injects trace context (and baggage) through a [`Carrier`].
///
/// An implementation must guarantee:
/// * `extract` never panics and never fails: input it cannot read strictly
///   (malformed, oversized, repeated where the format forbids it) is
///   ignored, and the returned context is then `cx` unchanged for the parts
///   this propagator owns, so that a new trace starts rather than a bogus one
///   being continued;
/// * `inject` writes only the headers named by `fields`, and writes nothing
///   for a context without a valid span (or without baggage, for a baggage
///   propagator);
/// * both are cheap: they run on every request.
pub trait Propagator: Send + Sync + Debug {
    /// Returns `cx` extended with what `carrier` holds.
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context;

    /// Writes the parts of `cx` this propagator owns into `carrier`.
    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut);

    /// The header names this propagator reads and writes.
    fn fields(&self) -> Vec<String>;
}

/// Shared propagators work too (the caller keeps a handle).
impl<T: Propagator + ?Sized> Propagator for Arc<T> {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        (**self).extract(carrier, cx)
    }
    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        (**self).inject(cx, carrier)
    }
    fn fields(&self) -> Vec<String> {
        (**self).fields()
    }
}

/// Runs several propagators: extraction in order (a later one sees what the
/// earlier ones found), injection by all.
#[derive(Debug, Clone, Default)]
pub struct CompositePropagator {
    parts: Vec<Arc<dyn Propagator>>,
}

impl CompositePropagator {
    /// A composite of `parts`, run in the given order.
    pub fn new(parts: Vec<Arc<dyn Propagator>>) -> Self {
        CompositePropagator { parts }
    }

    /// The propagators, in order.
    pub fn parts(&self) -> &[Arc<dyn Propagator>] {
        &self.parts
    }
}

impl Propagator for CompositePropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        let mut out = cx.clone();
        for part in &self.parts {
            out = part.extract(carrier, &out);
        }
        out
    }

    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        for part in &self.parts {
            part.inject(cx, carrier);
        }
    }

    fn fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.parts.iter().flat_map(|p| p.fields()).collect();
        fields.dedup();
        fields
    }
}

/// Adapts an OpenTelemetry `TextMapPropagator` to faultline's [`Propagator`].
#[derive(Debug, Clone)]
pub struct OtelPropagator<P>(pub P);

impl<P> Propagator for OtelPropagator<P>
where
    P: TextMapPropagator + Send + Sync + Debug,
{
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        self.0.extract_with_context(cx, &AsExtractor(carrier))
    }

    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        self.0.inject_context(cx, &mut AsInjector(carrier));
    }

    fn fields(&self) -> Vec<String> {
        self.0.fields().map(str::to_owned).collect()
    }
}

/// The propagators named by the configuration (`OTEL_PROPAGATORS`), in order.
pub fn from_config(kinds: &[crate::config::PropagatorKind]) -> CompositePropagator {
    use crate::config::PropagatorKind as K;
    CompositePropagator::new(
        kinds
            .iter()
            .map(|k| -> Arc<dyn Propagator> {
                match k {
                    K::TraceContext => Arc::new(w3c::TraceContextPropagator::new()),
                    K::Baggage => Arc::new(baggage::BaggagePropagator::new()),
                    K::B3 => Arc::new(b3::B3Propagator::new(b3::B3Encoding::Single)),
                    K::B3Multi => Arc::new(b3::B3Propagator::new(b3::B3Encoding::Multiple)),
                    K::Jaeger => Arc::new(jaeger::JaegerPropagator::new()),
                }
            })
            .collect(),
    )
}

/// Every header the configuration's propagators read (a request holding
/// none of them has no context to extract). Both B3 encodings read the
/// single header first, then the multiple ones.
pub(crate) fn read_headers(kinds: &[crate::config::PropagatorKind]) -> Vec<http::HeaderName> {
    use crate::config::PropagatorKind as K;
    let mut names: Vec<&'static str> = Vec::new();
    for kind in kinds {
        match kind {
            K::TraceContext => names.extend([w3c::TRACEPARENT, w3c::TRACESTATE]),
            K::Baggage => names.push(baggage::BAGGAGE),
            K::B3 | K::B3Multi => names.extend(b3::READ),
            K::Jaeger => names.push(jaeger::UBER_TRACE_ID),
        }
    }
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(http::HeaderName::from_static)
        .collect()
}

/// The propagator an engine uses when none is registered: W3C Trace Context
/// (`traceparent`, `tracestate`) followed by W3C Baggage.
pub fn default_propagator() -> CompositePropagator {
    CompositePropagator::new(vec![
        Arc::new(w3c::TraceContextPropagator::new()),
        Arc::new(baggage::BaggagePropagator::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;
    use std::collections::HashMap;

    #[test]
    fn default_propagator_round_trips_traceparent_and_baggage() {
        let mut incoming: HashMap<String, String> = HashMap::new();
        incoming.insert(
            "traceparent".into(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        incoming.insert("baggage".into(), "tenant=acme".into());
        let p = default_propagator();
        let cx = p.extract(&incoming, &Context::new());
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            format!("{:032x}", sc.trace_id()),
            "0af7651916cd43dd8448eb211c80319c"
        );

        let mut out: HashMap<String, String> = HashMap::new();
        p.inject(&cx, &mut out);
        assert_eq!(
            out.get("traceparent").map(String::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(out.get("baggage").map(String::as_str), Some("tenant=acme"));
        assert!(p.fields().contains(&"traceparent".to_owned()));
    }

    #[test]
    fn otel_propagator_adapter_works() {
        let mut incoming: HashMap<String, String> = HashMap::new();
        incoming.insert(
            "traceparent".into(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        let p = OtelPropagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let cx = p.extract(&incoming, &Context::new());
        assert!(cx.span().span_context().is_valid());
        let mut out: HashMap<String, String> = HashMap::new();
        p.inject(&cx, &mut out);
        assert_eq!(out["traceparent"], incoming["traceparent"]);
        assert_eq!(p.fields(), ["traceparent", "tracestate"]);
    }

    #[test]
    fn malformed_traceparent_leaves_context_empty() {
        let mut incoming: HashMap<String, String> = HashMap::new();
        incoming.insert("traceparent".into(), "00-zz-b7ad6b7169203331-01".into());
        let cx = default_propagator().extract(&incoming, &Context::new());
        assert!(!cx.span().span_context().is_valid());
    }
}
