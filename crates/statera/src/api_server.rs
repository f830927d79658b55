//! The API's HTTP server: an accept loop of our own around hyper's HTTP/1
//! connection, for the bounds `axum::serve` does not have.
//!
//! - **Connections**: at most [`ServerLimits::max_connections`] at once (from
//!   the descriptor budget's API reserve); further clients wait in the
//!   kernel's accept queue until one closes. An accept that fails (out of
//!   descriptors) pauses and retries; it never ends the server.
//! - **Request head**: a new connection, and a kept-alive one from the first
//!   byte of its next request, has [`ServerLimits::header_timeout`] to send
//!   the whole head; past it the connection is closed (no response can be
//!   framed for a request whose head never came).
//! - **Request body**: read whole, within [`ServerLimits::body_timeout`] of
//!   the head, before the router sees the request; past it the client gets
//!   408, over Octavia's size limit 413, a malformed body 400, each in the
//!   API's error shape (Neutron's on Neutron routes) and with
//!   `Connection: close`.
//! - **Idle**: a kept-alive connection waits [`ServerLimits::idle_timeout`]
//!   for the first byte of its next request; a client has as long to take a
//!   response. Past it the connection is closed.
//!
//! The timeouts are one deadline per connection, moved as the connection
//! goes through its phases ([`Clock`]); a watchdog beside hyper's connection
//! future closes the connection when the deadline passes.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use statera_api::ApiError;
use statera_api::input::MAX_BODY_BYTES;
use statera_dataplane::AcceptBackoff;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long shutdown waits for open connections to finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// "At the connection limit" is logged at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let addr = listener
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut backoff = AcceptBackoff::default();
    let mut full_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if full_logged.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
                    full_logged = Some(Instant::now());
                    tracing::warn!(
                        %addr,
                        max_connections = max,
                        "the API holds its connection limit: new connections wait in the accept queue"
                    );
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(error) => {
                    drop(permit);
                    let pause = backoff.failed("API", addr, &error);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            limits,
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = max - slots.available_permits(),
            "API connections still open at shutdown are closed"
        );
    }
}

/// How long a new connection that has sent nothing yet is waited for when
/// the server stops (a handover or a shutdown).
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Where a connection is, and until when it may stay there.
#[derive(Debug)]
struct Clock {
    /// Some byte came in on the connection.
    got_bytes: AtomicBool,
    epoch: Instant,
    phase: AtomicU8,
    /// Milliseconds since `epoch`; `u64::MAX`: no deadline.
    deadline: AtomicU64,
    limits: ServerLimits,
    /// Wakes the watchdog when the deadline moved.
    moved: Notify,
}

/// Between requests: nothing of the next one read yet (idle timeout).
const WAITING: u8 = 0;
/// Reading a request head (header timeout).
const HEAD: u8 = 1;
/// The head is in; the body is read under its own deadline and the handler
/// runs (no deadline: the server's own work).
const BUSY: u8 = 2;
/// The response is handed over; the client has the idle timeout to take it.
const WRITING: u8 = 3;

impl Clock {
    fn new(limits: ServerLimits) -> Clock {
        let clock = Clock {
            epoch: Instant::now(),
            phase: AtomicU8::new(HEAD),
            deadline: AtomicU64::new(u64::MAX),
            limits,
            moved: Notify::new(),
            got_bytes: AtomicBool::new(false),
        };
        clock.set(HEAD, Some(limits.header_timeout));
        clock
    }

    fn set(&self, phase: u8, timeout: Option<Duration>) {
        self.phase.store(phase, Ordering::Relaxed);
        let deadline = timeout.map_or(u64::MAX, |t| {
            (self.epoch.elapsed() + t)
                .as_millis()
                .min(u128::from(u64::MAX - 1)) as u64
        });
        self.deadline.store(deadline, Ordering::Relaxed);
        self.moved.notify_one();
    }

    /// Bytes came in: the first of a request starts its header timeout.
    fn read(&self) {
        if self.phase.load(Ordering::Relaxed) == WAITING {
            self.set(HEAD, Some(self.limits.header_timeout));
        } else if !self.got_bytes.swap(true, Ordering::Relaxed) {
            self.moved.notify_one();
        }
        self.got_bytes.store(true, Ordering::Relaxed);
    }

