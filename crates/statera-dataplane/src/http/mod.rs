//! HTTP listeners: one client connection (HTTP/1.1 with keep-alive, or
//! HTTP/1.0), each request evaluated against the listener's L7 policies and
//! forwarded to a member over a pooled keep-alive connection.
//!
//! Heads are forwarded as the bytes they arrived as (`h1.rs` finds where
//! they end and what they ask for, in place): the proxy writes the member a
//! head made of the client's own lines, less what must not cross it, plus
//! what it adds; a response head comes back the same way. Nothing is parsed
//! into header maps, encoded again or allocated per header unless an L7
//! policy or cookie persistence needs the headers as a map. Bodies stream
//! through as they come, their framing checked on the way (`h1::Chunked`).
//!
//! Per request:
//!
//! 1. The L7 policies decide (`l7.rs`): 403, a redirect, another pool, or the
//!    default pool.
//! 2. The head is rewritten for the member: hop-by-hop headers (and those the
//!    `Connection` header names) and `Expect` dropped, origin-form target,
//!    `Host` from an absolute-form target, `X-Forwarded-For/-Port/-Proto`
//!    when the listener's `insert_headers` ask for them, the framing stated
//!    once (`Content-Length` or `Transfer-Encoding: chunked`).
//! 3. A member is picked (the one session persistence remembers, if it can
//!    take the request; else the pool's algorithm's choice, counted in flight
//!    until its response ends); an idle connection to it is reused, else one is
//!    opened (a failed connect moves on to another member, at most
//!    [`MAX_CONNECT_ATTEMPTS`] members: the request has not left yet, so a
//!    retry is safe). A request without body and with an idempotent method
//!    that a reused connection lost before any answer (the member closed it
//!    as we sent) is sent again on a fresh connection.
//! 4. The response streams back (with the persistence cookie when
//!    `HTTP_COOKIE` inserts one; `APP_COOKIE` learns from its `Set-Cookie`);
//!    once its body has been relayed to the end, the member connection is
//!    parked for the next request. A chunked response to an HTTP/1.0 client
//!    has its coding taken off and the connection closed at its end.
//!
//! What the client gets from the proxy itself: `400` for a malformed request,
//! an HTTP/1.1 request without exactly one `Host`, ambiguous framing (both
//! `Content-Length` and `Transfer-Encoding`, differing lengths, a coding
//! that does not end in `chunked`, a malformed chunked body: see
//! `h1::parse_request`), always with a close; `431` for a head over
//! [`MAX_HEADER_SIZE`]; `403` REJECT, `3xx` redirects, `405` for CONNECT,
//! `502` when the member fails before its response head is complete, `503`
//! when no member takes the request, `504` when the member does not answer
//! within the listener's `timeout_member_data`. Every 4xx and 5xx of the
//! proxy counts in the listener's `request_errors`, and so does a response
//! cut because its member failed mid-body (the client connection is closed
//! then: the head is already out, a 502 can no longer be said).
//!
//! Timeouts: a request head must arrive whole within the listener's
//! `timeout_client_data` of the proxy starting to wait for it (so an idle
//! keep-alive client and one sending its head byte by byte are both cut), and
//! every read of a request body and every write to the client must progress
//! within it; the member must answer within `timeout_member_data` and its body
//! must progress within it.
//!
//! Layout: this file is the client connection (its loop, reading heads,
//! deciding, answering from the proxy itself); `forward.rs` takes a decided
//! request to a member and the response back; `pump.rs` reads member heads
//! and pumps bodies; `rewrite.rs` writes the heads that cross; `wait.rs` is
//! the listener's life as a connection follows it and the connection's one
//! timer.

use crate::h1::{self, Chunked, Framing, Head, Refusal};
use crate::health::passive::Outcome;
use crate::l7::Decision;
use crate::listener::{LifeState, ListenerView};
use crate::persistence::{Affinity, Persistence};
use crate::pool::{MemberRuntime, PoolRuntime};
use crate::snapshot::{LbShared, Snapshot};
use crate::stream::{MaybeTls, MemberStream};
use crate::upstream::{self, IdleConns, Upstream};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{StatusCode, Uri};
use statera_model::PoolProtocol;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use uuid::Uuid;

pub use crate::h1::MAX_HEADER_SIZE;

