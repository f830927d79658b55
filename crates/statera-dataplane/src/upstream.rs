//! Connections to members: opening them (TCP connect within the listener's
//! connect timeout, then the PROXY header when the pool wants one) and, for
//! HTTP, keeping idle keep-alive connections for the next request.
//!
//! Each member has its own small idle set ([`IdleConns`]), carried from one
//! snapshot to the next while the member keeps its id and address. A
//! connection goes back into it only once its response has been read to the
//! end and hyper says it can take another request; it is taken out newest
//! first (the warmest socket), and closed by its own driver task after
//! [`IDLE_TIMEOUT`] unused. Members of PROXY pools never share connections
//! between clients: the header names one client, so their idle sets belong to
//! the client connection instead of the member (see `http.rs`).

use crate::io::HyperIo;
use crate::proxy_protocol;
use crate::sockets::{Netns, connect_tcp};
use crate::stats::ListenerStats;
use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The body of a request to a member: the client's body, or nothing (a
/// request replayed on a fresh connection never has a body).
pub type UpstreamBody = Either<Incoming, Empty<Bytes>>;

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

/// `parked_at` value of a connection in use.
const IN_USE: u64 = 0;
/// `parked_at` value of a connection its driver has closed.
const CLOSED: u64 = u64::MAX;

/// Opens a TCP connection to `addr` within `timeout` (`None`: no limit) and
/// sends `proxy_header` first when given.
pub async fn connect(
    netns: &Netns,
    addr: SocketAddr,
    timeout: Option<Duration>,
    proxy_header: Option<&[u8]>,
) -> io::Result<TcpStream> {
    let open = async {
        let mut stream = connect_tcp(netns, addr).await?;
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

/// One HTTP/1.1 connection to a member, in use by one request.
pub struct Upstream {
    pub sender: http1::SendRequest<UpstreamBody>,
    state: Arc<ConnState>,
}

/// Shared between a connection's handle and its driver task.
#[derive(Debug)]
struct ConnState {
    epoch: Instant,
    /// [`IN_USE`], [`CLOSED`], or when it was parked (ms since `epoch`, + 1).
    parked_at: AtomicU64,
}

impl ConnState {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// Opens an HTTP/1.1 connection to `addr` (after the PROXY header, if any)
/// and starts its driver task.
pub async fn open(
    netns: &Netns,
    addr: SocketAddr,
    connect_timeout: Option<Duration>,
    proxy_header: Option<&[u8]>,
    stats: Arc<ListenerStats>,
) -> io::Result<Upstream> {
    let stream = connect(netns, addr, connect_timeout, proxy_header).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake::<_, UpstreamBody>(HyperIo::member(stream, stats))
        .await
        .map_err(io::Error::other)?;
    let state = Arc::new(ConnState {
        epoch: Instant::now(),
        parked_at: AtomicU64::new(IN_USE),
    });
    tokio::spawn(drive(conn, state.clone()));
    Ok(Upstream { sender, state })
}

/// Runs a connection until it closes, or until it has been parked unused for
/// [`IDLE_TIMEOUT`]; then it is closed (whoever holds its handle then sees
/// it closed).
async fn drive(conn: http1::Connection<HyperIo<TcpStream>, UpstreamBody>, state: Arc<ConnState>) {
    let idle_ms = IDLE_TIMEOUT.as_millis() as u64;
    tokio::pin!(conn);
    loop {
        let parked_at = state.parked_at.load(Ordering::Acquire);
        let wait = match parked_at {
            IN_USE => IDLE_TIMEOUT,
            CLOSED => return,
            at => {
                let expires = at + idle_ms;
                let now = state.now();
                if now >= expires {
                    // Claim it before closing, so nobody takes it meanwhile.
                    if state
                        .parked_at
                        .compare_exchange(at, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                    continue;
                }
                Duration::from_millis(expires - now)
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "member connection ended");
                }
                state.parked_at.store(CLOSED, Ordering::Release);
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A member's (or, for PROXY pools, a client connection's) idle connections.
#[derive(Default)]
pub struct IdleConns {
    conns: Mutex<Vec<Upstream>>,
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
        // Held only for a push or a pop: a poisoned list is still a list.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently parked connection that is still open, if any.
    pub fn take(&self) -> Option<Upstream> {
        loop {
            let conn = self.lock().pop()?;
            let at = conn.state.parked_at.load(Ordering::Acquire);
            if at == IN_USE || at == CLOSED || conn.sender.is_closed() {
                continue;
            }
            if conn
                .state
                .parked_at
                .compare_exchange(at, IN_USE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(conn);
            }
        }
    }

    fn park(&self, conn: Upstream) {
        conn.state
            .parked_at
            .store(conn.state.now(), Ordering::Release);
        let mut conns = self.lock();
        conns.retain(|c| c.state.parked_at.load(Ordering::Acquire) != CLOSED);
        if conns.len() >= MAX_IDLE_PER_MEMBER {
            // Dropping the oldest handle closes its connection.
            conns.remove(0);
        }
        conns.push(conn);
    }

    /// Parks `conn` once hyper says it can take the next request (its
    /// response has been read to the end). A connection that does not become
    /// ready soon is dropped, which closes it.
    pub fn park_when_ready(self: &Arc<Self>, mut conn: Upstream) {
        if conn.sender.is_ready() {
            self.park(conn);
            return;
        }
        let idle = self.clone();
        tokio::spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(IDLE_TIMEOUT, conn.sender.ready()).await {
                idle.park(conn);
            }
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A member answering every request on a connection with `200 ok` and
    /// reporting, per accepted connection, nothing: tests count connections
    /// through the accept loop.
    async fn member() -> (SocketAddr, Arc<AtomicU64>) {
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
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn get(conn: &mut Upstream) -> String {
        let request = hyper::Request::get("/")
            .header("host", "m")
            .body(Either::Right(Empty::new()))
            .unwrap();
        let response = conn.sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_parked_connection_is_reused_then_expires() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let (addr, accepted) = member().await;
            let idle = Arc::new(IdleConns::default());
            let mut conn = open(&None, addr, None, None, Default::default())
                .await
                .unwrap();
            assert_eq!(get(&mut conn).await, "ok");
            idle.park_when_ready(conn);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(idle.len(), 1);

            let mut again = idle.take().expect("the parked connection");
            assert_eq!(get(&mut again).await, "ok");
            assert_eq!(accepted.load(Ordering::Relaxed), 1, "one connection only");
            idle.park_when_ready(again);

            // Unused past the idle timeout: closed by its driver, not handed out.
            tokio::time::sleep(IDLE_TIMEOUT + Duration::from_millis(300)).await;
            assert!(idle.take().is_none());
        })
        .await
        .unwrap();
    }
}
