//! The collector path: one `Batch` in the thrift binary protocol per
//! export, POSTed to the collector's `/api/traces`.

use std::time::Duration;

use faultline_engine::export::ExportError;
use opentelemetry_sdk::trace::SpanData;
use reqwest::header::CONTENT_TYPE;
use thrift::protocol::TBinaryOutputProtocol;

use crate::mapping;
use crate::model::{self, Process, Span};

/// The content type Jaeger's collector expects for a binary-protocol batch.
pub const THRIFT_BINARY: &str = "application/vnd.apache.thrift.binary";

/// Encodes `batch` as a binary-protocol `Batch`.
pub(crate) fn encode(
    process: &Process,
    batch: &[SpanData],
    out: &mut Vec<u8>,
) -> model::Result<()> {
    let spans: Vec<Span<'_>> = batch.iter().map(mapping::span).collect();
    out.clear();
    let mut p = TBinaryOutputProtocol::new(out, true);
    model::write_batch(&mut p, process, &spans)
}

/// Sends one encoded batch and classifies the outcome: 2xx is success;
/// 408, 429 and 5xx, connection errors and the like are transient; other
/// 4xx are permanent (the collector rejected the data).
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), ExportError> {
    let response = client
        .post(url.clone())
        .header(CONTENT_TYPE, THRIFT_BINARY)
        .body(body)
        .send()
        .await
        .map_err(|e| classify(e, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // Read a little of the body for the message, without the URL (it may
    // carry credentials).
    let text = response.text().await.unwrap_or_default();
    let detail: String = text.chars().take(200).collect();
    let message = format!("Jaeger collector answered {status}: {}", detail.trim());
    if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(ExportError::transient(message))
    } else {
        Err(ExportError::permanent(message))
    }
}

fn classify(e: reqwest::Error, timeout: Duration) -> ExportError {
    if e.is_timeout() {
        return ExportError::Timeout(timeout);
    }
    let builder = e.is_builder();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if builder {
        ExportError::permanent(format!("Jaeger collector request: {text}")).with_source(e)
    } else {
        ExportError::transient(format!("Jaeger collector unreachable: {text}")).with_source(e)
    }
}
