//! Prints a trace as a terminal waterfall: one line per span, indented under
//! its parent, with the service, the span's name and kind, a bar showing
//! when it ran within the trace, its duration and status; under it the
//! attributes worth reading and its `exception` events. Everything printed
//! comes from the exported spans, so it is what a tracing backend receives:
//! masked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// Terminal colors, on only for a terminal without `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Colors when standard output is a terminal, `NO_COLOR` is unset or
    /// empty (no-color.org), and `TERM` is not `dumb`.
    pub fn detect() -> Self {
        use std::io::IsTerminal as _;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            on: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    /// Whether colors are on (also used for the logs' colors).
    pub fn colored(self) -> bool {
        self.on
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    /// Bold.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    /// Dim (secondary information).
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    /// Red (errors).
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    /// Green (success).
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    /// Yellow (the caller's faults: 4xx codes).
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    /// The color of a service (by its position in the demo).
    pub fn service(self, index: usize, text: &str) -> String {
        self.paint(if index == 0 { "36" } else { "35" }, text)
    }
}

/// A span with the service that exported it.
pub struct ServiceSpan {
    /// The service's position (0 the gateway, 1 the backend), for colors.
    pub service_index: usize,
    /// The service's name.
    pub service: String,
    /// The span, as exported (masked).
    pub span: SpanData,
}

/// Width of the bar.
const BAR: usize = 28;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// The attributes worth a line under a span: the application's own
/// (`app.*`), captured headers, the database and outgoing-call details,
/// and the response status and error type.
fn key_attributes(span: &SpanData) -> Vec<&KeyValue> {
    const KEYS: &[&str] = &[
        "url.full",
        "http.response.status_code",
        "error.type",
        "db.system.name",
        "db.query.text",
    ];
    let mut picked: Vec<&KeyValue> = span
        .attributes
        .iter()
        .filter(|kv| {
            let k = kv.key.as_str();
            k.starts_with("app.") || k.starts_with("http.request.header.")
        })
        .collect();
    for key in KEYS {
        if let Some(kv) = span.attributes.iter().find(|kv| kv.key.as_str() == *key) {
            picked.push(kv);
        }
    }
    picked
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Array(opentelemetry::Array::String(items)) => items
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect::<Vec<_>>()
            .join(","),
        other => other.as_str().into_owned(),
    }
}

/// An `exception` event, as the engine's recorder writes it.
pub struct Exception {
    /// `exception.type` (the error code's name, or `panic`).
    pub type_name: String,
    /// `exception.message` (masked).
    pub message: String,
    /// `faultline.error.code`, when the error has one.
    pub code: Option<i64>,
    /// `faultline.error.severity`.
    pub severity: String,
}

