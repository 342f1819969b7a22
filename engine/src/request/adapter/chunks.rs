//! Bodies of a framework whose body type yields data chunks rather than
//! `http_body` frames (actix-web's `MessageBody`), as the core's
//! [`Body`]: written once, the framework's glue being its two methods.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::TracedBody;

/// A framework's body that yields data chunks and tells its length: an
/// adapter implements it on a wrapper of its framework's body, and hands
/// the core a [`ChunkBody`] of it.
pub trait Chunks: Unpin {
    /// The body's error.
    type Error;

    /// The next chunk of data; `None` at the end.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>>;

    /// The body's exact length in bytes (`Some(0)`: nothing to send), or
    /// `None` when it streams.
    fn exact_len(&self) -> Option<u64>;
}

/// A [`Chunks`] body as an `http_body::Body` of data frames.
#[derive(Debug)]
pub struct ChunkBody<C>(pub C);

impl<C: Chunks> Body for ChunkBody<C> {
    type Data = Bytes;
    type Error = C::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, C::Error>>> {
        let chunk = ready!(self.get_mut().0.poll_chunk(cx));
        Poll::Ready(chunk.map(|c| c.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.exact_len() == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .exact_len()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

impl<C: Chunks> TracedBody<ChunkBody<C>> {
    /// The next chunk of the response: the framework's own body polled as
    /// it is when no span waits on it, else through the wrapper, which ends
    /// the span at the body's end.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, C::Error>>> {
        if let Some(ChunkBody(body)) = self.framework_mut() {
            return body.poll_chunk(cx);
        }
        let frame = ready!(Pin::new(self).poll_frame(cx));
        // A `ChunkBody` makes data frames only (a problem's text too).
        Poll::Ready(frame.map(|f| f.map(|f| f.into_data().unwrap_or_default())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of a list, with or without its length told.
    struct List(Vec<&'static str>, bool);

    impl Chunks for List {
        type Error = std::convert::Infallible;

        fn poll_chunk(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
            let next = (!self.0.is_empty()).then(|| self.0.remove(0));
            Poll::Ready(next.map(|c| Ok(Bytes::from_static(c.as_bytes()))))
        }

        fn exact_len(&self) -> Option<u64> {
            self.1.then(|| self.0.iter().map(|c| c.len() as u64).sum())
        }
    }

    fn drain(mut body: TracedBody<ChunkBody<List>>) -> Vec<Bytes> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = body.poll_chunk(&mut cx) {
            out.push(chunk);
        }
        out
    }

    #[test]
    fn chunks_become_data_frames_with_their_length() {
        let sized = ChunkBody(List(vec!["ab", "c"], true));
        assert_eq!(sized.size_hint().exact(), Some(3));
        assert!(!sized.is_end_stream());
        assert!(ChunkBody(List(vec![], true)).is_end_stream());
        let streamed = ChunkBody(List(vec!["ab"], false));
        assert_eq!(streamed.size_hint().exact(), None);
        assert!(!streamed.is_end_stream());
        assert_eq!(drain(TracedBody::new(sized)), ["ab", "c"]);
        let text = TracedBody::text("problem".to_owned());
        assert_eq!(drain(text), ["problem"]);
    }
}
