//! `HTTP` and `HTTPS`: one request, judged by its status line.
//!
//! The request is rendered once per distinct monitor settings:
//! `<http_method> <url_path> HTTP/1.0` (HAProxy's `option httpchk` default)
//! or `HTTP/1.1` when `http_version` is 1.1, with `Host: <domain_name>` or
//! else the member's address, and `Connection: close`. Only the status line
//! is read; the connection is then closed. HTTPS sends the same over TLS
//! (`connect.rs`: no certificate verification, or the pool's TLS).

use super::codes::ExpectedCodes;
use super::connect::{ProbeTls, connect};
use super::{Probe, within};
use crate::sockets::Netns;
use statera_config::BoxFuture;
use statera_model::HttpMethod;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What an HTTP(S) probe sends and accepts (part of the probe key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub tls: ProbeTls,
    pub method: HttpMethod,
    pub path: String,
    pub codes: ExpectedCodes,
    /// HTTP/1.1 rather than HTTP/1.0.
    pub http11: bool,
    pub host: String,
}

#[derive(Debug)]
pub struct HttpProbe {
    check: HttpCheck,
    request: Vec<u8>,
}

/// Longest status line read before giving up on an answer.
const MAX_STATUS_LINE: usize = 1024;

impl HttpProbe {
    pub fn new(check: HttpCheck) -> HttpProbe {
        let version = if check.http11 { "1.1" } else { "1.0" };
        let body_len = match check.method {
            HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch => "Content-Length: 0\r\n",
            _ => "",
        };
        let request = format!(
            "{} {} HTTP/{version}\r\nHost: {}\r\nUser-Agent: statera-health-check\r\nAccept: */*\r\n{body_len}Connection: close\r\n\r\n",
            check.method, check.path, check.host
        )
        .into_bytes();
        HttpProbe { check, request }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
    ) -> Result<(), String> {
        stream
            .write_all(&self.request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        // Out of rustls too, over TLS.
        stream
            .flush()
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut head = Vec::with_capacity(128);
        let mut buf = [0u8; 256];
        let line_end = loop {
            if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
                break end;
            }
            if head.len() > MAX_STATUS_LINE {
                return Err("status line too long".into());
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if n == 0 {
                return Err("connection closed before a status line".into());
            }
            head.extend_from_slice(&buf[..n]);
        };
        let status = status_code(&head[..line_end]).ok_or_else(|| {
            format!(
                "not an HTTP status line: {:?}",
                String::from_utf8_lossy(&head[..line_end])
            )
        })?;
        if self.check.codes.matches(status) {
            Ok(())
        } else {
            Err(format!("status {status}, expected {}", self.check.codes))
        }
    }
}

/// The code of `HTTP/1.x NNN reason`.
fn status_code(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

impl Probe for HttpProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(within(timeout, async move {
            let stream = connect(&netns, target, &self.check.tls).await?;
            self.exchange(stream).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 204"), Some(204));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b"HTTP/1.1 20 OK"), None);
    }

    #[test]
    fn the_request_is_rendered_once() {
        let probe = HttpProbe::new(HttpCheck {
            tls: ProbeTls::Clear,
            method: HttpMethod::Head,
            path: "/healthz".into(),
            codes: ExpectedCodes::default(),
            http11: true,
            host: "app.example".into(),
        });
        let text = String::from_utf8(probe.request.clone()).unwrap();
        assert!(
            text.starts_with("HEAD /healthz HTTP/1.1\r\nHost: app.example\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
}
