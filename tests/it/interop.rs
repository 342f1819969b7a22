//! Propagation against an independent OpenTelemetry SDK (Python's official
//! `opentelemetry-sdk`): what one writes, the other reads, both ways.

use std::collections::HashMap;

use faultline::propagation::baggage::{Baggage, baggage, with_baggage};
use faultline::propagation::{Propagator, default_propagator};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::{Value, json};

use crate::peers::run_python;

/// A small deterministic generator, so that a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Case {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
    tracestate: String,
    baggage: Vec<(String, String)>,
}

fn cases(n: usize) -> Vec<Case> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let values = [
        "plain",
        "with space",
        "comma,semi;",
        "percent%20",
        "ünïcødé ✓",
        "a=b",
        "quote\"s",
    ];
    (0..n)
        .map(|i| {
            let trace = (u128::from(rng.next()) << 64 | u128::from(rng.next())).max(1);
            let span = rng.next().max(1);
            let members = (rng.next() % 4) as usize;
            let tracestate = (0..members)
                .map(|m| format!("v{m}{}=x{:x}", i % 7, rng.next() % 100_000))
                .collect::<Vec<_>>()
                .join(",");
            let baggage = (0..(rng.next() % 3) as usize)
                .map(|b| {
                    (
                        format!("key{b}"),
                        values[(rng.next() % values.len() as u64) as usize].to_owned(),
                    )
                })
                .collect();
            Case {
                trace_id: TraceId::from(trace),
                span_id: SpanId::from(span),
                sampled: rng.next().is_multiple_of(2),
                tracestate,
                baggage,
            }
        })
        .collect()
}

fn context_of(case: &Case) -> Context {
    let state = if case.tracestate.is_empty() {
        TraceState::NONE
    } else {
        case.tracestate.parse().unwrap()
    };
    let flags = if case.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(case.trace_id, case.span_id, flags, false, state);
    let mut b = Baggage::new();
    for (k, v) in &case.baggage {
        assert!(b.insert(k, v));
    }
    let cx = Context::new().with_remote_span_context(sc);
    if b.is_empty() {
        cx
    } else {
        with_baggage(&cx, b)
    }
}

#[test]
fn faultline_and_the_python_sdk_read_each_other() {
    let cases = cases(200);
    let p = default_propagator();

    // faultline writes, Python reads.
    let written: Vec<HashMap<String, String>> = cases
        .iter()
        .map(|c| {
            let mut out: HashMap<String, String> = HashMap::new();
            p.inject(&context_of(c), &mut out);
            out
        })
        .collect();
    // Python writes, faultline reads.
    let specs: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "trace_id": c.trace_id.to_string(),
                "span_id": c.span_id.to_string(),
                "sampled": c.sampled,
                "tracestate": c.tracestate,
                "baggage": c.baggage.iter().cloned().collect::<HashMap<_, _>>(),
            })
        })
        .collect();
    let reply = run_python(
        "otel_python_propagation.py",
        &json!({ "extract": written, "inject": specs }),
    );

    for (i, case) in cases.iter().enumerate() {
        let theirs = &reply["extracted"][i];
        assert_eq!(theirs["valid"], true, "case {i}: {:?}", written[i]);
        assert_eq!(theirs["trace_id"], case.trace_id.to_string(), "case {i}");
        assert_eq!(theirs["span_id"], case.span_id.to_string(), "case {i}");
        assert_eq!(theirs["sampled"], case.sampled, "case {i}");
        assert_eq!(theirs["tracestate"], case.tracestate, "case {i}");
        for (k, v) in &case.baggage {
            assert_eq!(
                theirs["baggage"][k],
                v.as_str(),
                "case {i} baggage {k}: {}",
                written[i]["baggage"]
            );
        }

        let headers: HashMap<String, String> =
            serde_json::from_value(reply["injected"][i].clone()).unwrap();
        let cx = p.extract(&headers, &Context::new());
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote(), "case {i}: {headers:?}");
        assert_eq!(sc.trace_id(), case.trace_id, "case {i}");
        assert_eq!(sc.span_id(), case.span_id, "case {i}");
        assert_eq!(sc.is_sampled(), case.sampled, "case {i}");
        assert_eq!(
            faultline::propagation::w3c::tracestate_header(&cx).unwrap_or(""),
            case.tracestate,
            "case {i}"
        );
        for (k, v) in &case.baggage {
            // Python's SDK encodes a space as '+' (form encoding); W3C Baggage
            // percent-encodes, and a literal '+' is a plus sign. faultline
            // follows the specification, so a space sent by Python arrives as '+'.
            let expected = v.replace(' ', "+");
            assert_eq!(
                baggage(&cx).and_then(|b| b.get(k)),
                Some(expected.as_str()),
                "case {i}: {headers:?}"
            );
        }
    }
}

#[test]
fn faultline_and_the_python_sdk_agree_on_invalid_traceparents() {
    let tid = "12345678901234567890123456789012";
    let inputs = [
        format!("00-{tid}-1234567890123456-01"),
        format!("00-{}-1234567890123456-01", "0".repeat(32)),
        format!("00-{tid}-0000000000000000-01"),
        format!("ff-{tid}-1234567890123456-01"),
        format!(
            "00-{}-1234567890123456-01",
            tid.to_uppercase().replace('1', "A")
        ),
        format!("00-{tid}-1234567890123456-01-extra"),
        format!("cc-{tid}-1234567890123456-01-extra"),
        format!("00-{tid}-123456789012345-01"),
        format!("00-{tid}1-1234567890123456-01"),
        format!("00-{tid}-1234567890123456-0x"),
        "garbage".to_owned(),
        String::new(),
    ];
    let headers: Vec<HashMap<String, String>> = inputs
        .iter()
        .map(|tp| {
            [("traceparent".to_owned(), tp.clone())]
                .into_iter()
                .collect()
        })
        .collect();
    let reply = run_python("otel_python_propagation.py", &json!({ "extract": headers }));
    let p = default_propagator();
    for (i, h) in headers.iter().enumerate() {
        let ours = p
            .extract(h, &Context::new())
            .span()
            .span_context()
            .is_valid();
        assert_eq!(
            Value::Bool(ours),
            reply["extracted"][i]["valid"],
            "faultline and the Python SDK disagree on {:?}",
            inputs[i]
        );
    }
}
