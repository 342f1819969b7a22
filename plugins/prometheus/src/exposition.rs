//! Content negotiation, the Prometheus text format 0.0.4 (derived from
//! prometheus-client's OpenMetrics text) and the export pipeline's counters.

use std::sync::{Arc, Mutex};

use faultline_engine::export::ExportStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::labels::label;

/// Content type of OpenMetrics text 1.0.0 (with exemplars).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4 (no exemplars).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats a scrape can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// OpenMetrics text 1.0.0: exemplars, `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when
    /// `application/openmetrics-text` is acceptable and no less preferred
    /// than plain text; the Prometheus text format otherwise (also with no
    /// header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let mut openmetrics = 0.0_f64;
        let mut text = 0.0_f64;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0_f64;
            let mut version_ok = true;
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = v
                            .parse()
                            .ok()
                            .filter(|q: &f64| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version_ok = matches!(v, "1.0.0" | "0.0.1"),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text" if version_ok => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
        }
    }
}

/// Turns OpenMetrics text (as prometheus-client writes it) into the
/// Prometheus text format 0.0.4: counters' `# HELP`/`# TYPE` name the
/// `_total` sample, `info` becomes a gauge named `_info`, `# UNIT` and
/// `# EOF` go, exemplars are cut off the samples and `\"` in help text is
/// unescaped (0.0.4 knows only `\\` and `\n`).
pub(crate) fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // Renames of the current family: the OpenMetrics name and its 0.0.4 one.
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // prometheus-client writes TYPE right after HELP.
            let kind = lines
                .get(i)
                .and_then(|l| l.strip_prefix("# TYPE "))
                .and_then(|t| t.split_once(' '))
                .filter(|(n, _)| *n == name)
                .map(|(_, k)| k);
            let (new_name, new_kind) = text_family(name, kind.unwrap_or("unknown"));
            out.push_str("# HELP ");
            out.push_str(&new_name);
            out.push(' ');
            out.push_str(&help.replace("\\\"", "\""));
            out.push('\n');
            if kind.is_some() {
                i += 1;
                out.push_str("# TYPE ");
                out.push_str(&new_name);
                out.push(' ');
                out.push_str(new_kind);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (new_name, new_kind) = text_family(name, kind);
            out.push_str("# TYPE ");
            out.push_str(&new_name);
            out.push(' ');
            out.push_str(new_kind);
            out.push('\n');
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        out.push_str(strip_exemplar(line));
        out.push('\n');
    }
    out
}

/// A family's 0.0.4 name and type.
fn text_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_owned(), "gauge"),
        "histogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        "stateset" => (name.to_owned(), "gauge"),
        _ => (name.to_owned(), "untyped"),
    }
}

/// A sample line without its exemplar (` # {labels} value [timestamp]`).
fn strip_exemplar(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    // Skip the label set, whose values may hold `#`, `{`, `}` and escapes.
    if let Some(open) = line.find('{')
        && !line[..open].contains(' ')
    {
        i = open + 1;
        let mut in_quotes = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'}' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
    }
    match line[i.min(line.len())..].find(" # ") {
        Some(at) => &line[..i + at],
        None => line,
    }
}

/// The export pipeline's counters, rendered at scrape time from the stats
/// the engine passes to [`Prometheus::render`](crate::Prometheus::render).
#[derive(Debug, Default)]
pub(crate) struct ExportCollector {
    pub stats: Arc<Mutex<ExportStats>>,
}

/// `target_info`: the engine's resource as the labels of one series valued
/// 1 (the OpenTelemetry convention for Prometheus), so that metrics are
/// joined to the same service, host and process as its spans.
#[derive(Debug, Default)]
pub(crate) struct TargetInfo {
    pub labels: Arc<Mutex<Vec<(String, String)>>>,
}

pub(crate) const TARGET_INFO: &str = "target_info";

impl TargetInfo {
    /// The resource's attributes as labels: a name with anything but ASCII
    /// letters, digits and `_` has it replaced by `_` (`service.name`:
    /// `service_name`); a value is its text.
    pub(crate) fn set(&self, resource: &faultline_engine::opentelemetry_sdk::Resource) {
        let mut labels: Vec<(String, String)> = resource
            .iter()
            .map(|(k, v)| {
                let name = k
                    .as_str()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                (name, v.as_str().into_owned())
            })
            .collect();
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        *self.labels.lock().unwrap_or_else(|e| e.into_inner()) = labels;
    }
}

impl Collector for TargetInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        if labels.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            TARGET_INFO,
            "Target metadata: the resource of the service's spans and logs.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(family.encode_family(&*labels)?)
    }
}

#[derive(Debug)]
struct Exporter<'a>(&'a str);

#[derive(Debug)]
struct What(&'static str);

impl EncodeLabelSet for What {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "what", &self.0)
    }
}

impl EncodeLabelSet for Exporter<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "exporter", &self.0)
    }
}

