//! What the reference services (examples/service and
//! examples/grpc_service.rs) do alike as processes: their arguments, their
//! logs without tracing, masked panic lines, the graceful shutdown on
//! SIGINT/SIGTERM and its report. Included by each with `#[path]`.

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use faultline::masking::{Masker, PiiMasker};

/// How long the requests (or calls) in flight may run on after
/// SIGINT/SIGTERM. Those still running then are dropped (their spans end,
/// marked cancelled) and the span flush follows, within its own deadline
/// (`FAULTLINE_SHUTDOWN_TIMEOUT_MS`, 5 s by default).
pub const GRACE: Duration = Duration::from_secs(3);

/// How long the runtime may take to drop what is still running after
/// [`GRACE`] (it waits for nothing else).
pub const DROP_DEADLINE: Duration = Duration::from_millis(500);

/// A service's command line.
pub struct Args {
    /// `--framework NAME`, when the service asks for one.
    #[allow(dead_code)] // grpc_service asks for none
    pub framework: Option<String>,
    /// `--port N`, else `PORT`, else the service's default.
    pub port: u16,
    /// Without `--no-tracing`.
    pub tracing: bool,
}

impl Args {
    /// Reads the command line: `--port N`, `--no-tracing`, and, when
    /// `frameworks` is not empty, `--framework NAME` (required, one of
    /// them). `Err` holds the line to print (usage, or what was wrong).
    pub fn parse(usage: &str, default_port: u16, frameworks: &[&str]) -> Result<Args, String> {
        let mut framework = None;
        let mut port = None;
        let mut tracing = true;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--framework" if !frameworks.is_empty() => framework = args.next(),
                "--port" => {
                    let p = args.next().ok_or("--port needs a value")?;
                    port = Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("--port: invalid value {p:?}"))?,
                    );
                }
                "--no-tracing" => tracing = false,
                "-h" | "--help" => return Err(format!("usage: {usage}")),
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        if !frameworks.is_empty() {
            let names = frameworks.join("|");
            let name = framework
                .as_deref()
                .ok_or(format!("--framework {names} is required"))?;
            if !frameworks.contains(&name) {
                return Err(format!(
                    "--framework: invalid value {name:?}: must be one of {}",
                    frameworks.join(", ")
                ));
            }
        }
        let port = match port {
            Some(p) => p,
            None => match std::env::var("PORT") {
                Ok(p) if !p.trim().is_empty() => p
                    .trim()
                    .parse()
                    .map_err(|_| format!("PORT: invalid value {p:?}"))?,
                _ => default_port,
            },
        };
        Ok(Args {
            framework,
            port,
            tracing,
        })
    }
}

/// Listens on `0.0.0.0:port`; on failure prints one line naming `program`
/// and gives the exit status (1).
pub async fn listen(program: &str, port: u16) -> Result<tokio::net::TcpListener, ExitCode> {
    let address = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    tokio::net::TcpListener::bind(address).await.map_err(|e| {
        eprintln!("{program}: cannot listen on port {port}: {e}");
        ExitCode::from(1)
    })
}

/// Whether SIGINT or SIGTERM has arrived: each server's graceful shutdown
/// waits on [`requested`](Stop::requested).
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Starts listening for SIGINT and SIGTERM (inside the runtime). The
    /// handlers are in place when this returns: a signal that comes at any
    /// time after it is a graceful shutdown, never the signal's default
    /// action (killed, exit status 143).
    pub fn listen() -> std::io::Result<Stop> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                let _ = tx.send(true);
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
        });
        Ok(Stop(rx))
    }

    /// Resolves once SIGINT or SIGTERM has arrived (at once if one already has).
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Runs a server until it returns, or, once `stop` is requested, for
/// [`GRACE`] at most: its graceful shutdown (which waits for everything in
/// flight, however long) is then dropped with what it was waiting for.
pub async fn drain<E>(serving: impl Future<Output = Result<(), E>>, stop: Stop) -> Result<(), E> {
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        served = &mut serving => return served,
        () = stop.requested() => {}
    }
    match tokio::time::timeout(GRACE, serving).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                "shutdown: what is still in flight after {} s is dropped",
                GRACE.as_secs()
            );
            Ok(())
        }
    }
}

/// What a panic's message is masked with before it is logged: the engine's
/// masker when tracing ([`set_panic_masker`]), else (and until the engine
/// is up) faultline's built-in PII rules.
static PANIC_MASKER: OnceLock<Arc<dyn Masker>> = OnceLock::new();

/// Masks panic lines with `masker` from now on (the engine's, once it is up).
pub fn set_panic_masker(masker: Arc<dyn Masker>) {
    let _ = PANIC_MASKER.set(masker);
}

/// Logs every panic through `tracing` at error level (filtered by
/// `RUST_LOG` like every other line) with its message masked: the default
/// hook would print it raw on standard error, and a panic message can hold
/// personal data. A traced request's panic does not reach this hook: the
/// adapters log it themselves, masked, with its trace id.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic with a non-text payload)");
        let builtin;
        let masker: &dyn Masker = match PANIC_MASKER.get() {
            Some(masker) => masker.as_ref(),
            None => {
                builtin = PiiMasker::new();
                &builtin
            }
        };
        let message = masker.mask(message);
        match info.location() {
            Some(at) => tracing::error!(
                "panicked at {}:{}:{}: {message}",
                at.file(),
                at.line(),
                at.column()
            ),
            None => tracing::error!("panicked: {message}"),
        }
    }));
}

/// With `--no-tracing`, logs go to standard error through
/// `tracing-subscriber`'s own formatter, with the filters faultline's
/// subscriber uses (`RUST_LOG`, default `info`, and
/// [`faultline::tracing::CAPPED_TARGETS`] at `info` at most: the
/// dependencies whose debug logs can hold request data or credentials).
/// Traced, faultline's subscriber writes them: `FAULTLINE_LOG_FORMAT`, the
/// ids of the current span, masked, and the same events as span events and
/// log records.
pub fn init_plain_logging() {
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

/// Flushes what is pending and says what was not delivered, if anything.
pub fn shut_down(faultline: faultline::setup::Faultline) {
    let report = faultline.shutdown();
    if !report.is_clean() {
        tracing::warn!(
            "shutdown: {} spans exported, {} not delivered{}",
            report.stats.spans_exported,
            report.stats.spans_received - report.stats.spans_exported,
            if report.timed_out {
                " (deadline reached)"
            } else {
                ""
            }
        );
    }
}
