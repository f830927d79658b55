//! Sockets as hyper sees them: hyper 1 has its own `Read`/`Write` traits, and
//! [`HyperIo`] adapts a tokio stream to them (the small job hyper-util's
//! `TokioIo` does, without the dependency), optionally metering the client
//! side of a connection: bytes into the listener's counters, and the time of
//! the last byte moved for the idle timeout.
//!
//! On the client side it also keeps [`RawHeads`]: the raw bytes of the last
//! request head hyper parsed, for the one check hyper makes impossible on
//! the parsed request (see `RawHeads`).

use crate::stats::ListenerStats;
use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// On a member connection, the member's counters: reads count as its
    /// `bytes_out`, writes as its `bytes_in`.
    member: Option<Arc<ListenerStats>>,
    heads: Option<Arc<RawHeads>>,
    /// Bytes read from the socket; `scratch[start..end]` are not yet handed
    /// to hyper.
    scratch: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<S> HyperIo<S> {
    /// An unmetered transport (to members).
    pub fn new(inner: S) -> Self {
        HyperIo {
            inner,
            meter: None,
            member: None,
            heads: None,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// A transport to a member, counted in the member's counters.
    pub fn member(inner: S, stats: Arc<ListenerStats>) -> Self {
        HyperIo {
            member: Some(stats),
            ..HyperIo::new(inner)
        }
    }

    /// A transport whose reads count as `bytes_in` and writes as `bytes_out`
    /// (the client side), and that records request heads in `heads`.
    pub fn client(inner: S, meter: Meter, heads: Arc<RawHeads>) -> Self {
        HyperIo {
            meter: Some(meter),
            heads: Some(heads),
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
        if this.start == this.end {
            let mut read = tokio::io::ReadBuf::new(&mut this.scratch[..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                // End of stream: hand over nothing.
                return Poll::Ready(Ok(()));
            }
            if let Some(member) = &this.member {
                member.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            if let Some(meter) = &this.meter {
                meter.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                meter.activity.touch();
            }
            (this.start, this.end) = (0, n);
        }
        let mut give = (this.end - this.start).min(buf.remaining());
        let pending = &this.scratch[this.start..this.start + give];
        if let Some(heads) = &this.heads {
            give = heads.observe(pending);
        }
        buf.put_slice(&this.scratch[this.start..this.start + give]);
        this.start += give;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> HyperIo<S> {
    fn wrote(&self, n: usize) {
        if let Some(member) = &self.member {
            member.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
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

/// The raw bytes of the last request head hyper parsed on a connection.
///
/// hyper resolves a request carrying both `Content-Length` and
/// `Transfer-Encoding` as RFC 9112 §6.1 allows (chunked wins, the length is
/// dropped from the parsed headers), so the parsed request cannot tell it
/// apart from an honest chunked one. A proxy should rather refuse it: it is
/// the shape of request smuggling. So the client transport never hands hyper
/// bytes past the end of a blank line (`\n\n` or `\n\r\n`, the end of every
/// head; one may also end inside a body, which only shortens a read). When
/// hyper has parsed a head and calls the service, which it does before
/// reading further, the last such segment therefore ends with exactly that
/// head, and [`RawHeads::last_has_content_length`] can look at its lines.
#[derive(Debug)]
pub struct RawHeads {
    inner: Mutex<Segments>,
    /// Bytes kept of a segment: a head longer than this is refused (431)
    /// anyway, and more of a body is of no interest.
    limit: usize,
}

#[derive(Debug, Default)]
struct Segments {
    /// Handed over since the last blank line (its last `limit` bytes).
    current: Vec<u8>,
    /// The last segment that ended with a blank line.
    last: Vec<u8>,
    /// Where the scan is: 0 nothing, 1 after `\n`, 2 after `\n\r`.
    state: u8,
}

impl RawHeads {
    pub fn new(limit: usize) -> Self {
        RawHeads {
            inner: Mutex::new(Segments::default()),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        // Only this connection's read path and its service take it, never
        // across an await: a poisoned lock still holds plain bytes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `pending` is about to be handed over and returns how much
    /// of it may go: up to and including the first blank line's end.
    pub(crate) fn observe(&self, pending: &[u8]) -> usize {
        let mut segments = self.lock();
        let mut state = segments.state;
        let mut cut = None;
        for (i, &byte) in pending.iter().enumerate() {
            state = match (state, byte) {
                (1 | 2, b'\n') => {
                    cut = Some(i + 1);
                    0
                }
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
            if cut.is_some() {
                break;
            }
        }
        segments.state = state;
        let give = cut.unwrap_or(pending.len());
        let taken = &pending[..give];
        let keep = taken.len().min(self.limit);
        segments
            .current
            .extend_from_slice(&taken[taken.len() - keep..]);
        let len = segments.current.len();
        if len > 2 * self.limit {
            segments.current.drain(..len - self.limit);
        }
        if cut.is_some() {
            let done = std::mem::take(&mut segments.current);
            segments.last = done;
            let len = segments.last.len();
            if len > self.limit {
                segments.last.drain(..len - self.limit);
            }
        }
        give
    }

    /// Whether the last head had a `Content-Length` header line. Meant to
    /// be asked while hyper calls the service with that head's request.
    pub fn last_has_content_length(&self) -> bool {
        head_has_header(&self.lock().last, b"content-length")
    }
}

/// Whether the head at the end of `segment` (which ends with its blank line)
/// has a header line named `name` (lowercase). Lines are walked backwards
/// from the end; the first one that is not a header line is the request
/// line, where the head starts.
fn head_has_header(segment: &[u8], name: &[u8]) -> bool {
    let trimmed = segment
        .strip_suffix(b"\n")
        .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
        .unwrap_or(segment);
    for line in trimmed.split(|b| *b == b'\n').rev() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return false;
        };
        let field = &line[..colon];
        if field.is_empty() || !field.iter().all(|b| is_tchar(*b)) {
            // The request line: its method is followed by a space.
            return false;
        }
        if field.eq_ignore_ascii_case(name) {
            return true;
        }
    }
    false
}

/// A token character of a header field name (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_stop_at_the_end_of_each_blank_line() {
        let heads = RawHeads::new(1024);
        let stream = b"POST / HTTP/1.1\r\nHost: a\r\n\r\nbody\n\nGET / HTTP/1.1\nHost: a\n\n";
        let mut delivered = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = heads.observe(rest);
            delivered.push(String::from_utf8(rest[..n].to_vec()).unwrap());
            rest = &rest[n..];
        }
        assert_eq!(
            delivered,
            [
                "POST / HTTP/1.1\r\nHost: a\r\n\r\n",
                "body\n\n",
                "GET / HTTP/1.1\nHost: a\n\n"
            ]
        );
        // A blank line split across two reads is found too.
        let heads = RawHeads::new(1024);
        assert_eq!(heads.observe(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), 26);
        assert_eq!(heads.observe(b"\nnext"), 1);
        assert_eq!(heads.lock().last, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn content_length_lines_are_found_in_the_last_head_only() {
        let table: &[(&[u8], bool)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true),
            (b"POST / HTTP/1.1\r\ncontent-length:3\r\n\r\n", true),
            (b"POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n", false),
            // The previous message's body is not part of this head.
            (b"Content-Length: 9\r\n\r\nPOST /x:y HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nX-Content-Length: 3\r\n\r\n", false),
        ];
        for (segment, expected) in table {
            assert_eq!(
                head_has_header(segment, b"content-length"),
                *expected,
                "{}",
                String::from_utf8_lossy(segment)
            );
        }
    }
}
