//! The reference service on actix-web.
//!
//! actix-web serves on worker threads of its own (one single-threaded tokio
//! runtime each), started from the service's tokio runtime; the engine's
//! export runs beside them as on every framework. Its graceful shutdown is
//! actix-web's own: stop accepting, let the requests in flight finish for
//! [`GRACE`](crate::GRACE) at most, then drop those still running (their
//! spans end, marked cancelled) before [`serve`] returns.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceRequest};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{App as ActixApp, HttpResponse, HttpServer, web};
use faultline::actix::{Error, FaultlineMiddleware};
use faultline::error::PROBLEM_JSON;
use futures_util::FutureExt as _;

use crate::{App, Checkout, HarnessCall};

async fn hello() -> &'static str {
    "hello"
}

async fn user(
    app: web::Data<App>,
    id: web::Path<String>,
) -> Result<web::Json<serde_json::Value>, Error> {
    Ok(web::Json(app.user(&id)?))
}

async fn checkout(app: web::Data<App>, body: web::Json<Checkout>) -> Result<HttpResponse, Error> {
    Err(app.checkout(&body).into())
}

async fn panic(app: web::Data<App>) -> &'static str {
    app.panic()
}

async fn downstream(app: web::Data<App>) -> web::Json<serde_json::Value> {
    web::Json(app.downstream().await)
}

async fn stream() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(crate::events())
}

async fn harness(app: web::Data<App>, calls: web::Json<Vec<HarnessCall>>) -> &'static str {
    app.harness(calls.into_inner()).await;
    ""
}

/// The routes: resources with a method route each (not `App::route`,
/// whose method is a guard on the resource), so that a wrong method is a
/// 405 with `Allow`.
fn routes(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/hello").get(hello))
        .service(web::resource("/users/{id}").get(user))
        .service(web::resource("/checkout").post(checkout))
        .service(web::resource("/panic").get(panic))
        .service(web::resource("/downstream").get(downstream))
        .service(web::resource("/test").post(harness))
        .service(web::resource("/stream").get(stream));
}

/// Without tracing, a handler's panic answered as the traced service does
/// (actix-web has no panic middleware of its own).
fn catch_panic<S>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<S::Response, S::Error>> + use<S>
where
    S: Service<ServiceRequest, Error = actix_web::Error>,
{
    AssertUnwindSafe(service.call(req))
        .catch_unwind()
        .map(|answer| {
            answer.unwrap_or_else(|_| {
                let problem = crate::panic_problem();
                let status = StatusCode::from_u16(problem.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let response = HttpResponse::build(status)
                    .content_type(PROBLEM_JSON)
                    .body(problem.to_json());
                Err(InternalError::from_response("handler panicked", response).into())
            })
        })
}

pin_project_lite::pin_project! {
    /// A request in flight, holding its token until its future is dropped,
    /// after everything inside it (fields drop in order: the answer first).
    struct Counted<F> {
        #[pin]
        answer: F,
        token: Arc<()>,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().answer.poll(cx)
    }
}

fn counted<S: Service<ServiceRequest>>(
    token: &Arc<()>,
    req: ServiceRequest,
    service: &S,
) -> Counted<S::Future> {
    Counted {
        answer: service.call(req),
        token: Arc::clone(token),
    }
}

/// Serves the routes until `shutdown` resolves, then until the requests in
/// flight have finished, for [`GRACE`](crate::GRACE) at most: those still
/// running then are dropped, their spans ended, before this returns.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let grace = crate::GRACE.as_secs();
    let engine = app.engine.clone();
    let data = web::Data::new(app);
    // One token per request in flight: actix-web's workers drop the
    // requests they cut short on their own threads, after telling the
    // server they stopped.
    let in_flight = Arc::new(());
    let tokens = in_flight.clone();
    let server = match engine {
        // The middleware catches a panic too (and records it on the span).
        Some(engine) => HttpServer::new(move || {
            let tokens = tokens.clone();
            ActixApp::new()
                .app_data(data.clone())
                .configure(routes)
                .wrap(FaultlineMiddleware::new(engine.clone()))
                .wrap_fn(move |req, service| counted(&tokens, req, service))
        })
        .disable_signals()
        .shutdown_timeout(grace)
        .listen(listener)?
        .run(),
        None => HttpServer::new(move || {
            let tokens = tokens.clone();
            ActixApp::new()
                .app_data(data.clone())
                .configure(routes)
                .wrap_fn(catch_panic)
                .wrap_fn(move |req, service| counted(&tokens, req, service))
        })
        .disable_signals()
        .shutdown_timeout(grace)
        .listen(listener)?
        .run(),
    };
    let handle = server.handle();
    let stopping = async move {
        shutdown.await;
        handle.stop(true).await;
    };
    let (served, ()) = futures_util::future::join(server, stopping).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&in_flight) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served
}
