//! faultline's OTLP exporter plugin: OTLP over gRPC (tonic) or HTTP/protobuf
//! (reqwest), with TLS from the system roots or a given CA, client
//! certificates (mTLS), authentication headers, gzip and a time limit.
//!
//! Applications turn on the faultline feature `otlp`; `faultline::setup::engine_builder`
//! then makes this exporter whenever the configuration names `otlp` (the
//! default), from `OTEL_EXPORTER_OTLP_*`:
//!
//! ```no_run
//! use faultline_engine::config::{ExporterKind, OtlpProtocol, TracingConfig};
//!
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([ExporterKind::OTLP])
//!     .otlp_protocol(OtlpProtocol::HttpProtobuf)
//!     .otlp_endpoint("https://collector.internal:4318")
//!     .otlp_header("authorization", "Bearer s3cr3t")
//!     .build()?;
//! let exporter = faultline_otlp::OtlpExporter::from_config(&config)?;
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

use faultline_engine::config::{Compression, OtlpProtocol, TracingConfig};
use faultline_engine::export::{ExportError, Exporter, PartialSuccess};
use faultline_engine::opentelemetry_sdk::Resource;
use faultline_engine::opentelemetry_sdk::trace::SpanData;
use tokio::sync::OnceCell;

pub mod encode;
pub mod logs;
mod transport;

pub use faultline_engine as engine;

use encode::TraceEncoder;
pub use logs::OtlpLogExporter;
use transport::{Settings, Transport};

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
}

/// The OTLP exporter.
pub struct OtlpExporter {
    protocol: OtlpProtocol,
    endpoint: String,
    headers: Vec<(String, String)>,
    compression: Compression,
    timeout: Duration,
    tls: Option<TlsMaterial>,
    resource: Resource,
    encoder: Mutex<TraceEncoder>,
    transport: OnceCell<Transport>,
    shut_down: AtomicBool,
    /// What the collector rejected since the pipeline last asked.
    partial: Mutex<Option<PartialSuccess>>,
}

#[derive(Clone)]
pub(crate) struct TlsMaterial {
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for OtlpExporter {
    /// Never prints header values or key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| format!("{k}: [REDACTED]"))
                    .collect::<Vec<_>>(),
            )
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, OtlpError> {
    std::fs::read(path).map_err(|source| OtlpError::Tls {
        path: path.display().to_string(),
        source,
    })
}

impl TlsMaterial {
    /// The configuration's TLS files, read now (a missing file is an error
    /// at start); `None` without any.
    pub(crate) fn from_config(config: &TracingConfig) -> Result<Option<TlsMaterial>, OtlpError> {
        let tls_config = config.otlp_tls();
        if tls_config.is_empty() {
            return Ok(None);
        }
        Ok(Some(TlsMaterial {
            ca: tls_config.ca_file().map(read).transpose()?,
            identity: match (tls_config.client_cert(), tls_config.client_key()) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            },
        }))
    }
}

impl OtlpExporter {
    /// An exporter for the configuration's OTLP settings: protocol, traces
    /// endpoint, headers, compression, TLS files (read now, so a missing file
    /// is an error at start), and the export timeout.
    pub fn from_config(config: &TracingConfig) -> Result<Self, OtlpError> {
        warn_if_headers_in_clear(config);
        let tls = TlsMaterial::from_config(config)?;
        Ok(OtlpExporter {
            protocol: config.otlp_protocol(),
            endpoint: config.otlp_traces_endpoint().to_string(),
            headers: config
                .otlp_headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            compression: config.otlp_compression(),
            timeout: config.export_retry().timeout(),
            tls,
            resource: Resource::builder_empty().build(),
            encoder: Mutex::new(TraceEncoder::new()),
            transport: OnceCell::new(),
            shut_down: AtomicBool::new(false),
            partial: Mutex::new(None),
        })
    }

    /// The endpoint spans go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Makes the transport. Called on the export thread (inside its Tokio
    /// runtime), at the first export; connecting is left to that export.
    fn connect(&self) -> Result<Transport, ExportError> {
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
            .get_or_try_init(|| async { self.connect() })
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
            let partial = transport.send(request).await?;
            if !partial.is_empty() {
                let mut held = self.partial.lock().unwrap_or_else(PoisonError::into_inner);
                let held = held.get_or_insert_with(Default::default);
                held.rejected += u64::try_from(partial.rejected_spans).unwrap_or(0);
                if held.message.is_empty() {
                    held.message = partial.error_message;
                }
            }
            rest = &rest[take..];
        }
        Ok(())
    }

    fn take_partial_success(&self) -> Option<PartialSuccess> {
        self.partial
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
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
fn warn_if_headers_in_clear(config: &TracingConfig) {
    let endpoint = config.otlp_traces_endpoint();
    if config.otlp_headers().is_empty() || endpoint.scheme() != "http" {
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

    /// What `from_config` logs for `endpoint` with or without headers.
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
        let mut builder = TracingConfig::builder()
            .service_name("t")
            .otlp_endpoint(endpoint);
        if headers {
            builder = builder.otlp_header("authorization", "Bearer s3cr3t-token");
        }
        let config = builder.build().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            OtlpExporter::from_config(&config).unwrap();
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
        let config = TracingConfig::builder()
            .otlp_header("authorization", "Bearer top-secret")
            .build()
            .unwrap();
        let exporter = OtlpExporter::from_config(&config).unwrap();
        let shown = format!("{exporter:?}");
        assert!(!shown.contains("top-secret"), "{shown}");
        assert!(shown.contains("authorization: [REDACTED]"));
        assert_eq!(exporter.endpoint(), "http://localhost:4317/");
    }
}
