//! `/metrics` on a listener of its own (`FAULTLINE_METRICS_ADDR`), instead
//! of the application's port: the per-trace error series and the route
//! names are for the operators' Prometheus, not for the public.
//!
//! ```no_run
//! use faultline_engine::{Engine, config::TracingConfig};
//! use faultline_prometheus::{MetricsServer, Prometheus, PrometheusConfig};
//!
//! let config = TracingConfig::builder()
//!     .metrics_addr(Some("127.0.0.1:9464".parse()?))
//!     .build()?;
//! let engine = Engine::builder(config)
//!     .correlator(Prometheus::new(PrometheusConfig::default()))
//!     .build()?;
//! // The adapters no longer answer /metrics (engine.metrics_path() is None).
//! let server = MetricsServer::start("127.0.0.1:9464".parse()?, engine.clone())?;
//! // ... serve the application ...
//! drop(server); // stops the listener
//! engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use faultline_engine::Engine;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsServerError {
    /// The address could not be bound (in use, not local, not allowed).
    #[error("FAULTLINE_METRICS_ADDR: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listener's thread or runtime could not start.
    #[error("the metrics listener cannot start: {0}")]
    Start(#[source] std::io::Error),
}

/// The private metrics listener: answers `GET` (and `HEAD`) on the metrics
/// path (`/metrics` unless `FAULTLINE_METRICS_PATH` names another) with the
/// engine's exposition, Prometheus text or OpenMetrics (with exemplars) as
/// the scraper's `Accept` asks; 404 elsewhere, 405 for other methods. It
/// runs on a thread of its own; dropping it (or [`stop`](Self::stop))
/// stops it.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and starts serving `engine`'s metrics there.
    pub fn start(addr: SocketAddr, engine: Engine) -> Result<MetricsServer, MetricsServerError> {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(MetricsServerError::Start)?;
        let path = engine
            .config()
            .metrics_path()
            .unwrap_or("/metrics")
            .to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("faultline-metrics".to_owned())
            .spawn(move || runtime.block_on(serve(listener, engine, path, stopped)))
            .map_err(MetricsServerError::Start)?;
        Ok(MetricsServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen when `addr` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and waits for the listener's thread to end.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    engine: Engine,
    path: String,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let path: std::sync::Arc<str> = path.into();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors and the like: try again.
                Err(_) => continue,
            },
        };
        let engine = engine.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = answer(&engine, &path, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    engine: &Engine,
    path: &str,
    request: &Request<Incoming>,
) -> Response<Full<bytes::Bytes>> {
    let status = |code: StatusCode| {
        let mut r = Response::new(Full::default());
        *r.status_mut() = code;
        r
    };
    if request.uri().path() != path {
        return status(StatusCode::NOT_FOUND);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let Some(exposition) = engine.render_metrics(accept) else {
        return status(StatusCode::NOT_FOUND);
    };
    let body = if request.method() == Method::HEAD {
        bytes::Bytes::new()
    } else {
        bytes::Bytes::from(exposition.body)
    };
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(exposition.content_type),
    );
    r
}
