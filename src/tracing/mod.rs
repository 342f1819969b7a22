//! faultline inside the `tracing` ecosystem (feature `tracing`): `tracing`
//! spans become OpenTelemetry spans of the request's trace, `tracing`
//! events become events of the span current where they were emitted (the
//! request's server span when the handler has no span of its own), log
//! lines carrying the trace and span ids, and OTLP log records: all masked
//! by the engine's masker.
//!
//! [`setup::init`](crate::setup::init) installs all of it as the global
//! subscriber (filtered by `RUST_LOG`, default `info`). An application with
//! a subscriber of its own turns that off
//! ([`Setup::subscriber(false)`](crate::setup::Setup::subscriber)) and adds
//! faultline's layers to its registry instead:
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//! # fn run(engine: faultline::Engine) {
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::EnvFilter::new("info"))
//!     // spans, span events, OTLP log records, and masked log lines with ids
//!     .with(faultline::tracing::layers(&engine))
//!     // ... the application's own layers ...
//!     .init();
//! # }
//! ```
//!
//! Records of the `log` crate (written by actix-web and many other crates)
//! become `tracing` events once [`forward_log`] has run (`setup::init`
//! calls it): the same span events, log records and lines, with the
//! record's own target, file and line.
//!
//! [`layers`] is [`layer`] (spans) and a [`LogLayer`] (events: span events,
//! log records, and log lines in the configuration's
//! [`LogFormat`] on standard output); without
//! faultline's lines (the application writes its own),
//! `layers_with(&engine, LogLayer::new(&engine).without_lines())`.
//!
//! Inside a request, the adapters make the request's context current while
//! the handler runs, so a `tracing` span opened there finds its parent. A
//! task spawned from a handler keeps the trace with
//! `tracing::Instrument::in_current_span` when the handler is inside a
//! `tracing` span, and in any case with
//! `opentelemetry::trace::FutureExt::with_context(task, cx)`, where `cx` is
//! the request's context (`opentelemetry::Context::current()` in the
//! handler, or the adapter's `RequestTrace` extractor).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use faultline_engine::Engine;
use faultline_engine::config::LogFormat;
use faultline_engine::export::{LogRecord, LogSeverity};
use faultline_engine::opentelemetry::KeyValue;
use faultline_engine::opentelemetry::trace::TraceContextExt as _;
use faultline_engine::opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layered};
use tracing_subscriber::registry::LookupSpan;

/// The dependencies whose debug logs can hold request data or credentials
/// (raw query strings, body errors, export headers): faultline's
/// subscriber lets them print `info` at most, whatever `RUST_LOG` asks.
pub const CAPPED_TARGETS: [&str; 12] = [
    "warp",
    "poem",
    "hyper",
    "hyper_util",
    "h2",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
];

/// The span layer: tracing-opentelemetry's, seeing spans only (events are
/// the [`LogLayer`]'s, which records them typed and masked).
pub type SpanLayer<S> =
    Filtered<OpenTelemetryLayer<S, SdkTracer>, FilterFn<fn(&Metadata<'_>) -> bool>, S>;

/// Every faultline layer: [`layer`] and a [`LogLayer`].
pub type Layers<S, W = fn() -> std::io::Stdout> = Layered<LogLayer<W>, SpanLayer<S>, S>;

fn is_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span()
}

/// A `tracing-subscriber` layer that records `tracing` spans through the
/// engine's tracer (spans only: events are the [`LogLayer`]'s; [`layers`]
/// gives both).
pub fn layer<S>(engine: &Engine) -> SpanLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(engine.tracer().clone())
        .with_filter(FilterFn::new(is_span as fn(&Metadata<'_>) -> bool))
}

/// Every faultline layer: [`layer`] (spans) and a [`LogLayer`] (events:
/// span events, log records, and the configuration's log lines on standard
/// output).
pub fn layers<S>(engine: &Engine) -> Layers<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    layers_with(engine, LogLayer::new(engine))
}

/// [`layer`] (spans) and the given [`LogLayer`] (say, one
/// [`without_lines`](LogLayer::without_lines), or writing elsewhere).
pub fn layers_with<S, W>(engine: &Engine, events: LogLayer<W>) -> Layers<S, W>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    layer(engine).and_then(events)
}

/// The filters faultline's subscriber applies, as two global filter
/// layers (an event passes when both let it): `RUST_LOG` (default `info`;
/// an invalid value falls back to `info`), and [`CAPPED_TARGETS`] at
/// `info` at most.
pub fn default_filters() -> (
    tracing_subscriber::EnvFilter,
    tracing_subscriber::filter::Targets,
) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    let asked = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS.map(|target| (target, LevelFilter::INFO)));
    (asked, cap)
}

/// faultline's `tracing` layer for events. For each event it:
///
/// * adds it to the OpenTelemetry span current where it was emitted: the
///   `tracing` span's (through [`layer`]), else the request's server span;
///   name = the message, fields as typed attributes (an integer stays an
///   integer), `level` and `target` attributes; the export pipeline masks
///   it with the span;
/// * masks its message and fields (the secret-key rule on field names
///   included), unless the configuration turns masking off;
/// * writes one log line (text or JSON) with the trace and span ids of the
///   span current there, unless [`without_lines`](LogLayer::without_lines);
/// * hands an OTLP log record with the same ids to the engine's log
///   exporters, when there are any.
pub struct LogLayer<W = fn() -> std::io::Stdout> {
    engine: Engine,
    mask: bool,
    format: Option<LogFormat>,
    ansi: bool,
    writer: W,
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("mask", &self.mask)
            .field("format", &self.format)
            .field("ansi", &self.ansi)
            .finish_non_exhaustive()
    }
}