pub(crate) const EXPORT_RECEIVED: &str = "faultline_export_spans_received";
pub(crate) const EXPORT_EXPORTED: &str = "faultline_export_spans_exported";
pub(crate) const EXPORT_RETRIES: &str = "faultline_export_retries";
pub(crate) const EXPORT_FAILED: &str = "faultline_export_failed_attempts";
pub(crate) const EXPORT_DROPPED: &str = "faultline_export_spans_dropped";
pub(crate) const EXPORT_REJECTED: &str = "faultline_export_spans_rejected";
pub(crate) const EXPORT_BUFFERED: &str = "faultline_export_spans_buffered";
pub(crate) const EXPORT_BUFFERED_BYTES: &str = "faultline_export_buffered"; // + "_bytes", the unit
pub(crate) const EXPORT_ENDED: &str = "faultline_export_spans_ended";
pub(crate) const LIMITS_CUT: &str = "faultline_span_limits_cut";
pub(crate) const LOGS_QUEUED: &str = "faultline_export_log_records_queued";
pub(crate) const LOGS_QUEUE_DROPPED: &str = "faultline_export_log_records_queue_dropped";
pub(crate) const KEEP_KEPT: &str = "faultline_error_keeping_traces_kept";
pub(crate) const KEEP_KEPT_SLOW: &str = "faultline_error_keeping_traces_kept_slow";
pub(crate) const KEEP_DISCARDED: &str = "faultline_error_keeping_traces_discarded";
pub(crate) const KEEP_CUT: &str = "faultline_error_keeping_spans_cut";
pub(crate) const KEEP_WAITING: &str = "faultline_error_keeping_traces_waiting";

/// The families of one signal's per-exporter counters (spans, log records).
struct ExporterFamilies {
    /// What one item is called in help texts (`Spans`, `Log records`).
    items: &'static str,
    /// What an attempt is called (`Export`, `Log export`).
    attempts: &'static str,
    exported: &'static str,
    retries: &'static str,
    failed: &'static str,
    dropped: &'static str,
    rejected: &'static str,
    buffered: &'static str,
    /// Without the `_bytes` suffix (the unit adds it).
    buffered_bytes: &'static str,
}

const SPAN_EXPORTERS: ExporterFamilies = ExporterFamilies {
    items: "Spans",
    attempts: "Export",
    exported: EXPORT_EXPORTED,
    retries: EXPORT_RETRIES,
    failed: EXPORT_FAILED,
    dropped: EXPORT_DROPPED,
    rejected: EXPORT_REJECTED,
    buffered: EXPORT_BUFFERED,
    buffered_bytes: EXPORT_BUFFERED_BYTES,
};

const LOG_EXPORTERS: ExporterFamilies = ExporterFamilies {
    items: "Log records",
    attempts: "Log export",
    exported: "faultline_export_log_records_exported",
    retries: "faultline_export_log_retries",
    failed: "faultline_export_log_failed_attempts",
    dropped: "faultline_export_log_records_dropped",
    rejected: "faultline_export_log_records_rejected",
    buffered: "faultline_export_log_records_buffered",
    buffered_bytes: "faultline_export_log_buffered",
};

impl ExporterFamilies {
    /// Each exporter's counters and buffer gauges, labelled `exporter`.
    fn encode(
        &self,
        encoder: &mut DescriptorEncoder,
        exporters: &[faultline_engine::export::ExporterStats],
    ) -> Result<(), std::fmt::Error> {
        type Pick = fn(&faultline_engine::export::ExporterStats) -> u64;
        let (items, attempts) = (self.items, self.attempts);
        let counters: [(&str, String, Pick); 5] = [
            (
                self.exported,
                format!("{items} the exporter's backend accepted."),
                |e| e.delivered,
            ),
            (
                self.retries,
                format!("{attempts} attempts repeated after a failure."),
                |e| e.retries,
            ),
            (
                self.failed,
                format!("{attempts} attempts that failed (errors, time-outs)."),
                |e| e.failed_attempts,
            ),
            (
                self.dropped,
                format!(
                    "{items} lost: buffer overflow, permanent errors, what shutdown could not deliver."
                ),
                |e| e.dropped,
            ),
            (
                self.rejected,
                format!("{items} the backend accepted and then rejected (OTLP partial success)."),
                |e| e.rejected,
            ),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(name, &help, None, MetricType::Counter)?;
            for e in exporters {
                ConstCounter::new(pick(e)).encode(family.encode_family(&Exporter(&e.name))?)?;
            }
        }
        let lower = items.to_lowercase();
        let mut family = encoder.encode_descriptor(
            self.buffered,
            &format!("{items} waiting in the exporter's retry buffer now."),
            None,
            MetricType::Gauge,
        )?;
        for e in exporters {
            let buffered = i64::try_from(e.buffered).unwrap_or(i64::MAX);
            ConstGauge::new(buffered).encode(family.encode_family(&Exporter(&e.name))?)?;
        }
        let mut family = encoder.encode_descriptor(
            self.buffered_bytes,
            &format!("Estimated memory of the {lower} in the exporter's retry buffer now."),
            Some(&prometheus_client::registry::Unit::Bytes),
            MetricType::Gauge,
        )?;
        for e in exporters {
            let bytes = i64::try_from(e.buffered_bytes).unwrap_or(i64::MAX);
            ConstGauge::new(bytes).encode(family.encode_family(&Exporter(&e.name))?)?;
        }
        Ok(())
    }
}