/// The `exception` events of `span`.
pub fn exceptions(span: &SpanData) -> Vec<Exception> {
    span.events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| {
            let get = |key: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            Exception {
                type_name: get("exception.type")
                    .map(|v| v.as_str().into_owned())
                    .unwrap_or_default(),
                message: get("exception.message")
                    .map(|v| v.as_str().into_owned())
                    .unwrap_or_default(),
                code: match get("faultline.error.code") {
                    Some(Value::I64(c)) => Some(c),
                    _ => None,
                },
                severity: get("faultline.error.severity")
                    .map(|v| v.as_str().into_owned())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Renders the spans of one trace (all with the same trace id) as a tree.
pub fn render(spans: &[&ServiceSpan], style: Style) -> String {
    let mut out = String::new();
    if spans.is_empty() {
        return out;
    }
    let ids: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span.span_context.span_id(), i))
        .collect();
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        // A span whose parent was not exported (or is remote) is a root here.
        let parent = ids.get(&s.span.parent_span_id).copied();
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| spans[i].span.start_time);
    }
    let start = spans
        .iter()
        .map(|s| s.span.start_time)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let end = spans.iter().map(|s| s.span.end_time).max().unwrap_or(start);
    let total = since(start, end).max(Duration::from_micros(1));

    // The rows in tree order: (index, tree prefix of the line, prefix of the lines under it).
    let mut rows: Vec<(usize, String, String)> = Vec::new();
    fn walk(
        node: usize,
        lead: String,
        rest: String,
        children: &HashMap<Option<usize>, Vec<usize>>,
        rows: &mut Vec<(usize, String, String)>,
    ) {
        rows.push((node, lead, rest.clone()));
        let kids = children.get(&Some(node)).cloned().unwrap_or_default();
        for (n, kid) in kids.iter().enumerate() {
            let last = n + 1 == kids.len();
            let lead = format!("{rest}{}", if last { "└─ " } else { "├─ " });
            let more = format!("{rest}{}", if last { "   " } else { "│  " });
            walk(*kid, lead, more, children, rows);
        }
    }
    for root in children.get(&None).cloned().unwrap_or_default() {
        walk(root, String::new(), String::new(), &children, &mut rows);
    }

    let service_width = spans.iter().map(|s| s.service.len()).max().unwrap_or(0);
    let name_width = rows
        .iter()
        .map(|(i, lead, _)| lead.chars().count() + spans[*i].span.name.chars().count())
        .max()
        .unwrap_or(0);
    let detail_width = 100usize;

    for (i, lead, rest) in &rows {
        let s = spans[*i];
        let span = &s.span;
        let offset = since(start, span.start_time);
        let duration = since(span.start_time, span.end_time);
        let from = ((offset.as_secs_f64() / total.as_secs_f64()) * BAR as f64).floor() as usize;
        let from = from.min(BAR - 1);
        let len = ((duration.as_secs_f64() / total.as_secs_f64()) * BAR as f64).round() as usize;
        let len = len.clamp(1, BAR - from);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(len),
            " ".repeat(BAR - from - len)
        );
        let failed = matches!(span.status, Status::Error { .. });
        let status = if failed {
            style.red("error")
        } else {
            style.green("ok")
        };
        let bar = if failed {
            style.red(&bar)
        } else {
            style.service(s.service_index, &bar)
        };
        let name = format!("{lead}{}", span.name);
        let pad = name_width - name.chars().count();
        let mut line = format!(
            "  {}  {}{}  {:<8} {} {:>8}  {}",
            style.service(s.service_index, &format!("{:<service_width$}", s.service)),
            style.bold(&name),
            " ".repeat(pad),
            kind_name(&span.span_kind),
            bar,
            millis(duration),
            status,
        );
        let excs = exceptions(span);
        for e in &excs {
            if let Some(code) = e.code {
                let text = format!("code {code} {}", e.type_name);
                line.push_str("  ");
                line.push_str(&if failed {
                    style.red(&text)
                } else {
                    style.yellow(&text)
                });
            }
        }
        out.push_str(&line);
        out.push('\n');

        // The lines under the span: attributes, then exceptions.
        let indent = format!("  {:<service_width$}  {rest}   ", "");
        let mut pieces: Vec<String> = key_attributes(span)
            .into_iter()
            .map(|kv| format!("{}={}", kv.key, value_text(&kv.value)))
            .collect();
        if let Some(Value::Bool(true)) = attr(span, "faultline.request.cancelled") {
            pieces.push("cancelled".to_owned());
        }
        let mut current = String::new();
        for piece in pieces {
            if !current.is_empty()
                && current.chars().count() + piece.chars().count() + 2 > detail_width
            {
                let _ = writeln!(out, "{indent}{}", style.dim(&current));
                current.clear();
            }
            if !current.is_empty() {
                current.push_str("  ");
            }
            current.push_str(&piece);
        }
        if !current.is_empty() {
            let _ = writeln!(out, "{indent}{}", style.dim(&current));
        }
        for e in &excs {
            let text = format!(
                "exception {}: {}  (severity {})",
                e.type_name, e.message, e.severity
            );
            let _ = writeln!(
                out,
                "{indent}{}",
                if failed {
                    style.red(&text)
                } else {
                    style.yellow(&text)
                }
            );
        }
    }
    out
}
