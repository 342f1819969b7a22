//! From a finished RPC (a gRPC call) to a Sentry event: the request event,
//! told in RPC terms.

use faultline_engine::correlate::{RequestError, RpcOutcome};
use sentry::protocol::{Context, Event, SpanStatus};

use crate::event::request_event;

/// The `origin` of the trace context of RPC events.
pub const ORIGIN_RPC: &str = "auto.rpc.faultline";

/// The tags of a request event that an RPC event does not have: the RPC's
/// method and status say it (`rpc.method`, `rpc.response.status_code`).
const HTTP_TAGS: [&str; 3] = [
    "http.route",
    "http.request.method",
    "http.response.status_code",
];

/// The Sentry span status of an RPC status code name (`OK`, `NOT_FOUND`,
/// ...): Sentry's span statuses are gRPC's codes, lowercase, with
/// `internal_error` and `unknown_error` for `INTERNAL` and `UNKNOWN`; a
/// name it does not know is `unknown_error`.
pub fn span_status_for_rpc(status_code: &str) -> SpanStatus {
    match status_code {
        "INTERNAL" => SpanStatus::InternalError,
        name => name
            .to_ascii_lowercase()
            .parse()
            .unwrap_or(SpanStatus::UnknownError),
    }
}

/// The event for an RPC that ended with `error`: as
/// [`request_event`], with the transaction the fully qualified method
/// (`helloworld.Greeter/SayHello`), the trace context's `op`
/// `SYSTEM.server` (`grpc.server`) and span status of the RPC's status code,
/// and tags `rpc.system.name`, `rpc.method`, `rpc.response.status_code`
/// instead of the `http.*` ones.
pub fn rpc_event(outcome: &RpcOutcome<'_>, error: &RequestError<'_>) -> Event<'static> {
    let mut event = request_event(&outcome.request, error);
    let transaction = outcome.method.to_owned();
    for tag in HTTP_TAGS {
        event.tags.remove(tag);
    }
    for (tag, value) in [
        ("rpc.system.name", outcome.system),
        ("rpc.method", outcome.method),
        ("rpc.response.status_code", outcome.status_code),
    ] {
        event.tags.insert(tag.to_owned(), value.to_owned());
    }
    // An RPC has no HTTP response or request method to show.
    event.contexts.remove("response");
    event.request = None;
    if let Some(Context::Trace(trace)) = event.contexts.get_mut("trace") {
        // `grpc.server`, as Sentry's SDKs name a gRPC server's operation.
        trace.op = Some(format!("{}.server", outcome.system));
        trace.status = Some(span_status_for_rpc(outcome.status_code));
        trace.description = Some(transaction.clone());
        trace.origin = Some(ORIGIN_RPC.to_owned());
    }
    // The fingerprint's third part is the transaction.
    if let Some(part) = event.fingerprint.to_mut().get_mut(2) {
        *part = transaction.clone().into();
    }
    event.transaction = Some(transaction);
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::correlate::RequestOutcome;
    use faultline_engine::opentelemetry::trace::{SpanId, TraceId};
    use std::time::Duration;

    fn outcome<'a>(error: &RequestError<'a>, status_code: &'a str, http: u16) -> RpcOutcome<'a> {
        let mut request = RequestOutcome::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            true,
            "POST",
            "helloworld.Greeter/SayHello",
            http,
            Duration::from_millis(3),
        );
        request.parent_span_id = Some(SpanId::from_hex("53995c3f42cd8ad8").unwrap());
        request.error = Some(error.clone());
        RpcOutcome::new(request, "grpc", "helloworld.Greeter/SayHello", status_code)
    }

    #[test]
    fn an_rpc_event_names_the_method_status_and_trace_in_rpc_terms() {
        let err = crate::event::tests::panic_error();
        let o = outcome(&err, "INTERNAL", 500);
        let v = serde_json::to_value(rpc_event(&o, &err)).unwrap();
        assert_eq!(v["transaction"], "helloworld.Greeter/SayHello");
        let trace = &v["contexts"]["trace"];
        assert_eq!(trace["op"], "grpc.server");
        assert_eq!(trace["status"], "internal_error");
        assert_eq!(trace["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace["span_id"], "00f067aa0ba902b7");
        assert_eq!(trace["parent_span_id"], "53995c3f42cd8ad8");
        assert_eq!(trace["origin"], ORIGIN_RPC);
        assert_eq!(v["tags"]["rpc.system.name"], "grpc");
        assert_eq!(v["tags"]["rpc.method"], "helloworld.Greeter/SayHello");
        assert_eq!(v["tags"]["rpc.response.status_code"], "INTERNAL");
        assert_eq!(v["tags"]["error.code"], "5000");
        for tag in HTTP_TAGS {
            assert!(v["tags"].get(tag).is_none(), "{tag} in {v:#}");
        }
        assert!(v["contexts"].get("response").is_none());
        assert!(v.get("request").is_none(), "{v:#}");
        assert_eq!(
            v["fingerprint"],
            serde_json::json!(["faultline", "panic", "helloworld.Greeter/SayHello", "boom"])
        );
    }

    #[test]
    fn rpc_status_codes_are_sentry_span_statuses() {
        for (code, status) in [
            ("OK", "ok"),
            ("NOT_FOUND", "not_found"),
            ("INTERNAL", "internal_error"),
            ("UNKNOWN", "unknown_error"),
            ("DATA_LOSS", "data_loss"),
            ("DEADLINE_EXCEEDED", "deadline_exceeded"),
            ("whatever", "unknown_error"),
        ] {
            assert_eq!(span_status_for_rpc(code).to_string(), status, "{code}");
        }
    }
}
