//! The reference service on axum.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use faultline::axum::{Error, FaultlineLayer};

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

async fn harness(State(app): State<Arc<App>>, Json(calls): Json<Vec<HarnessCall>>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Serves the routes until SIGINT or SIGTERM.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let engine = app.engine.clone();
    let mut router = Router::new()
        .route("/hello", get(hello))
        .route("/users/{id}", get(user))
        .route("/checkout", post(checkout))
        .route("/panic", get(panic))
        .route("/downstream", get(downstream))
        .route("/test", post(harness))
        // In an `Arc`: axum clones the state for every request, whatever
        // the route, and `App` holds an HTTP client with its middleware.
        .with_state(Arc::new(app));
    if let Some(engine) = engine {
        router = router.layer(FaultlineLayer::new(engine));
    }
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(crate::shutdown_signal())
    .await
}
