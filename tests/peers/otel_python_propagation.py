"""Peer for faultline's propagation interop test: the OpenTelemetry Python SDK.

Reads one JSON document on stdin:
  {"extract": [{header: value, ...}, ...],
   "inject":  [{"trace_id", "span_id", "sampled", "tracestate", "baggage": {k: v}}, ...]}
and writes one on stdout:
  {"extracted": [{"valid", "trace_id", "span_id", "sampled", "tracestate", "baggage"}, ...],
   "injected":  [{header: value, ...}, ...]}
using only the official propagators (W3C Trace Context and W3C Baggage).
"""

import json
import sys

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def extract(headers):
    ctx = PROPAGATOR.extract(carrier=headers)
    sc = trace.get_current_span(ctx).get_span_context()
    return {
        "valid": sc.is_valid,
        "trace_id": format(sc.trace_id, "032x"),
        "span_id": format(sc.span_id, "016x"),
        "sampled": bool(sc.trace_flags & TraceFlags.SAMPLED),
        "tracestate": sc.trace_state.to_header() if sc.trace_state else "",
        "baggage": {k: str(v) for k, v in baggage.get_all(ctx).items()},
    }


def inject(spec):
    state = TraceState.from_header([spec["tracestate"]]) if spec.get("tracestate") else TraceState()
    sc = SpanContext(
        trace_id=int(spec["trace_id"], 16),
        span_id=int(spec["span_id"], 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if spec["sampled"] else TraceFlags.DEFAULT),
        trace_state=state,
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(sc))
    for key, value in spec.get("baggage", {}).items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    carrier = {}
    PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def main():
    request = json.load(sys.stdin)
    json.dump(
        {
            "extracted": [extract(h) for h in request.get("extract", [])],
            "injected": [inject(s) for s in request.get("inject", [])],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