/// Distinct members tried for one request before giving up on it (as for L4
/// connections).
pub const MAX_CONNECT_ATTEMPTS: usize = 3;

/// A response body with at least this much left once its first read went
/// out moves by splice(2) instead of through the read buffer.
const SPLICE_MIN: u64 = 64 * 1024;

/// How long, and for how many bytes, a connection the proxy closes keeps
/// reading what the client still sends (see `ClientConn::linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// What a client connection's read buffer starts at (a head is usually a few
/// hundred bytes; it grows up to a head's limit, and bodies stream through
/// it).
const CLIENT_BUFFER: usize = 4 * 1024;

/// Serves one HTTP client connection to its end.
pub async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    shared: Arc<LbShared>,
    life: &mut watch::Receiver<LifeState>,
    slot: &crate::limits::Slot,
) {
    let Ok(vip) = client.local_addr() else {
        return;
    };
    let Some(listener) = snapshot.config.listeners.get(view.index) else {
        return;
    };
    let client_timeout = crate::relay::millis(listener.timeouts.client_data_ms);
    // The first head, like every other, must be in within one client
    // timeout of the proxy starting to wait for it: the connection's start.
    let first_deadline = client_timeout.map(|limit| Instant::now() + limit);
    let Some(first) = first_byte(&client, client_timeout, life).await else {
        return;
    };
    let (client, tls) = match &view.tls {
        None => (ClientStream::Plain(client), None),
        Some(accepted_with) => {
            // The newest certificates for this address: a rotated one
            // serves every handshake that starts after the change.
            let server = shared
                .load()
                .by_addr
                .get(&vip)
                .and_then(|v| v.tls.clone())
                .unwrap_or_else(|| accepted_with.clone());
            let Some((stream, tls)) = Box::pin(handshake(
                client,
                first,
                server,
                slot,
                &view,
                client_timeout,
                life,
            ))
            .await
            else {
                return;
            };
            (stream, Some(tls))
        }
    };
    let origin = Origin {
        peer,
        vip,
        snapshot,
        view,
        shared,
        client_timeout,
    };
    // A TLS client that chose h2: its streams are served apart.
    let (client, tls) = match (client, tls) {
        (MaybeTls::Tls(secure), Some(conn_tls)) if conn_tls.h2 => match *secure {
            Secure::Left(stream) => {
                // Boxed, as `run` below: a silent connection's task stays small.
                Box::pin(http2::serve(stream, *conn_tls, origin, life, slot)).await;
                return;
            }
            other => (MaybeTls::Tls(Box::new(other)), Some(conn_tls)),
        },
        other => other,
    };
    let mut conn = ClientConn::new(client, tls, origin, first_deadline, life.clone());
    // Boxed: the task of a connection that never sends a byte stays small.
    Box::pin(async {
        conn.run(life).await;
        // close_notify only after a response that ended (not a cut one,
        // which the client must see cut), and only once.
        if conn.tls.is_some() && conn.clean && !conn.closed {
            let _ = conn.client.close().await;
        }
    })
    .await;
}

/// Waits until the client sends its first byte (or closes): that byte, or
/// `None` when the connection should end instead, because the client stayed silent for
/// the client data timeout (or for `FIRST_REQUEST_GRACE` once the listener
/// drains), or the listener is cut meanwhile.
///
/// No buffer exists before this returns `true`: 10,000 silent connections
/// hold only their sockets and these small tasks.
async fn first_byte(
    client: &TcpStream,
    timeout: Option<Duration>,
    life: &mut watch::Receiver<LifeState>,
) -> Option<u8> {
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    let mut silent_too_long = std::pin::pin!(tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400))
    ));
    let mut timed = deadline.is_some();
    let mut byte = [0u8; 1];
    let mut watching_life = true;
    loop {
        tokio::select! {
            // A peek, not `readable()`: tokio reports a freshly registered
            // socket readable before anything arrived.
            peeked = client.peek(&mut byte) => {
                return matches!(peeked, Ok(1..)).then_some(byte[0]);
            }
            () = &mut silent_too_long, if timed => {
                tracing::debug!("HTTP client connection silent; closing");
                return None;
            }
            changed = life.changed(), if watching_life => {
                if changed.is_err() {
                    watching_life = false;
                    continue;
                }
                match *life.borrow_and_update() {
                    LifeState::Serving => {}
                    LifeState::Draining => {
                        // A client that just connected is sending its
                        // first request, and would not send it again on a
                        // closed connection: it gets a moment to arrive
                        // (and is served, as the last on this connection).
                        let grace = tokio::time::Instant::now() + FIRST_REQUEST_GRACE;
                        if !timed || silent_too_long.deadline() > grace {
                            silent_too_long.as_mut().reset(grace);
                            timed = true;
                        }
                    }
                    LifeState::Cut => return None,
                }
            }
        }
    }
}

