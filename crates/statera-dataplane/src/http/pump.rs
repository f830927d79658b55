//! Reading response heads from members and pumping bodies between the
//! two sides.

use super::*;

/// Reads a response head from the member into `up.buf` (1xx interim
/// responses are read and dropped: the client was never asked to expect
/// one).
pub(super) async fn read_response_head(
    up: &mut Upstream,
    to_head: bool,
) -> Result<Head, MemberFailure> {
    let Upstream {
        stream, buf, stats, ..
    } = up;
    read_head_from(stream, buf, stats, to_head).await
}

pub(super) async fn read_head_from<R: MemberRead>(
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
                Ok(None) => {
                    if let Some(socket) = stream.socket() {
                        upstream::ack_now(socket);
                    }
                }
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
pub(super) trait MemberRead: AsyncRead + Unpin {
    /// Its socket, to acknowledge at once (`upstream::ack_now`); `None`
    /// from the read half of a TLS connection, whose socket is behind the
    /// halves' lock.
    fn socket(&self) -> Option<&TcpStream>;
}

impl MemberRead for MemberStream {
    fn socket(&self) -> Option<&TcpStream> {
        Some(MemberStream::socket(self))
    }
}

impl MemberRead for tokio::net::tcp::ReadHalf<'_> {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl MemberRead for tokio::io::ReadHalf<&mut MemberStream> {
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// What is left of a request body that did not all come with its head.
pub(super) struct Body {
    /// `Content-Length` bodies: bytes still to come.
    pub(super) remaining: u64,
    /// Chunked bodies: where the scan is.
    pub(super) chunked: Option<Chunked>,
}

pub(super) enum PumpError {
    /// The client ended, failed, or was silent past its timeout.
    Client,
    /// The client's chunked body is malformed.
    Malformed,
    Member,
}

/// Copies the rest of a request body from the client to the member (`buf`
/// is empty: what came with the head was sent). Returns where the body ended
/// in `buf` (bytes after it are the client's next request).
pub(super) async fn pump_body<C: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    client: &mut C,
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
        // Out of rustls onto the socket, over TLS (free on TCP).
        member.flush().await.map_err(|_| PumpError::Member)?;
        member_stats
            .bytes_in
            .fetch_add(take as u64, Ordering::Relaxed);
        if done {
            return Ok(take);
        }
    }
}
