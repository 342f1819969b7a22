//! `rpc_server_call_duration_seconds`: the latency of RPCs (gRPC calls), by
//! the RPC semantic conventions (`rpc.server.call.duration`), with the same
//! buckets and exemplars as the HTTP histogram. Their errors count in
//! `faultline_errors_total` as a request's do, with the method as the route.

use std::sync::Arc;

use faultline_engine::correlate::RpcOutcome;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::labels::{OTHER_METHOD, TraceExemplar, label};
use crate::{Buckets, Prometheus};

/// The RPC latency histogram's name (OpenTelemetry's `rpc.server.call.duration`).
pub const RPC_DURATION: &str = "rpc_server_call_duration_seconds";

/// The status code names of gRPC, the only RPC system with an adapter; any
/// other value is written `_OTHER` (labels stay bounded).
const STATUS_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Labels of the RPC histogram (`rpc.system.name`, `rpc.method`,
/// `rpc.response.status_code` in their Prometheus spelling).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RpcLabels {
    system: &'static str,
    method: Arc<str>,
    status_code: &'static str,
}

impl EncodeLabelSet for RpcLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "rpc_system_name", &self.system)?;
        label(encoder, "rpc_method", &&*self.method)?;
        label(encoder, "rpc_response_status_code", &self.status_code)
    }
}

pub(crate) type RpcDurationFamily =
    Family<RpcLabels, HistogramWithExemplars<TraceExemplar>, Buckets>;

pub(crate) fn register(registry: &mut Registry, family: &RpcDurationFamily) {
    registry.register(
        RPC_DURATION,
        "Duration of RPC server calls, in seconds (OpenTelemetry rpc.server.call.duration); exemplars carry trace_id and span_id",
        family.clone(),
    );
}

/// Records a finished RPC: its duration, and its error as a request's.
pub(crate) fn observe(prometheus: &Prometheus, outcome: &RpcOutcome<'_>) {
    let inner = &*prometheus.inner;
    let request = &outcome.request;
    let (exemplar, now) = prometheus.exemplar(request);
    let labels = RpcLabels {
        system: if outcome.system == "grpc" {
            "grpc"
        } else {
            OTHER_METHOD
        },
        // Methods share the route bound (`MAX_ROUTES`, then `other`).
        method: inner.routes.intern(outcome.method),
        status_code: STATUS_CODES
            .iter()
            .find(|c| **c == outcome.status_code)
            .copied()
            .unwrap_or(OTHER_METHOD),
    };
    inner.rpc_durations.get_or_create(&labels).observe(
        request.duration.as_secs_f64(),
        exemplar.clone(),
        now,
    );
    prometheus.count_error(request, exemplar, now);
}
