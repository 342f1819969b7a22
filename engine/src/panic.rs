//! Catching panics in request handlers without printing their payloads.
//!
//! A handler's future runs inside [`CatchPanic`]: a panic while it is polled
//! is caught and returned as a [`CaughtPanic`] (message, location and a
//! backtrace captured at the panic site), so that the adapter can record it
//! on the span and answer 500. The process-wide panic hook that
//! [`install_hook`] installs stays silent for panics caught this way (the
//! default hook would print the payload, personal data included, to
//! standard error); every other panic goes to the hook that was there before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context as TaskContext, Poll};

thread_local! {
    /// What the [`CatchPanic`] futures being polled on this thread set: one
    /// thread-local, reached once when a poll starts and once when it ends.
    static POLLING: Polling = const {
        Polling {
            catching: Cell::new(false),
            request: Cell::new(None),
        }
    };
    /// What the hook saw of the last caught panic on this thread.
    static LAST: RefCell<Option<(Option<String>, Option<String>)>> = const { RefCell::new(None) };
}

/// The state of the [`CatchPanic`] polls in progress on a thread.
struct Polling {
    /// True while a `CatchPanic` future is being polled.
    catching: Cell<bool>,
    /// The context of the request whose handler is being polled (set by a
    /// [`CatchPanic`] made with [`for_request`](CatchPanic::for_request)),
    /// for `RequestContext::current`.
    request: Cell<Option<opentelemetry::Context>>,
}

static HOOK: Once = Once::new();

/// Installs faultline's panic hook once per process (later calls do
/// nothing). It wraps the hook that was installed before it.
pub fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if caught_by_request() {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                LAST.with(|last| *last.borrow_mut() = Some((location, Some(backtrace))));
            } else {
                previous(info);
            }
        }));
    });
}

/// Whether a panic on this thread now would be caught by a traced request
/// (a [`CatchPanic`] future is being polled here). A process-wide panic
/// reporter (the Sentry plugin's, say) uses it to leave such panics to the
/// request path, which reports them with their trace context.
pub fn caught_by_request() -> bool {
    POLLING.with(|p| p.catching.get())
}

/// A panic caught in a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaughtPanic {
    /// The payload as text (`&str` and `String` payloads; a placeholder for others).
    pub message: String,
    /// `file:line:column` of the panic, when the hook saw it.
    pub location: Option<String>,
    /// The backtrace at the panic site, when the hook captured it.
    pub backtrace: Option<String>,
}

impl CaughtPanic {
    /// A panic with `message`, without location or backtrace (set
    /// [`location`](Self::location) and [`backtrace`](Self::backtrace) when
    /// known).
    pub fn new(message: impl Into<String>) -> Self {
        CaughtPanic {
            message: message.into(),
            location: None,
            backtrace: None,
        }
    }
}

