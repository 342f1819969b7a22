//! OTLP logs: the engine's [`LogRecord`]s as an
//! `opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest`, sent
//! over the same transports as spans (gRPC `LogsService/Export`, or an HTTP
//! POST to `/v1/logs`).
//!
//! The engine registers it under the name `otlp` for `OTEL_LOGS_EXPORTER`
//! (the default) when the faultline feature `otlp` is on; its settings are
//! the `OTEL_EXPORTER_OTLP_LOGS_*` variables over the `OTEL_EXPORTER_OTLP_*`
//! ones ([`OtlpConfig::logs`], resolved by [`OtlpConfig::resolve`]).
//!
//! ```
//! use faultline_engine::export::{LogRecord, LogSeverity};
//! use faultline_otlp::logs::LogsEncoder;
//! use faultline_otlp::engine::opentelemetry_sdk::Resource;
//!
//! let resource = Resource::builder_empty().with_service_name("checkout").build();
//! let mut encoder = LogsEncoder::new(&resource);
//! let bytes = encoder.encode(&[LogRecord::new(LogSeverity::Info, "checkout", "paid")]);
//! assert_eq!(bytes[0], 0x0a); // field 1 (resource_logs), length-delimited
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use faultline_engine::config::TracingConfig;
use faultline_engine::export::{ExportError, LogExporter, LogRecord, PartialSuccess};
use faultline_engine::opentelemetry::trace::{SpanId, TraceId};
use faultline_engine::opentelemetry_sdk::Resource;
use tokio::sync::OnceCell;

use crate::encode::{
    I32, LEN, VARINT, delimited, key, key_value_len, nanos, put_any_value, put_bytes_field,
    put_fixed64_field, put_str, put_string_field, put_varint,
};
use crate::transport::{LOGS_EXPORT_PATH, Rejections, Transport};
use crate::{MAX_REQUEST_BYTES, OtlpConfig, OtlpError, Signal, Target};

/// Encodes batches of log records as `ExportLogsServiceRequest` bytes: one
/// `ResourceLogs` (the resource given), a `ScopeLogs` per target in the
/// order targets first appear, the records in batch order within each.
#[derive(Debug)]
pub struct LogsEncoder {
    /// The `Resource` message, encoded once.
    resource: Vec<u8>,
    scratch: Vec<u8>,
    records: Vec<u8>,
    scopes: Vec<u8>,
}

