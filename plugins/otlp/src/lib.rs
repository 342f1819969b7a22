//! faultline's OTLP exporter plugin: OTLP over gRPC (tonic) or HTTP/protobuf
//! (reqwest), with TLS from the system roots or a given CA, client
//! certificates (mTLS), authentication headers, gzip and a time limit.
//!
//! Applications turn on the faultline feature `otlp`; `faultline::setup`
//! then makes this exporter whenever the configuration names `otlp` (the
//! default, for traces and logs), with the plugin's own settings
//! ([`OtlpConfig`]: `OTEL_EXPORTER_OTLP_*` over what the code set). With the
//! engine alone, [`OtlpConfig::register`] puts both exporters on its
//! builder:
//!
//! ```no_run
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_otlp::{OtlpConfig, OtlpProtocol};
//!
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([ExporterKind::OTLP])
//!     .build()?;
//! let otlp = OtlpConfig::new()
//!     .protocol(OtlpProtocol::HttpProtobuf)
//!     .endpoint("https://collector.internal:4318")
//!     .header("authorization", "Bearer s3cr3t")
//!     .with_env_from(|name| std::env::var(name).ok())?;
//! let engine = otlp.register(Engine::builder(config)).build()?;
//! # engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It is not built on `opentelemetry-otlp`, which deep-copies every batch
//! twice (once to own it, once more for its retry loop), converts it to
//! protobuf structs (a `String` for every attribute key and value) and
//! then encodes those. All of that ran on the engine's one export thread,
//! for every span. Here the spans go from the batch the engine lends
//! straight to protobuf bytes ([`encode::TraceEncoder`]): no copy of the
//! batch, no intermediate structs, no `String` per attribute, one buffer
//! of the exact size per request. The bytes are the same as
//! `opentelemetry-otlp` would send. They are the body of an HTTP POST, or
//! the message of a unary gRPC `TraceService/Export` call (through a codec
//! that copies them into tonic's frame as they are).
//!
//! Retries are not this crate's job: the engine wraps every exporter in its
//! resilient export (back-off, bounded buffer, drop counts). Failures are
//! classified for it from the gRPC code or the HTTP status: connection
//! problems, time-outs, `Unavailable`, 429 and 5xx are transient; rejected
//! data, bad credentials, unknown paths and oversized requests are
//! permanent. A collector's partial success (spans it refused in an
//! accepted request) is logged as a warning.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use faultline_engine::config::{ConfigError, ExporterKind, TlsConfig, TracingConfig};
use faultline_engine::export::{ExportError, Exporter, PartialSuccess};
use faultline_engine::opentelemetry_sdk::Resource;
use faultline_engine::opentelemetry_sdk::trace::SpanData;
use faultline_engine::{EngineBuilder, ExporterContext};
use tokio::sync::OnceCell;

mod config;
pub mod encode;
pub mod logs;
mod transport;

pub use config::{
    Compression, ENV_VARIABLES, OtlpConfig, OtlpProtocol, OtlpTarget, Signal, SignalSettings,
};

pub use faultline_engine as engine;

