//! Sockets as hyper sees them: hyper 1 has its own `Read`/`Write` traits, and
//! [`HyperIo`] adapts a tokio stream to them (the small job hyper-util's
//! `TokioIo` does, without the dependency), optionally metering the client
//! side of a connection: bytes into the listener's counters, and the time of
//! the last byte moved for the idle timeout.
//!
//! On the client side it also keeps [`RawHeads`]: the raw bytes of the last
//! request head hyper parsed, for the one check hyper makes impossible on
//! the parsed request (see `RawHeads`).
//!
//! Reads go straight into hyper's own read buffer (as `TokioIo` does): no
//! buffer of our own per connection, and no copy. hyper sizes that buffer
//! to what the connection reads (8 KiB up to ~400 KiB, adaptively), so a
//! large response from a member arrives in large chunks. The one buffer
//! here, `held`, exists only while a client read took bytes past the end of
//! a request head (see `RawHeads`), and is freed once hyper has them.

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
    /// Client side: bytes a read took past the end of a request head;
    /// `held[start..]` are not yet handed to hyper. Empty, and unallocated,
    /// otherwise.
    held: Vec<u8>,
    start: usize,
}

impl<S> HyperIo<S> {
    /// An unmetered transport (to members).
    pub fn new(inner: S) -> Self {
        HyperIo {
            inner,
            meter: None,
            member: None,
            heads: None,
            held: Vec::new(),
            start: 0,
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

impl<S> HyperIo<S> {
    /// Counts `n` bytes read from the socket.
    fn read_counted(&self, n: usize) {
        if let Some(member) = &self.member {
            member.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(meter) = &self.meter {
            meter.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            meter.activity.touch();
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
        if this.start < this.held.len() {
            // What an earlier read took past a head's end goes first.
            let pending = &this.held[this.start..];
            let mut give = pending.len().min(buf.remaining());
            if let Some(heads) = &this.heads {
                give = heads.observe(&pending[..give]);
            }
            buf.put_slice(&pending[..give]);
            this.start += give;
            if this.start == this.held.len() {
                // Free it: an idle connection keeps no buffer.
                this.held = Vec::new();
                this.start = 0;
            }
            return Poll::Ready(Ok(()));
        }
        // Read straight into hyper's buffer, then hand over what may go.
        //
        // SAFETY: `as_mut` requires that no initialised byte of the cursor
        // be de-initialised. The slice only goes into a tokio `ReadBuf`,
        // through which an `AsyncRead` can only write initialised bytes
        // (tokio's contract for `ReadBuf::uninit`); nothing else writes it.
        let unfilled = unsafe { buf.as_mut() };
        let mut read = tokio::io::ReadBuf::uninit(unfilled);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
        let filled = read.filled();
        let n = filled.len();
        if n == 0 {
            // End of stream: hand over nothing.
            return Poll::Ready(Ok(()));
        }
        let give = match &this.heads {
            Some(heads) => heads.observe(filled),
            None => n,
        };
        if give < n {
            // Past a head's end: kept for the next call (see `RawHeads`).
            this.held = filled[give..].to_vec();
            this.start = 0;
        }
        this.read_counted(n);
        // SAFETY: `advance` requires the `give` bytes to be initialised:
        // they are the first `give <= n` bytes of the cursor's unfilled
        // part, which the read above filled (`read.filled()`).
        unsafe { buf.advance(give) };
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
/// Largest buffer [`RawHeads`] keeps for the next head (most heads are a few
/// hundred bytes).
const REUSED_SEGMENT: usize = 2048;

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
            // The two buffers trade places, so the next head is collected
            // into the last one's memory instead of a new allocation (unless
            // that was a large head: its memory is let go).
            let segments = &mut *segments;
            std::mem::swap(&mut segments.current, &mut segments.last);
            segments.current.clear();
            if segments.current.capacity() > REUSED_SEGMENT {
                segments.current = Vec::new();
            }
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

    /// Reads through `io` with hyper's cursor, `cap` bytes at most per call,
    /// until the end of the stream; returns what each call handed over.
    fn read_all<S: AsyncRead + Unpin>(io: &mut HyperIo<S>, cap: usize) -> Vec<String> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut delivered = Vec::new();
        loop {
            let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); cap];
            let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
            let Poll::Ready(result) = Pin::new(&mut *io).poll_read(&mut cx, buf.unfilled()) else {
                panic!("a slice is always ready");
            };
            result.unwrap();
            if buf.filled().is_empty() {
                return delivered;
            }
            delivered.push(String::from_utf8(buf.filled().to_vec()).unwrap());
        }
    }

    #[test]
    fn client_reads_stop_at_each_head_and_keep_no_buffer() {
        let stream: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let stats = Arc::new(ListenerStats::default());
        let meter = Meter {
            stats: stats.clone(),
            activity: Arc::new(Activity::new()),
        };
        let heads = Arc::new(RawHeads::new(1024));
        let mut io = HyperIo::client(stream, meter, heads.clone());
        assert_eq!(
            read_all(&mut io, 8192),
            [
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n",
                "bodyGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            ]
        );
        assert_eq!(heads.lock().last, b"bodyGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(io.held.capacity(), 0, "nothing held once handed over");
        assert_eq!(stats.bytes_in.load(Ordering::Relaxed), stream.len() as u64);

        // A cursor smaller than what is held takes it in pieces.
        let heads = Arc::new(RawHeads::new(1024));
        let meter = Meter {
            stats: Arc::new(ListenerStats::default()),
            activity: Arc::new(Activity::new()),
        };
        let mut io = HyperIo::client(stream, meter, heads);
        let pieces = read_all(&mut io, 16);
        assert_eq!(pieces.concat().as_bytes(), stream);
        assert!(pieces.iter().all(|p| p.len() <= 16));
    }

    #[test]
    fn member_reads_hand_over_everything() {
        let stream: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\n\n";
        let stats = Arc::new(ListenerStats::default());
        let mut io = HyperIo::member(stream, stats.clone());
        assert_eq!(
            read_all(&mut io, 8192),
            [String::from_utf8(stream.to_vec()).unwrap()]
        );
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), stream.len() as u64);
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
