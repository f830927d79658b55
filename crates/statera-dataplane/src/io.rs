//! Sockets as hyper sees them, for the one listener hyper still serves
//! (PROMETHEUS, `metrics.rs`): hyper 1 has its own `Read`/`Write` traits,
//! and [`HyperIo`] adapts a tokio stream to them (the small job hyper-util's
//! `TokioIo` does, without the dependency), metering the connection: bytes
//! into the listener's counters, and the time of the last byte moved for the
//! idle timeout. Reads go straight into hyper's own read buffer: no buffer
//! of our own and no copy.

use crate::stats::ListenerStats;
use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// What a client connection has been doing, for its idle timeout.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// When a byte last moved either way, in ms since `epoch`.
    last: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout`. `None` (0 in the config)
    /// never resolves.
    pub async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline =
                self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed)) + timeout;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The client side's meter: the listener's counters and the activity clock.
pub struct Meter {
    pub stats: Arc<ListenerStats>,
    pub activity: Arc<Activity>,
}

/// A tokio stream as a hyper transport, metered: reads count as the
/// listener's `bytes_in`, writes as its `bytes_out`.
pub struct HyperIo<S> {
    inner: S,
    meter: Meter,
}

impl<S> HyperIo<S> {
    pub fn new(inner: S, meter: Meter) -> Self {
        HyperIo { inner, meter }
    }

    fn counted(&self, counter: &AtomicU64, n: usize) {
        if n > 0 {
            counter.fetch_add(n as u64, Ordering::Relaxed);
            self.meter.activity.touch();
        }
    }
}

impl<S: AsyncRead + Unpin> Read for HyperIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `as_mut` requires that no initialised byte of the cursor
        // be de-initialised. The slice only goes into a tokio `ReadBuf`,
        // through which an `AsyncRead` can only write initialised bytes
        // (tokio's contract for `ReadBuf::uninit`); nothing else writes it.
        let unfilled = unsafe { buf.as_mut() };
        let mut read = tokio::io::ReadBuf::uninit(unfilled);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        this.counted(&this.meter.stats.bytes_in, n);
        // SAFETY: `advance` requires the `n` bytes to be initialised: they
        // are the first `n` bytes of the cursor's unfilled part, which the
        // read above filled (`read.filled()`).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> Write for HyperIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.counted(&this.meter.stats.bytes_out, n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.counted(&this.meter.stats.bytes_out, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_counted_and_handed_over_whole() {
        let stream: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
        let stats = Arc::new(ListenerStats::default());
        let meter = Meter {
            stats: stats.clone(),
            activity: Arc::new(Activity::new()),
        };
        let mut io = HyperIo::new(stream, meter);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
        let Poll::Ready(result) = Pin::new(&mut io).poll_read(&mut cx, buf.unfilled()) else {
            panic!("a slice is always ready");
        };
        result.unwrap();
        assert_eq!(buf.filled(), stream);
        assert_eq!(stats.bytes_in.load(Ordering::Relaxed), stream.len() as u64);
    }
}