use encode::TraceEncoder;
pub use logs::OtlpLogExporter;
use transport::{Rejections, Settings, Transport};

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// A certificate or key file could not be read.
    #[error("OTLP TLS: cannot read {path}: {source}")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("OTLP HTTP client: {0}")]
    Client(#[source] faultline_engine::BoxError),
    /// A setting is invalid (the message names it, or its variable).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The OTLP exporter.
pub struct OtlpExporter {
    target: Target,
    resource: Resource,
    encoder: Mutex<TraceEncoder>,
    transport: OnceCell<Transport>,
    shut_down: AtomicBool,
    /// What the collector rejected since the pipeline last asked.
    partial: Rejections,
}

#[derive(Clone)]
pub(crate) struct TlsMaterial {
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Where one signal's exports go, and how: its settings resolved, the TLS
/// files read.
pub(crate) struct Target {
    protocol: OtlpProtocol,
    endpoint: String,
    headers: Vec<(String, String)>,
    compression: Compression,
    timeout: Duration,
    tls: Option<TlsMaterial>,
}

impl fmt::Debug for Target {
    /// Never prints header values or key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}: [REDACTED]"))
            .collect();
        f.debug_struct("Target")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// `signal`'s settings of `config`, the time limit by default `engine`'s
    /// export timeout; the TLS files are read now (a missing file is an
    /// error at start).
    pub(crate) fn new(
        config: &OtlpConfig,
        signal: Signal,
        engine: &TracingConfig,
    ) -> Result<Target, OtlpError> {
        let settings = config.resolve(signal)?;
        Ok(Target {
            protocol: settings.protocol(),
            endpoint: settings.endpoint().to_string(),
            headers: settings.headers().to_vec(),
            compression: settings.compression(),
            timeout: settings
                .timeout()
                .unwrap_or(engine.export_retry().timeout()),
            tls: TlsMaterial::read(settings.tls())?,
        })
    }

    /// The URL exports go to.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Makes the transport. Called on the export thread (inside its Tokio
    /// runtime), at the first export; connecting is left to that export.
    pub(crate) fn connect(&self) -> Result<Transport, ExportError> {
        let settings = Settings {
            endpoint: &self.endpoint,
            headers: &self.headers,
            gzip: self.compression == Compression::Gzip,
            timeout: self.timeout,
            tls: self.tls.as_ref(),
        };
        Transport::new(self.protocol, &settings)
    }
}

impl fmt::Debug for OtlpExporter {
    /// Never prints header values or key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// The TLS files, read now (a missing file is an error at start);
    /// `None` without any.
    pub(crate) fn read(tls: &TlsConfig) -> Result<Option<TlsMaterial>, OtlpError> {
        if tls.is_empty() {
            return Ok(None);
        }
        Ok(Some(TlsMaterial {
            ca: tls.ca_file().map(config::read_file).transpose()?,
            identity: match (tls.client_cert(), tls.client_key()) {
                (Some(c), Some(k)) => Some((config::read_file(c)?, config::read_file(k)?)),
                _ => None,
            },
        }))
    }
}

impl OtlpConfig {
    /// Registers the OTLP span exporter and log exporter, under the name
    /// `otlp`, on `builder`, made with these settings when the engine's
    /// configuration names them (`OTEL_TRACES_EXPORTER`,
    /// `OTEL_LOGS_EXPORTER`). An invalid setting fails the engine's build,
    /// naming it.
    pub fn register(self, builder: EngineBuilder) -> EngineBuilder {
        let logs = self.clone();
        builder
            .exporter_factory(ExporterKind::OTLP, move |cx: &ExporterContext<'_>| {
                Ok(Box::new(OtlpExporter::new(&self, cx.config())?))
            })
            .log_exporter_factory("otlp", move |cx: &ExporterContext<'_>| {
                Ok(Box::new(OtlpLogExporter::new(&logs, cx.config())?))
            })
    }
}

impl OtlpExporter {
    /// An exporter for the traces' settings of `config`: protocol,
    /// endpoint, headers, compression, TLS files (read now, so a missing
    /// file is an error at start) and time limit (by default `engine`'s
    /// export timeout).
    pub fn new(config: &OtlpConfig, engine: &TracingConfig) -> Result<Self, OtlpError> {
        warn_if_headers_in_clear(&config.resolve(Signal::Traces)?);
        Ok(OtlpExporter {
            target: Target::new(config, Signal::Traces, engine)?,
            resource: Resource::builder_empty().build(),
            encoder: Mutex::new(TraceEncoder::new()),
            transport: OnceCell::new(),
            shut_down: AtomicBool::new(false),
            partial: Rejections::default(),
        })
    }

    /// The endpoint spans go to.
    pub fn endpoint(&self) -> &str {
        self.target.endpoint()
    }
}

/// Sorts an export failure, given as text, into transient (worth a retry)
/// or permanent, from the gRPC code (`status: Unavailable`) or HTTP status
/// (`status code: 503`) it names, by the OTLP specification's lists: the
/// gRPC codes `Cancelled`, `DeadlineExceeded`, `Aborted`, `OutOfRange`,
/// `Unavailable`, `DataLoss` and the HTTP statuses 429, 502, 503, 504 are
/// retried, every other code or status is permanent (`ResourceExhausted`
/// too: the text cannot show the `RetryInfo` that makes it retryable). A
/// text that names neither (a connection failure) is transient. The
/// exporter itself classifies from the gRPC code or HTTP status it
/// received, by the same lists.
pub fn classify(message: &str) -> ExportError {
    let grpc_code = message.find("status: ").and_then(|at| {
        let name: String = message[at + "status: ".len()..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        (0..=16)
            .map(tonic::Code::from_i32)
            .find(|code| format!("{code:?}") == name)
    });
    if let Some(code) = grpc_code {
        return if transport::RETRYABLE_GRPC.contains(&code) {
            ExportError::transient(message.to_owned())
        } else {
            ExportError::permanent(message.to_owned())
        };
    }
    let lower = message.to_ascii_lowercase();
    let http_status = ["status code:", "status code", "status:"]
        .iter()
        .find_map(|marker| {
            let at = lower.find(marker)? + marker.len();
            let digits: String = lower[at..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u16>().ok()
        });
    let permanent = http_status.is_some_and(|s| !transport::RETRYABLE_HTTP.contains(&s));
    if permanent {
        ExportError::permanent(message.to_owned())
    } else {
        ExportError::transient(message.to_owned())
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::ShutDown);
        }
        let transport = self
            .transport
            .get_or_try_init(|| async { self.target.connect() })
            .await?;
        // Requests of at most MAX_REQUEST_BYTES: gRPC receivers refuse
        // larger messages by default, and a smaller request holds less
        // memory while it is encoded and sent. A batch within the limit
        // (nearly always) is measured and encoded once, as before.
        let mut rest = batch;
        let mut take = batch.len();
        while !rest.is_empty() {
            take = take.min(rest.len());
            // One span alone goes whatever its length: the backend decides.
            let limit = if take == 1 {
                usize::MAX
            } else {
                MAX_REQUEST_BYTES
            };
            let mut request = Vec::new();
            let encoded = self
                .encoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .encode_within(&self.resource, &rest[..take], limit, &mut request);
            if let Err(len) = encoded {
                // Too long: a share of the spans that should fit, with
                // room for spans of uneven sizes.
                take = (take as u128 * MAX_REQUEST_BYTES as u128 * 9 / 10 / len as u128)
                    .clamp(1, take as u128 - 1) as usize;
                continue;
            }
            self.partial.add(transport.send(request).await?);
            rest = &rest[take..];
        }
        Ok(())
    }

    fn take_partial_success(&self) -> Option<PartialSuccess> {
        self.partial.take()
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        // Nothing is held back: every export is sent when it is made.
        self.shut_down.store(true, Ordering::Release);
        Ok(())
    }
}

