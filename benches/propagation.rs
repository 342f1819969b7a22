//! W3C Trace Context: faultline's propagator against the OpenTelemetry SDK's,
//! on the same headers, in the same run.
//!
//! `cargo bench --bench propagation` (numbers in docs/BENCHMARKS.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use faultline::propagation::Propagator;
use faultline::propagation::w3c::{self, TraceContextPropagator};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry_http::HeaderExtractor;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// The SDK writes an `http::HeaderMap` through this (the SDK's side of the
/// inject comparison; it reads one through opentelemetry-http's
/// `HeaderExtractor`).
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

fn headers(with_state: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    if with_state {
        h.insert("tracestate", HeaderValue::from_static(TRACESTATE));
    }
    h.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    h
}

fn bench(c: &mut Criterion) {
    let ours = TraceContextPropagator::new();
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();

    for (label, with_state) in [("traceparent+tracestate", true), ("traceparent", false)] {
        let incoming = headers(with_state);
        // Parsing alone: the headers read and validated into typed values
        // (what extract does before it builds OpenTelemetry's Context).
        let mut group = c.benchmark_group(format!("parse/{label}"));
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("faultline", |b| {
            b.iter(|| black_box(w3c::parse_headers(black_box(&incoming))))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("extract/{label}"));
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("faultline", |b| {
            b.iter(|| black_box(ours.extract(black_box(&incoming), &Context::new())))
        });
        group.bench_function("sdk", |b| {
            b.iter(|| {
                black_box(
                    sdk.extract_with_context(
                        &Context::new(),
                        &HeaderExtractor(black_box(&incoming)),
                    ),
                )
            })
        });
        group.finish();

        let cx_ours = ours.extract(&incoming, &Context::new());
        let cx_sdk = sdk.extract_with_context(&Context::new(), &HeaderExtractor(&incoming));
        let mut out = HeaderMap::with_capacity(4);
        let mut group = c.benchmark_group(format!("inject/{label}"));
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("faultline", |b| {
            b.iter(|| {
                out.clear();
                ours.inject(black_box(&cx_ours), &mut out);
                black_box(&out);
            })
        });
        group.bench_function("sdk", |b| {
            b.iter(|| {
                out.clear();
                sdk.inject_context(black_box(&cx_sdk), &mut HeaderInjector(&mut out));
                black_box(&out);
            })
        });
        // The floor under any inject into an `http::HeaderMap`: clearing it
        // and inserting the same headers, values already made (no
        // formatting, no allocation), names made once.
        let (names, values) = floor_headers();
        let n = if with_state { 2 } else { 1 };
        group.bench_function("headermap-only", |b| {
            b.iter(|| {
                out.clear();
                for i in 0..n {
                    // Through black_box, so that the names are hashed at
                    // run time, as an inject's are.
                    out.insert(black_box(&names[i]).clone(), black_box(&values[i]).clone());
                }
                black_box(&out);
            })
        });
        // The same with the traceparent value made per inject, as an inject
        // must: one allocation and copy of 55 bytes.
        group.bench_function("headermap+value", |b| {
            b.iter(|| {
                out.clear();
                let made = HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(
                    black_box(TRACEPARENT).as_bytes(),
                ))
                .unwrap();
                out.insert(black_box(&names[0]).clone(), made);
                for i in 1..n {
                    out.insert(black_box(&names[i]).clone(), black_box(&values[i]).clone());
                }
                black_box(&out);
            })
        });
        group.finish();
    }
}

/// The names and values the floor lines insert (`headermap-only`,
/// `headermap+value`, and their counting modes).
fn floor_headers() -> ([HeaderName; 2], [HeaderValue; 2]) {
    (
        [
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ],
        [
            HeaderValue::from_static(TRACEPARENT),
            HeaderValue::from_static(TRACESTATE),
        ],
    )
}

criterion_group!(benches, bench);

/// `FAULTLINE_BENCH_COUNT=N FAULTLINE_BENCH_WHICH=<extract|inject>-<faultline|sdk>`:
/// runs N operations on the traceparent+tracestate pair and exits, for
/// instruction counts under callgrind (`scripts/bench-propagation`).
fn count_mode() -> bool {
    let (Ok(n), Ok(which)) = (
        std::env::var("FAULTLINE_BENCH_COUNT"),
        std::env::var("FAULTLINE_BENCH_WHICH"),
    ) else {
        return false;
    };
    let n: usize = n.parse().expect("a count");
    let ours = TraceContextPropagator::new();
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let incoming = headers(true);
    let cx_ours = ours.extract(&incoming, &Context::new());
    let cx_sdk = sdk.extract_with_context(&Context::new(), &HeaderExtractor(&incoming));
    let mut out = HeaderMap::with_capacity(4);
    let (names, values) = floor_headers();
    for _ in 0..n {
        match which.as_str() {
            "parse-faultline" => {
                black_box(w3c::parse_headers(black_box(&incoming)));
            }
            "extract-faultline" => {
                black_box(ours.extract(black_box(&incoming), &Context::new()));
            }
            "extract-sdk" => {
                black_box(
                    sdk.extract_with_context(
                        &Context::new(),
                        &HeaderExtractor(black_box(&incoming)),
                    ),
                );
            }
            "inject-faultline" => {
                out.clear();
                ours.inject(black_box(&cx_ours), &mut out);
            }
            "inject-sdk" => {
                out.clear();
                sdk.inject_context(black_box(&cx_sdk), &mut HeaderInjector(&mut out));
            }
            "inject-headermap" | "inject-headermap-value" => {
                out.clear();
                let first = if which == "inject-headermap" {
                    black_box(&values[0]).clone()
                } else {
                    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(
                        black_box(TRACEPARENT).as_bytes(),
                    ))
                    .unwrap()
                };
                out.insert(black_box(&names[0]).clone(), first);
                out.insert(black_box(&names[1]).clone(), black_box(&values[1]).clone());
            }
            other => panic!("unknown FAULTLINE_BENCH_WHICH {other}"),
        }
    }
    black_box(&out);
    true
}

fn main() {
    if count_mode() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