impl LogLayer {
    /// The layer of `engine`: lines in the configuration's format on
    /// standard output (colour only on a terminal).
    pub fn new(engine: &Engine) -> Self {
        LogLayer {
            engine: engine.clone(),
            mask: engine.config().pii_masking(),
            format: Some(engine.config().logs().format()),
            ansi: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            writer: std::io::stdout,
        }
    }
}

impl<W> LogLayer<W> {
    /// Writes no log lines (span events and log records only).
    pub fn without_lines(mut self) -> Self {
        self.format = None;
        self
    }

    /// Writes lines in `format`.
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Whether text lines colour their level (default: when standard
    /// output is a terminal).
    pub fn ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }

    /// Writes lines to `writer` (standard error, a file, a buffer). The
    /// colour setting is not changed: call [`ansi`](LogLayer::ansi) too.
    pub fn writer<W2>(self, writer: W2) -> LogLayer<W2>
    where
        W2: for<'w> MakeWriter<'w> + 'static,
    {
        LogLayer {
            engine: self.engine,
            mask: self.mask,
            format: self.format,
            ansi: self.ansi,
            writer,
        }
    }
}

/// An event's message and fields, typed as OpenTelemetry values.
/// Forwards the records of the `log` crate to `tracing` (with their level,
/// target, message, file and line), so that faultline's layers see them
/// like any event: call it once, after installing a subscriber of your own
/// with faultline's layers (`setup::init` calls it with its own). It does
/// nothing when the process has a `log` logger already, and returns
/// whether it was installed. `log`'s maximum level becomes `TRACE`: the
/// subscriber's filters (`RUST_LOG`) decide what is kept.
pub fn forward_log() -> bool {
    tracing_log::LogTracer::init().is_ok()
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
    /// A `log` record's event: its `log.*` fields (target, module, file,
    /// line) are metadata, not attributes.
    from_log: bool,
}

impl Fields {
    fn keeps(&self, field: &Field) -> bool {
        !(self.from_log && field.name().starts_with("log."))
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.keeps(field) {
            self.attributes.push(KeyValue::new(field.name(), value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.keeps(field) {
            return;
        }
        match i64::try_from(value) {
            Ok(v) => self.attributes.push(KeyValue::new(field.name(), v)),
            Err(_) => self
                .attributes
                .push(KeyValue::new(field.name(), value.to_string())),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else if self.keeps(field) {
            self.attributes
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else if self.keeps(field) {
            self.attributes
                .push(KeyValue::new(field.name(), format!("{value:?}")));
        }
    }
}

fn severity(level: &Level) -> LogSeverity {
    match *level {
        Level::TRACE => LogSeverity::Trace,
        Level::DEBUG => LogSeverity::Debug,
        Level::INFO => LogSeverity::Info,
        Level::WARN => LogSeverity::Warn,
        _ => LogSeverity::Error,
    }
}

thread_local! {
    /// The line being written, reused from event to event.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // A `log` record's event has a placeholder's metadata (target
        // `log`); its own target, file and line are in its fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields {
            message: None,
            attributes: Vec::with_capacity(meta.fields().len()),
            from_log: normalized.is_some(),
        };
        let target: Cow<'static, str> = match &normalized {
            Some(meta) => Cow::Owned(meta.target().to_owned()),
            None => Cow::Borrowed(event.metadata().target()),
        };
        event.record(&mut fields);
        let message = fields.message.unwrap_or_else(|| meta.name().to_owned());
        let mut attributes = fields.attributes;

        let cx = faultline_engine::opentelemetry::Context::current();
        let span = cx.span();
        let span_context = span.span_context().clone();
        // Nothing faultline's own export does is exported again as logs.
        let suppressed = cx.is_telemetry_suppressed();
        if !suppressed && span.is_recording() {
            // Raw: the export pipeline masks span events with their span.
            let mut event_attributes = Vec::with_capacity(attributes.len() + 2);
            event_attributes.extend(attributes.iter().cloned());
            event_attributes.push(KeyValue::new("level", meta.level().as_str()));
            event_attributes.push(KeyValue::new("target", target.clone()));
            span.add_event(message.clone(), event_attributes);
        }

        let export = !suppressed && self.engine.logs_enabled();
        if self.format.is_none() && !export && !self.engine.has_correlators() {
            return;
        }
        let masker = self.engine.masker();
        let body = match self.mask {
            true => match masker.mask(&message) {
                Cow::Owned(masked) => masked,
                Cow::Borrowed(_) => message,
            },
            false => message,
        };
        if self.mask {
            faultline_engine::export::mask_attributes(masker, &mut attributes);
        }
        let mut record = LogRecord::new(severity(meta.level()), target, body);
        record.attributes = attributes;
        if span_context.is_valid() {
            record.trace_id = span_context.trace_id();
            record.span_id = span_context.span_id();
            record.trace_flags = span_context.trace_flags();
        }

        if let Some(format) = self.format {
            LINE.with(|line| {
                let mut line = match line.try_borrow_mut() {
                    Ok(line) => line,
                    // An event emitted while a line is written (a writer
                    // that logs): written through a fresh buffer.
                    Err(_) => return self.write_line(&record, format, &mut String::new()),
                };
                line.clear();
                self.write_line(&record, format, &mut line);
            });
        }
        if record.has_span() && self.engine.has_correlators() {
            self.engine.notify_log(&record);
        }
        if export {
            self.engine.emit_log(record);
        }
    }
}

impl<W> LogLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn write_line(&self, record: &LogRecord, format: LogFormat, line: &mut String) {
        match format {
            LogFormat::Json => record.write_json(line),
            _ => record.write_text(line, self.ansi),
        }
        line.push('\n');
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}
