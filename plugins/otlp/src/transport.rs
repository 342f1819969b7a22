//! The two OTLP transports, each sending a request already encoded by
//! [`crate::encode`]: gRPC (a unary `TraceService/Export` call on a tonic
//! channel, with a codec that passes the bytes through) and HTTP/protobuf (a
//! reqwest POST). Both classify a failure exactly as the OTLP specification
//! does (retried: the codes of [`RETRYABLE_GRPC`], `RESOURCE_EXHAUSTED` with
//! a `RetryInfo`, the statuses of [`RETRYABLE_HTTP`]; nothing else), honour
//! the server's throttling (`Retry-After`, `RetryInfo`) and read the
//! collector's partial success.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use faultline_engine::export::ExportError;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

/// The gRPC method of an OTLP trace export.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC method of an OTLP logs export.
pub(crate) const LOGS_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The user agent of both transports.
const USER_AGENT: &str = concat!("faultline-otlp/", env!("CARGO_PKG_VERSION"));

/// The gRPC codes the OTLP specification lists as retryable
/// (`RESOURCE_EXHAUSTED` is too, only when the server sent a `RetryInfo`);
/// every other code is permanent.
pub(crate) const RETRYABLE_GRPC: &[tonic::Code] = &[
    tonic::Code::Cancelled,
    tonic::Code::DeadlineExceeded,
    tonic::Code::Aborted,
    tonic::Code::OutOfRange,
    tonic::Code::Unavailable,
    tonic::Code::DataLoss,
];

/// The HTTP statuses the OTLP specification lists as retryable; every
/// other status is permanent.
pub(crate) const RETRYABLE_HTTP: &[u16] = &[429, 502, 503, 504];

/// At most this much of a response body is read (a partial success is a
/// few bytes; anything longer is not looked at).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// At most this many characters of a collector's error message are kept.
const MAX_MESSAGE_CHARS: usize = 256;

/// What a transport needs from the exporter's settings.
pub(crate) struct Settings<'a> {
    pub endpoint: &'a str,
    pub headers: &'a [(String, String)],
    pub gzip: bool,
    pub timeout: Duration,
    pub tls: Option<&'a crate::TlsMaterial>,
}

/// Turns texts that come from the collector into something safe to log:
/// the configured header values (and their longer words: a token without
/// its `Bearer`) replaced, length capped.
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn new(headers: &[(String, String)]) -> Redactor {
        let mut secrets: Vec<String> = Vec::new();
        for (_, value) in headers {
            if value.len() >= 4 {
                secrets.push(value.clone());
            }
            secrets.extend(
                value
                    .split([' ', '\t', ',', '=', ':'])
                    .filter(|word| word.len() >= 6 && word != value)
                    .map(str::to_owned),
            );
        }
        // The longest first, so that a value is replaced before its words.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// Redacts first, then caps (a cap first could cut a value in two and
    /// leave its first part).
    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[REDACTED]");
            }
        }
        text.chars().take(MAX_MESSAGE_CHARS).collect()
    }
}

/// What a transport answers for a request the collector accepted.
pub(crate) type Sent = Result<PartialSuccess, ExportError>;

/// A ready transport.
pub(crate) enum Transport {
    Grpc(GrpcTransport),
    Http(HttpTransport),
}

impl Transport {
    /// The transport of `protocol` for `settings`.
    pub(crate) fn new(
        protocol: crate::OtlpProtocol,
        settings: &Settings<'_>,
    ) -> Result<Transport, ExportError> {
        use crate::OtlpProtocol;
        Ok(match protocol {
            OtlpProtocol::Grpc => Transport::Grpc(GrpcTransport::new(settings)?),
            OtlpProtocol::HttpProtobuf => Transport::Http(HttpTransport::new(settings)?),
        })
    }

    /// The same transport calling the gRPC method `path` (the logs
    /// service's); HTTP's path is the endpoint's own.
    pub(crate) fn with_grpc_path(self, path: &'static str) -> Transport {
        match self {
            Transport::Grpc(mut t) => {
                t.path = path;
                Transport::Grpc(t)
            }
            http => http,
        }
    }

