//! The demo's two services: a gateway on axum that calls a backend (on poem
//! or on warp) through faultline's reqwest integration. Each has its own
//! engine; the adapters run every handler inside its request's context, so
//! the spans a handler starts, the attributes it sets and the calls it makes
//! all land in the request's trace.

use std::sync::Arc;
use std::time::Duration;

use faultline::Engine;
use faultline::error::{AppError, ErrorCode, ProblemDetails, Severity};
use faultline::reqwest::reqwest_middleware::ClientWithMiddleware;
use http::StatusCode;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The backend: no item with this SKU (the caller's fault, passed on by the gateway).
pub const SKU_NOT_FOUND: ErrorCode =
    ErrorCode::new(3001, "SKU_NOT_FOUND", StatusCode::NOT_FOUND).with_title("Item not found");
/// The backend: the card was declined.
pub const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED)
        .with_title("Payment declined")
        .with_severity(Severity::Warning);
/// The gateway: the backend failed (a 5xx there, or no answer).
pub const UPSTREAM_FAILED: ErrorCode =
    ErrorCode::new(6001, "UPSTREAM_FAILED", StatusCode::BAD_GATEWAY)
        .with_title("Inventory service failed");

/// The codes the gateway passes on as they are when the backend answers with them.
const RELAYED: [ErrorCode; 2] = [SKU_NOT_FOUND, PAYMENT_DECLINED];

/// The SKU whose stock lookup panics in the backend.
pub const PANIC_SKU: u32 = 13;

/// Resolves when the demo is done with the servers.
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// `POST /checkout` and `POST /payments` bodies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payment {
    /// The customer's email.
    pub email: String,
    /// The customer's phone.
    pub phone: String,
    /// The card number.
    pub card: String,
}

// ---------------------------------------------------------------------------
// The backend's logic, shared by its poem and warp versions.

/// What the backend's handlers share.
#[derive(Clone)]
pub struct Backend {
    engine: Engine,
}

impl Backend {
    /// The backend, starting its own spans with `engine`.
    pub fn new(engine: Engine) -> Self {
        Backend { engine }
    }

    /// `GET /stock/{sku}`: a database query in its own span, child of the
    /// request's server span (the current context).
    pub async fn stock(&self, sku: &str) -> Result<Value, AppError> {
        let n: u32 = sku.parse().unwrap_or(0);
        let mut query = self.engine.tracer().start("SELECT stock");
        query.set_attribute(KeyValue::new("db.system.name", "postgresql"));
        query.set_attribute(KeyValue::new(
            "db.query.text",
            "SELECT qty FROM stock WHERE sku = $1",
        ));
        tokio::time::sleep(Duration::from_millis(3)).await;
        query.end();
        if n == PANIC_SKU {
            // A bug: the adapter catches it, records it on the span (masked on
            // export) and answers 500 problem+json with nothing of this text.
            panic!("stock worker crashed for alice@example.com");
        }
        if !(1..=100).contains(&n) {
            return Err(AppError::new(
                SKU_NOT_FOUND,
                format!("no item with SKU {sku}"),
            ));
        }
        Ok(json!({ "sku": n, "in_stock": n % 7 + 1 }))
    }

    /// `GET /prices/{sku}`.
    pub async fn price(&self, sku: &str) -> Result<Value, AppError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let n: u32 = sku.parse().unwrap_or(0);
        Ok(json!({ "sku": n, "price_cents": 1250 + n * 10 }))
    }

    /// `POST /payments`: records the raw inputs on the spans (masking is
    /// faultline's job, not the handler's), asks the card network, declines.
    pub async fn pay(&self, payment: &Payment) -> AppError {
        let cx = Context::current();
        let span = cx.span();
        span.set_attribute(KeyValue::new("app.customer.email", payment.email.clone()));
        span.set_attribute(KeyValue::new("app.payment.card", payment.card.clone()));
        let mut authorize = self.engine.tracer().start("authorize card");
        authorize.set_attribute(KeyValue::new("app.payment.card", payment.card.clone()));
        authorize.set_attribute(KeyValue::new("app.payment.network", "visa"));
        tokio::time::sleep(Duration::from_millis(4)).await;
        authorize.set_attribute(KeyValue::new("app.payment.response", "05 do not honor"));
        authorize.end();
        AppError::new(
            PAYMENT_DECLINED,
            format!(
                "payment declined for {} with card {}",
                payment.email, payment.card
            ),
        )
    }
}

// ---------------------------------------------------------------------------
// The gateway (axum).

/// The gateway's state: where the backend is and the traced HTTP client.
#[derive(Clone)]
pub struct Gateway {
    backend: Arc<str>,
    client: ClientWithMiddleware,
}

impl Gateway {
    /// Calls the backend through `client` (made by
    /// `faultline::reqwest::client`: a CLIENT span per call, the trace
    /// context injected into the request).
    pub fn new(backend: String, client: ClientWithMiddleware) -> Self {
        Gateway {
            backend: backend.into(),
            client,
        }
    }

    async fn get(&self, path: &str) -> Result<Value, AppError> {
        let request = self.client.get(format!("{}{path}", self.backend));
        answer(request.send().await).await
    }

    async fn post(&self, path: &str, body: &Payment) -> Result<Value, AppError> {
        let request = self
            .client
            .post(format!("{}{path}", self.backend))
            .json(body);
        answer(request.send().await).await
    }
}

