//! HTTP listeners: one client connection, parsed with hyper (HTTP/1.1 with
//! keep-alive), each request evaluated against the listener's L7 policies
//! and forwarded to a member over a pooled keep-alive connection.
//!
//! Per request:
//!
//! 1. The L7 policies decide (`l7.rs`): 403, a redirect, another pool, or the
//!    default pool.
//! 2. The head is rewritten for the member: hop-by-hop headers dropped,
//!    origin-form target, `X-Forwarded-For/-Port/-Proto` when the listener's
//!    `insert_headers` ask for them.
//! 3. A member is picked (the one session persistence remembers, if it can
//!    take the request; else the pool's algorithm's choice, counted in flight
//!    until its response ends); an idle connection to it is reused, else one is
//!    opened (a failed connect moves on to another member, at most
//!    [`MAX_CONNECT_ATTEMPTS`] members: the request has not left yet, so a
//!    retry is safe). A reused connection that turns out closed before the
//!    request went out is not the member's fault: the request is tried again
//!    on a fresh connection. So is a request without body and with an
//!    idempotent method that a reused connection lost before any answer (the
//!    member closed it as we sent).
//! 4. The response streams back (with the persistence cookie when
//!    `HTTP_COOKIE` inserts one; `APP_COOKIE` learns from its `Set-Cookie`);
//!    once its body has been read to the end, the member connection is
//!    parked for the next request.
//!
//! What the client gets from the proxy itself: `400` for a malformed request
//! (hyper) or an HTTP/1.1 request without exactly one `Host` or with both
//! `Content-Length` and `Transfer-Encoding` (here; always with a close), `431` for a head over [`MAX_HEADER_SIZE`] (hyper), `403` REJECT,
//! `3xx` redirects, `502` when the member fails before its response head is
//! complete, `503` when no member takes the request, `504` when the member
//! does not answer within the listener's `timeout_member_data`. Every 4xx and
//! 5xx of the proxy counts in the listener's `request_errors`, and so does a
//! response cut because its member failed mid-body (the client connection is
//! closed then: the head is already out, a 502 can no longer be said).

use crate::health::passive::Outcome;
use crate::io::{Activity, HyperIo, Meter, RawHeads};
use crate::l7::Decision;
use crate::listener::{LifeState, ListenerView};
use crate::persistence::Affinity;
use crate::pool::{InFlight, MemberRuntime, PoolRuntime};
use crate::snapshot::{LbShared, Snapshot};
use crate::stats::ListenerStats;
use crate::upstream::{self, IdleConns, Upstream};
use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use statera_config::{ListenerConfig, Timeouts};
use statera_model::PoolProtocol;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use uuid::Uuid;

/// Distinct members tried for one request before giving up on it (as for L4
/// connections).
pub const MAX_CONNECT_ATTEMPTS: usize = 3;

/// Largest request head (request line and headers) accepted; larger ones get
/// `431`. HAProxy's default buffer (16 KiB) less its rewrite reserve allows
/// about as much, so clients that work behind the reference work here.
pub const MAX_HEADER_SIZE: usize = 15 * 1024;

/// The body of a response to a client: relayed from a member, or written by
/// the proxy.
pub type ClientBody = Either<Relayed, Full<Bytes>>;

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
    if !first_byte(&client, client_timeout, life).await {
        return;
    }
    let activity = Arc::new(Activity::new());
    let heads = Arc::new(RawHeads::new(MAX_HEADER_SIZE + 1024));
    let io = HyperIo::client(
        client,
        Meter {
            stats: view.stats.clone(),
            activity: activity.clone(),
        },
        heads.clone(),
    );
    let stats = view.stats.clone();
    let conn = Arc::new(ClientConn {
        snapshot: snapshot.clone(),
        view,
        shared,
        peer,
        peer_value: address_value(peer.ip()),
        vip,
        activity: activity.clone(),
        own_idle: Mutex::new(HashMap::new()),
        member_timer: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let conn = conn.clone();
        // Checked here, while hyper calls the service: `heads` still ends
        // with this request's head (see `RawHeads`).
        let ambiguous = is_ambiguous(request.headers(), &heads);
        async move {
            if ambiguous {
                tracing::debug!(peer = %conn.peer, "request with Content-Length and Transfer-Encoding refused");
                return Ok::<_, Infallible>(conn.bad_request());
            }
            Ok(conn.handle(request).await)
        }
    });
    // Boxed: the task of a connection that never sends a byte stays small.
    let mut http = Box::pin(
        hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .max_header_size(MAX_HEADER_SIZE)
            .serve_connection(io, service),
    );
    let idle = activity.idle(client_timeout);
    tokio::pin!(idle);
    let mut watching_life = true;
    loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(error) = result {
                    if error.is_parse() || error.is_parse_too_large() {
                        // hyper answered 400 or 431 itself.
                        stats.request_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(%peer, %error, "HTTP client connection ended");
                }
                return;
            }
            () = &mut idle => {
                tracing::debug!(%peer, "HTTP client connection idle; closing");
                return;
            }
            changed = life.changed(), if watching_life => {
                if changed.is_err() {
                    // The listener's life cannot end any more.
                    watching_life = false;
                    continue;
                }
                match *life.borrow_and_update() {
                    LifeState::Serving => {}
                    // Finish the request in flight, take no other, close.
                    LifeState::Draining => http.as_mut().graceful_shutdown(),
                    LifeState::Cut => return,
                }
            }
        }
    }
}