    /// Sends one encoded request; the collector's partial success (header
    /// values taken out of its message) when it accepted it.
    pub(crate) async fn send(&self, request: Vec<u8>) -> Sent {
        match self {
            Transport::Grpc(t) => t.send(request).await,
            Transport::Http(t) => t.send(request).await,
        }
    }
}

/// OTLP/gRPC: a lazily connecting tonic channel.
pub(crate) struct GrpcTransport {
    client: tonic::client::Grpc<Channel>,
    path: &'static str,
    metadata: MetadataMap,
    timeout: Duration,
    redactor: Redactor,
}

impl GrpcTransport {
    /// The channel to `settings.endpoint`, TLS for `https://` (system roots
    /// plus the configured CA and client identity). Does not connect: the
    /// first export does. Must run inside a Tokio runtime.
    pub(crate) fn new(settings: &Settings<'_>) -> Result<GrpcTransport, ExportError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

        let mut endpoint = Endpoint::from_shared(settings.endpoint.to_owned())
            .map_err(|e| ExportError::permanent(format!("OTLP/gRPC endpoint: {e}")).with_source(e))?
            .user_agent(USER_AGENT)
            .map_err(|e| {
                ExportError::permanent(format!("OTLP/gRPC user agent: {e}")).with_source(e)
            })?
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout);
        if settings.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(material) = settings.tls {
                if let Some(ca) = &material.ca {
                    tls = tls.ca_certificate(Certificate::from_pem(ca));
                }
                if let Some((cert, key)) = &material.identity {
                    tls = tls.identity(Identity::from_pem(cert, key));
                }
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                ExportError::permanent(format!("OTLP/gRPC TLS: {e}")).with_source(e)
            })?;
        }
        let mut client = tonic::client::Grpc::new(endpoint.connect_lazy());
        if settings.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        Ok(GrpcTransport {
            client,
            path: EXPORT_PATH,
            metadata: MetadataMap::from_headers(header_map(settings.headers)),
            timeout: settings.timeout,
            redactor: Redactor::new(settings.headers),
        })
    }

    async fn send(&self, body: Vec<u8>) -> Sent {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        let call = async {
            client.ready().await.map_err(|e| {
                ExportError::transient(format!("OTLP/gRPC channel not ready: {}", chain(&e)))
                    .with_source(e)
            })?;
            client
                .unary(
                    request,
                    http::uri::PathAndQuery::from_static(self.path),
                    ExportCodec,
                )
                .await
                .map_err(|status| status_error(&status, &self.redactor))
        };
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ExportError::Timeout(self.timeout))??;
        Ok(response.into_inner().redacted(&self.redactor))
    }
}

/// The delay a gRPC status asks for: its `google.rpc.RetryInfo` in
/// `grpc-status-details-bin` (a missing or negative delay reads as none).
fn retry_info(status: &tonic::Status) -> Option<Duration> {
    use tonic_types::StatusExt as _;
    status
        .get_details_retry_info()
        .map(|info| info.retry_delay.unwrap_or(Duration::ZERO))
}

/// A failed gRPC call as an export error: retried only for the codes in
/// [`RETRYABLE_GRPC`], and `RESOURCE_EXHAUSTED` with a `RetryInfo`, whose
/// delay the next attempt honours ([`ExportError::Throttled`]). Names the
/// code, the collector's message (header values taken out) and the local
/// cause (connection, TLS).
fn status_error(status: &tonic::Status, redactor: &Redactor) -> ExportError {
    let code = status.code();
    let mut message = format!("OTLP/gRPC export failed: status: {code:?}");
    let cause = std::error::Error::source(status).map(chain);
    // A local failure's message repeats its cause.
    let repeated = cause.as_ref().is_some_and(|c| c.contains(status.message()));
    if !status.message().is_empty() && !repeated {
        message.push_str(", message: ");
        message.push_str(&redactor.clean(status.message()));
    }
    if let Some(cause) = cause {
        message.push_str(": ");
        message.push_str(&cause);
    }
    let asked = retry_info(status);
    // A status made here from a transport failure (the connection reset
    // or refused, the stream cut by a server that died mid-call) carries
    // its cause; the specification's lists are about the codes a server
    // answers, and a failure to reach it is retried like any network error.
    let local = std::error::Error::source(status).is_some();
    let retryable = local
        || RETRYABLE_GRPC.contains(&code)
        || (code == tonic::Code::ResourceExhausted && asked.is_some());
    retry_or_not(message, retryable, asked)
}

