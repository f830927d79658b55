//! Connections to members: opening them (TCP connect within the listener's
//! connect timeout, then the PROXY header when the pool wants one, then for
//! HTTP pools over TLS the handshake, within the same timeout) and, for
//! HTTP, keeping idle keep-alive connections for the next request.
//!
//! Each member has its own small idle set ([`IdleConns`]), carried from one
//! snapshot to the next while the member keeps its id and address. A
//! connection goes back into it only once its response has been read to the
//! end and the member left it open; it is taken out newest
//! first (the warmest socket), and closed after [`IDLE_TIMEOUT`] unused. Members of PROXY pools never share connections
//! between clients: the header names one client, so their idle sets belong to
//! the client connection instead of the member (see `http/`).

use crate::member_tls::MemberTls;
use crate::proxy_protocol;
use crate::sockets::{Netns, connect_tcp_from};
use crate::stats::ListenerStats;
use crate::stream::{MaybeTls, MemberStream};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an unused keep-alive connection to a member is kept. Shorter
/// than the keep-alive timeouts of common servers (Apache, Node.js: 5 s) so
/// that we, not the member, close idle connections: a member closing one just
/// as a request goes out is the race that turns into a spurious 502.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Idle connections kept per member. A connection is only parked after it
/// served a request, so the pool follows the concurrency actually seen, and
/// idle ones close after IDLE_TIMEOUT; the cap only bounds a pathological
/// burst. It must be well above the requests in flight per member: at 16,
/// 64 keep-alive clients over 2 members reopened a member connection for
/// ~16 % of requests (bench/dataplane, 2026-11-21), HAProxy for 0.1 %.
const MAX_IDLE_PER_MEMBER: usize = 256;

/// Sends the member our ACK of what it sent now, rather than after the
/// delayed-ACK timer (~40 ms): called whenever the proxy has read part of
/// a response and waits for more. A member with Nagle on (Python's
/// `http.server`, many small frameworks) that writes its head and body in
/// two sends holds the body until its head is acknowledged; a kept-alive
/// connection's ACKs are delayed (the kernel expects to piggyback them on
/// our next request), so each response would wait out the timer.
/// `TCP_QUICKACK` sends a pending ACK at once; it is not sticky, so it is
/// set before each wait that follows a small read ([`SMALL_READ`]). Best
/// effort.
/// A read below this many bytes may be a segment behind which the member's
/// Nagle holds the rest (a head sent alone, a small chunk): the proxy
/// acknowledges it at once before waiting. After larger reads it does not:
/// quick-ACK mode on a bulk transfer measured 0.72x the throughput on 64 KiB
/// responses (an A/B of builds, docs/BENCHMARKS.md, 2026-12-06).
pub const SMALL_READ: usize = 4096;

