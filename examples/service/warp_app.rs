//! The reference service on warp.
//!
//! warp has no route templates: each route declares its own with
//! `faultline::warp::route`, after its path filters, so that spans are named
//! `GET /users/{id}` as on the other frameworks.
//!
//! Nothing in warp catches a handler's panic: with tracing, faultline's
//! service does (and records it on the span); without, each handler runs in
//! [`guarded`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use faultline::error::PROBLEM_JSON;
use faultline::warp::{Error, route};
use futures_util::FutureExt as _;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::{App, Checkout, HarnessCall};

/// GET, and HEAD answered as GET (as on the other frameworks).
fn get() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// Runs a handler. With `catch` (no traced service around it:
/// `--no-tracing`), a panic in it is answered as the traced service answers
/// one; with tracing, the traced service catches it.
async fn guarded<R: Reply>(catch: bool, handler: impl Future<Output = R>) -> Response {
    if !catch {
        return handler.await.into_response();
    }
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(reply) => reply.into_response(),
        Err(_panic) => {
            let problem = crate::panic_problem();
            let mut response = Response::new(problem.to_json().into());
            *response.status_mut() = problem.status_code();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
            response
        }
    }
}

async fn user(id: String, app: Arc<App>) -> Result<impl Reply, Error> {
    let user = app.user(&id)?;
    Ok(warp::reply::json(&user))
}

fn checkout(app: Arc<App>, body: Checkout) -> Error {
    app.checkout(&body).into()
}

fn panic(app: Arc<App>) -> &'static str {
    app.panic()
}

async fn downstream(app: Arc<App>) -> impl Reply {
    warp::reply::json(&app.downstream().await)
}

async fn harness(app: Arc<App>, calls: Vec<HarnessCall>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Serves the routes until `shutdown` resolves, then until the requests in
/// flight have finished.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine = app.engine.clone();
    let catch = engine.is_none();
    // In an `Arc`: warp runs this filter for every route it tries, and `App`
    // holds an HTTP client whose clone copies its middleware list.
    let app = Arc::new(app);
    let app = warp::any().map(move || app.clone());
    let hello = warp::path!("hello")
        .and(route("/hello"))
        .and(get())
        .then(move || guarded(catch, async { "hello" }));
    let users = warp::path!("users" / String)
        .and(route("/users/{id}"))
        .and(get())
        .and(app.clone())
        .then(move |id, app| guarded(catch, user(id, app)));
    let checkout = warp::path!("checkout")
        .and(route("/checkout"))
        .and(warp::post())
        .and(app.clone())
        .and(warp::body::json())
        .then(move |app, body| guarded(catch, async move { checkout(app, body) }));
    let panic = warp::path!("panic")
        .and(route("/panic"))
        .and(get())
        .and(app.clone())
        .then(move |app| guarded(catch, async move { panic(app) }));
    let downstream = warp::path!("downstream")
        .and(route("/downstream"))
        .and(get())
        .and(app.clone())
        .then(move |app| guarded(catch, downstream(app)));
    let harness = warp::path!("test")
        .and(route("/test"))
        .and(warp::post())
        .and(app)
        .and(warp::body::json())
        .then(move |app, calls| guarded(catch, harness(app, calls)));
    let stream = warp::path!("stream")
        .and(route("/stream"))
        .and(get())
        .map(|| {
            let events = warp::reply::stream(crate::events());
            warp::reply::with_header(events, CONTENT_TYPE, "text/event-stream")
        });
    let routes = hello
        .or(users)
        .or(checkout)
        .or(panic)
        .or(downstream)
        .or(harness)
        .or(stream);
    match engine {
        Some(engine) => {
            faultline::warp::traced(engine, routes)
                .serve(listener)
                .graceful(shutdown)
                .run()
                .await
        }
        None => {
            warp::serve(routes.recover(faultline::warp::recover))
                .incoming(listener)
                .graceful(shutdown)
                .run()
                .await
        }
    }
    Ok(())
}