/// How long a new connection that has sent nothing yet is waited for when
/// its listener starts draining (a removed listener, a handover).
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// One client connection and what its requests share.
struct ClientConn {
    client: ClientStream,
    /// TERMINATED_HTTPS: the client's certificate, the listener's TLS.
    tls: Option<Box<ConnTls>>,
    /// Whether every response so far went out whole: a TLS connection ends
    /// with close_notify only then, so a client can tell a response cut by
    /// a member's failure (or a cut listener) from one that ended.
    clean: bool,
    /// Whether our side was shut already (`linger`).
    closed: bool,
    /// What was read from the client and not yet forwarded: a head (at the
    /// start), the part of its body that came with it, maybe the next
    /// request.
    buf: Vec<u8>,
    /// Where heads are written, for the member or for the client.
    out: Vec<u8>,
    peer: SocketAddr,
    /// `peer`'s address as X-Forwarded-For names it (IPv4-mapped IPv6 shown
    /// as IPv4).
    peer_text: String,
    /// The address the client connected to: VIP and listener port.
    vip: SocketAddr,
    /// The snapshot and listener the connection was accepted with; its
    /// requests use the newest ones instead while the listener is served.
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    shared: Arc<LbShared>,
    /// Idle member connections of PROXY pools, by member id: their PROXY
    /// header names this client, so they serve no other client connection.
    own_idle: HashMap<Uuid, Arc<IdleConns>>,
    /// The one timer of the connection, moved to each wait's deadline: a
    /// deadline moved later is updated in place, where a new timer per wait
    /// would be inserted into tokio's timer wheel and removed again.
    timer: Pin<Box<Sleep>>,
    client_timeout: Option<Duration>,
    /// When the first request head is due (set until it is read).
    first_deadline: Option<Instant>,
    /// The listener's life, to tell a response that it is the last.
    life: watch::Receiver<LifeState>,
}

/// Where a client connection comes from and what it was accepted with.
struct Origin {
    peer: SocketAddr,
    vip: SocketAddr,
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    shared: Arc<LbShared>,
    client_timeout: Option<Duration>,
}

impl ClientConn {
    fn new(
        client: ClientStream,
        tls: Option<Box<ConnTls>>,
        origin: Origin,
        first_deadline: Option<Instant>,
        life: watch::Receiver<LifeState>,
    ) -> ClientConn {
        ClientConn {
            client,
            tls,
            clean: true,
            closed: false,
            buf: Vec::with_capacity(CLIENT_BUFFER),
            out: Vec::with_capacity(1024),
            peer: origin.peer,
            peer_text: origin.peer.ip().to_canonical().to_string(),
            vip: origin.vip,
            snapshot: origin.snapshot,
            view: origin.view,
            shared: origin.shared,
            own_idle: HashMap::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            client_timeout: origin.client_timeout,
            first_deadline,
            life,
        }
    }
}

/// How waiting for a request head ended, other than with a head.
enum NoHead {
    /// Closed, silent too long, or the listener stopped: close quietly.
    Close,
    /// Refused: answer with this status and close.
    Refused(Refusal),
}

/// Why a member gave no usable response head.
enum MemberFailure {
    /// The connection ended (or failed) before any byte of a response.
    Lost,
    /// It ended or failed after part of one, or sent something that is
    /// not an HTTP/1 response head.
    Broken,
    /// No response head within the member data timeout.
    TimedOut,
}

/// Why a request did not get a response head from its member.
enum SendError {
    Member(MemberFailure),
    /// The client went away (or stalled past its timeout) mid-body.
    ClientGone,
    /// The client's chunked body turned out malformed mid-way.
    MalformedBody,
}

/// What became of a request: whether the client connection can take another.
type Keep = bool;