/// Waits until the client sends its first byte (or closes): `false` when
/// the connection should end instead, because the client stayed silent for
/// the client data timeout or the listener is draining or cut meanwhile.
///
/// Nothing of hyper's exists before this returns `true`: its connection
/// allocates an 8 KiB write buffer when made and an 8 KiB read buffer before
/// its first read, which 10,000 silent connections would hold for nothing.
async fn first_byte(
    client: &TcpStream,
    timeout: Option<Duration>,
    life: &mut watch::Receiver<LifeState>,
) -> bool {
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    let silent_too_long = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(silent_too_long);
    let mut byte = [0u8; 1];
    let mut watching_life = true;
    loop {
        tokio::select! {
            // A peek, not `readable()`: tokio reports a freshly registered
            // socket readable before anything arrived.
            peeked = client.peek(&mut byte) => return peeked.is_ok(),
            () = &mut silent_too_long => {
                tracing::debug!("HTTP client connection silent; closing");
                return false;
            }
            changed = life.changed(), if watching_life => {
                if changed.is_err() {
                    watching_life = false;
                    continue;
                }
                if *life.borrow_and_update() != LifeState::Serving {
                    // No request is in flight: nothing to finish.
                    return false;
                }
            }
        }
    }
}

/// Whether a request whose head hyper just parsed (its headers here, its raw
/// head the last of `heads`) had both `Content-Length` and
/// `Transfer-Encoding`: the shape of request smuggling, refused with 400.
pub(crate) fn is_ambiguous(headers: &HeaderMap, heads: &RawHeads) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING) && heads.last_has_content_length()
}