pub fn ack_now(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

/// Opens a TCP connection to `addr` (from `source` when given, see
/// `statera_config::member_source`) within `timeout` (`None`: no limit) and sends
/// `proxy_header` first when given.
pub async fn connect(
    netns: &Netns,
    source: Option<IpAddr>,
    addr: SocketAddr,
    timeout: Option<Duration>,
    proxy_header: Option<&[u8]>,
) -> io::Result<TcpStream> {
    let open = async {
        let mut stream = connect_tcp_from(netns, source, addr).await?;
        let _ = stream.set_nodelay(true);
        if let Some(header) = proxy_header {
            stream.write_all(header).await?;
        }
        io::Result::Ok(stream)
    };
    match timeout {
        Some(limit) => tokio::time::timeout(limit, open)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        None => open.await,
    }
}

/// The PROXY header for a pool's protocol, if it wants one.
pub fn proxy_header(
    protocol: statera_model::PoolProtocol,
    client: SocketAddr,
    vip: SocketAddr,
) -> Option<Vec<u8>> {
    use statera_model::PoolProtocol;
    let version = match protocol {
        PoolProtocol::Proxy => proxy_protocol::Version::V1,
        PoolProtocol::ProxyV2 => proxy_protocol::Version::V2,
        _ => return None,
    };
    Some(proxy_protocol::header(version, client, vip))
}

/// One HTTP/1.1 connection to a member, in use by one request or parked.
///
/// No task of its own and no HTTP library in between: the client
/// connection's task writes the request's bytes to it and reads the
/// response from it (`http/`). `buf` holds what was read from the member
/// and not yet relayed.
pub struct Upstream {
    pub stream: MemberStream,
    pub buf: Vec<u8>,
    /// The member's counters: reads count as its `bytes_out`, writes as its
    /// `bytes_in`.
    pub stats: Arc<ListenerStats>,
    /// The room the next read of a body of unknown length gets.
    read_size: usize,
    /// What it was opened for: a parked connection serves a request only
    /// for the same member address, PROXY header kind and pool TLS (the
    /// same `MemberTls`), so a configuration change never sends a request
    /// over a connection opened under other rules (plain text to a pool
    /// now over TLS, a member verified under a CA since replaced).
    opened_for: OpenedFor,
    /// When it was parked last.
    parked_at: Instant,
}

/// What a member connection was opened for (see `Upstream::opened_for`).
#[derive(Clone)]
pub struct OpenedFor {
    pub addr: SocketAddr,
    pub protocol: statera_model::PoolProtocol,
    pub tls: Option<Arc<MemberTls>>,
}

impl OpenedFor {
    fn same(&self, other: &OpenedFor) -> bool {
        self.addr == other.addr
            && self.protocol == other.protocol
            && match (&self.tls, &other.tls) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

/// What a member connection's read buffer starts at; it grows to what a
/// body needs (up to [`MAX_READ_BUFFER`]), so a large response moves in
/// large reads. A parked connection keeps at most [`KEPT_BUFFER`].
pub const READ_BUFFER: usize = 8 * 1024;
pub const MAX_READ_BUFFER: usize = 256 * 1024;
const KEPT_BUFFER: usize = 64 * 1024;

impl Upstream {
    /// Reads what the member sent next into `buf` (after what is there);
    /// `Ok(0)` at its end.
    ///
    /// `expected`: how many bytes the message still has, when its length is
    /// known: the read makes room for them (up to [`MAX_READ_BUFFER`]), so a
    /// large body moves in few large reads. Otherwise the room follows what
    /// reads on this connection have found: it doubles each time a read
    /// fills it.
    pub async fn read_more(&mut self, expected: Option<u64>) -> io::Result<usize> {
        let want = match expected {
            Some(n) => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .clamp(1024, MAX_READ_BUFFER),
            None => self.read_size,
        };
        let spare = self.buf.capacity() - self.buf.len();
        if spare < want {
            self.buf.reserve(want);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == room && self.read_size < MAX_READ_BUFFER {
            self.read_size *= 2;
        }
        self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Writes all of `bytes` to the member (out of rustls too, over TLS).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        if let MaybeTls::Tls(tls) = &mut self.stream {
            tls.flush().await?;
        }
        self.stats
            .bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// See [`ack_now`].
    pub fn ack_now(&self) {
        ack_now(self.stream.socket());
    }

    /// Whether it can take another request: nothing unread is left, and
    /// the member has not closed it (or sent anything) meanwhile. Costs no
    /// system call unless the socket was marked readable since its last
    /// read, which a parked connection only is when its member closed it.
    fn ready_for_reuse(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match &mut self.stream {
            MaybeTls::Plain(tcp) => match tcp.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                // Readable: the member's close (or stray bytes), unless the
                // mark is left from a read that filled its buffer exactly.
                Poll::Ready(Ok(())) => matches!(
                    tcp.try_read(&mut [0u8; 1]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock
                ),
            },
            // A read through rustls: records that carry no data (TLS 1.3
            // session tickets sent after the response) are taken in on the
            // way; data, a close_notify, the member's close or an error
            // mean the connection cannot be used again.
            MaybeTls::Tls(tls) => {
                let mut byte = [0u8; 1];
                let mut buf = tokio::io::ReadBuf::new(&mut byte);
                matches!(
                    std::pin::Pin::new(&mut **tls).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }
}

/// Opens an HTTP/1.1 connection to `opened_for.addr` (after the PROXY
/// header, if any), over the pool's TLS when it has some: the handshake is
/// part of the connect, within the same timeout, and within
/// [`TLS_HANDSHAKE_LIMIT`] whatever that timeout is (a member that accepts
/// and never answers cannot hold a request without end).
pub async fn open(
    netns: &Netns,
    source: Option<IpAddr>,
    opened_for: OpenedFor,
    connect_timeout: Option<Duration>,
    proxy_header: Option<&[u8]>,
    stats: Arc<ListenerStats>,
) -> io::Result<Upstream> {
    let addr = opened_for.addr;
    let tls = opened_for.tls.clone();
    let open = async {
        let tcp = connect(netns, source, addr, None, proxy_header).await?;
        io::Result::Ok(match tls.as_deref() {
            None => MaybeTls::Plain(tcp),
            Some(tls) => {
                let handshake = tls.connect(tcp, addr.ip());
                match tokio::time::timeout(TLS_HANDSHAKE_LIMIT, handshake).await {
                    Ok(stream) => MaybeTls::Tls(Box::new(stream?)),
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
        })
    };
    let stream = match connect_timeout {
        Some(limit) => tokio::time::timeout(limit, open)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?,
        None => open.await?,
    };
    Ok(Upstream {
        stream,
        buf: Vec::new(),
        stats,
        read_size: READ_BUFFER,
        parked_at: Instant::now(),
        opened_for,
    })
}

/// The longest a TLS handshake with a member may take.
pub const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// A member's (or, for PROXY pools, a client connection's) idle connections.
///
/// Nothing polls a parked connection: one closed by its member is found out
/// when taken (and dropped then). While any are parked, a reaper task closes
/// those unused for [`IDLE_TIMEOUT`]; `take` never hands out one that old.
#[derive(Default)]
pub struct IdleConns {
    conns: Mutex<Vec<Upstream>>,
    /// Whether a reaper task is running for this set.
    reaping: AtomicBool,
}

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConns")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl IdleConns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Upstream>> {
        // Held only for a push, a pop or a sweep: a poisoned list is still a
        // list.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently parked connection opened for `opened_for` that is
    /// still open and ready, if any. Those found closed, too old or opened
    /// for something else are dropped on the way.
    pub fn take(&self, opened_for: &OpenedFor) -> Option<Upstream> {
        loop {
            let mut conn = self.lock().pop()?;
            if conn.parked_at.elapsed() < IDLE_TIMEOUT
                && conn.opened_for.same(opened_for)
                && conn.ready_for_reuse()
            {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn`, whose response has been read to its end, for the next
    /// request (if the member left it open and sent nothing more).
    pub fn park(self: &Arc<Self>, mut conn: Upstream) {
        if !conn.ready_for_reuse() {
            return;
        }
        if conn.buf.capacity() > KEPT_BUFFER {
            // A large response grew it: not kept while idle.
            conn.buf = Vec::new();
        }
        conn.parked_at = Instant::now();
        {
            let mut conns = self.lock();
            if conns.len() >= MAX_IDLE_PER_MEMBER {
                // Dropping the oldest closes it.
                conns.remove(0);
            }
            conns.push(conn);
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }

    /// Drops the connections parked for [`IDLE_TIMEOUT`] or longer; returns
    /// when the oldest left expires, `None` when none is left (and the
    /// reaper stops: the next `park` starts another).
    fn sweep(&self) -> Option<Instant> {
        let mut conns = self.lock();
        // Oldest first: parked in order.
        let expired = conns
            .iter()
            .take_while(|c| c.parked_at.elapsed() >= IDLE_TIMEOUT)
            .count();
        conns.drain(..expired);
        match conns.first() {
            Some(oldest) => Some(oldest.parked_at + IDLE_TIMEOUT),
            None => {
                self.reaping.store(false, Ordering::Release);
                None
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Closes `idle`'s connections as they pass [`IDLE_TIMEOUT`] unused, until
/// none is left or the set itself is gone.
async fn reap(idle: std::sync::Weak<IdleConns>) {
    let mut next = Instant::now() + IDLE_TIMEOUT;
    loop {
        tokio::time::sleep_until(next).await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        match idle.sweep() {
            Some(at) => next = at,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A member answering requests with `200 ok` (every request of a
    /// connection, or with `one_per_connection` only the first, closing the
    /// connection after it without saying so); returns its address and the
    /// count of connections it accepted.
    async fn member(one_per_connection: bool) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            let _ = write
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                            if one_per_connection {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn plain(addr: SocketAddr) -> OpenedFor {
        OpenedFor {
            addr,
            protocol: statera_model::PoolProtocol::Http,
            tls: None,
        }
    }

    async fn get(conn: &mut Upstream) -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nhost: m\r\n\r\n")
            .await
            .unwrap();
        loop {
            if let Some(head) = crate::h1::parse_response(&conn.buf, false).unwrap() {
                let crate::h1::Framing::Length(n) = head.framing() else {
                    panic!("unexpected framing");
                };
                let end = head.len + n as usize;
                if conn.buf.len() >= end {
                    let body = String::from_utf8(conn.buf[head.len..end].to_vec()).unwrap();
                    conn.buf.drain(..end);
                    return body;
                }
            }
            assert!(conn.read_more(None).await.unwrap() > 0, "member closed");
        }
    }

    #[tokio::test]
    async fn a_parked_connection_is_reused_then_expires() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (addr, accepted) = member(false).await;
            let idle = Arc::new(IdleConns::default());
            let mut conn = open(&None, None, plain(addr), None, None, Default::default())
                .await
                .unwrap();
            assert_eq!(get(&mut conn).await, "ok");
            idle.park(conn);
            assert_eq!(idle.len(), 1);

            let mut again = idle.take(&plain(addr)).expect("the parked connection");
            assert_eq!(get(&mut again).await, "ok");
            assert_eq!(accepted.load(Ordering::Relaxed), 1, "one connection only");
            idle.park(again);

            // Unused past the idle timeout: closed by the reaper, not handed out.
            tokio::time::sleep(IDLE_TIMEOUT + Duration::from_millis(300)).await;
            assert_eq!(idle.len(), 0);
            assert!(idle.take(&plain(addr)).is_none());
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_connection_its_member_closed_is_not_handed_out() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (addr, _) = member(true).await;
            let idle = Arc::new(IdleConns::default());
            let mut conn = open(&None, None, plain(addr), None, None, Default::default())
                .await
                .unwrap();
            assert_eq!(get(&mut conn).await, "ok");
            idle.park(conn);
            // The member's FIN arrives while nothing polls the parked connection.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                idle.take(&plain(addr)).is_none(),
                "a closed connection was handed out"
            );
            assert_eq!(idle.len(), 0);
        })
        .await
        .unwrap();
    }
}
