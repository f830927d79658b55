//! HTTP/2 from TLS clients: a TERMINATED_HTTPS listener that lists `h2` in
//! its ALPN serves clients that choose it over HTTP/2.
//!
//! The `h2` crate speaks the protocol (frames, HPACK, flow control) with
//! every bound set here rather than left to its defaults. Each stream is
//! then served by the same HTTP/1.1 machinery as a plaintext request
//! (`ClientConn`: L7 policies, pool and member choice, persistence,
//! header rewriting, X-SSL headers, HSTS, retries, timeouts), over an
//! in-memory pipe: the stream's request is written to it as one HTTP/1.1
//! request with `Connection: close`, and the HTTP/1.1 response read back
//! becomes the stream's response (HAProxy converts both versions to one
//! internal form as well). Members get HTTP/1.1, as over a plaintext
//! listener; h2 to members (and so gRPC) is not served natively yet.
//!
//! Bounds, per connection: 100 streams at once (HAProxy's default); each
//! stream takes a connection place of its load balancer (`Slot::another`),
//! since it may hold a member connection of its own (none free: the stream
//! is refused with REFUSED_STREAM, which a client may retry); a header list
//! of at most `MAX_HEADER_SIZE` decoded bytes (h2 answers 431 past it, and
//! stops decoding a block of four times that: HPACK bombs, CONTINUATION
//! floods); windows of 64 KiB per stream and 256 KiB per connection (what a
//! client may send ahead); 64 KiB of response buffered per stream; SETTINGS
//! and PING floods cost h2 one pending answer each. Streams the client
//! resets before they are accepted are h2's to bound (20 pending); streams
//! reset after acceptance (the "rapid reset" attack, each of which would
//! start a member request) end the connection with GOAWAY
//! ENHANCE_YOUR_CALM past [`RESET_ALLOWANCE`] within [`RESET_WINDOW`]. A
//! stream whose client opens no window for the client data timeout is
//! reset (so it does not hold its place). The connection closes gracefully
//! (GOAWAY) when no stream was open for the client data timeout, and when
//! its listener drains (streams already accepted are served); a cut
//! listener drops it and its streams.
//!
//! Not carried yet: trailers (dropped both ways; gRPC needs h2 to members
//! anyway), a request body while the response waits for the client's
//! window (bounded by the timeouts), and PROXY pools' idle member
//! connections across streams (each stream opens its own).

use super::*;
use ::h2::server::{Builder, SendResponse};
use ::h2::{Reason, RecvStream, SendStream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Request, Response};
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::oneshot;

/// Streams open at once on one connection.
const MAX_STREAMS: u32 = 100;
/// Client resets of accepted streams tolerated per connection within one
/// [`RESET_WINDOW`].
const RESET_ALLOWANCE: u64 = 100;
const RESET_WINDOW: Duration = Duration::from_secs(10);
/// Bytes of the in-memory pipe between a stream and its HTTP/1.1 side.
const BRIDGE_BUFFER: usize = 16 * 1024;
/// How long a connection that said GOAWAY waits for its client to leave.
const GOAWAY_WAIT: Duration = Duration::from_secs(5);
/// Longest response head read back from the HTTP/1.1 side.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What every stream of one connection shares.
struct Shared {
    tls: ConnTls,
    peer: SocketAddr,
    vip: SocketAddr,
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    lb: Arc<LbShared>,
    client_timeout: Option<Duration>,
    life: watch::Receiver<LifeState>,
}

/// How a stream ended.
enum StreamEnd {
    Done,
    /// The client reset it.
    Reset,
}

