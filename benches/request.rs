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
//!
//! Allocation mode, `FAULTLINE_BENCH_ALLOCS=N <bench binary>`: for each
//! side, 1,000 requests of warm-up, then N requests (flushing every 500, as
//! above) with a counting allocator on; prints heap allocations per request
//! on the request thread and in the whole process (the batch and export
//! threads included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The system allocator, counting allocations (`alloc`, `alloc_zeroed` and
/// `realloc`) while `COUNTING` is on: in the process and on each thread.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn counted() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call goes to `System` unchanged; the counters allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

async fn user(Path(id): Path<u32>) -> String {
    format!("{{\"id\":{id}}}")
}

/// The router as `axum::serve` runs it: `into_make_service` calls
/// `with_state`, which turns each handler into its route once; a `Router`
/// called without it builds the route (and any layer on it) per request.
fn router() -> Router {
    Router::new().route("/users/{id}", get(user)).with_state(())
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

fn alloc_mode() -> bool {
    let Ok(n) = std::env::var("FAULTLINE_BENCH_ALLOCS") else {
        return false;
    };
    let n: u64 = n.parse().expect("a count");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<14} {:>16} {:>16}",
        "request", "allocs/request", "  (all threads)"
    );
    for (name, which) in [
        ("plain", Which::Plain),
        ("faultline", Which::Faultline),
        ("prometheus", Which::Prometheus),
        ("one-percent", Which::OnePercent),
    ] {
        let (app, engine) = app(which);
        let with_parent = which != Which::OnePercent;
        let run = |count: u64, app: &Router| {
            for i in 0..count {
                black_box(rt.block_on(one(app, with_parent)));
                if i % 500 == 499
                    && let Some(e) = &engine
                {
                    e.force_flush();
                }
            }
        };
        run(1000, &app);
        if let Some(e) = &engine {
            e.force_flush();
        }
        let thread_before = THREAD_ALLOCATIONS.with(Cell::get);
        let all_before = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        run(n, &app);
        if let Some(e) = &engine {
            e.force_flush();
        }
        COUNTING.store(false, Ordering::Relaxed);
        let thread = THREAD_ALLOCATIONS.with(Cell::get) - thread_before;
        let all = ALLOCATIONS.load(Ordering::Relaxed) - all_before;
        println!(
            "{name:<14} {:>16.1} {:>16.1}",
            thread as f64 / n as f64,
            all as f64 / n as f64
        );
        if let Some(e) = engine {
            e.shutdown();
        }
    }
    true
}

fn main() {
    if count_mode() || alloc_mode() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