impl ClientConn {
    async fn run(&mut self, life: &mut watch::Receiver<LifeState>) {
        let mut stop = Stop::new(life.clone());
        loop {
            let head = match self.read_head(&mut stop).await {
                Ok(head) => head,
                Err(NoHead::Close) => return,
                Err(NoHead::Refused(refusal)) => {
                    let status = match refusal {
                        Refusal::BadRequest(why) => {
                            tracing::debug!(peer = %self.peer, why, "request refused");
                            StatusCode::BAD_REQUEST
                        }
                        Refusal::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    };
                    self.proxy_error(status, true).await;
                    return;
                }
            };
            let keep = {
                let mut exchange = std::pin::pin!(self.exchange(head));
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(keep) = exchange.as_mut().poll(cx) {
                        return Poll::Ready(Some(keep));
                    }
                    // Draining lets the request finish; cut ends it.
                    loop {
                        match stop.poll_next(cx) {
                            Poll::Ready(LifeState::Cut) => return Poll::Ready(None),
                            Poll::Ready(_) => continue,
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                })
                .await
            };
            let Some(keep) = keep else {
                // Cut mid-exchange: whatever was under way stays cut.
                self.clean = false;
                return;
            };
            if !keep || stop.draining {
                // Draining: the request in flight is done; take no other.
                return;
            }
        }
    }

    /// Whether the listener has stopped taking requests: the response in
    /// flight is the connection's last. (No lock unless the listener's state
    /// ever changed.)
    fn draining(&self) -> bool {
        match self.life.has_changed() {
            Ok(false) => false,
            _ => *self.life.borrow() != LifeState::Serving,
        }
    }

    /// The configuration a request on this connection follows: the newest
    /// snapshot while it still serves this address (a keep-alive client sees
    /// member and policy changes at its next request, as a new connection
    /// would), else the one the connection started with (a removed listener
    /// drains on its last configuration).
    fn current(&self) -> (Arc<Snapshot>, Arc<ListenerView>) {
        let newest = self.shared.load();
        match newest.by_addr.get(&self.vip).cloned() {
            Some(view) => (newest, view),
            None => (self.snapshot.clone(), self.view.clone()),
        }
    }

