//! Writing errors and panics onto spans as OpenTelemetry `exception` events.

use std::error::Error as StdError;
use std::fmt::Debug;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanRef, Status};

use crate::error::{ErrorCode, Severity, find_error_code};

/// Attribute keys faultline adds to `exception` events beside the
/// semantic-convention ones.
pub mod keys {
    /// The numeric application error code (int).
    pub const ERROR_CODE: &str = "faultline.error.code";
    /// The error code's name, such as `USER_NOT_FOUND`.
    pub const ERROR_NAME: &str = "faultline.error.name";
    /// `debug`, `info`, `warning`, `error` or `critical`.
    pub const SEVERITY: &str = "faultline.error.severity";
    /// `error` or `panic`.
    pub const KIND: &str = "faultline.error.kind";
}

/// What went wrong: an error value or a caught panic.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Failure<'a> {
    /// An error value, with the name of its type.
    Error {
        /// The error.
        error: &'a (dyn StdError + 'static),
        /// `std::any::type_name` of the error, when known.
        type_name: Option<&'static str>,
    },
    /// A caught panic.
    Panic {
        /// The panic payload as text (`&str` and `String` payloads; else a placeholder).
        message: &'a str,
        /// `file:line:column` of the panic, when known.
        location: Option<&'a str>,
        /// The captured backtrace as text, when captured.
        backtrace: Option<&'a str>,
    },
}

impl<'a> Failure<'a> {
    /// A failure for `error`, remembering its type name.
    pub fn error<E: StdError + 'static>(error: &'a E) -> Self {
        Failure::Error {
            error,
            type_name: Some(std::any::type_name::<E>()),
        }
    }
    /// A failure for an error known only as a trait object.
    pub fn dyn_error(error: &'a (dyn StdError + 'static)) -> Self {
        Failure::Error {
            error,
            type_name: None,
        }
    }
    /// The error code: found on the error or its source chain; `None` for panics.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Error { error, .. } => find_error_code(*error),
            Failure::Panic { .. } => None,
        }
    }
}

/// Records a [`Failure`] on a span.
///
/// An implementation must guarantee:
/// * it adds at most one event per call, and sets the span status to error
///   only for failures that make the response a 5xx: panics, errors without
///   a code, and codes whose HTTP status is 5xx (a 4xx is the caller's
///   fault, and OpenTelemetry's HTTP conventions leave a server span's status
///   unset for it);
/// * it never panics, whatever the error's `Display` does not do;
/// * the code it reports is the one found on the error or its source chain
///   ([`find_error_code`]), or `None`: it never guesses one.
///
/// It need not mask: every string of every span is masked by the export
/// pipeline before it leaves the process.
pub trait ExceptionRecorder: Send + Sync + Debug {
    /// Records `failure` on `span`; returns the error code it found.
    fn record(&self, span: &SpanRef<'_>, failure: &Failure<'_>) -> Option<ErrorCode>;
}

/// Shared recorders work too (the caller keeps a handle).
impl<T: ExceptionRecorder + ?Sized> ExceptionRecorder for std::sync::Arc<T> {
    fn record(&self, span: &SpanRef<'_>, failure: &Failure<'_>) -> Option<ErrorCode> {
        (**self).record(span, failure)
    }
}

/// The built-in recorder: a semantic-convention `exception` event with
/// `exception.type`, `exception.message`, `exception.stacktrace` (the source
/// chain, then the sanitized backtrace), and the code, name, severity and
/// kind of the error; for 5xx failures and panics, the span status set to
/// error with the message.
#[derive(Debug, Clone)]
pub struct DefaultExceptionRecorder {
    max_frames: usize,
}

impl Default for DefaultExceptionRecorder {
    fn default() -> Self {
        DefaultExceptionRecorder { max_frames: 64 }
    }
}

impl DefaultExceptionRecorder {
    /// A recorder that keeps at most `max_frames` backtrace frames.
    pub fn with_max_frames(max_frames: usize) -> Self {
        DefaultExceptionRecorder { max_frames }
    }
}

