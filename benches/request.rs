//! One HTTP request through an axum `Router`, in process (no sockets):
//! the plain router against the same router with faultline's layer, in the
//! same criterion group, so that only their ratio is meaningful and the
//! network stack (which dominates a load test on loopback) is left out.
//!
//! * `request/plain`: `GET /users/{id}` (a `Path` extractor, a small body),
//!   headers as a browser behind a proxy sends them, with a `traceparent`.
//! * `request/faultline`: the same with `FaultlineLayer`: 100% sampling,
//!   no correlator, spans handed to an exporter that drops them (the export
//!   pipeline, masking included, runs on its own threads).
//! * `request/faultline+prometheus`: also the Prometheus correlator.
//! * `request/faultline-1%`: 1% sampling (no `traceparent`), error keeping
//!   on (the default): 99% of requests recorded, then discarded.
//!
//! Counting mode, for instruction counts under callgrind:
//!
//! ```text
//! FAULTLINE_BENCH_COUNT=N FAULTLINE_BENCH_WHICH=plain|faultline|prometheus|one-percent <bench binary>
//! ```
//!
//! runs N requests (flushing every 500 so that callgrind's one-thread-at-a-
//! time scheduling never fills the batch queue) and exits; two values of N
//! give instructions per request without the set-up (`scripts/bench-request`).

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use criterion::Criterion;
use faultline::Engine;
use faultline::axum::FaultlineLayer;
use faultline::config::TracingConfig;
use faultline::export::NoneExporter;
use http::Request;
use tower::ServiceExt;

async fn user(Path(id): Path<u32>) -> String {
    format!("{{\"id\":{id}}}")
}

fn router() -> Router {
    Router::new().route("/users/{id}", get(user))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Plain,
    Faultline,
    Prometheus,
    OnePercent,
}

impl Which {
    fn parse(s: &str) -> Which {
        match s {
            "plain" => Which::Plain,
            "faultline" => Which::Faultline,
            "prometheus" => Which::Prometheus,
            "one-percent" => Which::OnePercent,
            other => panic!("unknown FAULTLINE_BENCH_WHICH {other}"),
        }
    }
}

fn app(which: Which) -> (Router, Option<Engine>) {
    if which == Which::Plain {
        return (router(), None);
    }
    let mut config = TracingConfig::builder().service_name("bench").exporters([]);
    if which == Which::OnePercent {
        config = config.sample_rate(0.01);
    }
    let mut builder = Engine::builder(config.build().unwrap())
        .exporter(NoneExporter)
        .install_global(false);
    if which == Which::Prometheus {
        builder = builder.correlator(faultline::prometheus::Prometheus::new(
            faultline::prometheus::PrometheusConfig::default(),
        ));
    }
    let engine = builder.build().unwrap();
    (
        router().layer(FaultlineLayer::new(engine.clone())),
        Some(engine),
    )
}

fn request(with_parent: bool) -> Request<Body> {
    let mut b = Request::builder()
        .uri("/users/42?page=2")
        .header("host", "api.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, br")
        .header("x-forwarded-for", "203.0.113.7");
    if with_parent {
        b = b
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    }
    b.body(Body::empty()).unwrap()
}

async fn one(app: &Router, with_parent: bool) -> usize {
    let response = app.clone().oneshot(request(with_parent)).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    body.len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("request");
    group.measurement_time(Duration::from_secs(5));
    let mut engines = Vec::new();
    for (name, which) in [
        ("plain", Which::Plain),
        ("faultline", Which::Faultline),
        ("faultline+prometheus", Which::Prometheus),
        ("faultline-1%", Which::OnePercent),
    ] {
        let (app, engine) = app(which);
        let with_parent = which != Which::OnePercent;
        group.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(one(&app, with_parent))))
        });
        engines.extend(engine);
    }
    group.finish();
    for engine in engines {
        engine.shutdown();
    }
}

fn count_mode() -> bool {
    let (Ok(n), Ok(which)) = (
        std::env::var("FAULTLINE_BENCH_COUNT"),
        std::env::var("FAULTLINE_BENCH_WHICH"),
    ) else {
        return false;
    };
    let n: usize = n.parse().expect("a count");
    let which = Which::parse(&which);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, engine) = app(which);
    let with_parent = which != Which::OnePercent;
    for i in 0..n {
        black_box(rt.block_on(one(&app, with_parent)));
        if i % 500 == 499
            && let Some(e) = &engine
        {
            e.force_flush();
        }
    }
    if let Some(e) = engine {
        e.shutdown();
    }
    true
}

fn main() {
    if count_mode() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