/// One client connection, as its requests see it.
struct ClientConn {
    /// The snapshot and listener the connection was accepted with; its
    /// requests use the newest ones instead while the listener is served.
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    shared: Arc<LbShared>,
    peer: SocketAddr,
    /// `peer`'s address as X-Forwarded-For names it.
    peer_value: HeaderValue,
    /// The address the client connected to: VIP and listener port.
    vip: SocketAddr,
    activity: Arc<Activity>,
    /// Idle member connections of PROXY pools, by member id: their PROXY
    /// header names this client, so they serve no other client connection.
    own_idle: Mutex<HashMap<Uuid, Arc<IdleConns>>>,
    /// The timer of the member data timeout while a request waits for its
    /// response head, kept between requests: moving its deadline later
    /// only updates it in place, where a new timer per request would be
    /// inserted into tokio's timer wheel and removed again each time.
    member_timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl ClientConn {
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

    fn stats(&self) -> &ListenerStats {
        &self.view.stats
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<ClientBody> {
        let _waiting = self.activity.waiting();
        let (snapshot, view) = self.current();
        let listener = &snapshot.config.listeners[view.index];
        if !host_is_unambiguous(&request) {
            // RFC 9112 §3.2: 400 to an HTTP/1.1 request without exactly one
            // Host. Two hosts could let an L7 rule judge one while the member
            // serves the other.
            return self.bad_request();
        }
        let pool_id = match view.policies.decide(request.uri(), request.headers()) {
            Decision::Reject => return self.proxy_error(StatusCode::FORBIDDEN),
            Decision::Redirect { status, location } => return redirect(status, location),
            Decision::Pool(id) => Some(id),
            Decision::Default => listener.default_pool_id,
        };
        let Some(pool) = pool_id.and_then(|id| snapshot.pools.get(&id)) else {
            return self.proxy_error(StatusCode::SERVICE_UNAVAILABLE);
        };
        let (mut parts, body) = request.into_parts();
        let Some(target) = origin_form(&parts.uri) else {
            // CONNECT's authority form: this is not a forward proxy.
            return self.proxy_error(StatusCode::METHOD_NOT_ALLOWED);
        };
        if let Some(authority) = parts.uri.authority() {
            // An absolute-form target's authority is the host (RFC 9112 §3.2.2).
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        parts.uri = target;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::EXPECT);
        self.insert_forwarded(listener, &mut parts.headers);
        let affinity = pool.affinity(self.peer, Some(&parts.headers));
        if let Some(persistence) = &pool.persistence {
            persistence.strip_request(&mut parts.headers);
        }
        let timeouts = listener.timeouts;
        self.forward(pool, timeouts, parts, body, affinity).await
    }

    fn insert_forwarded(&self, listener: &ListenerConfig, headers: &mut HeaderMap) {
        let insert = listener.insert_headers;
        if insert.x_forwarded_for
            && let Some(value) = forwarded_for(headers, &self.peer_value)
        {
            headers.insert(X_FORWARDED_FOR, value);
        }
        if insert.x_forwarded_port {
            headers.insert(X_FORWARDED_PORT, HeaderValue::from(listener.protocol_port));
        }
        if insert.x_forwarded_proto {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
    }

    /// The idle connections a request to `member` of `pool` may use.
    fn idle_for(&self, pool: &PoolRuntime, member: &MemberRuntime) -> Arc<IdleConns> {
        if !matches!(pool.protocol, PoolProtocol::Proxy | PoolProtocol::ProxyV2) {
            return member.idle.clone();
        }
        let mut own = self.own_idle.lock().unwrap_or_else(|e| e.into_inner());
        own.entry(member.id).or_default().clone()
    }

    async fn forward(
        &self,
        pool: &PoolRuntime,
        timeouts: Timeouts,
        parts: hyper::http::request::Parts,
        body: Incoming,
        affinity: Affinity,
    ) -> Response<ClientBody> {
        let connect_timeout = crate::relay::millis(timeouts.member_connect_ms);
        let member_timeout = crate::relay::millis(timeouts.member_data_ms);
        let proxy_header = upstream::proxy_header(pool.protocol, self.peer, self.vip);
        // Without a body, an idempotent request can be sent again if a reused
        // connection loses it: what it takes to rebuild it is kept when it
        // goes out on a reused connection (a fresh one never replays).
        let replayable = body.is_end_stream() && is_idempotent(&parts.method);
        let mut replay: Option<(Method, Uri, HeaderMap)> = None;
        let mut request = Some(Request::from_parts(parts, Either::Left(body)));
        let mut tried = [0; MAX_CONNECT_ATTEMPTS];
        let mut attempts = 0;
        'members: while attempts < MAX_CONNECT_ATTEMPTS {
            let Some(i) = pool.select(self.peer, &affinity, &tried[..attempts]) else {
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
                let mut conn = match pooled {
                    Some(conn) => conn,
                    None => {
                        match upstream::open(
                            &self.snapshot.netns,
                            member.addr,
                            connect_timeout,
                            proxy_header.as_deref(),
                            member.stats.clone(),
                        )
                        .await
                        {
                            Ok(conn) => conn,
                            Err(error) => {
                                tracing::debug!(member = %member.id, addr = %member.addr, %error, "member connect failed");
                                pool.observe(i, Outcome::Failure, &self.snapshot.reporter);
                                continue 'members;
                            }
                        }
                    }
                };
                let Some(outgoing) = request.take() else {
                    break 'members;
                };
                if reused && replayable && replay.is_none() {
                    replay = Some((
                        outgoing.method().clone(),
                        outgoing.uri().clone(),
                        outgoing.headers().clone(),
                    ));
                }
                let sent = conn.sender.try_send_request(outgoing);
                let sent = conn.drive(sent);
                let result = match member_timeout {
                    Some(limit) => match self.within(limit, sent).await {
                        Some(result) => result,
                        None => {
                            tracing::debug!(member = %member.id, "member did not answer in time");
                            pool.observe(i, Outcome::Failure, &self.snapshot.reporter);
                            return self.proxy_error(StatusCode::GATEWAY_TIMEOUT);
                        }
                    },
                    None => sent.await,
                };
                match result {
                    Ok(mut response) => {
                        let outcome = if response.status().is_server_error() {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        pool.observe(i, outcome, &self.snapshot.reporter);
                        pool.stick(&affinity, i);
                        if let Some(persistence) = &pool.persistence {
                            persistence.on_response(
                                &affinity,
                                member.id,
                                response.headers_mut(),
                                tokio::time::Instant::now(),
                            );
                        }
                        return self.relay_response(
                            response,
                            conn,
                            idle,
                            member_timeout,
                            in_flight,
                        );
                    }
                    Err(mut failed) => {
                        tracing::debug!(member = %member.id, error = %failed.error(), reused, "member request failed");
                        if !reused {
                            // A fresh connection lost: the member's doing
                            // (a reused one may just have timed out idle).
                            pool.observe(i, Outcome::Failure, &self.snapshot.reporter);
                        }
                        if let Some(unsent) = failed.take_message() {
                            // Nothing left: try again, on a fresh
                            // connection if this one was reused, else on
                            // another member.
                            request = Some(unsent);
                            if reused {
                                continue;
                            }
                            continue 'members;
                        }
                        if reused && let Some((method, uri, headers)) = &replay {
                            let mut again = Request::new(Either::Right(Empty::new()));
                            *again.method_mut() = method.clone();
                            *again.uri_mut() = uri.clone();
                            *again.headers_mut() = headers.clone();
                            request = Some(again);
                            fresh_only = true;
                            continue;
                        }
                        return self.proxy_error(StatusCode::BAD_GATEWAY);
                    }
                }
            }
        }
        tracing::debug!(pool = %pool.id, tried = attempts, "no member took the request");
        self.proxy_error(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// `future`'s output if it comes within `limit` (polled first, as
    /// `tokio::time::timeout` does), on the connection's reused timer.
    async fn within<F: Future>(&self, limit: Duration, future: F) -> Option<F::Output> {
        let deadline = tokio::time::Instant::now() + limit;
        let taken = self
            .member_timer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut timer = match taken {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let output = tokio::select! {
            biased;
            output = future => Some(output),
            () = timer.as_mut() => None,
        };
        // Dropped instead if this request is dropped meanwhile: the next
        // one makes a new timer.
        *self.member_timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(timer);
        output
    }

    fn relay_response(
        &self,
        response: Response<Incoming>,
        conn: Upstream,
        idle: Arc<IdleConns>,
        member_timeout: Option<Duration>,
        in_flight: InFlight,
    ) -> Response<ClientBody> {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        let body = Relayed {
            inner: body,
            timeout: member_timeout,
            timer: None,
            conn: Some((conn, idle)),
            complete: false,
            stats: self.view.stats.clone(),
            _in_flight: in_flight,
        };
        Response::from_parts(parts, Either::Left(body))
    }

    /// `400` and close: what follows a request we could not make sense of
    /// cannot be trusted to be the next request.
    fn bad_request(&self) -> Response<ClientBody> {
        let mut response = self.proxy_error(StatusCode::BAD_REQUEST);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// A response from the proxy itself, counted as a request error.
    fn proxy_error(&self, status: StatusCode) -> Response<ClientBody> {
        self.stats().request_errors.fetch_add(1, Ordering::Relaxed);
        proxy_response(status)
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A client address as a header value (IPv4-mapped IPv6 shown as IPv4):
/// made once per client connection, cloned into each request's
/// X-Forwarded-For (a reference count, where formatting the address costs a
/// `fmt` pass and an allocation per request).
fn address_value(client: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(client.to_canonical().to_string()))
        .expect("an IP address is a valid header value")
}

/// The X-Forwarded-For value for a request from the client at `client` (see
/// [`address_value`]): appended to what earlier proxies said, as one
/// comma-separated line (applications that read only the first line still
/// see the whole chain).
fn forwarded_for(headers: &HeaderMap, client: &HeaderValue) -> Option<HeaderValue> {
    let earlier = || {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
    };
    if earlier().next().is_none() {
        return Some(client.clone());
    }
    // Allocated at its exact size: `Bytes` then takes it over as it is,
    // where a spare capacity would cost it a second allocation.
    let len = earlier().map(|v| v.len() + 2).sum::<usize>() + client.len();
    let mut line = Vec::with_capacity(len);
    for earlier in earlier() {
        line.extend_from_slice(earlier.as_bytes());
        line.extend_from_slice(b", ");
    }
    line.extend_from_slice(client.as_bytes());
    HeaderValue::from_maybe_shared(Bytes::from(line)).ok()
}
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// A short plain-text response from the proxy, like HAProxy's error pages.
fn proxy_response(status: StatusCode) -> Response<ClientBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn redirect(status: StatusCode, location: HeaderValue) -> Response<ClientBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The target to send a member: path and query (origin form); `None` for
/// an authority-form target (CONNECT).
fn origin_form(uri: &Uri) -> Option<Uri> {
    match (uri.scheme(), uri.authority()) {
        (None, None) => Some(uri.clone()),
        (None, Some(_)) => None,
        (Some(_), _) => Some(match uri.path_and_query() {
            Some(path) => Uri::from(path.clone()),
            None => Uri::from_static("/"),
        }),
    }
}

/// Whether the request names its host exactly once (HTTP/1.1), or at most
/// once (HTTP/1.0, where Host is optional).
fn host_is_unambiguous<B>(request: &Request<B>) -> bool {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    match request.version() {
        Version::HTTP_10 | Version::HTTP_09 => hosts <= 1,
        _ => hosts == 1,
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Removes the headers that describe one connection, not the message
/// (RFC 9110 §7.6.1): those named by `Connection`, and the standard ones.
/// Framing (`Transfer-Encoding`) is hyper's to set on each side.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [HeaderName; 8] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ];
    // Most messages have none of them: one pass over the names, no lookup.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Only the names that are present and not removed below anyway
        // (`Connection: keep-alive`, `close`: none), so the usual message
        // builds nothing here.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| {
                headers.contains_key(*token)
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| h.as_str().eq_ignore_ascii_case(token))
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A member's response body on its way to the client: enforces the member
/// data timeout between frames, counts a member failing mid-body as a
/// request error, and parks the member connection once the body is complete.
pub struct Relayed {
    inner: Incoming,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The connection the body comes from, and where it goes when done.
    conn: Option<(Upstream, Arc<IdleConns>)>,
    complete: bool,
    stats: Arc<ListenerStats>,
    /// The request counts for its member until its response is over.
    _in_flight: InFlight,
}

impl Relayed {
    fn fail(&mut self) {
        // Dropping the connection closes it: it is mid-message.
        self.conn = None;
        self.stats.request_errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // The member connection is driven here, in the client's task, while
        // its response body is relayed: it has no task of its own.
        if let Some((conn, _)) = this.conn.as_mut() {
            conn.poll_conn(cx);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::debug!(%error, "member failed mid-response");
                this.fail();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.complete = true;
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(limit) = this.timeout else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    tracing::debug!("member response body timed out");
                    this.fail();
                    return Poll::Ready(Some(Err("member data timeout".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.complete || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        // hyper may drop a body it knows is empty (HEAD, 204, length 0)
        // without reading it: that is complete too.
        if let Some((conn, idle)) = self.conn.take()
            && (self.complete || self.inner.is_end_stream())
        {
            idle.park(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
            ("content-length", "3"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-length", "x-kept"]);
    }

    #[test]
    fn forwarded_for_appends_to_earlier_proxies() {
        let v4 = address_value("192.0.2.7".parse().unwrap());
        let mapped = address_value("::ffff:192.0.2.7".parse().unwrap());
        let v6 = address_value("2001:db8::1".parse().unwrap());
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_for(&headers, &v4).unwrap(), "192.0.2.7");
        assert_eq!(forwarded_for(&headers, &mapped).unwrap(), "192.0.2.7");
        assert_eq!(forwarded_for(&headers, &v6).unwrap(), "2001:db8::1");
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("10.0.0.1, 10.0.0.2"),
        );
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.3"));
        // A value that is not visible ASCII is left out, as before.
        headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(
            forwarded_for(&headers, &v4).unwrap(),
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"
        );
    }

    #[test]
    fn messages_without_hop_by_hop_headers_are_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let before = headers.clone();
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
        // Only Keep-Alive: removed too.
        headers.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers, before);
    }

    #[test]
    fn targets_become_origin_form() {
        let table = [
            ("/a?b=c", Some("/a?b=c")),
            ("http://example.com:8080/x/y?z", Some("/x/y?z")),
            ("http://example.com", Some("/")),
            ("*", Some("*")),
            ("example.com:443", None),
        ];
        for (target, expected) in table {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(
                origin_form(&uri).map(|u| u.to_string()),
                expected.map(str::to_string),
                "{target}"
            );
        }
    }
}
