//! The reference service on poem.

use std::convert::Infallible;
use std::time::Duration;

use faultline::poem::{Error, FaultlineMiddleware};
use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, IntoEndpoint, Response, Route, RouteMethod, Server, get, handler, post};

use crate::{App, Checkout, HarnessCall};

/// How long requests in flight may run on after SIGINT/SIGTERM (the span
/// flush that follows has its own deadline).
const GRACE: Duration = Duration::from_secs(3);

#[handler]
async fn hello() -> &'static str {
    "hello"
}

#[handler]
async fn user(
    Data(app): Data<&App>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(app.user(&id)?))
}

#[handler]
async fn checkout(Data(app): Data<&App>, Json(body): Json<Checkout>) -> Error {
    app.checkout(&body).into()
}

#[handler]
async fn panic(Data(app): Data<&App>) -> &'static str {
    app.panic()
}

#[handler]
async fn downstream(Data(app): Data<&App>) -> Json<serde_json::Value> {
    Json(app.downstream().await)
}

#[handler]
async fn harness(Data(app): Data<&App>, Json(calls): Json<Vec<HarnessCall>>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Serves the routes until SIGINT or SIGTERM.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let middleware = app.engine.clone().map(FaultlineMiddleware::new);
    // The middleware on each route's endpoint as well: poem's router shows
    // the matched route only to what runs inside it, and a handler that
    // panics returns no response to read it from.
    let traced = |endpoint: RouteMethod| -> BoxEndpoint<'static, Response> {
        match &middleware {
            Some(m) => endpoint.with(m.clone()).boxed(),
            None => endpoint.boxed(),
        }
    };
    // poem writes parameters `:id`; faultline reports `/users/{id}`.
    let routes = Route::new()
        .at("/hello", traced(get(hello)))
        .at("/users/:id", traced(get(user)))
        .at("/checkout", traced(post(checkout)))
        .at("/panic", traced(get(panic)))
        .at("/downstream", traced(get(downstream)))
        .at("/test", traced(post(harness)))
        .data(app);
    let server = Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?);
    match middleware {
        // Around the whole router, so that no route and a wrong method are traced too.
        Some(m) => run(server, routes.with(m)).await,
        None => run(server, routes).await,
    }
}

async fn run<E>(server: Server<Infallible, TcpAcceptor>, endpoint: E) -> std::io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    server
        .run_with_graceful_shutdown(endpoint, crate::shutdown_signal(), Some(GRACE))
        .await
}