/// The export error of a failure, retryable or not, with the delay the
/// server asked for.
fn retry_or_not(reason: String, retryable: bool, asked: Option<Duration>) -> ExportError {
    match (retryable, asked) {
        (false, _) => ExportError::permanent(reason),
        (true, Some(retry_after)) => ExportError::Throttled {
            reason,
            retry_after,
        },
        (true, None) => ExportError::transient(reason),
    }
}

/// An HTTP answer other than 2xx as an export error: retried only for the
/// statuses in [`RETRYABLE_HTTP`], after the delay of their `Retry-After`
/// when they carry one. The body is not read (it may echo the request).
fn http_status_error(status: u16, retry_after: Option<&http::HeaderValue>) -> ExportError {
    let message = format!("OTLP/HTTP export failed: status code: {status}");
    let asked = retry_after.and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    retry_or_not(message, RETRYABLE_HTTP.contains(&status), asked)
}

/// A `Retry-After` value (RFC 9110 10.2.3): a number of seconds, or an
/// HTTP-date (a date already past reads as no delay). `None` when it is
/// neither.
fn parse_retry_after(value: &http::HeaderValue, now: std::time::SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Beyond u64 seconds: as long as can be (the cap applies anyway).
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// OTLP/HTTP with protobuf bodies.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: http::HeaderMap,
    gzip: bool,
    timeout: Duration,
    redactor: Redactor,
}

impl HttpTransport {
    /// A client with the configured time limit, CA and client identity.
    pub(crate) fn new(settings: &Settings<'_>) -> Result<HttpTransport, ExportError> {
        let url = reqwest::Url::parse(settings.endpoint).map_err(|e| {
            ExportError::permanent(format!("OTLP/HTTP endpoint: {e}")).with_source(e)
        })?;
        let mut client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(USER_AGENT);
        if let Some(material) = settings.tls {
            if let Some(ca) = &material.ca {
                let cert = reqwest::Certificate::from_pem(ca).map_err(|e| {
                    ExportError::permanent(format!("OTLP CA certificate: {e}")).with_source(e)
                })?;
                client = client.add_root_certificate(cert);
            }
            if let Some((cert, key)) = &material.identity {
                let mut pem = cert.clone();
                pem.push(b'\n');
                pem.extend_from_slice(key);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    ExportError::permanent(format!("OTLP client certificate: {e}")).with_source(e)
                })?;
                client = client.identity(identity);
            }
        }
        let client = client
            .build()
            .map_err(|e| ExportError::permanent(format!("OTLP HTTP client: {e}")).with_source(e))?;
        let mut headers = header_map(settings.headers);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        if settings.gzip {
            headers.insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        Ok(HttpTransport {
            client,
            url,
            headers,
            gzip: settings.gzip,
            timeout: settings.timeout,
            redactor: Redactor::new(settings.headers),
        })
    }

    async fn send(&self, body: Vec<u8>) -> Sent {
        let body = if self.gzip { gzip(&body)? } else { body };
        let mut response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.http_error(e))?;
        if !response.status().is_success() {
            return Err(http_status_error(
                response.status().as_u16(),
                response.headers().get(http::header::RETRY_AFTER),
            ));
        }
        // Accepted. A partial success, if any, is in a protobuf body.
        let protobuf = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_none_or(|t| t.as_bytes().starts_with(b"application/x-protobuf"));
        if !protobuf {
            return Ok(PartialSuccess::default());
        }
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => {
                    return Ok(PartialSuccess::decode_response(&body).redacted(&self.redactor));
                }
                // The spans were accepted; an unreadable answer changes nothing.
                Err(_) => break,
            }
        }
        Ok(PartialSuccess::default())
    }

    /// A reqwest failure (no response): transient, with its causes (never
    /// the URL or headers).
    fn http_error(&self, e: reqwest::Error) -> ExportError {
        if e.is_timeout() {
            return ExportError::Timeout(self.timeout);
        }
        let e = e.without_url();
        ExportError::transient(format!("OTLP/HTTP export failed: {}", chain(&e))).with_source(e)
    }
}