impl CaughtPanic {
    fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-text payload".to_owned()
        };
        let (location, backtrace) = LAST
            .with(|last| last.borrow_mut().take())
            .unwrap_or((None, None));
        CaughtPanic {
            message,
            location,
            backtrace,
        }
    }

    /// As the exception recorder's input.
    pub fn as_failure(&self) -> crate::exception::Failure<'_> {
        crate::exception::Failure::Panic {
            message: &self.message,
            location: self.location.as_deref(),
            backtrace: self.backtrace.as_deref(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that catches a panic of the future it wraps and attaches an
    /// OpenTelemetry context while it is polled (so that the handler, its
    /// `tracing` spans and its outgoing calls see the request's span).
    pub struct CatchPanic<F> {
        #[pin]
        inner: F,
        cx: opentelemetry::Context,
        request: bool,
    }
}

impl<F> CatchPanic<F> {
    /// Wraps `inner`, which runs with `cx` as the current context.
    pub fn new(inner: F, cx: opentelemetry::Context) -> Self {
        CatchPanic {
            inner,
            cx,
            request: false,
        }
    }

    /// Wraps a request's handler: as [`new`](CatchPanic::new), and `cx` is
    /// also the request context that [`current_request`] returns while
    /// `inner` is polled.
    pub(crate) fn for_request(inner: F, cx: opentelemetry::Context) -> Self {
        CatchPanic {
            inner,
            cx,
            request: true,
        }
    }
}

/// The context of the request whose handler is being polled on this
/// thread, if any.
pub(crate) fn current_request() -> Option<opentelemetry::Context> {
    with_request(Option::clone)
}

/// Whether a request's handler is being polled on this thread
/// ([`current_request`] is `Some`), without cloning its context.
pub(crate) fn in_request() -> bool {
    with_request(Option::is_some)
}

/// `f` of the request context set on this thread (left in place).
fn with_request<T>(f: impl FnOnce(&Option<opentelemetry::Context>) -> T) -> T {
    POLLING.with(|p| {
        let cx = p.request.take();
        let out = f(&cx);
        p.request.set(cx);
        out
    })
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, CaughtPanic>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (cx, request) = (this.cx, *this.request);
        let _attached = cx.clone().attach();
        // A request's context moves into the thread's cell while its
        // handler is polled, and back after (no second clone of it);
        // another future leaves the cell as it is.
        let (was, outer) = POLLING.with(|p| {
            let outer = request.then(|| p.request.replace(Some(std::mem::take(cx))));
            (p.catching.replace(true), outer)
        });
        let polled = catch_unwind(AssertUnwindSafe(|| this.inner.poll(task)));
        let inner = POLLING.with(|p| {
            p.catching.set(was);
            outer.map(|outer| p.request.replace(outer))
        });
        if let Some(Some(inner)) = inner {
            *cx = inner;
        }
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(CaughtPanic::from_payload(payload))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn span_of(cx: &opentelemetry::Context) -> u64 {
        u64::from_be_bytes(cx.span().span_context().span_id().to_bytes())
    }

    fn context(span: u64) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(
            opentelemetry::trace::SpanContext::new(
                opentelemetry::trace::TraceId::from(1),
                opentelemetry::trace::SpanId::from(span),
                opentelemetry::trace::TraceFlags::SAMPLED,
                true,
                Default::default(),
            ),
        )
    }

    #[test]
    fn the_current_request_is_set_while_a_request_future_is_polled() {
        assert!(current_request().is_none());
        let seen = block_on(CatchPanic::for_request(
            async {
                let outer = current_request().map(|cx| span_of(&cx));
                // A nested request (a service calling itself in process),
                // and a future that is not a request's.
                let inner = CatchPanic::for_request(
                    async { current_request().map(|cx| span_of(&cx)) },
                    context(2),
                )
                .await
                .unwrap();
                let plain = CatchPanic::new(
                    async { current_request().map(|cx| span_of(&cx)) },
                    context(3),
                )
                .await
                .unwrap();
                // Polled again after `Pending`: the request's context is
                // back, current and as the request's.
                tokio::task::yield_now().await;
                let after = current_request().map(|cx| span_of(&cx));
                let current = span_of(&opentelemetry::Context::current());
                assert!(in_request());
                (outer, inner, plain, after, current)
            },
            context(1),
        ))
        .unwrap();
        assert_eq!(seen, (Some(1), Some(2), Some(1), Some(1), 1));
        assert!(current_request().is_none());
        assert!(!in_request());
        // Also after a panic.
        let _ = block_on(CatchPanic::for_request(
            async { panic!("handler failed") },
            context(4),
        ));
        assert!(current_request().is_none());
    }

    #[test]
    fn a_panic_is_caught_with_message_location_and_backtrace() {
        install_hook();
        install_hook();
        let caught = block_on(CatchPanic::new(
            async {
                if true {
                    panic!("payment worker crashed for {}", "alice@example.com");
                }
                1
            },
            opentelemetry::Context::new(),
        ))
        .unwrap_err();
        assert_eq!(
            caught.message,
            "payment worker crashed for alice@example.com"
        );
        assert!(caught.location.as_deref().unwrap().contains("panic.rs"));
        assert!(caught.backtrace.is_some());

        let caught = block_on(CatchPanic::new(
            async { std::panic::panic_any(42_u8) },
            opentelemetry::Context::new(),
        ))
        .unwrap_err();
        assert_eq!(caught.message, "panic with a non-text payload");
    }

    #[test]
    fn the_context_is_current_while_polled_and_output_passes_through() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let sc = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(sc);
        let out = block_on(CatchPanic::new(
            async {
                tokio::task::yield_now().await;
                opentelemetry::Context::current()
                    .span()
                    .span_context()
                    .trace_id()
            },
            cx,
        ));
        assert_eq!(out, Ok(TraceId::from(7)));
        assert!(
            !opentelemetry::Context::current()
                .span()
                .span_context()
                .is_valid()
        );
    }
}
