//! faultline's Jaeger exporter plugin: spans in Jaeger's thrift format,
//! in the compact protocol over UDP to an agent (`Agent.emitBatch`), or in
//! the binary protocol over HTTP to a collector's `/api/traces`.
//!
//! Applications depend on `faultline` with the feature `jaeger` and name the
//! exporter in their configuration (`OTEL_TRACES_EXPORTER=jaeger`); the
//! facade's `setup` registers this plugin with its settings
//! ([`JaegerConfig`]: `OTEL_EXPORTER_JAEGER_*` over what the code set).
//! Used directly:
//!
//! ```
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_jaeger::JaegerConfig;
//!
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([ExporterKind::JAEGER])
//!     .build()?;
//! let jaeger = JaegerConfig::new().agent("127.0.0.1", 6831); // or .endpoint("http://jaeger:14268/api/traces")
//! let engine = jaeger
//!     .register(Engine::builder(config))
//!     .install_global(false)
//!     .build()?;
//! // ... serve requests: their spans go to the Jaeger agent ...
//! engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where spans go
//!
//! * **Agent (UDP)**, the default: `OTEL_EXPORTER_JAEGER_AGENT_HOST` /
//!   `_PORT` (default `localhost:6831`). Each export becomes one or more
//!   `emitBatch` oneway messages, compact protocol, one per datagram, none
//!   larger than 65,000 bytes (the agent's limit; see
//!   [`JaegerExporterBuilder::max_packet_size`]). Spans are packed whole,
//!   each exactly once. `Batch.seqNo` numbers the datagrams.
//! * **Collector (HTTP)**, when `OTEL_EXPORTER_JAEGER_ENDPOINT` is set: one
//!   `POST` of a binary-protocol `Batch` per export, with
//!   `Content-Type: application/vnd.apache.thrift.binary`.
//!
//! # A span too large for a datagram
//!
//! It is trimmed, not lost: its largest attribute tags and logs are removed,
//! as few as needed, and a `faultline.jaeger.truncated` tag (`LONG`) counts
//! what was removed. Ids, references, times, the operation name and the
//! tags that the mapping adds (kind, status, error, scope) stay. Should the
//! span still not fit, strings longer than 1 KiB are cut to 1 KiB (counted
//! too). A span that cannot be made to fit even so (thousands of links,
//! or a process too large for a packet) is not sent, and the export reports
//! it as [`ExportError::Permanent`] after sending the rest.
//!
//! # Mapping
//!
//! It follows the OpenTelemetry specification's Jaeger mapping: trace id
//! as `traceIdHigh`/`traceIdLow`, ids as big-endian i64; the parent as
//! `parentSpanId` (0 for a root) and as the first reference (`CHILD_OF`),
//! links as `FOLLOWS_FROM` references; `flags` 1 when sampled; times in
//! microseconds; attributes as tags with their types (`STRING`, `BOOL`,
//! `LONG`, `DOUBLE`; arrays as JSON text); `span.kind` (none for internal
//! spans); `otel.status_code`, `otel.status_description` and `error=true`
//! on error; `otel.scope.name`/`otel.scope.version`;
//! `otel.dropped_*_count` when not zero; events as logs with the event name
//! in the `event` field; a link with attributes also as a log `event=link`
//! (a reference cannot carry them); the resource as the process
//! (`serviceName` from `service.name`, other attributes as process tags).
//!
//! # Errors
//!
//! UDP errors (an unreachable agent shows as a refused send) and HTTP 5xx,
//! 408, 429 and connection failures are [`ExportError::Transient`]; other
//! HTTP 4xx are [`ExportError::Permanent`]; an export that takes longer than
//! the configured export timeout ends with [`ExportError::Timeout`].
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

