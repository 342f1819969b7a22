//! What an adapter that serves connections itself (warp's) shares: the
//! peer address of the connection whose requests are polled on this
//! thread, lent while the connection's future (and each future it spawns)
//! is polled instead of inserted into every request; and what to do when
//! accepting a connection fails.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

thread_local! {
    /// The peer lent by the [`WithPeer`] being polled on this thread.
    static PEER: Cell<Option<SocketAddr>> = const { Cell::new(None) };
}

pin_project_lite::pin_project! {
    /// A connection's future (or a future it spawns, such as an HTTP/2
    /// stream's), with its peer address lent to [`current_peer`] while
    /// polled: two thread-local writes a poll, nothing per request.
    #[derive(Debug)]
    pub struct WithPeer<F> {
        #[pin]
        inner: F,
        peer: SocketAddr,
    }
}

impl<F> WithPeer<F> {
    /// `inner`, served for `peer`.
    pub fn new(inner: F, peer: SocketAddr) -> Self {
        WithPeer { inner, peer }
    }
}

impl<F: Future> Future for WithPeer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let outer = PEER.replace(Some(*this.peer));
        let polled = this.inner.poll(cx);
        PEER.set(outer);
        polled
    }
}

/// The peer address of the connection being served on this thread (inside
/// a [`WithPeer`]); `None` elsewhere.
pub fn current_peer() -> Option<SocketAddr> {
    PEER.get()
}

/// After a failed accept, as hyper's and warp's servers do: an error of
/// one connection (refused, aborted, reset) is skipped; any other (out of
/// file descriptors, ...) is logged and pauses accepting for a second.
pub async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        tracing::error!("accept error: {error}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_peer_is_lent_while_polled_and_restored_after() {
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2000".parse().unwrap();
        assert_eq!(current_peer(), None);
        let seen = WithPeer::new(
            async move {
                let outer = current_peer();
                let inner = WithPeer::new(async { current_peer() }, b).await;
                // Polled again after `Pending`: lent again.
                tokio::task::yield_now().await;
                (outer, inner, current_peer())
            },
            a,
        )
        .await;
        assert_eq!(seen, (Some(a), Some(b), Some(a)));
        assert_eq!(current_peer(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_accept_pauses_unless_one_connection_failed() {
        let started = tokio::time::Instant::now();
        accept_error(std::io::ErrorKind::ConnectionReset.into()).await;
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
        accept_error(std::io::Error::other("too many open files")).await;
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(1));
    }
}