impl Collector for ExportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        {
            let counter = ConstCounter::new(stats.spans_received);
            let family = encoder.encode_descriptor(
                EXPORT_RECEIVED,
                "Spans handed to the export pipeline.",
                None,
                MetricType::Counter,
            )?;
            counter.encode(family)?;
        }
        SPAN_EXPORTERS.encode(&mut encoder, &stats.exporters)?;
        let logs = &stats.logs;
        for (name, help, value) in [
            (
                LOGS_QUEUED,
                "Log records the engine accepted into its export queue.",
                logs.records_queued,
            ),
            (
                LOGS_QUEUE_DROPPED,
                "Log records refused by the full export queue (a log storm): dropped.",
                logs.records_dropped_by_queue,
            ),
        ] {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family)?;
        }
        LOG_EXPORTERS.encode(&mut encoder, &logs.exporters)?;
        let keep = &stats.error_keeping;
        for (name, help, value) in [
            (
                KEEP_KEPT,
                "Unsampled traces exported because their request ended in an error or was slow (error and slow keeping).",
                keep.traces_kept,
            ),
            (
                KEEP_KEPT_SLOW,
                "Of the kept traces, those kept because their request was slow (FAULTLINE_KEEP_SLOW_MS).",
                keep.traces_kept_slow,
            ),
            (
                KEEP_DISCARDED,
                "Unsampled traces discarded: their request ended without an error and was not slow.",
                keep.traces_discarded,
            ),
            (
                KEEP_CUT,
                "Spans of unsampled traces cut by the error-keeping caps (traces waiting, spans per trace, waited too long).",
                keep.spans_cut,
            ),
        ] {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family)?;
        }
        let family = encoder.encode_descriptor(
            KEEP_WAITING,
            "Unsampled traces waiting for their request to end now.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(keep.traces_waiting).unwrap_or(i64::MAX)).encode(family)?;
        let family = encoder.encode_descriptor(
            EXPORT_ENDED,
            "Spans handed to the SDK's batch queue; minus faultline_export_spans_received_total: queued, or dropped by a full queue.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.spans_ended).encode(family)?;
        let mut family = encoder.encode_descriptor(
            LIMITS_CUT,
            "What the span limits cut: values truncated, attributes, events and links dropped.",
            None,
            MetricType::Counter,
        )?;
        let l = &stats.limits;
        for (what, n) in [
            ("value", l.values_truncated),
            ("attribute", l.attributes_dropped),
            ("event", l.events_dropped),
            ("link", l.links_dropped),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&What(what))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_first() {
        // Prometheus 2.42's Accept header.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;q=1, application/openmetrics-text;q=0.5")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text; Version=1.0.0")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn exemplars_are_cut_off_even_with_tricky_label_values() {
        assert_eq!(
            strip_exemplar(r#"x_total{a="b # {c}\"} # "} 1 # {trace_id="ab"} 1.0 1700000000.5"#),
            r#"x_total{a="b # {c}\"} # "} 1"#
        );
        assert_eq!(
            strip_exemplar("x_total 3 # {trace_id=\"ab\"} 1"),
            "x_total 3"
        );
        assert_eq!(strip_exemplar("x_total 3"), "x_total 3");
        assert_eq!(strip_exemplar(r#"x{a="}"} 3"#), r#"x{a="}"} 3"#);
    }

    #[test]
    fn openmetrics_becomes_text_0_0_4() {
        let om = "# HELP a_requests Requests \\\"served\\\".\n# TYPE a_requests counter\na_requests_total{r=\"/\"} 3 # {trace_id=\"ab\"} 1\n# HELP b Build.\n# TYPE b info\nb_info{v=\"1\"} 1\n# HELP c_seconds Time.\n# TYPE c_seconds histogram\n# UNIT c_seconds seconds\nc_seconds_sum 1.5\nc_seconds_count 2\nc_seconds_bucket{le=\"+Inf\"} 2 # {trace_id=\"cd\"} 0.7 1.0\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP a_requests_total Requests \"served\".\n# TYPE a_requests_total counter\na_requests_total{r=\"/\"} 3\n# HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n# HELP c_seconds Time.\n# TYPE c_seconds histogram\nc_seconds_sum 1.5\nc_seconds_count 2\nc_seconds_bucket{le=\"+Inf\"} 2\n"
        );
    }
}