mod config;
mod http;
mod mapping;
mod model;
#[cfg(test)]
mod tests;
mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use faultline_engine::BoxError;
use faultline_engine::config::ConfigError;
use faultline_engine::export::{ExportError, Exporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

pub use config::{
    ENV_VARIABLES, JaegerConfig, OTEL_EXPORTER_JAEGER_AGENT_HOST, OTEL_EXPORTER_JAEGER_AGENT_PORT,
    OTEL_EXPORTER_JAEGER_ENDPOINT,
};
pub use faultline_engine as engine;
pub use http::THRIFT_BINARY;
pub use udp::TRUNCATED_TAG;

use model::Process;

/// The largest datagram sent to an agent by default (the Jaeger agent's own
/// maximum packet size).
pub const MAX_PACKET_SIZE: usize = 65_000;

/// The largest UDP payload over IPv4.
const UDP_PAYLOAD_LIMIT: usize = 65_507;

/// The smallest packet limit accepted.
const MIN_PACKET_SIZE: usize = 1_024;

/// Why a Jaeger exporter could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JaegerError {
    /// The collector endpoint is not an `http`/`https` URL.
    #[error("invalid Jaeger collector endpoint: {0}")]
    InvalidEndpoint(#[source] BoxError),
    /// The packet limit is outside `1024..=65507`.
    #[error("Jaeger max packet size {0} is outside 1024..=65507 bytes")]
    InvalidPacketSize(usize),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the Jaeger collector: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A setting is invalid (the message names it, or its variable).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Counters of one exporter, readable at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JaegerStats {
    /// Spans sent (in datagrams that were sent, or in accepted HTTP batches).
    pub spans_sent: u64,
    /// Datagrams sent to the agent.
    pub packets_sent: u64,
    /// HTTP batches the collector accepted.
    pub batches_posted: u64,
    /// Spans trimmed to fit a datagram (and sent).
    pub spans_truncated: u64,
    /// Spans too large for a datagram even after trimming (not sent).
    pub spans_too_large: u64,
    /// Failed exports.
    pub export_errors: u64,
}

#[derive(Debug, Default)]
struct StatsCell {
    spans_sent: AtomicU64,
    packets_sent: AtomicU64,
    batches_posted: AtomicU64,
    spans_truncated: AtomicU64,
    spans_too_large: AtomicU64,
    export_errors: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

enum Target {
    Agent { host: String, port: u16 },
    Collector(reqwest::Url),
}

/// Builds a [`JaegerExporter`] (most applications use
/// [`JaegerConfig::register`] through the facade).
pub struct JaegerExporterBuilder {
    target: Target,
    timeout: Duration,
    max_packet_size: usize,
    service_name: String,
}

impl std::fmt::Debug for JaegerExporterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaegerExporterBuilder")
            .field("target", &target_label(&self.target))
            .field("timeout", &self.timeout)
            .field("max_packet_size", &self.max_packet_size)
            .finish()
    }
}

/// Where spans go, for logs: never the collector URL's user info or query.
fn target_label(target: &Target) -> String {
    match target {
        Target::Agent { host, port } => format!("agent udp://{host}:{port}"),
        Target::Collector(url) => format!(
            "collector {}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
    }
}

impl JaegerExporterBuilder {
    /// Sends to an agent over UDP (the default, `localhost:6831`).
    pub fn agent(mut self, host: impl Into<String>, port: u16) -> Self {
        self.target = Target::Agent {
            host: host.into(),
            port,
        };
        self
    }
    /// Sends to a collector over HTTP (`http(s)://host:14268/api/traces`).
    pub fn collector(mut self, endpoint: &str) -> Result<Self, JaegerError> {
        let url =
            reqwest::Url::parse(endpoint).map_err(|e| JaegerError::InvalidEndpoint(e.into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(JaegerError::InvalidEndpoint(
                format!("scheme `{}` is not http or https", url.scheme()).into(),
            ));
        }
        self.target = Target::Collector(url);
        Ok(self)
    }
    /// The longest one export may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// The largest datagram sent to the agent, `1024..=65507` bytes (default
    /// [`MAX_PACKET_SIZE`]; lower it to the agent's `--processor.jaeger-compact.server-max-packet-size`
    /// when that is lower, or to the path MTU to avoid IP fragmentation).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet_size = bytes;
        self
    }
    /// The service name used until the engine hands over its resource.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Builds the exporter. Nothing is resolved or connected yet: the agent's
    /// address is resolved at the first export (and again after a failed
    /// send), so an exporter can be built before the agent is up.
    pub fn build(self) -> Result<JaegerExporter, JaegerError> {
        if !(MIN_PACKET_SIZE..=UDP_PAYLOAD_LIMIT).contains(&self.max_packet_size) {
            return Err(JaegerError::InvalidPacketSize(self.max_packet_size));
        }
        let label = target_label(&self.target);
        let transport = match self.target {
            Target::Agent { host, port } => Transport::Agent {
                host,
                port,
                max_packet_size: self.max_packet_size,
                state: tokio::sync::Mutex::new(AgentState::default()),
            },
            Target::Collector(url) => {
                let client = reqwest::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .map_err(|e| JaegerError::HttpClient(e.without_url()))?;
                Transport::Collector {
                    client,
                    url,
                    body_hint: AtomicUsize::new(0),
                }
            }
        };
        Ok(JaegerExporter {
            transport,
            label,
            process: Process {
                service_name: self.service_name,
                tags: Vec::new(),
            },
            timeout: self.timeout,
            shut_down: AtomicBool::new(false),
            stats: Arc::new(StatsCell::default()),
        })
    }
}

#[derive(Default)]
struct AgentState {
    socket: Option<tokio::net::UdpSocket>,
    spans: udp::EncodedSpans,
    packet: Vec<u8>,
    seq_no: i64,
}

enum Transport {
    Agent {
        host: String,
        port: u16,
        max_packet_size: usize,
        state: tokio::sync::Mutex<AgentState>,
    },
    Collector {
        client: reqwest::Client,
        url: reqwest::Url,
        /// The size of the last body.
        body_hint: AtomicUsize,
    },
}

/// The Jaeger exporter: implements the engine's [`Exporter`].
pub struct JaegerExporter {
    transport: Transport,
    label: String,
    process: Process,
    timeout: Duration,
    shut_down: AtomicBool,
    stats: Arc<StatsCell>,
}

impl std::fmt::Debug for JaegerExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaegerExporter")
            .field("target", &self.label)
            .field("service_name", &self.process.service_name)
            .field("timeout", &self.timeout)
            .field("stats", &self.stats())
            .finish()
    }
}

