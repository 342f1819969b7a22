//! The gRPC reference service: `helloworld.Greeter` (gRPC's own example)
//! on tonic, traced by faultline's tonic adapter.
//!
//! ```text
//! cargo run --release --example grpc_service -- [--port 50051] [--no-tracing]
//! ```
//!
//! Without `--port`, `PORT` or 50051 (`--port 0` picks a free port); it
//! listens on `0.0.0.0` and, once listening, prints
//! `listening on http://127.0.0.1:PORT` on standard output (its SIGINT and
//! SIGTERM handlers are in place by then). `SayHello` answers `Hello NAME`;
//! the name `missing` fails with `NOT_FOUND` (code 1001, `USER_NOT_FOUND`),
//! `panic` panics, and `downstream` calls this same service's `SayHello`
//! (name `hello`) through the traced tonic client. Configuration comes from
//! the environment (`OTEL_*`, `FAULTLINE_*`, `SENTRY_DSN`) as for the HTTP
//! reference service, and SIGINT/SIGTERM shut it down the same way: calls in
//! flight get 3 s, then every pending span is flushed. It logs to standard
//! error through faultline's subscriber, as the HTTP reference service does
//! (`RUST_LOG`, `FAULTLINE_LOG_FORMAT`, the current span's ids, masked).

#[path = "grpc/helloworld.rs"]
mod helloworld;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode};
use faultline::masking::{Masker, PiiMasker};
use faultline::setup::{Faultline, Setup};
use faultline::tonic::ClientLayer;
use helloworld::{Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest};
use http::StatusCode;
use tonic::transport::{Channel, Endpoint, Server};
use tower::Layer as _;

/// `SayHello` with the name `missing`.
const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");

/// How long calls in flight may run on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(3);

struct Hello {
    /// This service, for `downstream`.
    channel: Channel,
    /// The traced client's layer (`None` with `--no-tracing`).
    client: Option<ClientLayer>,
}

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let name = request.into_inner().name;
        let message = match name.as_str() {
            "missing" => {
                return Err(faultline::tonic::status(AppError::new(
                    USER_NOT_FOUND,
                    format!("no user named {name}"),
                )));
            }
            "panic" => panic!("greeter crashed for alice@example.com"),
            "downstream" => {
                let hello = HelloRequest {
                    name: "hello".to_owned(),
                };
                let reply = match &self.client {
                    Some(layer) => {
                        let traced = layer.layer(self.channel.clone());
                        GreeterClient::new(traced).say_hello(hello).await?
                    }
                    None => {
                        GreeterClient::new(self.channel.clone())
                            .say_hello(hello)
                            .await?
                    }
                };
                format!("Hello downstream: {}", reply.into_inner().message)
            }
            _ => format!("Hello {name}"),
        };
        Ok(tonic::Response::new(HelloReply { message }))
    }
}

struct Args {
    port: u16,
    tracing: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut tracing = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let p = args.next().ok_or("--port needs a value")?;
                port = Some(
                    p.parse()
                        .map_err(|_| format!("--port: invalid value {p:?}"))?,
                );
            }
            "--no-tracing" => tracing = false,
            "-h" | "--help" => {
                return Err("usage: grpc_service [--port 50051] [--no-tracing]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let port = match (port, std::env::var("PORT")) {
        (Some(p), _) => p,
        (None, Ok(p)) if !p.trim().is_empty() => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT: invalid value {p:?}"))?,
        _ => 50051,
    };
    Ok(Args { port, tracing })
}

/// Resolves on SIGINT or SIGTERM (the handlers are in place once this
/// returns).
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// With `--no-tracing`, logs go to standard error through
/// `tracing-subscriber`'s own formatter, with the filters faultline's
/// subscriber uses (`RUST_LOG`, default `info`, and
/// [`faultline::tracing::CAPPED_TARGETS`] at `info` at most: the
/// dependencies whose debug logs can hold call metadata or export
/// credentials). Traced, faultline's subscriber writes them, as for the
/// HTTP reference service: `FAULTLINE_LOG_FORMAT`, the ids of the current
/// span, masked, and the same events as span events and log records.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let (asked, cap) = faultline::tracing::default_filters();
    tracing_subscriber::registry()
        .with(asked)
        .with(cap)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
}

/// Panics outside a traced call (every panic with `--no-tracing`) are
/// logged with their message masked, never raw.
fn log_panics_masked() {
    let masker = PiiMasker::new();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if faultline::panic::caught_by_request() {
            return previous(info);
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic with a non-text payload)");
        tracing::error!("panicked: {}", masker.mask(message));
    }));
}

fn main() -> ExitCode {
    log_panics_masked();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("grpc_service: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.tracing {
        init_logging();
    }
    let faultline = if args.tracing {
        let setup = Setup::new("faultline-grpc-service")
            .configure(|c| {
                c.service_version(env!("CARGO_PKG_VERSION"))
                    .exporters([ExporterKind::OTLP])
            })
            .log_writer(
                std::io::stderr,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            );
        match setup.init() {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("grpc_service: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        let listener =
            match tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], args.port))).await
            {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("grpc_service: cannot listen on port {}: {e}", args.port);
                    return ExitCode::from(1);
                }
            };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
        let own: http::Uri = format!("http://127.0.0.1:{port}")
            .parse()
            .expect("this service's address");
        let greeter = Hello {
            channel: Endpoint::from(own.clone()).connect_lazy(),
            client: faultline
                .as_ref()
                .map(|f| f.tonic_client_layer().with_server(&own)),
        };
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("grpc_service: cannot listen for SIGINT/SIGTERM: {e}");
                return ExitCode::from(1);
            }
        };
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let signal = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let service = GreeterServer::new(greeter);
        let traced = faultline.as_ref().map(Faultline::tonic_layer);
        let serving = async move {
            match traced {
                Some(layer) => {
                    Server::builder()
                        .layer(layer)
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
                None => {
                    Server::builder()
                        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                            |_| tonic::Status::internal(faultline::request::INTERNAL_DETAIL)
                                .into_http::<tonic::body::Body>(),
                        ))
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
            }
        };
        println!("listening on http://127.0.0.1:{port}");
        let mut serving = std::pin::pin!(serving);
        let served = tokio::select! {
            served = &mut serving => served,
            () = stop => {
                let _ = stopping.send(true);
                match tokio::time::timeout(GRACE, serving).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!("shutdown: calls still in flight after {} s are dropped", GRACE.as_secs());
                        Ok(())
                    }
                }
            }
        };
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("serving stopped: {e}");
                ExitCode::from(1)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    if let Some(faultline) = faultline {
        let report = faultline.shutdown();
        if !report.is_clean() {
            tracing::warn!(
                "shutdown: {} spans exported, {} not delivered",
                report.stats.spans_exported,
                report.stats.spans_received - report.stats.spans_exported
            );
        }
    }
    code
}