/// The backend's answer: its JSON, or its problem details turned into the
/// gateway's own error (the same code for the caller's faults, 6001 for
/// the backend's).
async fn answer(
    sent: Result<reqwest::Response, faultline::reqwest::reqwest_middleware::Error>,
) -> Result<Value, AppError> {
    let response = sent.map_err(|e| {
        AppError::new(UPSTREAM_FAILED, "the inventory service did not answer").with_source(e)
    })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| {
            AppError::new(UPSTREAM_FAILED, "the inventory service answered garbage").with_source(e)
        });
    }
    match serde_json::from_slice::<ProblemDetails>(&body) {
        Ok(problem) => match RELAYED
            .iter()
            .find(|c| c.code() == problem.code && c.status().as_u16() == problem.status)
        {
            // Already masked by the backend; masked again on the way out.
            Some(code) => Err(AppError::new(*code, problem.detail)),
            None => Err(AppError::new(
                UPSTREAM_FAILED,
                format!(
                    "the inventory service failed: {} {} (code {})",
                    problem.status, problem.title, problem.code
                ),
            )),
        },
        Err(_) => Err(AppError::new(
            UPSTREAM_FAILED,
            format!("the inventory service answered {status}"),
        )),
    }
}

/// The gateway on axum.
pub mod gateway {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use faultline::axum::{Error, FaultlineLayer, RequestTrace};
    use opentelemetry::KeyValue;
    use opentelemetry::trace::TraceContextExt;
    use serde_json::{Value, json};

    use super::{Gateway, Payment};

    /// `GET /orders/{id}`: two calls to the backend, each in its own CLIENT span.
    async fn order(
        State(gw): State<Gateway>,
        Path(id): Path<String>,
        trace: RequestTrace,
    ) -> Result<Json<Value>, Error> {
        let stock = gw.get(&format!("/stock/{id}")).await?;
        let price = gw.get(&format!("/prices/{id}")).await?;
        Ok(Json(json!({
            "order": id,
            "stock": stock,
            "price": price,
            // The request's trace id, read in the handler.
            "trace_id": trace.trace_id(),
        })))
    }

    /// `POST /checkout`: personal data goes onto the span raw; faultline
    /// masks it before anything leaves the process.
    async fn checkout(
        State(gw): State<Gateway>,
        trace: RequestTrace,
        Json(body): Json<Payment>,
    ) -> Result<Json<Value>, Error> {
        let cx = trace.context();
        let span = cx.span();
        span.set_attribute(KeyValue::new("app.customer.email", body.email.clone()));
        span.set_attribute(KeyValue::new("app.customer.phone", body.phone.clone()));
        Ok(Json(gw.post("/payments", &body).await?))
    }

    /// The gateway's router, traced by `layer`.
    pub fn router(gw: Gateway, layer: FaultlineLayer) -> Router {
        Router::new()
            .route("/orders/{id}", get(order))
            .route("/checkout", post(checkout))
            .with_state(gw)
            .layer(layer)
    }
}

/// The backend on poem.
pub mod backend_poem {
    use faultline::poem::{Error, FaultlineMiddleware};
    use poem::endpoint::BoxEndpoint;
    use poem::web::{Data, Json, Path};
    use poem::{EndpointExt, Response, Route, RouteMethod, get, handler, post};
    use serde_json::Value;

    use super::{Backend, Payment};

    #[handler]
    async fn stock(Data(b): Data<&Backend>, Path(sku): Path<String>) -> Result<Json<Value>, Error> {
        Ok(Json(b.stock(&sku).await?))
    }

    #[handler]
    async fn price(Data(b): Data<&Backend>, Path(sku): Path<String>) -> Result<Json<Value>, Error> {
        Ok(Json(b.price(&sku).await?))
    }

    #[handler]
    async fn pay(Data(b): Data<&Backend>, Json(body): Json<Payment>) -> Error {
        b.pay(&body).await.into()
    }

    /// The backend's routes, traced by `middleware` (on each route as well,
    /// so that a panicking handler's span still learns its route).
    pub fn endpoint(backend: Backend, middleware: FaultlineMiddleware) -> BoxEndpoint<'static> {
        let traced = |e: RouteMethod| -> BoxEndpoint<'static, Response> {
            e.with(middleware.clone()).boxed()
        };
        Route::new()
            .at("/stock/:sku", traced(get(stock)))
            .at("/prices/:sku", traced(get(price)))
            .at("/payments", traced(post(pay)))
            .data(backend)
            .with(middleware.clone())
            .boxed()
    }
}

/// The backend on warp.
pub mod backend_warp {
    use faultline::warp::{Error, route};
    use warp::reply::Response;
    use warp::{Filter, Rejection, Reply};

    use super::{Backend, Payment};

    fn reply(result: Result<serde_json::Value, faultline::error::AppError>) -> Response {
        match result {
            Ok(value) => warp::reply::json(&value).into_response(),
            Err(e) => Error::from(e).into_response(),
        }
    }

    /// The backend's routes; `faultline::warp::traced` wraps them.
    pub fn routes(
        backend: Backend,
    ) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
        let state = warp::any().map(move || backend.clone());
        let stock = warp::path!("stock" / String)
            .and(route("/stock/{sku}"))
            .and(warp::get())
            .and(state.clone())
            .then(|sku: String, b: Backend| async move { reply(b.stock(&sku).await) });
        let price = warp::path!("prices" / String)
            .and(route("/prices/{sku}"))
            .and(warp::get())
            .and(state.clone())
            .then(|sku: String, b: Backend| async move { reply(b.price(&sku).await) });
        let pay = warp::path!("payments")
            .and(route("/payments"))
            .and(warp::post())
            .and(state)
            .and(warp::body::json())
            .then(|b: Backend, body: Payment| async move {
                Error::from(b.pay(&body).await).into_response()
            });
        stock.or(price).unify().or(pay).unify()
    }
}