impl LogsEncoder {
    /// An encoder for records of `resource`.
    pub fn new(resource: &Resource) -> LogsEncoder {
        let mut bytes = Vec::new();
        for (k, v) in resource.iter() {
            put_key_value(&mut bytes, 1, k.as_str(), v);
        }
        LogsEncoder {
            resource: bytes,
            scratch: Vec::new(),
            records: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// The request for `records`.
    pub fn encode(&mut self, records: &[LogRecord]) -> Vec<u8> {
        self.scopes.clear();
        let mut done = vec![false; records.len()];
        for first in 0..records.len() {
            if done[first] {
                continue;
            }
            let target = &records[first].target;
            self.records.clear();
            for (i, record) in records.iter().enumerate().skip(first) {
                if !done[i] && record.target == *target {
                    done[i] = true;
                    self.scratch.clear();
                    write_record(&mut self.scratch, record);
                    put_bytes_always(&mut self.records, 2, &self.scratch);
                }
            }
            // ScopeLogs: scope (1: InstrumentationScope, its name), records (2).
            self.scratch.clear();
            put_string_field(&mut self.scratch, 1, target);
            let scope_len = delimited(self.scratch.len()) + self.records.len();
            self.scopes.push(key(2, LEN));
            put_varint(&mut self.scopes, scope_len as u64);
            put_bytes_always(&mut self.scopes, 1, &self.scratch);
            self.scopes.extend_from_slice(&self.records);
        }
        // ResourceLogs: resource (1), scope_logs (2).
        let resource_logs = delimited(self.resource.len()) + self.scopes.len();
        let mut out = Vec::with_capacity(delimited(resource_logs));
        out.push(key(1, LEN));
        put_varint(&mut out, resource_logs as u64);
        put_bytes_always(&mut out, 1, &self.resource);
        out.extend_from_slice(&self.scopes);
        out
    }
}

/// A length-delimited field written even when empty (a present message).
fn put_bytes_always(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push(key(number, LEN));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A repeated `KeyValue` field `number`.
fn put_key_value(
    out: &mut Vec<u8>,
    number: u8,
    k: &str,
    v: &faultline_engine::opentelemetry::Value,
) {
    out.push(key(number, LEN));
    put_varint(out, key_value_len(k, v) as u64);
    put_string_field(out, 1, k);
    out.push(key(2, LEN));
    put_any_value(out, v);
}

/// `LogRecord`'s content, fields in number order.
fn write_record(out: &mut Vec<u8>, record: &LogRecord) {
    put_fixed64_field(out, 1, nanos(record.time));
    out.push(key(2, VARINT));
    put_varint(out, u64::from(record.severity.number()));
    put_string_field(out, 3, record.severity.text());
    // body (5): AnyValue { string_value }.
    out.push(key(5, LEN));
    put_varint(out, delimited(record.body.len()) as u64);
    put_str(out, &record.body);
    for kv in &record.attributes {
        put_key_value(out, 6, kv.key.as_str(), &kv.value);
    }
    let flags = u32::from(record.trace_flags.to_u8());
    if flags != 0 {
        out.push(key(8, I32));
        out.extend_from_slice(&flags.to_le_bytes());
    }
    if record.trace_id != TraceId::INVALID {
        put_bytes_field(out, 9, &record.trace_id.to_bytes());
    }
    if record.span_id != SpanId::INVALID {
        put_bytes_field(out, 10, &record.span_id.to_bytes());
    }
    put_fixed64_field(out, 11, nanos(record.observed_time));
}

/// The OTLP log exporter: `OTEL_LOGS_EXPORTER=otlp`.
pub struct OtlpLogExporter {
    target: Target,
    encoder: Mutex<LogsEncoder>,
    transport: OnceCell<Transport>,
    shut_down: AtomicBool,
    /// What the collector rejected since the pipeline last asked.
    partial: Rejections,
}

impl fmt::Debug for OtlpLogExporter {
    /// Never prints header values or key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpLogExporter")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl OtlpLogExporter {
    /// An exporter for the configuration's OTLP logs settings: protocol,
    /// logs endpoint, headers, compression, TLS files (read now) and time
    /// limit.
    pub fn new(config: &OtlpConfig, engine: &TracingConfig) -> Result<Self, OtlpError> {
        Ok(OtlpLogExporter {
            target: Target::new(config, Signal::Logs, engine)?,
            encoder: Mutex::new(LogsEncoder::new(&Resource::builder_empty().build())),
            transport: OnceCell::new(),
            shut_down: AtomicBool::new(false),
            partial: Rejections::default(),
        })
    }

    /// The endpoint log records go to.
    pub fn endpoint(&self) -> &str {
        self.target.endpoint()
    }
}

#[async_trait::async_trait]
impl LogExporter for OtlpLogExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.encoder = Mutex::new(LogsEncoder::new(resource));
    }

    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::ShutDown);
        }
        let transport = self
            .transport
            .get_or_try_init(|| async {
                self.target
                    .connect()
                    .map(|t| t.with_grpc_path(LOGS_EXPORT_PATH))
            })
            .await?;
        // Requests within MAX_REQUEST_BYTES, as for spans: halves of a
        // batch until each fits (a lone record goes whatever its size).
        let mut pending = vec![batch];
        while let Some(part) = pending.pop() {
            let request = self
                .encoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .encode(part);
            if request.len() > MAX_REQUEST_BYTES && part.len() > 1 {
                let (a, b) = part.split_at(part.len() / 2);
                pending.push(b);
                pending.push(a);
                continue;
            }
            self.partial.add(transport.send(request).await?);
        }
        Ok(())
    }

    fn take_partial_success(&self) -> Option<PartialSuccess> {
        self.partial.take()
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        self.shut_down.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use faultline_engine::export::LogSeverity;
    use faultline_engine::opentelemetry::KeyValue;
    use faultline_engine::opentelemetry::trace::TraceFlags;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;

    use super::*;

    #[test]
    fn records_decode_with_the_official_protobufs() {
        let resource = Resource::builder_empty()
            .with_service_name("checkout")
            .build();
        let mut a = LogRecord::new(LogSeverity::Warn, "svc::users", "user not found");
        a.attributes = vec![
            KeyValue::new("user.id", 1001i64),
            KeyValue::new("ok", false),
        ];
        a.trace_id = TraceId::from(7u128);
        a.span_id = SpanId::from(9u64);
        a.trace_flags = TraceFlags::SAMPLED;
        let b = LogRecord::new(LogSeverity::Error, "svc::pay", "declined");
        let c = LogRecord::new(LogSeverity::Info, "svc::users", "");
        let bytes = LogsEncoder::new(&resource).encode(&[a, b, c]);
        let request = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
        let rl = &request.resource_logs[0];
        let service = &rl.resource.as_ref().unwrap().attributes;
        assert!(service.iter().any(|kv| kv.key == "service.name"
            && kv.value.as_ref().unwrap().value == Some(Any::StringValue("checkout".into()))));
        let scopes: Vec<&str> = rl
            .scope_logs
            .iter()
            .map(|s| s.scope.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(scopes, ["svc::users", "svc::pay"]);
        let users = &rl.scope_logs[0].log_records;
        assert_eq!(users.len(), 2);
        let r = &users[0];
        assert_eq!(r.severity_number, 13);
        assert_eq!(r.severity_text, "WARN");
        assert_eq!(
            r.body.as_ref().unwrap().value,
            Some(Any::StringValue("user not found".into()))
        );
        assert_eq!(r.attributes[0].key, "user.id");
        assert_eq!(
            r.attributes[0].value.as_ref().unwrap().value,
            Some(Any::IntValue(1001))
        );
        assert_eq!(r.trace_id, TraceId::from(7u128).to_bytes());
        assert_eq!(r.span_id, SpanId::from(9u64).to_bytes());
        assert_eq!(r.flags, 1);
        assert!(r.time_unix_nano > 0 && r.observed_time_unix_nano == r.time_unix_nano);
        assert_eq!(
            users[1].body.as_ref().unwrap().value,
            Some(Any::StringValue(String::new()))
        );
        assert!(users[1].trace_id.is_empty());
        assert_eq!(rl.scope_logs[1].log_records[0].severity_number, 17);
    }
}