    /// Whether the server may close the connection now without losing a
    /// request: none is being read. A new connection is given
    /// `FIRST_REQUEST_GRACE` (from `since`) to send its first bytes —
    /// its client is sending a request, and would not send it again.
    fn may_close(&self, since: Instant) -> bool {
        match self.phase.load(Ordering::Relaxed) {
            HEAD => {
                !self.got_bytes.load(Ordering::Relaxed) && since.elapsed() >= FIRST_REQUEST_GRACE
            }
            _ => true,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            WAITING => "idle",
            HEAD => "request head",
            BUSY => "request",
            _ => "response",
        }
    }
}

/// The socket, telling the clock when bytes come in.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that puts the connection back to waiting when it has
/// been handed over whole (or dropped).
struct Tracked {
    inner: Body,
    clock: Arc<Clock>,
    done: bool,
}

impl Tracked {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.clock
                .set(WAITING, Some(self.clock.limits.idle_timeout));
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish();
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    app: S,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let peer = stream.peer_addr().ok();
    let clock = Arc::new(Clock::new(limits));
    // hyper's own answers to unparsable requests (400, 414, 431) get the
    // API's error body (statera_api::wire).
    let io = TokioIo::new(statera_api::wire::ShapedIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    }));
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let app = app.clone();
        let clock = service_clock.clone();
        // Who is on the other end, for per-client bounds (the password gate).
        if let Some(peer) = peer {
            request
                .extensions_mut()
                .insert(statera_api::context::PeerAddr(peer));
        }
        async move {
            clock.set(BUSY, None);
            let response = handle(request, app, clock.limits.body_timeout).await;
            clock.set(WRITING, Some(clock.limits.idle_timeout));
            Ok::<_, Infallible>(response.map(|inner| Tracked {
                inner,
                clock,
                done: false,
            }))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    // The server stops: since when, until this connection may be closed
    // without cutting a request being read (then graceful_shutdown).
    let mut stop_pending: Option<Instant> = None;
    loop {
        if let Some(since) = stop_pending
            && clock.may_close(since)
        {
            stop_pending = None;
            connection.as_mut().graceful_shutdown();
        }
        let deadline = clock.deadline();
        let grace_end = stop_pending.map(|since| since + FIRST_REQUEST_GRACE);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(?peer, %error, "API connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if clock.deadline().is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(?peer, phase = clock.phase_name(), "API connection timed out: closed");
                    return;
                }
            }
            () = clock.moved.notified() => {}
            () = sleep_until(grace_end), if grace_end.is_some_and(|at| at > Instant::now()) => {}
            _ = stop.changed(), if !stopping => {
                stopping = true;
                stop_pending = Some(Instant::now());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads the request's body whole within `body_timeout`, then hands the
/// request to the router.
async fn handle<S>(request: hyper::Request<Incoming>, app: S, body_timeout: Duration) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let style = statera_api::style_of_path(request.uri().path());
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body, &parts.headers, body_timeout).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal.response(style, body_timeout),
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[derive(Debug)]
enum BodyRefusal {
    Timeout,
    TooLarge,
    Malformed(String),
}

async fn read_body(
    body: Incoming,
    headers: &axum::http::HeaderMap,
    timeout: Duration,
) -> Result<Bytes, BodyRefusal> {
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(BodyRefusal::TooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Err(_elapsed) => Err(BodyRefusal::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(BodyRefusal::TooLarge),
        Ok(Err(error)) => Err(BodyRefusal::Malformed(error.to_string())),
    }
}

impl BodyRefusal {
    /// The refusal in the route's error shape (Octavia's, Neutron's with
    /// its exception name, Keystone's on `/v3`).
    fn response(self, style: statera_api::error::Style, timeout: Duration) -> Response {
        let (status, message, neutron_type) = match self {
            BodyRefusal::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} ms.",
                    timeout.as_millis()
                ),
                "RequestTimeout",
            ),
            BodyRefusal::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large".to_string(),
                "RequestEntityTooLarge",
            ),
            BodyRefusal::Malformed(error) => (
                StatusCode::BAD_REQUEST,
                format!("Cannot read the request body: {error}"),
                "BadRequest",
            ),
        };
        let error = ApiError::new(status, message);
        let error = match style {
            statera_api::error::Style::Neutron => error.neutron(neutron_type),
            other => error.in_style(other),
        };
        let mut response = error.into_response();
        let headers = response.headers_mut();
        // The rest of the body is not read: the connection cannot carry
        // another request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Ok(id) = HeaderValue::from_str(&format!("req-{}", uuid::Uuid::new_v4())) {
            headers.insert("x-openstack-request-id", id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: ServerLimits = ServerLimits {
        max_connections: 2,
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(900),
    };

    /// A server with a route that reads its body; stops when the returned
    /// sender is dropped.
    async fn server() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/v2/lbaas/echo", post(|body: Bytes| async move { body }))
            .route("/v3/auth/tokens", post(|body: Bytes| async move { body }))
            .route(
                "/peer",
                get(|req: Request| async move {
                    match req.extensions().get::<statera_api::context::PeerAddr>() {
                        Some(p) => p.0.ip().to_string(),
                        None => "none".to_string(),
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, LIMITS, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Reads until the server closes; returns what came and when it closed
    /// (None: still open after `bound`).
    async fn until_closed(stream: &mut TcpStream, bound: Duration) -> (String, Option<Duration>) {
        let start = Instant::now();
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(start + bound, stream.read(&mut buf)).await {
                Err(_) => return (String::from_utf8_lossy(&data).into(), None),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return (String::from_utf8_lossy(&data).into(), Some(start.elapsed()));
                }
                Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn every_request_carries_the_address_it_came_from() {
        // The password gate shares its places out per client by this.
        let (addr, _stop) = server().await;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.7:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (data, _) = until_closed(&mut stream, Duration::from_secs(3)).await;
        assert!(data.starts_with("HTTP/1.1 200 "), "{data}");
        assert!(data.ends_with("\r\n\r\n127.0.0.7"), "{data}");
    }

    #[tokio::test]
    async fn a_half_sent_head_is_closed_at_the_header_timeout() {
        let (addr, _stop) = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (data, closed) = until_closed(&mut stream, Duration::from_secs(3)).await;
        let closed = closed.expect("the half-sent head was never closed");
        assert!(data.is_empty(), "{data}");
        assert!(
            closed >= Duration::from_millis(250) && closed < Duration::from_secs(1),
            "{closed:?}"
        );
    }

    #[tokio::test]
    async fn a_withheld_body_is_answered_408_in_the_api_shape() {
        let (addr, _stop) = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /v2/lbaas/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"",
            )
            .await
            .unwrap();
        let (data, closed) = until_closed(&mut stream, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "still open after the 408: {data}");
        assert!(data.starts_with("HTTP/1.1 408 "), "{data}");
        assert!(
            data.to_ascii_lowercase().contains("connection: close"),
            "{data}"
        );
        let body = data.split("\r\n\r\n").nth(1).unwrap();
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["faultcode"], "Client", "{doc}");
        assert!(
            doc["faultstring"].as_str().unwrap().contains("300 ms"),
            "{doc}"
        );
        // A whole body within the timeout is served.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /v2/lbaas/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            .await
            .unwrap();
        let (data, _) = until_closed(&mut stream, Duration::from_secs(3)).await;
        assert!(
            data.starts_with("HTTP/1.1 200 ") && data.ends_with("hi"),
            "{data}"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_in_the_routes_shape() {
        let (addr, _stop) = server().await;
        for (path, shape) in [
            ("/v2/lbaas/echo", "faultcode"),
            ("/v3/auth/tokens", "error"),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY_BYTES + 1
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let (data, _) = until_closed(&mut stream, Duration::from_secs(3)).await;
            assert!(data.starts_with("HTTP/1.1 413 "), "{path}: {data}");
            let body = data.split("\r\n\r\n").nth(1).unwrap();
            let doc: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(doc.get(shape).is_some(), "{path}: {doc}");
        }
    }

    #[tokio::test]
    async fn idle_keepalive_waits_the_idle_timeout_not_the_header_one() {
        let (addr, _stop) = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let (data, closed) = until_closed(&mut stream, Duration::from_secs(3)).await;
        assert!(
            data.starts_with("HTTP/1.1 200 ") && data.ends_with("ok"),
            "{data}"
        );
        let closed = closed.expect("the idle connection was never closed");
        assert!(
            closed >= Duration::from_millis(800),
            "closed after {closed:?}: the header timeout cut an idle connection"
        );
        assert!(start.elapsed() < Duration::from_millis(1500), "{closed:?}");
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_in_the_accept_queue() {
        let (addr, _stop) = server().await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (data, _) = until_closed(&mut c, Duration::from_secs(3)).await;
        assert!(data.starts_with("HTTP/1.1 200 "), "{data}");
        // Served once the two idle ones were closed at their header timeout.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }
}
