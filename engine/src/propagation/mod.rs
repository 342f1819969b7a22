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

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;

use crate::carrier::{AsExtractor, AsInjector, Carrier, CarrierMut};
use crate::config::PropagatorKind;

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

/// The built-in propagator of `kind`, `None` for a name that is not one of
/// the five standard ones.
fn builtin(kind: &PropagatorKind) -> Option<Arc<dyn Propagator>> {
    Some(match kind.as_str() {
        "tracecontext" => Arc::new(w3c::TraceContextPropagator::new()),
        "baggage" => Arc::new(baggage::BaggagePropagator::new()),
        "b3" => Arc::new(b3::B3Propagator::new(b3::B3Encoding::Single)),
        "b3multi" => Arc::new(b3::B3Propagator::new(b3::B3Encoding::Multiple)),
        "jaeger" => Arc::new(jaeger::JaegerPropagator::new()),
        _ => return None,
    })
}

/// The headers a built-in propagator reads. Both B3 encodings read the
/// single header first, then the multiple ones.
fn builtin_reads(kind: &PropagatorKind) -> &'static [&'static str] {
    match kind.as_str() {
        "tracecontext" => &[w3c::TRACEPARENT, w3c::TRACESTATE],
        "baggage" => &[baggage::BAGGAGE],
        "b3" | "b3multi" => &b3::READ,
        "jaeger" => &[jaeger::UBER_TRACE_ID],
        _ => &[],
    }
}

/// The names of the built-in propagators.
const BUILTIN: [PropagatorKind; 5] = [
    PropagatorKind::TRACE_CONTEXT,
    PropagatorKind::BAGGAGE,
    PropagatorKind::B3,
    PropagatorKind::B3_MULTI,
    PropagatorKind::JAEGER,
];

/// Every header the configured propagators read, `None` when unknown.
pub(crate) type ReadHeaders = Option<Vec<http::HeaderName>>;

/// A name that is neither built in nor registered, with every name known.
#[derive(Debug)]
pub(crate) struct Unregistered {
    pub(crate) kind: PropagatorKind,
    pub(crate) known: Vec<PropagatorKind>,
}

/// The propagators named by the configuration (`OTEL_PROPAGATORS`), in
/// order, each found among those `registered` (by the application, under a
/// name) or built in (a registration wins over the built-in of its name),
/// with every header they read (`None` when one of them is the
/// application's: it may read any header, and a request then is always
/// given to it).
///
/// Fails with the first name that is neither, and every name known.
pub(crate) fn resolve(
    kinds: &[PropagatorKind],
    registered: &BTreeMap<PropagatorKind, Arc<dyn Propagator>>,
) -> Result<(CompositePropagator, ReadHeaders), Unregistered> {
    let mut parts = Vec::with_capacity(kinds.len());
    let mut names: Option<Vec<&'static str>> = Some(Vec::new());
    for kind in kinds {
        if let Some(own) = registered.get(kind) {
            parts.push(own.clone());
            names = None;
        } else if let Some(builtin) = builtin(kind) {
            parts.push(builtin);
            if let Some(names) = &mut names {
                names.extend(builtin_reads(kind));
            }
        } else {
            let mut known: Vec<PropagatorKind> = BUILTIN.to_vec();
            known.extend(registered.keys().cloned());
            known.sort_unstable();
            known.dedup();
            return Err(Unregistered {
                kind: kind.clone(),
                known,
            });
        }
    }
    let read = names.map(|mut names| {
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(http::HeaderName::from_static)
            .collect()
    });
    Ok((CompositePropagator::new(parts), read))
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

    #[test]
    fn names_resolve_to_built_in_or_registered_propagators_in_order() {
        let none = BTreeMap::new();
        let (p, read) =
            resolve(&[PropagatorKind::B3, PropagatorKind::TRACE_CONTEXT], &none).expect("built in");
        assert_eq!(p.parts().len(), 2);
        assert_eq!(p.fields()[0], "b3");
        let read: Vec<String> = read
            .expect("built-in reads are known")
            .iter()
            .map(|h| h.to_string())
            .collect();
        assert!(
            read.contains(&"x-b3-traceid".to_owned()) && read.contains(&"traceparent".to_owned()),
            "{read:?}"
        );

        // A registration wins over the built-in of its name; an
        // application's propagator may read anything.
        let mut mine: BTreeMap<PropagatorKind, Arc<dyn Propagator>> = BTreeMap::new();
        mine.insert(
            PropagatorKind::B3,
            Arc::new(jaeger::JaegerPropagator::new()),
        );
        let (p, read) = resolve(&[PropagatorKind::B3], &mine).expect("registered");
        assert_eq!(p.fields(), ["uber-trace-id"]);
        assert!(read.is_none());

        let Unregistered { kind, known } = resolve(
            &[PropagatorKind::BAGGAGE, PropagatorKind::named("xray")],
            &mine,
        )
        .unwrap_err();
        assert_eq!(kind.as_str(), "xray");
        let known: Vec<&str> = known.iter().map(PropagatorKind::as_str).collect();
        assert_eq!(
            known,
            ["b3", "b3multi", "baggage", "jaeger", "tracecontext"]
        );
    }
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