/// The gzip form of `body`.
fn gzip(body: &[u8]) -> Result<Vec<u8>, ExportError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| ExportError::transient(format!("OTLP gzip: {e}")).with_source(e))
}

/// The configured headers as a header map; a name or value that HTTP does
/// not allow is left out (the configuration has checked them already).
fn header_map(headers: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        if let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            value.set_sensitive(true);
            map.insert(name, value);
        }
    }
    map
}

/// An error and its causes, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// The collector's partial success (`ExportTracePartialSuccess`,
/// `ExportLogsPartialSuccess`): spans or log records it dropped although
/// the request succeeded, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    /// `rejected_spans` or `rejected_log_records` (field 1 of both).
    pub rejected: i64,
    pub error_message: String,
}

impl PartialSuccess {
    /// Reads `Export{Trace,Logs}ServiceResponse { partial_success = 1 }`
    /// (the two have one layout); a malformed answer reads as no partial
    /// success (the export succeeded).
    pub(crate) fn decode_response(bytes: &[u8]) -> PartialSuccess {
        let mut result = PartialSuccess::default();
        let mut outer = bytes;
        while let Some((number, field)) = next_field(&mut outer) {
            if let (1, Field::Bytes(mut inner)) = (number, field) {
                while let Some((number, field)) = next_field(&mut inner) {
                    match (number, field) {
                        (1, Field::Varint(v)) => result.rejected = v as i64,
                        (2, Field::Bytes(text)) => {
                            result.error_message = String::from_utf8_lossy(text).into_owned();
                        }
                        _ => {}
                    }
                }
            }
        }
        result
    }

    /// The same, with the configured header values taken out of the
    /// message (the engine's masker is applied where it is logged).
    fn redacted(mut self, redactor: &Redactor) -> PartialSuccess {
        if !self.error_message.is_empty() {
            self.error_message = redactor.clean(&self.error_message);
        }
        self
    }

    /// Whether the collector rejected anything or said why.
    pub(crate) fn is_empty(&self) -> bool {
        self.rejected <= 0 && self.error_message.is_empty()
    }
}

/// What a collector rejected in the requests it accepted, summed until the
/// export pipeline asks ([`Exporter::take_partial_success`] and its log
/// twin): the count, and the first message.
///
/// [`Exporter::take_partial_success`]: faultline_engine::export::Exporter::take_partial_success
#[derive(Debug, Default)]
pub(crate) struct Rejections(Mutex<Option<faultline_engine::export::PartialSuccess>>);

impl Rejections {
    /// Adds one response's partial success (nothing when it is empty).
    pub(crate) fn add(&self, partial: PartialSuccess) {
        if partial.is_empty() {
            return;
        }
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let held = held.get_or_insert_with(Default::default);
        held.rejected += u64::try_from(partial.rejected).unwrap_or(0);
        if held.message.is_empty() {
            held.message = partial.error_message;
        }
    }