/// Serves one HTTP/2 connection to its end.
pub(super) async fn serve(
    stream: TlsStream,
    tls: ConnTls,
    origin: Origin,
    life: &mut watch::Receiver<LifeState>,
    slot: &crate::limits::Slot,
) {
    let client_timeout = origin.client_timeout;
    let limit = client_timeout.map_or(HANDSHAKE_TIMEOUT, |t| t.min(HANDSHAKE_TIMEOUT));
    let mut builder = Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024)
        .max_header_list_size(crate::h1::MAX_HEADER_SIZE as u32)
        .header_table_size(4096)
        .max_send_buffer_size(64 * 1024)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(256))
        .max_concurrent_reset_streams(10);
    let mut conn = match tokio::time::timeout(limit, builder.handshake::<_, Bytes>(stream)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => {
            tracing::debug!(%error, "HTTP/2 preface failed");
            return;
        }
        Err(_) => {
            tracing::debug!("HTTP/2 preface too slow; closing");
            return;
        }
    };
    let shared = Arc::new(Shared {
        tls,
        peer: origin.peer,
        vip: origin.vip,
        snapshot: origin.snapshot,
        view: origin.view,
        lb: origin.shared,
        client_timeout,
        life: life.clone(),
    });
    // The streams run in this task (not one task each): frames of many
    // streams leave in one write, without wake-ups across workers.
    let mut streams: FuturesUnordered<
        std::pin::Pin<Box<dyn std::future::Future<Output = StreamEnd> + Send>>,
    > = FuturesUnordered::new();
    let mut stop = Stop::new(life.clone());
    let idle_limit = client_timeout.unwrap_or(Duration::from_secs(86_400));
    let idle = tokio::time::sleep(idle_limit);
    tokio::pin!(idle);
    // Set once GOAWAY went out: the client gets this long to leave.
    let mut leaving: Option<Instant> = None;
    // Client resets of accepted streams in the current window.
    let (mut window_start, mut resets) = (Instant::now(), 0u64);
    loop {
        let goaway_over = async {
            match leaving {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = conn.accept() => match accepted {
                None => break,
                Some(Err(error)) => {
                    tracing::debug!(%error, "HTTP/2 connection failed");
                    break;
                }
                Some(Ok((request, mut respond))) => match slot.another() {
                    Ok(place) => {
                        streams.push(Box::pin(serve_stream(request, respond, shared.clone(), place)));
                    }
                    Err(refusal) => {
                        tracing::debug!(%refusal, "HTTP/2 stream refused");
                        shared.view.stats.refuse_connection();
                        respond.send_reset(Reason::REFUSED_STREAM);
                    }
                },
            },
            Some(ended) = streams.next(), if !streams.is_empty() => {
                if matches!(ended, StreamEnd::Reset) {
                    if window_start.elapsed() > RESET_WINDOW {
                        window_start = Instant::now();
                        resets = 0;
                    }
                    resets += 1;
                }
                if resets > RESET_ALLOWANCE && leaving.is_none() {
                    tracing::debug!(peer = %shared.peer, resets, "HTTP/2 streams reset too often; GOAWAY");
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    streams.clear();
                    leaving = Some(Instant::now() + GOAWAY_WAIT);
                }
                if streams.is_empty() {
                    idle.as_mut().reset(Instant::now() + idle_limit);
                }
            }
            () = &mut idle, if streams.is_empty() && leaving.is_none() => {
                tracing::debug!(peer = %shared.peer, "HTTP/2 connection idle; GOAWAY");
                conn.graceful_shutdown();
                leaving = Some(Instant::now() + GOAWAY_WAIT);
            }
            state = std::future::poll_fn(|cx| stop.poll_next(cx)) => match state {
                LifeState::Cut => break,
                _ => {
                    // Draining: streams in flight finish, no new ones.
                    conn.graceful_shutdown();
                }
            },
            () = goaway_over, if streams.is_empty() => break,
        }
    }
    // Dropping the streams ends their member requests (and `conn` closes
    // the connection) when the loop ends early.
    streams.clear();
}

/// One stream: its request to the HTTP/1.1 side, the response back.
async fn serve_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    shared: Arc<Shared>,
    place: crate::limits::Slot,
) -> StreamEnd {
    let _place = place;
    let Some((head, chunked)) = request_head(&request) else {
        let _ = respond.send_response(bodiless(StatusCode::BAD_REQUEST), true);
        return StreamEnd::Done;
    };
    let (ours, theirs) = tokio::io::duplex(BRIDGE_BUFFER);
    let origin = Origin {
        peer: shared.peer,
        vip: shared.vip,
        snapshot: shared.snapshot.clone(),
        view: shared.view.clone(),
        shared: shared.lb.clone(),
        client_timeout: shared.client_timeout,
    };
    let mut conn = ClientConn::new(
        MaybeTls::Tls(Box::new(Secure::Right(theirs))),
        Some(Box::new(shared.tls.clone())),
        origin,
        None,
        shared.life.clone(),
    );
    // The head is in before the HTTP/1.1 side starts: a stream accepted
    // while the listener drains is served (it reads no head it has to wait
    // for, so the drain does not turn it away).
    conn.buf.extend_from_slice(&head);
    let (clean_tx, clean_rx) = oneshot::channel();
    let mut life = shared.life.clone();
    let serve = async move {
        conn.run(&mut life).await;
        // The end of the response, for a body that lasts until then.
        let _ = conn.client.shutdown().await;
        let _ = clean_tx.send(conn.clean);
    };
    let (from, to) = tokio::io::split(ours);
    let to_head = request.method() == http::Method::HEAD;
    let body = request.into_body();
    let limit = shared.client_timeout;
    let bridge = bridge(chunked, to_head, limit, body, from, to, respond, clean_rx);
    tokio::pin!(serve, bridge);
    let mut served = false;
    loop {
        tokio::select! {
            () = &mut serve, if !served => served = true,
            end = &mut bridge => return end,
        }
    }
}