/// The longest export request, encoded: gRPC servers refuse messages over
/// 4 MiB unless configured otherwise (the OpenTelemetry Collector's
/// `max_recv_msg_size_mib`, grpc-go's and grpcio's defaults); 3 MiB leaves
/// room for framing and compression's worst case.
const MAX_REQUEST_BYTES: usize = 3 << 20;

/// Export headers usually carry credentials: sent to another host over plain
/// `http`, anyone on the path reads them. Says so once, at start, naming the
/// host (never the headers' values); loopback endpoints (a local agent or
/// collector) are left alone.
fn warn_if_headers_in_clear(settings: &SignalSettings) {
    let endpoint = settings.endpoint();
    if settings.headers().is_empty() || endpoint.scheme() != "http" {
        return;
    }
    let loopback = match endpoint.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback {
        tracing::warn!(
            host = endpoint.host_str().unwrap_or(""),
            "OTLP export headers go over plain http to a host that is not this machine: use an https endpoint"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `OtlpExporter::new` logs for `endpoint` with or without headers.
    fn logged(endpoint: &str, headers: bool) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let mut config = OtlpConfig::new().endpoint(endpoint);
        if headers {
            config = config.header("authorization", "Bearer s3cr3t-token");
        }
        tracing::subscriber::with_default(subscriber, || {
            OtlpExporter::new(&config, &TracingConfig::default()).unwrap();
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn headers_sent_in_clear_to_another_host_are_warned_about_without_their_value() {
        let out = logged("http://collector.example.com:4317", true);
        assert!(
            out.contains("plain http") && out.contains("collector.example.com"),
            "{out}"
        );
        assert!(!out.contains("s3cr3t-token"), "{out}");
        for quiet in [
            logged("https://collector.example.com:4317", true),
            logged("http://localhost:4317", true),
            logged("http://127.0.0.1:4317", true),
            logged("http://[::1]:4317", true),
            logged("http://collector.example.com:4317", false),
        ] {
            assert!(!quiet.contains("plain http"), "{quiet}");
        }
    }

    #[test]
    fn failures_are_classified() {
        assert!(matches!(
            classify("status: Unauthenticated, message: bad token"),
            ExportError::Permanent { .. }
        ));
        assert!(matches!(
            classify("HTTP export failed. Status Code: 401"),
            ExportError::Permanent { .. }
        ));
        assert!(matches!(
            classify("status: Unavailable, message: connection refused"),
            ExportError::Transient { .. }
        ));
        assert!(matches!(
            classify("HTTP export failed. Status Code: 503"),
            ExportError::Transient { .. }
        ));
        assert!(matches!(
            classify("error trying to connect"),
            ExportError::Transient { .. }
        ));
    }

    #[test]
    fn debug_never_shows_header_values() {
        let config = OtlpConfig::new().header("authorization", "Bearer top-secret");
        let exporter = OtlpExporter::new(&config, &TracingConfig::default()).unwrap();
        let shown = format!("{exporter:?}");
        assert!(!shown.contains("top-secret"), "{shown}");
        assert!(shown.contains("authorization: [REDACTED]"));
        assert_eq!(exporter.endpoint(), "http://localhost:4317/");
    }
}
