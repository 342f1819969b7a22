//! Bodies that count gRPC messages and end a span when the stream ends.

use std::future::Future as _;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use bytes::Buf;
use faultline_engine::opentelemetry::trace::SpanRef;
use faultline_engine::opentelemetry::{Context, KeyValue};
use faultline_engine::panic::{CatchPanic, CaughtPanic};
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use tonic::body::Body as TonicBody;

/// Messages a call received (a server: requests; a client: responses).
const RECEIVED: &str = "faultline.rpc.messages.received";
/// Messages a call sent.
const SENT: &str = "faultline.rpc.messages.sent";

/// Records a call's message counts on its span.
pub(crate) fn record_messages(span: &SpanRef<'_>, received: u64, sent: u64) {
    for (key, n) in [(RECEIVED, received), (SENT, sent)] {
        span.set_attribute(KeyValue::new(key, i64::try_from(n).unwrap_or(i64::MAX)));
    }
}

/// `request` with its body counting the messages it carries into the
/// returned counter.
pub(crate) fn counted(request: Request<TonicBody>) -> (Request<TonicBody>, Arc<AtomicU64>) {
    let total = Arc::new(AtomicU64::new(0));
    let tally = Some(Tally(total.clone()));
    (
        request.map(|body| TonicBody::new(TracedBody::new(body, tally))),
        total,
    )
}

/// Counts a request's messages into a shared total as they come.
struct Tally(Arc<AtomicU64>);

impl StreamEnd for Tally {
    fn end(self, _: Option<&mut HeaderMap>, _: u64) {}

    fn counted(&self, begun: u64) {
        self.0.fetch_add(begun, Ordering::Relaxed);
    }
}

/// Counts the messages of a gRPC stream: each is a 5-byte prefix (a
/// compression flag and a big-endian length) and that many bytes, however
/// the stream is cut into data frames.
#[derive(Debug, Default)]
pub(crate) struct MessageCounter {
    prefix: [u8; 5],
    filled: usize,
    remaining: u64,
    messages: u64,
}

impl MessageCounter {
    /// Reads one data frame; returns how many messages began in it.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let before = self.messages;
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = (5 - self.filled).min(data.len());
            self.prefix[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == 5 {
                self.filled = 0;
                self.messages += 1;
                let [_, a, b, c, d] = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        self.messages - before
    }
}

/// What to do when a traced stream ends.
pub(crate) trait StreamEnd: Sized {
    /// The stream ended: with its trailers (which may be rewritten), or
    /// without (`None`: it ended early or failed); `messages` it carried.
    fn end(self, trailers: Option<&mut HeaderMap>, messages: u64);

    /// `begun` messages began in a data frame.
    fn counted(&self, begun: u64) {
        let _ = begun;
    }

    /// The context to poll the stream in with its panics caught (`None`:
    /// polled as it is, a panic unwinds).
    fn guard(&self) -> Option<Context> {
        None
    }

    /// The stream panicked (polled under [`guard`](StreamEnd::guard)):
    /// the trailers that end it instead.
    fn panicked(self, panic: &CaughtPanic, messages: u64) -> HeaderMap {
        let _ = panic;
        self.end(None, messages);
        HeaderMap::new()
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its messages and calls its [`StreamEnd`]
    /// when the stream ends (a body dropped before its end drops the
    /// `StreamEnd` instead). A server's stream is polled inside the call's
    /// span context, and a panic while it is polled ends the stream with an
    /// error status instead of unwinding.
    pub struct TracedBody<B, E> {
        #[pin]
        inner: B,
        counter: MessageCounter,
        end: Option<E>,
        panicked: bool,
    }
}

impl<B, E> TracedBody<B, E> {
    /// `inner`, ending with `end` (`None`: nothing to do, the span has ended).
    pub(crate) fn new(inner: B, end: Option<E>) -> Self {
        TracedBody {
            inner,
            counter: MessageCounter::default(),
            end,
            panicked: false,
        }
    }
}

impl<B, E> Body for TracedBody<B, E>
where
    B: Body,
    E: StreamEnd,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.panicked {
            return Poll::Ready(None);
        }
        let mut polled = match this.end.as_ref().and_then(StreamEnd::guard) {
            None => std::task::ready!(this.inner.poll_frame(cx)),
            Some(span) => {
                let mut inner = this.inner;
                let frame = std::future::poll_fn(|cx| inner.as_mut().poll_frame(cx));
                match std::task::ready!(pin!(CatchPanic::new(frame, span)).poll(cx)) {
                    Ok(polled) => polled,
                    Err(panic) => {
                        *this.panicked = true;
                        let trailers = this
                            .end
                            .take()
                            .map(|end| end.panicked(&panic, this.counter.messages))
                            .unwrap_or_default();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                }
            }
        };
        match &mut polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(end) = this.end {
                        end.counted(this.counter.feed(data.chunk()));
                    }
                } else if let Some(trailers) = frame.trailers_mut()
                    && let Some(end) = this.end.take()
                {
                    end.end(Some(trailers), this.counter.messages);
                }
            }
            Some(Err(_)) | None => {
                if let Some(end) = this.end.take() {
                    end.end(None, this.counter.messages);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.panicked || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn messages_are_counted_however_the_stream_is_cut() {
        let stream: Vec<u8> = [0, 3, 300, 1, 0].into_iter().flat_map(message).collect();
        for cut in 1..=stream.len() {
            let mut counter = MessageCounter::default();
            let total: u64 = stream.chunks(cut).map(|c| counter.feed(c)).sum();
            assert_eq!(total, 5, "chunks of {cut}");
            assert_eq!(counter.messages, 5);
        }
    }
}