/// The HTTP/1.1 request head a stream's request becomes, and whether its
/// body goes chunked (`None`: no usable authority, or a path that is not
/// an origin form).
fn request_head(request: &Request<RecvStream>) -> Option<(Vec<u8>, bool)> {
    let headers = request.headers();
    let authority = match request.uri().authority() {
        Some(authority) => authority.as_str().as_bytes(),
        None => headers.get(header::HOST)?.as_bytes(),
    };
    // RFC 9113 §8.3.1: no userinfo in `:authority`; `:path` is an origin
    // form (or `*` for OPTIONS), never an absolute one that would name
    // another host than the one the rules read.
    if authority.contains(&b'@') || authority.is_empty() {
        return None;
    }
    if request.method() != http::Method::CONNECT {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let asterisk = path == "*" && request.method() == http::Method::OPTIONS;
        if !path.starts_with('/') && !asterisk {
            return None;
        }
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    if request.method() == http::Method::CONNECT {
        out.extend_from_slice(authority);
    } else {
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(target.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority);
    out.extend_from_slice(b"\r\n");
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in headers {
        match name.as_str() {
            // Ours, or the connection's: `te` may only say "trailers", and
            // the body's framing is set below.
            "host" | "te" | "connection" | "keep-alive" | "proxy-connection"
            | "transfer-encoding" | "upgrade" => continue,
            // HTTP/2 splits cookies in crumbs: one line again (RFC 9113
            // §8.2.3).
            "cookie" => {
                cookies.push(value.as_bytes());
                continue;
            }
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(&cookies.join(&b"; "[..]));
        out.extend_from_slice(b"\r\n");
    }
    let chunked = !request.body().is_end_stream() && !headers.contains_key(header::CONTENT_LENGTH);
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    Some((out, chunked))
}

fn bodiless(status: StatusCode) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response
}

/// Writes the request to the HTTP/1.1 side and turns what comes back into
/// the stream's response.
#[expect(
    clippy::too_many_arguments,
    reason = "one stream's parts, taken apart once"
)]
async fn bridge(
    chunked: bool,
    to_head: bool,
    limit: Option<Duration>,
    mut body: RecvStream,
    mut from: ReadHalf<DuplexStream>,
    mut to: WriteHalf<DuplexStream>,
    mut respond: SendResponse<Bytes>,
    clean: oneshot::Receiver<bool>,
) -> StreamEnd {
    let send_request = async {
        while let Some(data) = body.data().await {
            let data = data.map_err(io::Error::other)?;
            let n = data.len();
            if chunked && n > 0 {
                to.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                to.write_all(&data).await?;
                to.write_all(b"\r\n").await?;
            } else {
                to.write_all(&data).await?;
            }
            let _ = body.flow_control().release_capacity(n);
        }
        if chunked {
            to.write_all(b"0\r\n\r\n").await?;
        }
        io::Result::Ok(())
    };
    tokio::pin!(send_request);
    let mut request_sent = false;
    // The response head, 1xx heads dropped.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let response = loop {
        match h1::parse_response(&buf, to_head) {
            Ok(Some(head)) if head.status < 200 => {
                // `100 Continue` (the HTTP/1.1 side's word to a client that
                // expects it) goes on; other interim answers do not.
                if head.status == 100 {
                    let _ = respond.send_informational(bodiless(StatusCode::CONTINUE));
                }
                buf.drain(..head.len);
                continue;
            }
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() > MAX_RESPONSE_HEAD => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return StreamEnd::Done;
            }
            Ok(None) => {}
            Err(why) => {
                tracing::debug!(why, "HTTP/2 stream: no response head");
                respond.send_reset(Reason::INTERNAL_ERROR);
                return StreamEnd::Done;
            }
        }
        reserve(&mut buf, 4096);
        tokio::select! {
            read = from.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    respond.send_reset(Reason::INTERNAL_ERROR);
                    return StreamEnd::Done;
                }
                Ok(_) => {}
            },
            sent = &mut send_request, if !request_sent => {
                request_sent = true;
                if sent.is_err() {
                    // The client's body failed (a reset shows below), or
                    // the HTTP/1.1 side stopped reading it: its answer
                    // still comes.
                    tracing::debug!("HTTP/2 stream: request body not sent whole");
                }
            }
            reset = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {
                let _ = reset;
                return StreamEnd::Reset;
            }
        }
    };
    let headers = response_headers(&buf, &response);
    let mut builder = Response::builder().status(response.status);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    let Ok(head) = builder.body(()) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return StreamEnd::Done;
    };
    let framing = if response.bodiless {
        Framing::Empty
    } else {
        response.framing()
    };
    let empty = framing == Framing::Empty || framing == Framing::Length(0);
    let Ok(mut send) = respond.send_response(head, empty) else {
        return StreamEnd::Reset;
    };
    buf.drain(..response.len);
    if empty {
        return StreamEnd::Done;
    }
    let mut remaining = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunks = Chunked::default();
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    loop {
        // What of `buf` is body, and whether the body ends there.
        let done = match framing {
            Framing::Length(_) => {
                let take = (buf.len() as u64).min(remaining);
                remaining -= take;
                let data = Bytes::copy_from_slice(&buf[..take as usize]);
                buf.drain(..take as usize);
                if !send_all(&mut send, data, limit).await {
                    return StreamEnd::Reset;
                }
                remaining == 0
            }
            Framing::Chunked => {
                ranges.clear();
                let Ok(n) = chunks.scan(&buf, |r| ranges.push(r)) else {
                    send.send_reset(Reason::INTERNAL_ERROR);
                    return StreamEnd::Done;
                };
                for r in ranges.drain(..) {
                    let data = Bytes::copy_from_slice(&buf[r]);
                    if !send_all(&mut send, data, limit).await {
                        return StreamEnd::Reset;
                    }
                }
                buf.drain(..n);
                chunks.is_done()
            }
            _ => {
                let data = Bytes::copy_from_slice(&buf);
                buf.clear();
                if !send_all(&mut send, data, limit).await {
                    return StreamEnd::Reset;
                }
                false
            }
        };
        if done {
            let _ = send.send_data(Bytes::new(), true);
            return StreamEnd::Done;
        }
        buf.clear();
        reserve(&mut buf, BRIDGE_BUFFER);
        let read = tokio::select! {
            read = from.read_buf(&mut buf) => read,
            sent = &mut send_request, if !request_sent => {
                request_sent = true;
                let _ = sent;
                continue;
            }
            _ = std::future::poll_fn(|cx| send.poll_reset(cx)) => return StreamEnd::Reset,
        };
        match read {
            Ok(0) | Err(_) => {
                // The end of a body that lasts until then, if the response
                // ended whole; else it was cut.
                let whole = framing == Framing::UntilClose && clean.await == Ok(true);
                if whole {
                    let _ = send.send_data(Bytes::new(), true);
                } else {
                    send.send_reset(Reason::INTERNAL_ERROR);
                }
                return StreamEnd::Done;
            }
            Ok(_) => {}
        }
    }
}

/// Sends `data` on the stream as the client's window allows, each wait for
/// window within `limit` (the client data timeout: a client that opens no
/// window holds its stream, and its place, no longer); `false` when the
/// stream is gone (reset by the client, or by us on that timeout).
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes, limit: Option<Duration>) -> bool {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let window = std::future::poll_fn(|cx| send.poll_capacity(cx));
        let waited = match limit {
            Some(limit) => tokio::time::timeout(limit, window).await,
            None => Ok(window.await),
        };
        let granted = match waited {
            Ok(Some(Ok(n))) => n,
            Ok(Some(Err(_)) | None) => return false,
            Err(_) => {
                tracing::debug!("HTTP/2 client opened no window in time; stream reset");
                send.send_reset(Reason::CANCEL);
                return false;
            }
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        if send.send_data(piece, false).is_err() {
            return false;
        }
    }
    true
}

/// The response's headers as HTTP/2 carries them: without the connection's
/// own (and those its `Connection` header names).
fn response_headers(buf: &[u8], head: &Head) -> HeaderMap {
    let mut map = header_map(buf, head);
    let named: Vec<HeaderName> = map
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        map.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        map.remove(name);
    }
    map
}
