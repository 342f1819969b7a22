//! The reference service on axum.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline::axum::{Error, FaultlineLayer};
use faultline::error::PROBLEM_JSON;
use http::header::CONTENT_TYPE;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{App, Checkout, HarnessCall};

async fn hello() -> &'static str {
    "hello"
}

async fn user(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(app.user(&id)?))
}

async fn checkout(State(app): State<Arc<App>>, Json(body): Json<Checkout>) -> Error {
    app.checkout(&body).into()
}

async fn panic(State(app): State<Arc<App>>) -> &'static str {
    app.panic()
}

async fn downstream(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.downstream().await)
}

async fn stream() -> Response {
    (
        [(CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(crate::events()),
    )
        .into_response()
}

async fn harness(State(app): State<Arc<App>>, Json(calls): Json<Vec<HarnessCall>>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Without tracing, a handler's panic answered as the traced service does.
fn panic_response(_panic: Box<dyn Any + Send>) -> Response {
    let problem = crate::panic_problem();
    (
        problem.status_code(),
        [(CONTENT_TYPE, PROBLEM_JSON)],
        problem.to_json(),
    )
        .into_response()
}

/// Serves the routes until `shutdown` resolves, then until the requests in
/// flight have finished.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let engine = app.engine.clone();
    let router = Router::new()
        .route("/hello", get(hello))
        .route("/users/{id}", get(user))
        .route("/checkout", post(checkout))
        .route("/panic", get(panic))
        .route("/downstream", get(downstream))
        .route("/test", post(harness))
        .route("/stream", get(stream))
        // In an `Arc`: axum clones the state for every request, whatever
        // the route, and `App` holds an HTTP client with its middleware.
        .with_state(Arc::new(app));
    let router = match engine {
        // The layer catches a panic too (and records it on the span).
        Some(engine) => router.layer(FaultlineLayer::new(engine)),
        None => router.layer(CatchPanicLayer::custom(panic_response)),
    };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