impl JaegerExporter {
    /// A builder sending to `localhost:6831` with a 10 s timeout.
    pub fn builder() -> JaegerExporterBuilder {
        JaegerExporterBuilder {
            target: Target::Agent {
                host: "localhost".to_owned(),
                port: 6831,
            },
            timeout: Duration::from_secs(10),
            max_packet_size: MAX_PACKET_SIZE,
            service_name: mapping::UNKNOWN_SERVICE.to_owned(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> JaegerStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JaegerStats {
            spans_sent: get(&s.spans_sent),
            packets_sent: get(&s.packets_sent),
            batches_posted: get(&s.batches_posted),
            spans_truncated: get(&s.spans_truncated),
            spans_too_large: get(&s.spans_too_large),
            export_errors: get(&s.export_errors),
        }
    }

    async fn send(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        match &self.transport {
            Transport::Agent {
                host,
                port,
                max_packet_size,
                state,
            } => {
                let mut guard = state.lock().await;
                self.send_udp(host, *port, *max_packet_size, &mut guard, batch)
                    .await
            }
            Transport::Collector {
                client,
                url,
                body_hint,
            } => {
                // The body moves into the request: start the next one at this size.
                let mut bytes = Vec::with_capacity(body_hint.load(Ordering::Relaxed));
                http::encode(&self.process, batch, &mut bytes).map_err(|e| {
                    ExportError::permanent(format!("thrift encoding: {e}")).with_source(e)
                })?;
                body_hint.store(bytes.len(), Ordering::Relaxed);
                http::post(client, url, bytes, self.timeout).await?;
                add(&self.stats.batches_posted, 1);
                add(&self.stats.spans_sent, batch.len());
                Ok(())
            }
        }
    }

    async fn send_udp(
        &self,
        host: &str,
        port: u16,
        max_packet_size: usize,
        state: &mut AgentState,
        batch: &[SpanData],
    ) -> Result<(), ExportError> {
        let overhead = udp::envelope_overhead(&self.process);
        let Some(budget) = max_packet_size.checked_sub(overhead).filter(|b| *b > 0) else {
            add(&self.stats.spans_too_large, batch.len());
            return Err(ExportError::permanent(format!(
                "the Jaeger process (resource) takes {overhead} bytes, more than a {max_packet_size}-byte packet"
            )));
        };
        state
            .spans
            .encode(batch, budget)
            .map_err(|e| ExportError::permanent(format!("thrift encoding: {e}")).with_source(e))?;
        add(&self.stats.spans_truncated, state.spans.truncated);
        add(&self.stats.spans_too_large, state.spans.too_large);
        if state.socket.is_none() {
            let socket = udp::connect(host, port).await.map_err(|e| {
                ExportError::transient(format!("Jaeger agent {host}:{port}: {e}")).with_source(e)
            })?;
            state.socket = Some(socket);
        }
        let packets = state.spans.packets(budget);
        let total = packets.len();
        for (n, which) in packets.into_iter().enumerate() {
            let spans = which.len();
            state.seq_no = state.seq_no.wrapping_add(1);
            state
                .spans
                .write_packet(&self.process, state.seq_no, which, &mut state.packet)
                .map_err(|e| {
                    ExportError::permanent(format!("thrift encoding: {e}")).with_source(e)
                })?;
            debug_assert!(state.packet.len() <= max_packet_size);
            let Some(socket) = state.socket.as_ref() else {
                break;
            };
            if let Err(e) = socket.send(&state.packet).await {
                // Resolve and connect again next time (the agent may have moved).
                state.socket = None;
                return Err(ExportError::transient(format!(
                    "Jaeger agent {host}:{port}: sent {n} of {total} packets: {e}"
                )));
            }
            add(&self.stats.packets_sent, 1);
            add(&self.stats.spans_sent, spans);
        }
        if state.spans.too_large > 0 {
            return Err(ExportError::permanent(format!(
                "{} span(s) too large for a {max_packet_size}-byte Jaeger packet even after trimming were not sent",
                state.spans.too_large
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Exporter for JaegerExporter {
    fn name(&self) -> &str {
        "jaeger"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.process = mapping::process(resource, &self.process.service_name);
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::ShutDown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let result = match tokio::time::timeout(self.timeout, self.send(batch)).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::Timeout(self.timeout)),
        };
        if result.is_err() {
            add(&self.stats.export_errors, 1);
        }
        result
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        // Nothing is held back: every export is sent before it returns.
        self.shut_down.store(true, Ordering::Release);
        if let Transport::Agent { state, .. } = &self.transport {
            state.lock().await.socket = None;
        }
        Ok(())
    }
}