impl ExceptionRecorder for DefaultExceptionRecorder {
    fn record(&self, span: &SpanRef<'_>, failure: &Failure<'_>) -> Option<ErrorCode> {
        let code = failure.error_code();
        let mut attributes = Vec::with_capacity(8);
        let (type_name, message, stacktrace, severity, kind) = match failure {
            Failure::Error { error, type_name } => {
                let type_name = match (code, type_name) {
                    (Some(c), _) => c.name().to_owned(),
                    (None, Some(t)) => short_type_name(t),
                    (None, None) => "error".to_owned(),
                };
                let mut chain = String::new();
                let mut source = error.source();
                let mut depth = 0;
                while let Some(cause) = source {
                    if depth == 32 {
                        chain.push_str("caused by: ...\n");
                        break;
                    }
                    chain.push_str("caused by: ");
                    chain.push_str(&cause.to_string());
                    chain.push('\n');
                    source = cause.source();
                    depth += 1;
                }
                let severity = code.map_or(Severity::Error, |c| c.severity());
                (type_name, error.to_string(), chain, severity, "error")
            }
            Failure::Panic {
                message,
                location,
                backtrace,
            } => {
                let mut trace = String::new();
                if let Some(loc) = location {
                    trace.push_str("at ");
                    trace.push_str(&sanitize_path(loc));
                    trace.push('\n');
                }
                if let Some(bt) = backtrace {
                    trace.push_str(&sanitize_backtrace(bt, self.max_frames));
                }
                (
                    "panic".to_owned(),
                    (*message).to_owned(),
                    trace,
                    Severity::Critical,
                    "panic",
                )
            }
        };
        attributes.push(KeyValue::new("exception.type", type_name));
        attributes.push(KeyValue::new("exception.message", message.clone()));
        if !stacktrace.is_empty() {
            attributes.push(KeyValue::new("exception.stacktrace", stacktrace));
        }
        if let Some(c) = code {
            attributes.push(KeyValue::new(keys::ERROR_CODE, i64::from(c.code())));
            attributes.push(KeyValue::new(keys::ERROR_NAME, c.name()));
        }
        attributes.push(KeyValue::new(keys::SEVERITY, severity.as_str()));
        attributes.push(KeyValue::new(keys::KIND, kind));
        span.add_event("exception", attributes);
        let server_fault = match failure {
            Failure::Panic { .. } => true,
            Failure::Error { .. } => code.is_none_or(|c| c.status().is_server_error()),
        };
        if server_fault {
            span.set_status(Status::error(message));
        }
        code
    }
}

/// `my_crate::errors::ShopError` -> `ShopError` (generic arguments kept short too).
fn short_type_name(full: &str) -> String {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

/// Cuts an absolute source path to the part a reader needs: from the crate
/// directory of a registry or git dependency, from `src/` of the workspace,
/// or the file name, so that home directories and machine layout never leave
/// the process.
pub fn sanitize_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    if !path.starts_with('/') && !path.contains(":/") {
        return path; // already relative
    }
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(pos) = path.find(marker) {
            // .../registry/src/<index>/<crate-version>/src/lib.rs -> <crate-version>/src/lib.rs
            let rest = &path[pos + marker.len()..];
            if let Some((_, tail)) = rest.split_once('/') {
                return tail.to_owned();
            }
        }
    }
    if let Some(pos) = path.find("/rustc/") {
        let rest = &path[pos + "/rustc/".len()..];
        if let Some((_, tail)) = rest.split_once('/') {
            return format!("rustc/{tail}");
        }
    }
    if let Some(pos) = path.rfind("/src/") {
        // <workspace>/<crate>/src/x.rs -> <crate>/src/x.rs
        let before = &path[..pos];
        let krate = before.rsplit('/').next().unwrap_or("");
        return format!("{krate}/src/{}", &path[pos + "/src/".len()..]);
    }
    path.rsplit('/').next().unwrap_or("").to_owned()
}

/// Function names of the frames that belong to the panic machinery (at the
/// top of a panic's backtrace) rather than to the code that panicked.
const PANIC_MACHINERY: &[&str] = &[
    "std::panicking::",
    "core::panicking::",
    "std::sys::backtrace::",
    "__rustc::rust_begin_unwind",
    "rust_begin_unwind",
    "faultline_engine::panic::install_hook",
    "std::backtrace::Backtrace::",
    "PanicHookInfo",
];

/// The frame where faultline polls the handler: frames below it are the
/// server's and the runtime's, not the application's.
const HANDLER_BOUNDARY: &str = "faultline_engine::panic::CatchPanic";

/// Sanitizes a `std::backtrace::Backtrace` rendering: the panic machinery's
/// frames at the top and the server's and runtime's frames below faultline's
/// handler boundary are left out, absolute paths cut with [`sanitize_path`],
/// `0x...` addresses removed, at most `max_frames` frames kept (the rest counted).
pub fn sanitize_backtrace(text: &str, max_frames: usize) -> String {
    // Group the lines into frames: "  N: function" then "at file:line" lines.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let is_frame = trimmed
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_frame || frames.is_empty() {
            frames.push(vec![line]);
        } else if let Some(last) = frames.last_mut() {
            last.push(line);
        }
    }
    fn function<'a>(frame: &[&'a str]) -> &'a str {
        frame[0].split_once(':').map_or("", |(_, rest)| rest.trim())
    }
    // The machinery is the run of frames at the top; frames of the same
    // modules further down (the `catch_unwind` below a handler) stay.
    let skip_top = frames
        .iter()
        .take(32)
        .position(|f| !PANIC_MACHINERY.iter().any(|m| function(f).contains(m)))
        .unwrap_or(0);
    let frames = &frames[skip_top..];
    let (frames, cut_below) = match frames
        .iter()
        .position(|f| function(f).contains(HANDLER_BOUNDARY))
    {
        Some(i) => (&frames[..i], frames.len() - i),
        None => (frames, 0),
    };
    let mut out = String::with_capacity(text.len().min(16 * 1024));
    for frame in frames.iter().take(max_frames) {
        for line in frame {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(indent);
            match trimmed.strip_prefix("at ") {
                Some(location) => {
                    out.push_str("at ");
                    out.push_str(&sanitize_path(location));
                }
                None => out.push_str(&strip_addresses(trimmed)),
            }
            out.push('\n');
        }
    }
    let skipped = frames.len().saturating_sub(max_frames);
    if skipped > 0 {
        out.push_str(&format!("... {skipped} more frames\n"));
    }
    if cut_below > 0 {
        out.push_str(&format!(
            "... {cut_below} frames of the server and runtime\n"
        ));
    }
    out
}