    /// What was added since the last call.
    pub(crate) fn take(&self) -> Option<faultline_engine::export::PartialSuccess> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A protobuf field's value, as far as the response needs it.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The next field of `buf` (advancing past it); `None` at the end or at
/// anything malformed.
fn next_field<'a>(buf: &mut &'a [u8]) -> Option<(u64, Field<'a>)> {
    if buf.is_empty() {
        return None;
    }
    let key = read_varint(buf)?;
    let number = key >> 3;
    let field = match key & 7 {
        0 => Field::Varint(read_varint(buf)?),
        1 => {
            *buf = buf.get(8..)?;
            Field::Other
        }
        2 => {
            let len = usize::try_from(read_varint(buf)?).ok()?;
            let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
            *buf = rest;
            Field::Bytes(value)
        }
        5 => {
            *buf = buf.get(4..)?;
            Field::Other
        }
        _ => return None,
    };
    Some((number, field))
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// The codec of the Export call: the request goes out as the bytes it
/// already is; the response is read for its partial success.
#[derive(Debug, Clone, Copy, Default)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = Vec<u8>;
    type Decode = PartialSuccess;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec
    }
}

impl Encoder for ExportCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ExportCodec {
    type Item = PartialSuccess;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<PartialSuccess>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(PartialSuccess::decode_response(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const TOKEN: &str = "Bearer tok-9f8e7d6c5b4a";

    fn redactor() -> Redactor {
        Redactor::new(&[
            ("authorization".to_owned(), TOKEN.to_owned()),
            ("x-api-key".to_owned(), "k3y-0123456789".to_owned()),
        ])
    }

    #[test]
    fn partial_success_is_read_as_prost_writes_it() {
        for (rejected, message) in [
            (0, ""),
            (3, "span 2: invalid trace id"),
            (-1, "ünïcode"),
            (i64::MAX, ""),
        ] {
            let bytes = ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message.to_owned(),
                }),
            }
            .encode_to_vec();
            assert_eq!(
                PartialSuccess::decode_response(&bytes),
                PartialSuccess {
                    rejected,
                    error_message: message.to_owned()
                }
            );
        }
        // Unknown fields of every wire type are skipped.
        let mut bytes = vec![
            0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4,
        ];
        bytes.extend(
            ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: 5,
                    error_message: "too old".to_owned(),
                }),
            }
            .encode_to_vec(),
        );
        assert_eq!(PartialSuccess::decode_response(&bytes).rejected, 5);
        // Nothing, or garbage: no partial success, no panic.
        assert_eq!(
            PartialSuccess::decode_response(&[]),
            PartialSuccess::default()
        );
        for garbage in [
            &[0xff_u8; 12][..],
            &[0x0a, 0x05, 0x08],
            &[0x0a],
            &[0x0b, 0x00],
        ] {
            let _ = PartialSuccess::decode_response(garbage);
        }
    }

    #[test]
    fn collector_messages_lose_header_values() {
        let r = redactor();
        let cleaned = r.clean(&format!(
            "bad credentials: {TOKEN} (token tok-9f8e7d6c5b4a, key k3y-0123456789)"
        ));
        assert!(!cleaned.contains("tok-9f8e7d6c5b4a"), "{cleaned}");
        assert!(!cleaned.contains("k3y-0123456789"), "{cleaned}");
        assert!(
            cleaned.starts_with("bad credentials: [REDACTED]"),
            "{cleaned}"
        );
        assert_eq!(r.clean(&"x".repeat(1000)).len(), MAX_MESSAGE_CHARS);
        // A value across the cap is not cut in two.
        let long = format!("{}{TOKEN}", "x".repeat(MAX_MESSAGE_CHARS - 10));
        assert!(!r.clean(&long).contains("tok-9f8e"), "{}", r.clean(&long));
    }

    /// The OTLP specification's table (otlp.md, "Failures"): which gRPC
    /// codes are retryable, and RESOURCE_EXHAUSTED only with RetryInfo.
    const SPEC_GRPC: &[(tonic::Code, bool)] = &[
        (tonic::Code::Ok, false),
        (tonic::Code::Cancelled, true),
        (tonic::Code::Unknown, false),
        (tonic::Code::InvalidArgument, false),
        (tonic::Code::DeadlineExceeded, true),
        (tonic::Code::NotFound, false),
        (tonic::Code::AlreadyExists, false),
        (tonic::Code::PermissionDenied, false),
        (tonic::Code::ResourceExhausted, false),
        (tonic::Code::FailedPrecondition, false),
        (tonic::Code::Aborted, true),
        (tonic::Code::OutOfRange, true),
        (tonic::Code::Unimplemented, false),
        (tonic::Code::Internal, false),
        (tonic::Code::Unavailable, true),
        (tonic::Code::DataLoss, true),
        (tonic::Code::Unauthenticated, false),
    ];

    fn with_retry_info(code: tonic::Code, delay: Duration) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt as _};
        tonic::Status::with_error_details(
            code,
            format!("slow down: {TOKEN}"),
            ErrorDetails::with_retry_info(Some(delay)),
        )
    }

    #[test]
    fn grpc_codes_are_classified_as_the_specification_lists_them() {
        assert_eq!(SPEC_GRPC.len(), 17, "every gRPC code");
        for &(code, retryable) in SPEC_GRPC {
            let status = tonic::Status::new(code, format!("no: {TOKEN}"));
            let error = status_error(&status, &redactor());
            match (&error, retryable) {
                (ExportError::Transient { reason: m, .. }, true)
                | (ExportError::Permanent { reason: m, .. }, false) => {
                    assert!(m.contains(&format!("{code:?}")), "{m}");
                    assert!(!m.contains("tok-9f8e7d6c5b4a"), "{m}");
                }
                _ => panic!("{code:?}: {error:?}"),
            }
            // The text-based rules agree.
            assert_eq!(
                matches!(
                    crate::classify(&error.to_string()),
                    ExportError::Transient { .. }
                ),
                retryable,
                "{code:?}"
            );
            // With a RetryInfo: a retryable code waits as asked, and
            // RESOURCE_EXHAUSTED becomes retryable; the others stay permanent.
            let delay = Duration::from_millis(1500);
            let error = status_error(&with_retry_info(code, delay), &redactor());
            if retryable || code == tonic::Code::ResourceExhausted {
                assert_eq!(error.retry_after(), Some(delay), "{code:?}: {error:?}");
                assert!(!error.to_string().contains("tok-9f8e7d6c5b4a"), "{error}");
            } else {
                assert!(
                    matches!(error, ExportError::Permanent { .. }),
                    "{code:?}: {error:?}"
                );
            }
        }
    }

    #[test]
    fn a_call_cut_by_the_transport_is_retried_whatever_its_code() {
        // What tonic makes of a connection reset mid-call: a status with a
        // local cause, not an answer of the server.
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = tonic::Status::from_error(Box::new(reset));
        assert!(std::error::Error::source(&status).is_some());
        let error = status_error(&status, &redactor());
        assert!(matches!(error, ExportError::Transient { .. }), "{error:?}");
        assert!(error.to_string().contains("reset by peer"), "{error}");
    }

    #[test]
    fn http_statuses_are_classified_as_the_specification_lists_them() {
        for status in 300..600u16 {
            let retryable = matches!(status, 429 | 502 | 503 | 504);
            let error = http_status_error(status, None);
            assert_eq!(
                matches!(error, ExportError::Transient { .. }),
                retryable,
                "{status}: {error:?}"
            );
            assert_eq!(
                matches!(error, ExportError::Permanent { .. }),
                !retryable,
                "{status}"
            );
            assert_eq!(
                matches!(
                    crate::classify(&error.to_string()),
                    ExportError::Transient { .. }
                ),
                retryable,
                "{status}"
            );
            // Retry-After matters only where a retry is made.
            let asked = http_status_error(status, Some(&http::HeaderValue::from_static("7")));
            if retryable {
                assert_eq!(
                    asked.retry_after(),
                    Some(Duration::from_secs(7)),
                    "{status}"
                );
            } else {
                assert!(matches!(asked, ExportError::Permanent { .. }), "{status}");
            }
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 21 Oct 2015 07:28:00 GMT
        let read = |v: &'static str| parse_retry_after(&http::HeaderValue::from_static(v), now);
        assert_eq!(read("120"), Some(Duration::from_secs(120)));
        assert_eq!(read(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            read("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // In the past: no wait.
        assert_eq!(read("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            read("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "soon", "-5", "1.5", "Wed, 32 Oct 2015"] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    /// A one-request-at-a-time HTTP server that answers `status` with
    /// `body` and hands over each request's head and body.
    async fn answering(
        status: &'static str,
        body: Vec<u8>,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "request cut short");
                    request.extend_from_slice(&buf[..n]);
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while request.len() < head_end + length {
                    let n = stream.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                }
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.write_all(&body).await.unwrap();
                let _ = tx.send((head, request[head_end..].to_vec()));
            }
        });
        (port, rx)
    }

    fn http(port: u16, gzip: bool) -> HttpTransport {
        let headers = [("authorization".to_owned(), TOKEN.to_owned())];
        HttpTransport::new(&Settings {
            endpoint: &format!("http://127.0.0.1:{port}/v1/traces"),
            headers: &headers,
            gzip,
            timeout: Duration::from_secs(5),
            tls: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn http_posts_the_bytes_with_headers_and_gzip() {
        let partial = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 1,
                error_message: "one span too old".to_owned(),
            }),
        }
        .encode_to_vec();
        let (port, mut requests) = answering("200 OK", partial).await;
        let payload = b"\x0a\x02\x0a\x00 not really a request".to_vec();
        for gzip in [false, true] {
            http(port, gzip).send(payload.clone()).await.unwrap();
            let (head, body) = requests.recv().await.unwrap();
            assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
            assert!(
                head.contains("content-type: application/x-protobuf"),
                "{head}"
            );
            assert!(head.contains(&format!("authorization: {}", TOKEN.to_ascii_lowercase())));
            assert!(head.contains("user-agent: faultline-otlp/"), "{head}");
            if gzip {
                assert!(head.contains("content-encoding: gzip"), "{head}");
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut plain)
                    .unwrap();
                assert_eq!(plain, payload);
            } else {
                assert!(!head.contains("content-encoding"), "{head}");
                assert_eq!(body, payload);
            }
        }
    }

    #[tokio::test]
    async fn http_failures_are_classified_from_the_status() {
        for (status, permanent) in [
            ("401 Unauthorized", true),
            ("413 Payload Too Large", true),
            ("429 Too Many Requests", false),
            ("500 Internal Server Error", true),
            ("503 Service Unavailable", false),
        ] {
            let (port, _requests) = answering(status, format!("echo: {TOKEN}").into_bytes()).await;
            let error = http(port, false).send(vec![1, 2, 3]).await.unwrap_err();
            assert_eq!(
                matches!(error, ExportError::Permanent { .. }),
                permanent,
                "{status}: {error:?}"
            );
            assert!(!error.to_string().contains("tok-9f8e7d6c5b4a"), "{error}");
        }
        // Nobody listening: transient.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = http(port, false).send(vec![1]).await.unwrap_err();
        assert!(matches!(error, ExportError::Transient { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn grpc_to_nobody_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let headers = [("authorization".to_owned(), TOKEN.to_owned())];
        let grpc = GrpcTransport::new(&Settings {
            endpoint: &format!("http://127.0.0.1:{port}"),
            headers: &headers,
            gzip: true,
            timeout: Duration::from_secs(5),
            tls: None,
        })
        .unwrap();
        let error = grpc.send(vec![0x0a, 0x00]).await.unwrap_err();
        assert!(matches!(error, ExportError::Transient { .. }), "{error:?}");
        assert!(error.to_string().contains("Unavailable"), "{error}");
        assert!(!error.to_string().contains("tok-9f8e7d6c5b4a"), "{error}");
    }
}
