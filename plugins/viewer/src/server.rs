//! The viewer's listener: the page, its JSON API and the OTLP/HTTP receiver.

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faultline_engine::masking::Masker;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::otlp::{self, Received};
use crate::store::{TraceFilter, ViewerStore};

/// Largest request body accepted, compressed or not.
const MAX_BODY: usize = 16 << 20;
/// The cookie a browser keeps the token in, once given `?token=`.
const TOKEN_COOKIE: &str = "faultline_viewer_token";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// Pages run only the viewer's own script and style: no inline code, no
/// other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) store: Arc<ViewerStore>,
    pub(crate) masker: Option<Arc<dyn Masker>>,
    pub(crate) token: Option<Arc<str>>,
}

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/errors", get(page))
        .route("/traces/{trace_id}", get(page))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/favicon.ico", get(|| asset("image/svg+xml", FAVICON_SVG)))
        .route("/api/traces", get(api_traces))
        .route("/api/traces/{trace_id}", get(api_trace))
        .route("/api/errors", get(api_errors))
        .route("/api/stats", get(api_stats))
        .route("/v1/traces", post(receive_traces))
        .route("/v1/logs", post(receive_logs))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .with_state(app)
}

/// With a token configured, every request carries it: `Authorization:
/// Bearer TOKEN` (OTLP senders, scripts), the cookie set by a first visit
/// to `/?token=TOKEN` (browsers), or that query parameter itself.
async fn require_token(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(token) = app.token.clone() else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .find(|c| same(c, &token));
    let query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|p| p.strip_prefix("token="))
        .find(|q| same(q, &token));
    if bearer.is_some_and(|b| same(b, &token)) || cookie.is_some() {
        return next.run(request).await;
    }
    if query.is_some() {
        let mut response = next.run(request).await;
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        return response;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "faultline viewer: this address needs the token of FAULTLINE_VIEWER_TOKEN \
         (open /?token=... once, or send Authorization: Bearer ...)\n",
    )
        .into_response()
}

/// Compares in time independent of where the first difference is.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn api_traces(State(app): State<App>, Query(filter): Query<TraceFilter>) -> Response {
    json(StatusCode::OK, &app.store.traces_json(&filter))
}

async fn api_trace(State(app): State<App>, Path(trace_id): Path<String>) -> Response {
    match app.store.trace_json(&trace_id) {
        Some(trace) => json(StatusCode::OK, &trace),
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "trace not found (not received yet, or evicted)" }),
        ),
    }
}

async fn api_errors(State(app): State<App>) -> Response {
    json(StatusCode::OK, &app.store.errors_json())
}

async fn api_stats(State(app): State<App>) -> Response {
    json(StatusCode::OK, &app.store.stats())
}

/// The body of an OTLP request: its encoding undone, its format known.
enum Body {
    Protobuf(Vec<u8>),
    Json(Vec<u8>),
}

fn otlp_body(headers: &HeaderMap, body: Bytes) -> Result<Body, (StatusCode, &'static str)> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let bytes = match text(header::CONTENT_ENCODING).map(str::trim) {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Ok(n) if n <= MAX_BODY => out,
                Ok(_) => return Err((StatusCode::PAYLOAD_TOO_LARGE, "body too large")),
                Err(_) => return Err((StatusCode::BAD_REQUEST, "invalid gzip body")),
            }
        }
        Some(_) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported Content-Encoding (identity or gzip)",
            ));
        }
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or("application/x-protobuf");
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/x-protobuf" | "application/protobuf" => Ok(Body::Protobuf(bytes)),
        "application/json" => Ok(Body::Json(bytes)),
        _ => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf or application/json",
        )),
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// Decodes, stores and answers one OTLP export request.
fn receive<Req, Resp>(
    headers: &HeaderMap,
    body: Bytes,
    store: impl FnOnce(Req) -> Received,
    answer: impl FnOnce(Received) -> Resp,
) -> Response
where
    Req: prost::Message + Default + DeserializeOwned,
    Resp: prost::Message + Serialize,
{
    let body = match otlp_body(headers, body) {
        Ok(body) => body,
        Err((status, message)) => return plain(status, message),
    };
    let request = match &body {
        Body::Protobuf(bytes) => Req::decode(&bytes[..]).map_err(|e| e.to_string()),
        Body::Json(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("invalid OTLP body: {e}")),
    };
    let response = answer(store(request));
    match body {
        Body::Protobuf(_) => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Body::Json(_) => {
            // An absent field, not `null` (OTLP/JSON leaves empty fields out).
            let mut value = serde_json::to_value(&response).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.retain(|_, v| !v.is_null());
            }
            json(StatusCode::OK, &value)
        }
    }
}

async fn receive_traces(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    receive(
        &headers,
        body,
        |r: ExportTraceServiceRequest| otlp::store_traces(&app.store, app.masker.as_ref(), r),
        |received| ExportTraceServiceResponse {
            partial_success: (received.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: received.rejected as i64,
                error_message: "spans with malformed trace or span ids were dropped".into(),
            }),
        },
    )
}

async fn receive_logs(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    receive(
        &headers,
        body,
        |r: ExportLogsServiceRequest| otlp::store_logs(&app.store, app.masker.as_ref(), r),
        |received| ExportLogsServiceResponse {
            partial_success: (received.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: received.rejected as i64,
                error_message: String::new(),
            }),
        },
    )
}
