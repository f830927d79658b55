//! The connection under the router: hyper answers some malformed requests
//! itself, before any of our code runs — a head it cannot parse (400), a
//! request target over its 64 KiB bound (414), a head over its buffer or
//! with more than 100 headers (431) — with an empty body. [`ShapedIo`] wraps
//! a connection and replaces such an automatic answer with the same status
//! carrying the error body of the route the request was for (Octavia's
//! `faultcode/faultstring/debuginfo`, or Neutron's `NeutronError`).
//!
//! How it recognises them: hyper's automatic answers are the only 4xx heads
//! with `content-length: 0` on this server (every error the router writes
//! has a JSON body), and hyper closes the connection after them. The route
//! is read from the start of the request that preceded the answer (the
//! bytes read since the last write).
//!
//! Use it by wrapping the listener (`axum::serve(ShapedListener(l), …)`) or
//! each accepted stream (`ShapedIo::new(stream)`) where the server is built.

use crate::error::ApiError;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many bytes of a request's start are kept to find its route.
const REQUEST_START: usize = 512;

/// A connection whose hyper-made error answers carry the API's error body.
pub struct ShapedIo<T> {
    inner: T,
    /// The first bytes read since the last write (the current request's start).
    request_start: Vec<u8>,
    wrote_since_read: bool,
    /// A replacement answer still being written, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<T> ShapedIo<T> {
    pub fn new(inner: T) -> ShapedIo<T> {
        ShapedIo {
            inner,
            request_start: Vec::with_capacity(64),
            wrote_since_read: false,
            replacement: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// The status of `buf` when it is a whole bodiless 4xx response head, i.e.
/// one of hyper's automatic answers.
fn automatic_error(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?;
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    if !status.is_client_error() || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    head.contains("\r\ncontent-length: 0\r\n").then_some(status)
}

/// The path of the request that starts with `start` (possibly cut short).
fn request_path(start: &[u8]) -> String {
    let line = start
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or(&[]);
    let target = line.split(|b| *b == b' ').nth(1).unwrap_or(&[]);
    let path = target.split(|b| *b == b'?').next().unwrap_or(&[]);
    String::from_utf8_lossy(path).into_owned()
}

/// The whole replacement answer for `status` on the route at `path`.
fn replacement(status: StatusCode, path: &str) -> Vec<u8> {
    let message = match status {
        StatusCode::URI_TOO_LONG => "The request URI is too long.".to_string(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "The request headers are too large or too many.".to_string()
        }
        StatusCode::BAD_REQUEST => "The request could not be parsed as HTTP/1.1.".to_string(),
        s => s.canonical_reason().unwrap_or("Client error").to_string(),
    };
    let e = crate::styled(ApiError::new(status, message), crate::style_of_path(path));
    let body = render_body(e);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-openstack-request-id: req-{}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        uuid::Uuid::new_v4()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The JSON body `e` renders to.
fn render_body(e: ApiError) -> Vec<u8> {
    let response = e.into_response();
    // The body is a `Full` JSON value: take it synchronously.
    let body = response.into_body();
    let mut fut = std::pin::pin!(axum::body::to_bytes(body, usize::MAX));
    let waker = std::task::Waker::noop();
    match fut.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(Ok(b)) => b.to_vec(),
        _ => b"{}".to_vec(),
    }
}

impl<T: AsyncWrite + Unpin> ShapedIo<T> {
    /// Write out what is left of a replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.replacement {
            if *done >= bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ShapedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            if this.wrote_since_read {
                this.request_start.clear();
                this.wrote_since_read = false;
            }
            let room = REQUEST_START.saturating_sub(this.request_start.len());
            this.request_start
                .extend_from_slice(&new[..new.len().min(room)]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ShapedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.wrote_since_read = true;
        if let Some(status) = automatic_error(buf) {
            let path = request_path(&this.request_start);
            this.replacement = Some((replacement(status, &path), 0));
            // What is not out yet goes on flush or shutdown (hyper flushes
            // and closes after these answers).
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A listener whose connections are [`ShapedIo`]s.
pub struct ShapedListener<L>(pub L);

impl<L: axum::serve::Listener> axum::serve::Listener for ShapedListener<L> {
    type Io = ShapedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.0.accept().await;
        (ShapedIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_bodiless_4xx_heads() {
        let auto =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            automatic_error(auto),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let with_body = b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(automatic_error(with_body), None);
        let ok = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_error(ok), None);
        assert_eq!(automatic_error(b"{\"faultcode\": 1}"), None);
    }

    #[test]
    fn replacement_is_in_the_route_shape() {
        let r = String::from_utf8(replacement(StatusCode::URI_TOO_LONG, "/v2.0/networks")).unwrap();
        assert!(r.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{r}");
        assert!(r.contains("\"NeutronError\""), "{r}");
        let r = String::from_utf8(replacement(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "/v2/lbaas/loadbalancers",
        ))
        .unwrap();
        assert!(r.contains("\"faultcode\":\"Client\""), "{r}");
        assert_eq!(
            request_path(b"GET /v2.0/ports?x=1 HTTP/1.1\r\n"),
            "/v2.0/ports"
        );
    }
}
