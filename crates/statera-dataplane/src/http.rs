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

use crate::h1::{self, Chunked, Framing, Head, Refusal};
use crate::health::passive::Outcome;
use crate::l7::Decision;
use crate::listener::{LifeState, ListenerView};
use crate::persistence::{Affinity, Persistence};
use crate::pool::{MemberRuntime, PoolRuntime};
use crate::snapshot::{LbShared, Snapshot};
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
    if !first_byte(&client, client_timeout, life).await {
        return;
    }
    let conn = ClientConn {
        client,
        buf: Vec::with_capacity(CLIENT_BUFFER),
        out: Vec::with_capacity(1024),
        peer,
        peer_text: peer.ip().to_canonical().to_string(),
        vip,
        snapshot,
        view,
        shared,
        own_idle: HashMap::new(),
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        client_timeout,
        first_deadline,
        life: life.clone(),
    };
    // Boxed: the task of a connection that never sends a byte stays small.
    Box::pin(conn.run(life)).await;
}

/// Waits until the client sends its first byte (or closes): `false` when
/// the connection should end instead, because the client stayed silent for
/// the client data timeout (or for `FIRST_REQUEST_GRACE` once the listener
/// drains), or the listener is cut meanwhile.
///
/// No buffer exists before this returns `true`: 10,000 silent connections
/// hold only their sockets and these small tasks.
async fn first_byte(
    client: &TcpStream,
    timeout: Option<Duration>,
    life: &mut watch::Receiver<LifeState>,
) -> bool {
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
            peeked = client.peek(&mut byte) => return peeked.is_ok(),
            () = &mut silent_too_long, if timed => {
                tracing::debug!("HTTP client connection silent; closing");
                return false;
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
                    LifeState::Cut => return false,
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
    client: TcpStream,
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
    async fn run(mut self, life: &mut watch::Receiver<LifeState>) {
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
                        return Poll::Ready(keep);
                    }
                    // Draining lets the request finish; cut ends it.
                    loop {
                        match stop.poll_next(cx) {
                            Poll::Ready(LifeState::Cut) => return Poll::Ready(false),
                            Poll::Ready(_) => continue,
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                })
                .await
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
            match policies.decide(&uri, normalized, map.as_ref().expect("made above")) {
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

    /// The idle connections a request to `member` of `pool` may use.
    fn idle_for(&mut self, pool: &PoolRuntime, member: &MemberRuntime) -> Arc<IdleConns> {
        if !matches!(pool.protocol, PoolProtocol::Proxy | PoolProtocol::ProxyV2) {
            return member.idle.clone();
        }
        self.own_idle.entry(member.id).or_default().clone()
    }

    /// Sends the request (its head in `out`, its body in `buf` and still
    /// coming) to a member and relays the response.
    async fn forward(&mut self, pool: &PoolRuntime, x: Exchange) -> Keep {
        // The part of the body that came with the head, and whether it is
        // all of it.
        let mut chunked = Chunked::default();
        let (body_end, complete) = match x.head.framing() {
            Framing::Empty | Framing::UntilClose => (x.head.len, true),
            Framing::Length(n) => {
                let available = (self.buf.len() - x.head.len) as u64;
                let end = x.head.len + available.min(n) as usize;
                (end, available >= n)
            }
            Framing::Chunked => match chunked.scan(&self.buf[x.head.len..], |_| {}) {
                Ok(n) => (x.head.len + n, chunked.is_done()),
                Err(_) => return self.refuse_closing(StatusCode::BAD_REQUEST).await,
            },
        };
        if complete {
            // The whole request goes out in one write.
            self.out.extend_from_slice(&self.buf[x.head.len..body_end]);
        } else if x.head.expect_continue && x.head.minor == 1 {
            // We forward without Expect; the client waits for our word.
            if self
                .write_client(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return false;
            }
        }
        let replayable = complete && x.head.framing() == Framing::Empty && x.idempotent;
        let proxy_header = upstream::proxy_header(pool.protocol, self.peer, self.vip);
        let reporter = self.snapshot.reporter.clone();
        let mut tried = [0; MAX_CONNECT_ATTEMPTS];
        let mut attempts = 0;
        'members: while attempts < MAX_CONNECT_ATTEMPTS {
            let Some(i) = pool.select(self.peer, &x.affinity, &tried[..attempts]) else {
                break;
            };
            tried[attempts] = i;
            attempts += 1;
            let member = &pool.members[i];
            // Counted from the attempt to the end of the response body.
            let in_flight = member.start();
            let idle = self.idle_for(pool, member);
            let mut fresh_only = false;
            loop {
                let pooled = if fresh_only { None } else { idle.take() };
                let reused = pooled.is_some();
                let mut up = match pooled {
                    Some(up) => up,
                    None => match upstream::open(
                        &self.snapshot.netns,
                        statera_config::member_source(self.vip.ip(), member.addr.ip()),
                        member.addr,
                        x.connect_timeout,
                        proxy_header.as_deref(),
                        member.stats.clone(),
                    )
                    .await
                    {
                        Ok(up) => up,
                        Err(error) => {
                            tracing::debug!(member = %member.id, addr = %member.addr, %error, "member connect failed");
                            pool.observe(i, Outcome::Failure, &reporter);
                            continue 'members;
                        }
                    },
                };
                let sent = if complete {
                    self.send_whole(&mut up, &x).await
                } else {
                    self.send_streaming(&mut up, &x, body_end, chunked.clone())
                        .await
                };
                let (response, request_complete) = match sent {
                    Ok(sent) => {
                        if complete {
                            self.consume(body_end);
                        }
                        sent
                    }
                    Err(SendError::ClientGone) => return false,
                    Err(SendError::MalformedBody) => {
                        tracing::debug!(peer = %self.peer, "malformed chunked request body");
                        return self.refuse_closing(StatusCode::BAD_REQUEST).await;
                    }
                    Err(SendError::Member(failure)) => {
                        let status = match failure {
                            MemberFailure::Lost if reused && replayable => {
                                // The member closed the idle connection as
                                // we sent: not its fault, and the request
                                // can go again.
                                tracing::debug!(member = %member.id, "request lost by a reused connection; sending again");
                                fresh_only = true;
                                continue;
                            }
                            MemberFailure::TimedOut => {
                                tracing::debug!(member = %member.id, "member did not answer in time");
                                pool.observe(i, Outcome::Failure, &reporter);
                                StatusCode::GATEWAY_TIMEOUT
                            }
                            MemberFailure::Lost | MemberFailure::Broken => {
                                tracing::debug!(member = %member.id, reused, "member request failed");
                                if !reused {
                                    // A fresh connection lost: the member's
                                    // doing (a reused one may just have
                                    // timed out idle).
                                    pool.observe(i, Outcome::Failure, &reporter);
                                }
                                StatusCode::BAD_GATEWAY
                            }
                        };
                        return self.error_after_send(&x, complete, body_end, status).await;
                    }
                };
                let outcome = if response.status >= 500 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                pool.observe(i, outcome, &reporter);
                pool.stick(&x.affinity, i);
                let (keep, reusable) = self
                    .relay_response(&mut up, response, pool, member.id, &x, request_complete)
                    .await;
                drop(in_flight);
                if reusable {
                    idle.park(up);
                }
                return keep;
            }
        }
        tracing::debug!(pool = %pool.id, tried = attempts, "no member took the request");
        if complete {
            self.consume(body_end);
        }
        let keep = complete && x.head.keep_alive;
        self.proxy_error(StatusCode::SERVICE_UNAVAILABLE, !keep)
            .await;
        keep
    }

    /// Sends a request whose body is all in `buf` (head and body are in
    /// `out`) and reads the response head.
    async fn send_whole(
        &mut self,
        up: &mut Upstream,
        x: &Exchange,
    ) -> Result<(Head, bool), SendError> {
        if up.write_all(&self.out).await.is_err() {
            return Err(SendError::Member(MemberFailure::Lost));
        }
        let read = read_response_head(up, x.to_head);
        match timed(&mut self.timer, x.member_timeout, read).await {
            Some(Ok(head)) => Ok((head, true)),
            Some(Err(failure)) => Err(SendError::Member(failure)),
            None => Err(SendError::Member(MemberFailure::TimedOut)),
        }
    }

    /// Sends a request whose body is still coming: the head and what `buf`
    /// has of the body first, then the rest as the client sends it, while
    /// watching for the response head (a member may answer before it has
    /// read the whole body). `Err(None)`: the client failed; nothing more
    /// can be said to it.
    async fn send_streaming(
        &mut self,
        up: &mut Upstream,
        x: &Exchange,
        body_end: usize,
        chunked: Chunked,
    ) -> Result<(Head, bool), SendError> {
        let mut first = std::mem::take(&mut self.out);
        first.extend_from_slice(&self.buf[x.head.len..body_end]);
        let written = up.write_all(&first).await;
        first.clear();
        self.out = first;
        if written.is_err() {
            return Err(SendError::Member(MemberFailure::Lost));
        }
        let remaining = match x.head.framing() {
            Framing::Length(n) => n - (body_end - x.head.len) as u64,
            _ => 0,
        };
        self.buf.clear();
        let framing = x.head.framing();
        let Upstream {
            stream, buf, stats, ..
        } = up;
        let stats: &crate::stats::ListenerStats = stats;
        let (mut member_read, mut member_write) = stream.split();
        let mut pumped: Option<Result<usize, PumpError>> = None;
        let waited = {
            let mut pump = std::pin::pin!(pump_body(
                &mut self.client,
                &mut self.buf,
                &mut member_write,
                Body {
                    remaining,
                    chunked: (framing == Framing::Chunked).then_some(chunked),
                },
                self.client_timeout,
                &self.view.stats,
                stats,
            ));
            let mut read = std::pin::pin!(read_head_from(&mut member_read, buf, stats, x.to_head));
            // While the body is coming, the client's timeout governs (each
            // of its reads); the member's starts once the body is through:
            // a slow client is not a slow member.
            let early = tokio::select! {
                biased;
                head = &mut read => Some(head),
                result = &mut pump => {
                    pumped = Some(result);
                    None
                }
            };
            match early {
                Some(head) => Some(head),
                None if matches!(pumped, Some(Err(PumpError::Client | PumpError::Malformed))) => {
                    Some(Err(MemberFailure::Lost))
                }
                None => timed(&mut self.timer, x.member_timeout, &mut read).await,
            }
        };
        let request_complete = match pumped {
            Some(Ok(end)) => {
                self.consume(end);
                true
            }
            Some(Err(PumpError::Client)) => return Err(SendError::ClientGone),
            Some(Err(PumpError::Malformed)) => return Err(SendError::MalformedBody),
            _ => false,
        };
        match waited {
            Some(Ok(head)) => Ok((head, request_complete)),
            Some(Err(failure)) if request_complete => Err(SendError::Member(failure)),
            // The body did not get through: nothing can be sent again.
            Some(Err(_)) => Err(SendError::Member(MemberFailure::Broken)),
            None => Err(SendError::Member(MemberFailure::TimedOut)),
        }
    }

    /// Relays a member's response (its head parsed from `conn.buf`) to the
    /// client; also says whether the member connection can take another
    /// request.
    async fn relay_response(
        &mut self,
        conn: &mut Upstream,
        response: Head,
        pool: &PoolRuntime,
        member: Uuid,
        x: &Exchange,
        request_complete: bool,
    ) -> (Keep, bool) {
        let mut map = None;
        if let Some(persistence) = pool.persistence.as_deref()
            && !matches!(persistence, Persistence::SourceIp(_))
        {
            let mut headers = header_map(&conn.buf, &response);
            persistence.on_response(&x.affinity, member, &mut headers, Instant::now());
            map = Some(headers);
        }
        let framing = response.framing();
        if response.codings && x.head.minor == 0 {
            // Transfer codings besides chunked (`gzip, chunked`) cannot be
            // said to an HTTP/1.0 client, and taking them off is not the
            // proxy's to do: refused rather than delivered as another body.
            tracing::debug!("transfer-coded response to an HTTP/1.0 client");
            self.out.clear();
            self.proxy_error(StatusCode::BAD_GATEWAY, true).await;
            return (false, false);
        }
        let dechunk = framing == Framing::Chunked && x.head.minor == 0;
        let close = !x.head.keep_alive
            || !request_complete
            || framing == Framing::UntilClose
            || dechunk
            || self.draining();
        write_response_head(
            &mut self.out,
            &conn.buf,
            &response,
            map.as_ref(),
            close,
            x.head.minor,
        );
        conn.buf.drain(..response.len);
        let relayed = self
            .relay_body(conn, framing, dechunk, x.member_timeout)
            .await;
        if relayed.is_ok() && !request_complete {
            // The member answered before the whole body came: the rest of
            // it is still on its way from the client.
            self.linger().await;
        }
        match relayed {
            Ok(()) => (
                !close,
                response.keep_alive && request_complete && conn.buf.is_empty(),
            ),
            Err(Side::Member) => {
                tracing::debug!("member failed mid-response");
                self.view
                    .stats
                    .request_errors
                    .fetch_add(1, Ordering::Relaxed);
                (false, false)
            }
            Err(Side::MemberBeforeHead) => {
                tracing::debug!("member sent a malformed body");
                self.out.clear();
                self.proxy_error(StatusCode::BAD_GATEWAY, true).await;
                (false, false)
            }
            Err(Side::Client) => (false, false),
        }
    }

    /// Sends the head in `out` and the body that follows it in `up.buf`
    /// (and from the member after that) to the client.
    async fn relay_body(
        &mut self,
        up: &mut Upstream,
        framing: Framing,
        dechunk: bool,
        member_timeout: Option<Duration>,
    ) -> Result<(), Side> {
        let mut remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunked = Chunked::default();
        let mut data = Vec::new();
        // Whether the last read was small (at first: whether the head came
        // with little or none of the body): then the rest may wait behind
        // the member's Nagle for our ACK (see `upstream::ack_now`).
        let mut small = up.buf.len() < upstream::SMALL_READ;
        loop {
            // What of `up.buf` is this body, and whether the body ends there.
            let (take, done) = match framing {
                Framing::Empty => (0, true),
                Framing::Length(_) => {
                    let take = (up.buf.len() as u64).min(remaining);
                    remaining -= take;
                    (take as usize, remaining == 0)
                }
                Framing::Chunked => {
                    data.clear();
                    let n = chunked
                        .scan(&up.buf, |range| data.push(range))
                        .map_err(|_| {
                            if self.out.is_empty() {
                                Side::Member
                            } else {
                                Side::MemberBeforeHead
                            }
                        })?;
                    (n, chunked.is_done())
                }
                Framing::UntilClose => (up.buf.len(), false),
            };
            let head = std::mem::take(&mut self.out);
            let wrote = if dechunk {
                let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(data.len() + 1);
                parts.push(IoSlice::new(&head));
                parts.extend(data.iter().map(|r| IoSlice::new(&up.buf[r.clone()])));
                self.write_client_parts(&mut parts).await
            } else {
                self.write_client_pair(&head, &up.buf[..take]).await
            };
            self.out = head;
            self.out.clear();
            wrote.map_err(|_| Side::Client)?;
            up.buf.drain(..take);
            if done {
                return Ok(());
            }
            if !up.buf.is_empty() {
                // Bytes past the end of a body that has not ended: cannot be.
                return Err(Side::Member);
            }
            if matches!(framing, Framing::Length(_))
                && remaining >= SPLICE_MIN
                && let Ok(pipe) = crate::splice::Pipe::new()
            {
                return self.splice_body(up, pipe, remaining, member_timeout).await;
            }
            let expected = matches!(framing, Framing::Length(_)).then_some(remaining);
            if small {
                up.ack_now();
            }
            match timed(&mut self.timer, member_timeout, up.read_more(expected)).await {
                Some(Ok(0)) if framing == Framing::UntilClose => return Ok(()),
                Some(Ok(0)) | Some(Err(_)) => return Err(Side::Member),
                Some(Ok(n)) => small = n < upstream::SMALL_READ,
                None => {
                    tracing::debug!("member response body timed out");
                    return Err(Side::Member);
                }
            }
        }
    }

    /// Moves the last `remaining` bytes of a response body from the member
    /// to the client through `pipe` (splice(2): the bytes never enter the
    /// proxy's memory); each wait for the member within its data timeout,
    /// for the client within the client's.
    async fn splice_body(
        &mut self,
        up: &mut Upstream,
        mut pipe: crate::splice::Pipe,
        mut remaining: u64,
        member_timeout: Option<Duration>,
    ) -> Result<(), Side> {
        use tokio::io::Interest;
        // Only large bodies come here; a small read is still acknowledged at
        // once (see `upstream::SMALL_READ`).
        let mut small = false;
        loop {
            if pipe.held() == 0 {
                if remaining == 0 {
                    return Ok(());
                }
                let max = usize::try_from(remaining).unwrap_or(usize::MAX);
                if small {
                    up.ack_now();
                }
                match timed(&mut self.timer, member_timeout, up.stream.readable()).await {
                    Some(Ok(())) => {}
                    Some(Err(_)) | None => return Err(Side::Member),
                }
                match up
                    .stream
                    .try_io(Interest::READABLE, || pipe.fill(&up.stream, max))
                {
                    Ok(0) => return Err(Side::Member),
                    Ok(n) => {
                        small = n < upstream::SMALL_READ;
                        remaining -= n as u64;
                        up.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Err(Side::Member),
                }
            }
            match timed(&mut self.timer, self.client_timeout, self.client.writable()).await {
                Some(Ok(())) => {}
                Some(Err(_)) | None => return Err(Side::Client),
            }
            match self
                .client
                .try_io(Interest::WRITABLE, || pipe.drain(&self.client))
            {
                Ok(n) => {
                    self.view
                        .stats
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Side::Client),
            }
        }
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
        if self.client.shutdown().await.is_err() {
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

/// The listener's life as one client connection follows it: one wait on
/// the listener's state, registered once per connection (not once per
/// request), that resolves when it moves to draining, then to cut.
struct Stop {
    next: Pin<Box<dyn Future<Output = (LifeState, watch::Receiver<LifeState>)> + Send>>,
    /// The listener is draining: the request in flight is the last.
    draining: bool,
}

impl Stop {
    fn new(life: watch::Receiver<LifeState>) -> Stop {
        Stop {
            next: Box::pin(next_stop(life, LifeState::Serving)),
            draining: false,
        }
    }

    /// Ready with the new state when the listener starts draining or is cut.
    fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<LifeState> {
        let (state, life) = std::task::ready!(self.next.as_mut().poll(cx));
        if state == LifeState::Draining {
            self.draining = true;
            self.next = Box::pin(next_stop(life, LifeState::Draining));
        } else {
            self.next = Box::pin(std::future::pending());
        }
        Poll::Ready(state)
    }
}

/// Resolves with the listener's state once it is neither serving nor `from`.
async fn next_stop(
    mut life: watch::Receiver<LifeState>,
    from: LifeState,
) -> (LifeState, watch::Receiver<LifeState>) {
    loop {
        let state = *life.borrow_and_update();
        if state != LifeState::Serving && state != from {
            return (state, life);
        }
        if life.changed().await.is_err() {
            // The listener's life cannot change any more.
            std::future::pending::<()>().await;
        }
    }
}

/// `future`'s output if it comes within `limit` (`None`: no limit), on the
/// connection's timer. A future that is ready at once (most writes, a
/// response already in) costs the timer nothing: it is armed only when the
/// future has to wait.
async fn timed<F: Future>(
    timer: &mut Pin<Box<Sleep>>,
    limit: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    let Some(limit) = limit else {
        return Some(future.await);
    };
    let mut future = std::pin::pin!(future);
    let mut armed = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if !armed {
            timer.as_mut().reset(Instant::now() + limit);
            armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Makes room for at least `want` more bytes in `buf` when it has little.
fn reserve(buf: &mut Vec<u8>, want: usize) {
    if buf.capacity() - buf.len() < want / 4 {
        buf.reserve(want);
    }
}

/// Reads a response head from the member into `up.buf` (1xx interim
/// responses are read and dropped: the client was never asked to expect
/// one).
async fn read_response_head(up: &mut Upstream, to_head: bool) -> Result<Head, MemberFailure> {
    let Upstream {
        stream, buf, stats, ..
    } = up;
    read_head_from(stream, buf, stats, to_head).await
}

async fn read_head_from<R: MemberRead>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    stats: &crate::stats::ListenerStats,
    to_head: bool,
) -> Result<Head, MemberFailure> {
    loop {
        if !buf.is_empty() {
            match h1::parse_response(buf, to_head) {
                Ok(Some(head)) if head.status == 101 => {
                    tracing::debug!("member switched protocols unasked");
                    return Err(MemberFailure::Broken);
                }
                Ok(Some(head)) if head.status < 100 => {
                    tracing::debug!(status = head.status, "member sent an invalid status");
                    return Err(MemberFailure::Broken);
                }
                Ok(Some(head)) if head.status < 200 => {
                    buf.drain(..head.len);
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                // Part of a head: the rest may wait for our ACK.
                Ok(None) => upstream::ack_now(stream.socket()),
                Err(why) => {
                    tracing::debug!(why, "member sent no HTTP/1 response head");
                    return Err(MemberFailure::Broken);
                }
            }
        }
        reserve(buf, upstream::READ_BUFFER);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(MemberFailure::Lost),
            Ok(0) | Err(_) => return Err(MemberFailure::Broken),
            Ok(n) => {
                stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

/// A member connection, or its read half, to read a response from.
trait MemberRead: AsyncRead + Unpin {
    fn socket(&self) -> &TcpStream;
}

impl MemberRead for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl MemberRead for tokio::net::tcp::ReadHalf<'_> {
    fn socket(&self) -> &TcpStream {
        self.as_ref()
    }
}

/// What is left of a request body that did not all come with its head.
struct Body {
    /// `Content-Length` bodies: bytes still to come.
    remaining: u64,
    /// Chunked bodies: where the scan is.
    chunked: Option<Chunked>,
}

enum PumpError {
    /// The client ended, failed, or was silent past its timeout.
    Client,
    /// The client's chunked body is malformed.
    Malformed,
    Member,
}

/// Copies the rest of a request body from the client to the member (`buf`
/// is empty: what came with the head was sent). Returns where the body ended
/// in `buf` (bytes after it are the client's next request).
async fn pump_body<W: AsyncWrite + Unpin>(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    member: &mut W,
    mut body: Body,
    client_timeout: Option<Duration>,
    client_stats: &crate::stats::ListenerStats,
    member_stats: &crate::stats::ListenerStats,
) -> Result<usize, PumpError> {
    let mut timer = Box::pin(tokio::time::sleep(Duration::ZERO));
    loop {
        buf.clear();
        reserve(buf, upstream::READ_BUFFER);
        match timed(&mut timer, client_timeout, client.read_buf(buf)).await {
            Some(Ok(0)) | Some(Err(_)) | None => return Err(PumpError::Client),
            Some(Ok(n)) => {
                client_stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        let (take, done) = match &mut body.chunked {
            Some(chunked) => {
                let n = chunked
                    .scan(buf, |_| {})
                    .map_err(|_| PumpError::Malformed)?;
                (n, chunked.is_done())
            }
            None => {
                let take = (buf.len() as u64).min(body.remaining);
                body.remaining -= take;
                (take as usize, body.remaining == 0)
            }
        };
        member
            .write_all(&buf[..take])
            .await
            .map_err(|_| PumpError::Member)?;
        member_stats
            .bytes_in
            .fetch_add(take as u64, Ordering::Relaxed);
        if done {
            return Ok(take);
        }
    }
}

/// The target of a request, as the member gets it.
struct Target<'b> {
    /// Origin form (or `*`), after a `/` when `slash`: an absolute-form
    /// target's path may be empty (`http://host?q` is `/?q`).
    slash: bool,
    path: &'b [u8],
    /// The authority of an absolute-form target: the request's host.
    authority: Option<&'b [u8]>,
}

impl<'b> Target<'b> {
    /// The target's origin form normalised (`l7::normalize_target`), when
    /// that changes it.
    fn normalized(&self) -> Result<Option<Vec<u8>>, crate::l7::InvalidEscape> {
        if self.slash {
            // An absolute-form target without a path: `/` then the query.
            let mut origin = Vec::with_capacity(self.path.len() + 1);
            origin.push(b'/');
            origin.extend_from_slice(self.path);
            return Ok(Some(
                crate::l7::normalize_target(&origin)?.unwrap_or(origin),
            ));
        }
        crate::l7::normalize_target(self.path)
    }

    /// `None` for an authority-form target (CONNECT's).
    fn of(target: &'b [u8]) -> Option<Target<'b>> {
        if target.starts_with(b"/") || target == b"*" {
            return Some(Target {
                slash: false,
                path: target,
                authority: None,
            });
        }
        let scheme_end = target.windows(3).position(|w| w == b"://")?;
        let rest = &target[scheme_end + 3..];
        let authority_end = rest
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let path = &rest[authority_end..];
        let authority = &rest[..authority_end];
        // userinfo is not part of the host.
        let host = authority
            .iter()
            .rposition(|b| *b == b'@')
            .map_or(authority, |at| &authority[at + 1..]);
        Some(Target {
            slash: !path.starts_with(b"/"),
            path,
            authority: (!host.is_empty()).then_some(host),
        })
    }
}

/// Header lines a proxy never forwards: they describe one connection, not
/// the message (RFC 9110 §7.6.1), or (`Expect`) ask something of this hop.
fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"expect",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether the message's `Connection` headers name `name` (a header to
/// drop with them).
fn named_by_connection(buf: &[u8], head: &Head, name: &[u8]) -> bool {
    head.connection_names
        && head
            .values(buf, "connection")
            .flat_map(h1::tokens)
            .any(|token| token.eq_ignore_ascii_case(name))
}

/// What the proxy changes in a request head besides hop-by-hop headers.
struct RequestEdits<'a> {
    /// The client's address, for X-Forwarded-For.
    forwarded_for: Option<&'a str>,
    forwarded_port: Option<u16>,
    forwarded_proto: bool,
    /// The `Cookie` headers to send instead of the client's (the proxy's
    /// own cookie taken out).
    cookies: Option<&'a HeaderMap>,
}

/// Writes the head a member gets for the request `head` (in `buf`).
fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &Head,
    target: &Target<'_>,
    edits: RequestEdits<'_>,
) {
    out.clear();
    out.extend_from_slice(&buf[head.method.clone()]);
    out.push(b' ');
    if target.slash {
        out.push(b'/');
    }
    out.extend_from_slice(target.path);
    // An HTTP/1.0 request without a host (no Host, origin form) goes as
    // HTTP/1.0, as HAProxy sends it: the member gets the request the client
    // made, where HTTP/1.1 would require a Host that nobody named.
    let hostless = head.minor == 0 && target.authority.is_none() && !head.has_host;
    if hostless {
        out.extend_from_slice(b" HTTP/1.0\r\n");
    } else {
        out.extend_from_slice(b" HTTP/1.1\r\n");
    }
    let mut earlier_forwarded = 0;
    let mut had_length = false;
    for field in &head.fields {
        let name = &buf[field.name.clone()];
        let value = &buf[field.value.clone()];
        let host = name.eq_ignore_ascii_case(b"host");
        let skip = is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || (target.authority.is_some() && host)
            || (edits.forwarded_for.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for"))
            || (edits.forwarded_port.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-port"))
            || (edits.forwarded_proto && name.eq_ignore_ascii_case(b"x-forwarded-proto"))
            || (edits.cookies.is_some() && name.eq_ignore_ascii_case(b"cookie"))
            // `Connection: host` cannot make the host hop-by-hop: it names
            // the resource (RFC 9110 §7.6.1: end-to-end fields are never
            // connection options).
            || (!host && named_by_connection(buf, head, name));
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            earlier_forwarded += 1;
        }
        had_length |= name.eq_ignore_ascii_case(b"content-length");
        if !skip {
            line(out, name, value);
        }
    }
    if let Some(authority) = target.authority {
        line(out, b"Host", authority);
    }
    if hostless {
        // HTTP/1.0 closes by default: ask to keep the member connection.
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if let Some(cookies) = edits.cookies {
        for value in cookies.get_all(header::COOKIE) {
            line(out, b"Cookie", value.as_bytes());
        }
    }
    if let Some(client) = edits.forwarded_for {
        // Appended to what earlier proxies said, as one comma-separated line
        // (applications that read only the first line still see the chain).
        out.extend_from_slice(b"X-Forwarded-For: ");
        if earlier_forwarded > 0 {
            for value in head.values(buf, "x-forwarded-for") {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(port) = edits.forwarded_port {
        use std::io::Write as _;
        let _ = write!(out, "X-Forwarded-Port: {port}\r\n");
    }
    if edits.forwarded_proto {
        out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
    }
    match head.framing() {
        Framing::Length(n) => {
            use std::io::Write as _;
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => transfer_encoding(out, buf, head),
        // `Content-Length: 0` said so (a POST without body): some members
        // want a length on every POST or PUT.
        Framing::Empty if had_length => out.extend_from_slice(b"Content-Length: 0\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head the client gets for the member's response `head` (in
/// `buf`, or its headers from `map` when persistence rewrote them).
fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &Head,
    map: Option<&HeaderMap>,
    close: bool,
    client_minor: u8,
) {
    use std::io::Write as _;
    out.clear();
    let _ = write!(out, "HTTP/1.1 {:03} ", head.status);
    out.extend_from_slice(&buf[head.reason.clone()]);
    out.extend_from_slice(b"\r\n");
    // The framing is stated here, from what was parsed, never taken from
    // the member's lines (which its `Connection` header could name away):
    // only a bodiless response (to HEAD, 204, 304) keeps its own length.
    let keep = |name: &[u8]| {
        !(is_hop_by_hop(name)
            || (!head.bodiless && name.eq_ignore_ascii_case(b"content-length"))
            || named_by_connection(buf, head, name))
    };
    match map {
        Some(map) => {
            for (name, value) in map {
                if keep(name.as_str().as_bytes()) {
                    line(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
        }
        None => {
            for field in &head.fields {
                let name = &buf[field.name.clone()];
                if keep(name) {
                    line(out, name, &buf[field.value.clone()]);
                }
            }
        }
    }
    match head.framing() {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Empty if !head.bodiless => out.extend_from_slice(b"Content-Length: 0\r\n"),
        Framing::Chunked if client_minor == 1 => transfer_encoding(out, buf, head),
        // Delimited by the close, after codings (`Transfer-Encoding: gzip`):
        // the client must know them. (An HTTP/1.0 client cannot: such a
        // response never gets here, see `relay_response`.)
        Framing::UntilClose if head.codings => transfer_encoding(out, buf, head),
        _ => {}
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Transfer-Encoding` line of a chunked message: `chunked`, or, when
/// the sender applied other codings too (`gzip, chunked`), its own values
/// as they were (the body is forwarded with its codings: only the chunked
/// framing is checked on the way, never taken off for an HTTP/1.1 peer).
fn transfer_encoding(out: &mut Vec<u8>, buf: &[u8], head: &Head) {
    if !head.codings {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        return;
    }
    out.extend_from_slice(b"Transfer-Encoding: ");
    for (i, value) in head.values(buf, "transfer-encoding").enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The head's headers as a map (for L7 rules and cookie persistence); lines
/// that are not valid names or values are left out.
fn header_map(buf: &[u8], head: &Head) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(head.fields.len());
    for field in &head.fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&buf[field.name.clone()]),
            HeaderValue::from_bytes(&buf[field.value.clone()]),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(raw: &str, target: &str, edits: RequestEdits<'_>) -> String {
        let head = h1::parse_request(raw.as_bytes()).unwrap().unwrap();
        let target = Target::of(target.as_bytes()).unwrap();
        let mut out = Vec::new();
        write_request_head(&mut out, raw.as_bytes(), &head, &target, edits);
        String::from_utf8(out).unwrap()
    }

    fn no_edits() -> RequestEdits<'static> {
        RequestEdits {
            forwarded_for: None,
            forwarded_port: None,
            forwarded_proto: false,
            cookies: None,
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
                   Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
                   Proxy-Connection: keep-alive\r\nExpect: 100-continue\r\nX-Kept: yes\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\n\r\n"
        );
    }

    #[test]
    fn connection_cannot_name_away_what_the_request_needs() {
        // Host names the resource; the framing is stated by the proxy.
        let raw = "POST /x HTTP/1.1\r\nHost: a\r\nConnection: host, content-length, x-p\r\n\
                   X-P: 1\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            forwarded(raw, "/x", no_edits()),
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"
        );
        // HTTP/1.0 without a host stays HTTP/1.0 (and asks to keep the
        // member connection); with a Host it goes as HTTP/1.1.
        assert_eq!(
            forwarded("GET / HTTP/1.0\r\n\r\n", "/", no_edits()),
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            forwarded("GET / HTTP/1.0\r\nHost: a\r\n\r\n", "/", no_edits()),
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_for_appends_to_earlier_proxies() {
        let raw = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\
                   X-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.3\r\n\r\n";
        let edits = RequestEdits {
            forwarded_for: Some("192.0.2.7"),
            forwarded_port: Some(8080),
            forwarded_proto: true,
            cookies: None,
        };
        assert_eq!(
            forwarded(raw, "/x", edits),
            "GET /x HTTP/1.1\r\nHost: a\r\n\
             X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n\
             X-Forwarded-Port: 8080\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_stated_once() {
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
        );
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        );
        // Codings besides chunked are kept as the client sent them.
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        );
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn targets_become_origin_form() {
        type Expected = Option<(&'static str, Option<&'static str>)>;
        let table: [(&str, Expected); 6] = [
            ("/a?b=c", Some(("/a?b=c", None))),
            (
                "http://example.com:8080/x/y?z",
                Some(("/x/y?z", Some("example.com:8080"))),
            ),
            ("http://example.com", Some(("/", Some("example.com")))),
            ("http://u@example.com?q", Some(("/?q", Some("example.com")))),
            ("*", Some(("*", None))),
            ("example.com:443", None),
        ];
        for (target, expected) in table {
            let got = Target::of(target.as_bytes()).map(|t| {
                let slash = if t.slash { "/" } else { "" };
                (
                    format!("{slash}{}", String::from_utf8(t.path.to_vec()).unwrap()),
                    t.authority.map(|a| String::from_utf8(a.to_vec()).unwrap()),
                )
            });
            let expected = expected.map(|(p, a)| (p.to_string(), a.map(str::to_string)));
            assert_eq!(got, expected, "{target}");
        }
    }

    #[test]
    fn response_heads_keep_their_lines_and_state_the_connection() {
        let ok =
            "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
        // (member's head, answers HEAD, proxy closes, client's minor version, client's head)
        let table = [
            (
                ok,
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n",
            ),
            // A length the member's Connection header names is stated all the same.
            (
                "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
            ),
            // The answer to HEAD keeps the member's length; an empty body says 0.
            (
                ok,
                true,
                false,
                1,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                ok,
                false,
                true,
                0,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
        ];
        let mut out = Vec::new();
        for (raw, to_head, close, minor, expected) in table {
            let head = h1::parse_response(raw.as_bytes(), to_head)
                .unwrap()
                .unwrap();
            write_response_head(&mut out, raw.as_bytes(), &head, None, close, minor);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{raw:?}");
        }
    }
}