    /// Reads until `buf` starts with a whole request head, within the client
    /// data timeout (from the moment it has to wait). A draining or cut
    /// listener ends the wait while no request has begun.
    async fn read_head(&mut self, stop: &mut Stop) -> Result<Head, NoHead> {
        let mut armed = false;
        let first_deadline = self.first_deadline.take();
        loop {
            if !self.buf.is_empty() {
                match h1::parse_request(&self.buf) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(refusal) => return Err(NoHead::Refused(refusal)),
                }
            }
            reserve(&mut self.buf, CLIENT_BUFFER);
            let timer = &mut self.timer;
            let limit = self.client_timeout;
            let mut read = std::pin::pin!(self.client.read_buf(&mut self.buf));
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(read) = read.as_mut().poll(cx) {
                    return Poll::Ready(HeadEvent::Read(read));
                }
                if let Some(limit) = limit {
                    if !armed {
                        timer
                            .as_mut()
                            .reset(first_deadline.unwrap_or_else(|| Instant::now() + limit));
                        armed = true;
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(HeadEvent::TimedOut);
                    }
                }
                stop.poll_next(cx).map(HeadEvent::Life)
            })
            .await;
            match event {
                HeadEvent::Read(Ok(0) | Err(_)) => return Err(NoHead::Close),
                HeadEvent::Read(Ok(n)) => {
                    self.view
                        .stats
                        .bytes_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                HeadEvent::TimedOut => {
                    tracing::debug!(peer = %self.peer, "HTTP client idle or too slow; closing");
                    return Err(NoHead::Close);
                }
                HeadEvent::Life(state) => {
                    if state == LifeState::Cut || self.buf.is_empty() {
                        return Err(NoHead::Close);
                    }
                }
            }
        }
    }

    /// Serves the request whose head starts `buf`.
    async fn exchange(&mut self, head: Head) -> Keep {
        let (snapshot, view) = self.current();
        let listener = &snapshot.config.listeners[view.index];
        let buf = &self.buf[..head.len];
        let method = &buf[head.method.clone()];
        let Some(mut target) = Target::of(&buf[head.target.clone()]) else {
            // CONNECT's authority form: this is not a forward proxy.
            return self.refuse(&head, StatusCode::METHOD_NOT_ALLOWED).await;
        };
        let policies = &view.policies;
        // A rule reads the path: rules see, and the member gets, the
        // normalised target (`l7::normalize_target`; nothing allocated when
        // it is normal already).
        let normalized = if policies.normalizes_paths() {
            match target.normalized() {
                Ok(normalized) => normalized,
                // `%` not followed by two hex digits: not a URI.
                Err(_) => return self.refuse(&head, StatusCode::BAD_REQUEST).await,
            }
        } else {
            None
        };
        if let Some(normalized) = &normalized {
            target.slash = false;
            target.path = normalized;
        }
        // Headers as a map only for what reads them that way.
        let mut map = None;
        if !policies.is_empty() {
            map = Some(header_map(buf, &head));
        }
        let pool_id = if policies.is_empty() {
            listener.default_pool_id
        } else {
            let Ok(uri) = Uri::try_from(&buf[head.target.clone()]) else {
                return self.refuse(&head, StatusCode::BAD_REQUEST).await;
            };
            // Normalised targets are made of the request's own bytes, which
            // parsed as a URI: ASCII.
            let normalized = normalized
                .as_deref()
                .and_then(|n| std::str::from_utf8(n).ok());
            match policies.decide(
                &uri,
                normalized,
                map.as_ref().expect("made above"),
                self.tls.as_ref().map(|t| &t.peer),
            ) {
                Decision::Reject => return self.refuse(&head, StatusCode::FORBIDDEN).await,
                Decision::Redirect { status, location } => {
                    let keep = head.keep_alive && head.framing() == Framing::Empty;
                    if keep {
                        self.consume(head.len);
                    }
                    self.respond(status, Some(&location), !keep).await;
                    return keep;
                }
                Decision::Pool(id) => Some(id),
                Decision::Default => listener.default_pool_id,
            }
        };
        let Some(pool) = pool_id.and_then(|id| snapshot.pools.get(&id)).cloned() else {
            return self.refuse(&head, StatusCode::SERVICE_UNAVAILABLE).await;
        };
        let cookies = matches!(
            pool.persistence.as_deref(),
            Some(Persistence::HttpCookie | Persistence::AppCookie { .. })
        );
        if cookies && map.is_none() {
            map = Some(header_map(buf, &head));
        }
        let affinity = pool.affinity(self.peer, map.as_ref());
        let mut strip_cookie = false;
        if let (Some(persistence @ Persistence::HttpCookie), Some(map)) =
            (pool.persistence.as_deref(), map.as_mut())
        {
            persistence.strip_request(map);
            strip_cookie = true;
        }
        let idempotent = matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        );
        let to_head = method == b"HEAD";
        write_request_head(
            &mut self.out,
            buf,
            &head,
            &target,
            RequestEdits {
                forwarded_for: listener
                    .insert_headers
                    .x_forwarded_for
                    .then_some(&*self.peer_text),
                forwarded_port: listener
                    .insert_headers
                    .x_forwarded_port
                    .then_some(listener.protocol_port),
                forwarded_proto: listener.insert_headers.x_forwarded_proto,
                cookies: if strip_cookie { map.as_ref() } else { None },
                tls: self
                    .tls
                    .as_ref()
                    .map(|t| (&t.peer, listener.insert_headers.client_cert)),
            },
        );
        let timeouts = listener.timeouts;
        let exchange = Exchange {
            head,
            affinity,
            idempotent,
            to_head,
            connect_timeout: crate::relay::millis(timeouts.member_connect_ms),
            member_timeout: crate::relay::millis(timeouts.member_data_ms),
        };
        drop(snapshot);
        self.forward(&pool, exchange).await
    }

    /// After a request went (at least partly) to a member that failed:
    /// `status` to the client, which may go on only if its request was
    /// read whole.
    async fn error_after_send(
        &mut self,
        x: &Exchange,
        complete: bool,
        body_end: usize,
        status: StatusCode,
    ) -> Keep {
        let keep = complete && x.head.keep_alive;
        if complete {
            self.consume(body_end);
        }
        self.proxy_error(status, !keep).await;
        keep
    }

    /// Drops the first `end` bytes of `buf` (at most all of it): a request
    /// that is done with.
    fn consume(&mut self, end: usize) {
        self.buf.drain(..end.min(self.buf.len()));
    }

    /// A response of the proxy's own to a request whose body was not read:
    /// the connection goes on only if it had none.
    async fn refuse(&mut self, head: &Head, status: StatusCode) -> Keep {
        if head.framing() != Framing::Empty || !head.keep_alive {
            return self.refuse_closing(status).await;
        }
        self.consume(head.len);
        self.proxy_error(status, false).await;
        true
    }

    async fn refuse_closing(&mut self, status: StatusCode) -> Keep {
        self.proxy_error(status, true).await;
        false
    }

    /// A response from the proxy itself, counted as a request error.
    async fn proxy_error(&mut self, status: StatusCode, close: bool) {
        self.view
            .stats
            .request_errors
            .fetch_add(1, Ordering::Relaxed);
        self.respond(status, None, close).await;
    }

    /// Writes a short response of the proxy's own (plain text like
    /// HAProxy's error pages, or a redirect to `location`).
    async fn respond(&mut self, status: StatusCode, location: Option<&HeaderValue>, close: bool) {
        use std::io::Write as _;
        let reason = status.canonical_reason().unwrap_or("");
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_u16());
        out.extend_from_slice(b"cache-control: no-cache\r\n");
        if close || self.draining() {
            out.extend_from_slice(b"connection: close\r\n");
        }
        match location {
            Some(location) => {
                out.extend_from_slice(b"location: ");
                out.extend_from_slice(location.as_bytes());
                out.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
            }
            None => {
                let text = format!("{} {reason}\n", status.as_u16());
                let _ = write!(
                    out,
                    "content-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
            }
        }
        let _ = self.write_client(&out).await;
        out.clear();
        self.out = out;
        if close {
            self.linger().await;
        }
    }

    /// Ends a connection the proxy closes while the client may still be
    /// sending (a refused head, an unread body): our side is shut first,
    /// then what the client still sends is read and dropped for a moment,
    /// so closing does not reset the connection and lose the response we
    /// just wrote. Bounded in time and bytes.
    async fn linger(&mut self) {
        self.closed = true;
        if self.client.close().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut sink = [0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.client.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => dropped += n,
                _ => return,
            }
        }
    }

    async fn write_client(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_client_pair(bytes, &[]).await
    }

    /// Writes `a` then `b` to the client (one system call when it takes
    /// them), each write within the client data timeout.
    async fn write_client_pair(&mut self, a: &[u8], b: &[u8]) -> io::Result<()> {
        let mut parts = [IoSlice::new(a), IoSlice::new(b)];
        let skip = usize::from(a.is_empty()) + usize::from(a.is_empty() && b.is_empty());
        self.write_client_parts(&mut parts[skip..]).await
    }

    async fn write_client_parts(&mut self, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        // Empty parts (a read of chunk framing only, taken off for an
        // HTTP/1.0 client) write nothing; leading ones would make the write
        // look like a closed socket.
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            let write = self.client.write_vectored(parts);
            let n = match timed(&mut self.timer, self.client_timeout, write).await {
                Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Some(result) => result?,
                None => return Err(io::ErrorKind::TimedOut.into()),
            };
            self.view
                .stats
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
            IoSlice::advance_slices(&mut parts, n);
        }
        if matches!(self.client, ClientStream::Tls(_)) {
            // rustls takes the bytes before they are all on the socket.
            match timed(&mut self.timer, self.client_timeout, self.client.flush()).await {
                Some(result) => result?,
                None => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        Ok(())
    }
}

/// Which side of a relay failed.
enum Side {
    Client,
    /// The member, after the response head went to the client.
    Member,
    /// The member, before anything went to the client (a body malformed
    /// from its first bytes): the client can still be told 502.
    MemberBeforeHead,
}

/// What a request is, once decided, for its way to a member and back.
struct Exchange {
    head: Head,
    affinity: Affinity,
    idempotent: bool,
    to_head: bool,
    connect_timeout: Option<Duration>,
    member_timeout: Option<Duration>,
}

/// What ended a wait for a request head.
enum HeadEvent {
    Read(io::Result<usize>),
    TimedOut,
    Life(LifeState),
}

mod forward;
mod http2;
mod pump;
mod rewrite;
mod stream;
mod wait;

use pump::*;
use rewrite::*;
use stream::*;
use wait::*;
