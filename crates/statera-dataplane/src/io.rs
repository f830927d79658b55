//! Sockets as hyper sees them: hyper 1 has its own `Read`/`Write` traits, and
//! [`HyperIo`] adapts a tokio stream to them (the small job hyper-util's
//! `TokioIo` does, without the dependency), optionally metering the client
//! side of a connection: bytes into the listener's counters, and the time of
//! the last byte moved for the idle timeout.

use crate::stats::ListenerStats;
use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Bytes read from the socket per call. hyper asks for up to its own buffer's
/// free space; this is the most handed over at once, sized like a typical
/// socket read (and HAProxy's default buffer).
const READ_CHUNK: usize = 16 * 1024;

/// What a client connection has been doing, for its idle timeout.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// When a byte last moved either way, in ms since `epoch`.
    last: AtomicU64,
    /// Requests waiting for a member: the client is silent then by design,
    /// and the member's timeout governs the wait instead.
    waiting: AtomicUsize,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Marks a request as waiting for its member until the guard drops.
    pub fn waiting(&self) -> WaitingGuard<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(self)
    }

    /// Resolves once nothing moved for `timeout` while no request waited for
    /// a member. `None` (0 in the config) never resolves.
    pub async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline =
                self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed)) + timeout;
            if self.waiting.load(Ordering::Relaxed) > 0 {
                // Look again later; the guard's drop refreshes `last`.
                tokio::time::sleep(timeout).await;
            } else if deadline <= Instant::now() {
                return;
            } else {
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

pub struct WaitingGuard<'a>(&'a Activity);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client side's meter: the listener's counters and the activity clock.
pub struct Meter {
    pub stats: Arc<ListenerStats>,
    pub activity: Arc<Activity>,
}

/// A tokio stream as a hyper transport.
pub struct HyperIo<S> {
    inner: S,
    meter: Option<Meter>,
    scratch: Box<[u8]>,
}

impl<S> HyperIo<S> {
    /// An unmetered transport (to members).
    pub fn new(inner: S) -> Self {
        HyperIo {
            inner,
            meter: None,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// A transport whose reads count as `bytes_in` and writes as `bytes_out`
    /// (the client side).
    pub fn metered(inner: S, meter: Meter) -> Self {
        HyperIo {
            meter: Some(meter),
            ..HyperIo::new(inner)
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
        // Read into our own (initialised) buffer and copy: filling hyper's
        // uninitialised cursor directly takes `unsafe`, which this crate
        // does without.
        let want = buf.remaining().min(this.scratch.len());
        let mut read = tokio::io::ReadBuf::new(&mut this.scratch[..want]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
        let filled = read.filled();
        if let Some(meter) = &this.meter
            && !filled.is_empty()
        {
            meter
                .stats
                .bytes_in
                .fetch_add(filled.len() as u64, Ordering::Relaxed);
            meter.activity.touch();
        }
        buf.put_slice(filled);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> HyperIo<S> {
    fn wrote(&self, n: usize) {
        if let Some(meter) = &self.meter
            && n > 0
        {
            meter.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            meter.activity.touch();
        }
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
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
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