fn strip_addresses(line: &str) -> String {
    line.split(' ')
        .filter(|w| {
            !(w.len() > 2
                && w.starts_with("0x")
                && w[2..]
                    .trim_end_matches(':')
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cut() {
        assert_eq!(
            sanitize_path(
                "/home/alice/.cargo/registry/src/index.example-0123456789abcdef/tokio-1.40.0/src/runtime/mod.rs:12:5"
            ),
            "tokio-1.40.0/src/runtime/mod.rs:12:5"
        );
        assert_eq!(
            sanitize_path("/home/alice/code/shop/checkout/src/handlers.rs:40:9"),
            "checkout/src/handlers.rs:40:9"
        );
        assert_eq!(
            sanitize_path(
                "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/core/src/panicking.rs:75:14"
            ),
            "rustc/library/core/src/panicking.rs:75:14"
        );
        assert_eq!(sanitize_path("src/main.rs:3:1"), "src/main.rs:3:1");
        assert_eq!(sanitize_path("/opt/app/main.rs"), "main.rs");
    }

    #[test]
    fn backtrace_is_sanitized_and_capped() {
        let bt = "   0: 0x55d0c0ffee12 - std::backtrace::Backtrace::create\n             at /rustc/abc/library/std/src/backtrace.rs:331:13\n   1: shop::handler\n             at /home/bob/shop/src/lib.rs:10:5\n   2: main\n   3: start\n";
        let s = sanitize_backtrace(bt, 2);
        assert!(!s.contains("/home/bob"), "{s}");
        assert!(!s.contains("0x55d0c0ffee12"), "{s}");
        assert!(s.contains("at shop/src/lib.rs:10:5"), "{s}");
        assert!(s.contains("... 1 more frames"), "{s}");
        assert!(!s.contains("start"), "{s}");
        assert!(
            !s.contains("Backtrace::create"),
            "the backtrace machinery is left out: {s}"
        );
    }

    #[test]
    fn panic_machinery_and_runtime_frames_are_left_out() {
        let bt = "   0: faultline_engine::panic::install_hook::{{closure}}\n             at ./engine/src/panic.rs:38:33\n   1: std::panicking::panic_with_hook\n             at /rustc/x/library/std/src/panicking.rs:833:13\n   2: core::panicking::panic_fmt\n   3: shop::checkout::charge\n             at /home/dev/shop/src/checkout.rs:7:9\n   4: <faultline_engine::panic::CatchPanic<F> as core::future::future::Future>::poll\n   5: tokio::runtime::task::harness::poll_future\n   6: std::thread::start\n";
        let s = sanitize_backtrace(bt, 64);
        assert!(s.starts_with("   3: shop::checkout::charge"), "{s}");
        assert!(s.contains("at shop/src/checkout.rs:7:9"), "{s}");
        assert!(!s.contains("tokio") && !s.contains("panicking"), "{s}");
        assert!(
            s.ends_with("... 3 frames of the server and runtime\n"),
            "{s}"
        );
    }

    #[test]
    fn catch_unwind_frames_below_the_handler_do_not_hide_it() {
        let bt = "   0: faultline_engine::panic::install_hook::{{closure}}\n   1: std::panicking::panic_with_hook\n   2: core::panicking::panic_fmt\n   3: service::App::panic\n             at /w/examples/service/main.rs:100:9\n   4: service::axum_app::panic::{{closure}}\n   5: std::panicking::catch_unwind::do_call\n   6: std::panicking::catch_unwind\n   7: <faultline_engine::panic::CatchPanic<F> as core::future::future::Future>::poll\n   8: tokio::runtime::task::harness::poll_future\n";
        let s = sanitize_backtrace(bt, 64);
        assert!(s.starts_with("   3: service::App::panic"), "{s}");
        assert!(s.contains("service::axum_app::panic"), "{s}");
    }

    #[test]
    fn short_names() {
        assert_eq!(short_type_name("a::b::ShopError"), "ShopError");
        assert_eq!(short_type_name("a::Wrap<b::C>"), "Wrap");
        assert_eq!(short_type_name("Plain"), "Plain");
    }
}
