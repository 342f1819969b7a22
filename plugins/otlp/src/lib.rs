//! faultline's OTLP exporter plugin: OTLP over gRPC (tonic) or HTTP/protobuf
//! (reqwest), with TLS from the system roots or a given CA, client
//! certificates (mTLS), authentication headers, gzip and a time limit, built
//! on `opentelemetry-otlp`.
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
//!     .exporters([ExporterKind::Otlp])
//!     .otlp_protocol(OtlpProtocol::HttpProtobuf)
//!     .otlp_endpoint("https://collector.internal:4318")
//!     .otlp_header("authorization", "Bearer s3cr3t")
//!     .build()?;
//! let exporter = faultline_otlp::OtlpExporter::from_config(&config)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Retries are not this crate's job: the engine wraps every exporter in its
//! resilient export (back-off, bounded buffer, drop counts), so the
//! `opentelemetry-otlp` retry policy is turned off. Failures are classified
//! for it: connection problems, time-outs, 429/503/`Unavailable` are
//! transient; rejected data and bad credentials are permanent.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use faultline_engine::config::{Compression, OtlpProtocol, TracingConfig};
use faultline_engine::export::{ExportError, Exporter};
use faultline_engine::opentelemetry_sdk::Resource;
use faultline_engine::opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use tokio::sync::OnceCell;

pub mod encode;

pub use faultline_engine as engine;

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// A certificate or key file could not be read.
    #[error("OTLP TLS: cannot read {path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("OTLP HTTP client: {0}")]
    Client(String),
}

/// The OTLP exporter.
pub struct OtlpExporter {
    protocol: OtlpProtocol,
    endpoint: String,
    headers: Vec<(String, String)>,
    compression: Compression,
    timeout: Duration,
    tls: Option<TlsMaterial>,
    resource: Option<Resource>,
    inner: OnceCell<opentelemetry_otlp::SpanExporter>,
}

#[derive(Clone)]
struct TlsMaterial {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
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
    std::fs::read(path).map_err(|e| OtlpError::Tls {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl OtlpExporter {
    /// An exporter for the configuration's OTLP settings: protocol, traces
    /// endpoint, headers, compression, TLS files (read now, so a missing file
    /// is an error at start), and the export timeout.
    pub fn from_config(config: &TracingConfig) -> Result<Self, OtlpError> {
        warn_if_headers_in_clear(config);
        let tls_config = config.otlp_tls();
        let tls = if tls_config.is_empty() {
            None
        } else {
            Some(TlsMaterial {
                ca: tls_config.ca_file().map(read).transpose()?,
                identity: match (tls_config.client_cert(), tls_config.client_key()) {
                    (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                    _ => None,
                },
            })
        };
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
            resource: None,
            inner: OnceCell::new(),
        })
    }

    /// The endpoint spans go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Builds the `opentelemetry-otlp` exporter. Called on the export thread
    /// (inside its Tokio runtime), at the first export.
    fn build(&self) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
        let mut exporter = match self.protocol {
            OtlpProtocol::Grpc => {
                let mut headers = http::HeaderMap::new();
                for (k, v) in &self.headers {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        headers.insert(name, value);
                    }
                }
                let metadata = MetadataMap::from_headers(headers);
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(self.endpoint.clone())
                    .with_timeout(self.timeout)
                    .with_metadata(metadata)
                    .with_retry_policy(RetryPolicy::disabled());
                if self.compression == Compression::Gzip {
                    builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                if self.endpoint.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_enabled_roots();
                    if let Some(material) = &self.tls {
                        if let Some(ca) = &material.ca {
                            tls = tls.ca_certificate(Certificate::from_pem(ca));
                        }
                        if let Some((cert, key)) = &material.identity {
                            tls = tls.identity(Identity::from_pem(cert, key));
                        }
                    }
                    builder = builder.with_tls_config(tls);
                }
                builder.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut client = reqwest::Client::builder().timeout(self.timeout);
                if let Some(material) = &self.tls {
                    if let Some(ca) = &material.ca {
                        let cert = reqwest::Certificate::from_pem(ca).map_err(|e| {
                            ExportError::Permanent(format!("OTLP CA certificate: {e}"))
                        })?;
                        client = client.add_root_certificate(cert);
                    }
                    if let Some((cert, key)) = &material.identity {
                        let mut pem = cert.clone();
                        pem.push(b'\n');
                        pem.extend_from_slice(key);
                        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                            ExportError::Permanent(format!("OTLP client certificate: {e}"))
                        })?;
                        client = client.identity(identity);
                    }
                }
                let client = client
                    .build()
                    .map_err(|e| ExportError::Permanent(format!("OTLP HTTP client: {e}")))?;
                let headers: HashMap<String, String> = self.headers.iter().cloned().collect();
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_endpoint(self.endpoint.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(self.timeout)
                    .with_headers(headers)
                    .with_retry_policy(RetryPolicy::disabled());
                if self.compression == Compression::Gzip {
                    builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                builder.build()
            }
        }
        .map_err(|e| ExportError::Permanent(format!("OTLP exporter: {e}")))?;
        if let Some(resource) = &self.resource {
            exporter.set_resource(resource);
        }
        Ok(exporter)
    }
}

/// Sorts an `opentelemetry-otlp` failure into transient (worth a retry) or
/// permanent, from the gRPC status or HTTP status it names: bad requests,
/// bad credentials, unknown endpoints and oversized bodies will not pass by
/// retrying; unavailability, throttling and time-outs may.
pub fn classify(message: &str) -> ExportError {
    const PERMANENT_GRPC: &[&str] = &[
        "Unauthenticated",
        "PermissionDenied",
        "InvalidArgument",
        "Unimplemented",
        "FailedPrecondition",
        "OutOfRange",
    ];
    const PERMANENT_HTTP: &[u16] = &[400, 401, 403, 404, 405, 413, 415];
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
    let permanent = PERMANENT_GRPC.iter().any(|p| message.contains(p))
        || http_status.is_some_and(|s| PERMANENT_HTTP.contains(&s));
    if permanent {
        ExportError::Permanent(message.to_owned())
    } else {
        ExportError::Transient(message.to_owned())
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Some(resource.clone());
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        let inner = self
            .inner
            .get_or_try_init(|| async { self.build() })
            .await?;
        inner
            .export(batch.to_vec())
            .await
            .map_err(|e| classify(&e.to_string()))
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        if let Some(inner) = self.inner.get() {
            inner
                .shutdown_with_timeout(Duration::from_secs(1))
                .map_err(|e| ExportError::Transient(e.to_string()))?;
        }
        Ok(())
    }
}

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
            ExportError::Permanent(_)
        ));
        assert!(matches!(
            classify("HTTP export failed. Status Code: 401"),
            ExportError::Permanent(_)
        ));
        assert!(matches!(
            classify("status: Unavailable, message: connection refused"),
            ExportError::Transient(_)
        ));
        assert!(matches!(
            classify("HTTP export failed. Status Code: 503"),
            ExportError::Transient(_)
        ));
        assert!(matches!(
            classify("error trying to connect"),
            ExportError::Transient(_)
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
