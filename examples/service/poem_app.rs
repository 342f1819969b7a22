//! The reference service on poem.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use faultline::error::PROBLEM_JSON;
use faultline::poem::{Error, FaultlineMiddleware, RecordRoute};
use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use poem::middleware::CatchPanic;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, IntoEndpoint, Response, Route, RouteMethod, Server, get, handler, post};

use crate::{App, Checkout, HarnessCall};

/// The app as the routes' data: poem clones its data into every request,
/// and an `Arc`'s clone is a count's increment (a clone of `App` copies the
/// outgoing client's middleware list, an allocation when it is traced).
type Shared = Arc<App>;

#[handler]
async fn hello() -> &'static str {
    "hello"
}

#[handler]
async fn user(
    Data(app): Data<&Shared>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(app.user(&id)?))
}

#[handler]
async fn checkout(Data(app): Data<&Shared>, Json(body): Json<Checkout>) -> Error {
    app.checkout(&body).into()
}

#[handler]
async fn panic(Data(app): Data<&Shared>) -> &'static str {
    app.panic()
}

#[handler]
async fn downstream(Data(app): Data<&Shared>) -> Json<serde_json::Value> {
    Json(app.downstream().await)
}

#[handler]
fn stream() -> Response {
    Response::builder()
        .content_type("text/event-stream")
        .body(poem::Body::from_bytes_stream(crate::events()))
}

#[handler]
async fn harness(Data(app): Data<&Shared>, Json(calls): Json<Vec<HarnessCall>>) -> &'static str {
    app.harness(calls).await;
    ""
}

/// Without tracing, a handler's panic answered as the traced service does.
fn panic_response(_panic: Box<dyn Any + Send>) -> Response {
    let problem = crate::panic_problem();
    Response::builder()
        .status(problem.status_code())
        .content_type(PROBLEM_JSON)
        .body(problem.to_json())
}

/// Serves the routes until `shutdown` resolves, then until the requests in
/// flight have finished.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let middleware = app.engine.clone().map(FaultlineMiddleware::new);
    // The route recorded on each route's endpoint as well: poem's router
    // shows the matched route only to what runs inside it, and a handler
    // that panics returns no response to read it from.
    let traced = |endpoint: RouteMethod| -> BoxEndpoint<'static, Response> {
        match &middleware {
            Some(_) => endpoint.with(RecordRoute).boxed(),
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
        .at("/stream", traced(get(stream)))
        .data(Shared::new(app));
    let server = Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?);
    match middleware {
        // Around the whole router, so that no route and a wrong method are
        // traced too. It catches a panic as well (and records it on the span).
        Some(m) => run(server, routes.with(m), shutdown).await,
        None => {
            let routes = routes.with(CatchPanic::new().with_handler(panic_response));
            run(server, routes, shutdown).await
        }
    }
}

async fn run<E>(
    server: Server<Infallible, TcpAcceptor>,
    endpoint: E,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    // No timeout of poem's own: the service bounds every framework's drain
    // alike (`crate::GRACE`).
    server
        .run_with_graceful_shutdown(endpoint, shutdown, None)
        .await
}
