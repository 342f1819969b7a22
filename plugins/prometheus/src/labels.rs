//! Label sets of faultline's own series, built on the request path without
//! allocating: methods are static strings, routes are interned once.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use opentelemetry::trace::{SpanId, TraceId};
use prometheus_client::encoding::{
    EncodeLabelKey, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

/// The `http_route` value of requests no route matched (never the raw path:
/// that would make a series per URL).
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The `http_route` value once [`MAX_ROUTES`] distinct routes were seen.
pub const OTHER_ROUTE: &str = "other";
/// Most distinct route templates given their own series.
pub const MAX_ROUTES: usize = 1024;
/// The `http_request_method` value of a method outside the standard set
/// (as the OpenTelemetry semantic conventions say).
pub const OTHER_METHOD: &str = "_OTHER";

/// Writes one `key="value"` label.
pub(crate) fn label(
    encoder: &mut LabelSetEncoder,
    key: &str,
    value: &dyn EncodeLabelValue,
) -> Result<(), std::fmt::Error> {
    let mut label = encoder.encode_label();
    let mut key_encoder = label.encode_label_key()?;
    EncodeLabelKey::encode(&key, &mut key_encoder)?;
    let mut value_encoder = key_encoder.encode_label_value()?;
    value.encode(&mut value_encoder)?;
    value_encoder.finish()
}

/// A trace id as 32 lowercase hex digits, written at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TraceHex(pub TraceId);

impl EncodeLabelValue for TraceHex {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{}", self.0)
    }
}

/// A span id as 16 lowercase hex digits, written at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SpanHex(pub SpanId);

impl EncodeLabelValue for SpanHex {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{}", self.0)
    }
}

/// The exemplar of a sample: the request's trace and server span.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TraceExemplar {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl EncodeLabelSet for TraceExemplar {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "trace_id", &TraceHex(self.trace_id))?;
        label(encoder, "span_id", &SpanHex(self.span_id))
    }
}

/// Labels of the latency histogram (OpenTelemetry HTTP semantic conventions,
/// in their Prometheus spelling).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestLabels {
    pub method: &'static str,
    pub route: Arc<str>,
    pub status: u16,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "http_request_method", &self.method)?;
        label(encoder, "http_route", &&*self.route)?;
        label(encoder, "http_response_status_code", &self.status)
    }
}

/// Labels of the error counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ErrorLabels {
    pub code: u32,
    pub name: &'static str,
    pub route: Arc<str>,
}

impl EncodeLabelSet for ErrorLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "error_code", &self.code)?;
        label(encoder, "error_name", &self.name)?;
        label(encoder, "http_route", &&*self.route)
    }
}

/// The standard method names as static strings (anything else is
/// [`OTHER_METHOD`]).
pub(crate) fn method(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER_METHOD)
}

/// Route templates, each allocated once.
#[derive(Debug)]
pub(crate) struct Routes {
    known: RwLock<HashSet<Arc<str>>>,
    unmatched: Arc<str>,
    other: Arc<str>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            known: RwLock::new(HashSet::new()),
            unmatched: Arc::from(UNMATCHED_ROUTE),
            other: Arc::from(OTHER_ROUTE),
        }
    }

    /// The shared string for `route` (`unmatched` when empty, `other` past
    /// [`MAX_ROUTES`] distinct ones).
    pub(crate) fn intern(&self, route: &str) -> Arc<str> {
        if route.is_empty() {
            return self.unmatched.clone();
        }
        {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = known.get(route) {
                return r.clone();
            }
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = known.get(route) {
            return r.clone();
        }
        if known.len() >= MAX_ROUTES {
            return self.other.clone();
        }
        let r: Arc<str> = Arc::from(route);
        known.insert(r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_interned_and_bounded() {
        let routes = Routes::new();
        let a = routes.intern("/users/{id}");
        let b = routes.intern("/users/{id}");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*routes.intern(""), "unmatched");
        for n in 0..MAX_ROUTES {
            routes.intern(&format!("/r{n}"));
        }
        assert_eq!(&*routes.intern("/one-too-many"), "other");
        assert_eq!(&*routes.intern("/users/{id}"), "/users/{id}");
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method("GET"), "GET");
        assert_eq!(method("PATCH"), "PATCH");
        assert_eq!(method("get"), "_OTHER");
        assert_eq!(method("PROPFIND"), "_OTHER");
    }
}
