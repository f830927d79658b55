//! HTTP members that record what reaches them, and a keep-alive HTTP client
//! on one raw connection, for the HTTP listener tests.

use crate::support::{IO_DEADLINE, TEST_DEADLINE, connect_from};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How an [`HttpMember`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `200` with body = the member's name, keep-alive.
    Answer,
    /// As `Answer`, and sets the application cookie
    /// `JSESSIONID=<name>`.
    SetsCookie,
    /// Reads the request, then closes without a byte of response.
    CloseWithoutAnswer,
    /// Sends a head announcing 100 bytes, 10 of them, then closes.
    DieMidBody,
    /// `200` with a body of [`BIG_BODY`] bytes (`0123456789` repeated).
    Big,
    /// `200` with no length, the body `until-close`, then closes (over TLS:
    /// without close_notify).
    UntilClose,
}

/// The length of a [`Behaviour::Big`] body.
pub const BIG_BODY: usize = 1 << 20;

/// What a TLS member learnt of one connection's handshake.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The CN of the client certificate shown, if any.
    pub client_cn: Option<String>,
    pub alpn: Option<Vec<u8>>,
}

/// What kind of PROXY header an [`HttpMember`] expects first on each
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectProxy {
    None,
    V1,
    V2,
}

/// One request as a member received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted connection (0, 1, ...) it came on.
    pub connection: usize,
    /// The PROXY header bytes that opened that connection, if expected.
    pub proxy_header: Option<Vec<u8>>,
    /// Request line and header lines, without the final blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    /// Values of header `name` (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }
}

/// A keep-alive HTTP/1.1 member on 127.0.0.1 that records every request.
pub struct HttpMember {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    /// TLS members: each completed handshake, in order.
    tls_peers: Arc<Mutex<Vec<TlsPeer>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpMember {
    pub async fn start(name: &'static str) -> HttpMember {
        Self::start_with(name, Behaviour::Answer, ExpectProxy::None).await
    }

    pub async fn start_with(
        name: &'static str,
        behaviour: Behaviour,
        proxy: ExpectProxy,
    ) -> HttpMember {
        Self::serve(name, behaviour, proxy, None).await
    }

    /// A member speaking HTTP/1.1 over TLS as `config` says (certificate,
    /// client certificates asked for, ALPN).
    pub async fn start_tls(
        name: &'static str,
        behaviour: Behaviour,
        config: Arc<rustls::ServerConfig>,
    ) -> HttpMember {
        Self::serve(name, behaviour, ExpectProxy::None, Some(config)).await
    }

    async fn serve(
        name: &'static str,
        behaviour: Behaviour,
        proxy: ExpectProxy,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> HttpMember {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let tls_peers = Arc::new(Mutex::new(Vec::new()));
        let (seen2, connections2, peers2) = (seen.clone(), connections.clone(), tls_peers.clone());
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let connection = connections2.fetch_add(1, Ordering::SeqCst);
                let seen = seen2.clone();
                let Some(config) = tls.clone() else {
                    tasks.spawn(serve_member(
                        stream, name, behaviour, proxy, connection, seen,
                    ));
                    continue;
                };
                let peers = peers2.clone();
                tasks.spawn(async move {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                    let Ok(Ok(stream)) = tokio::time::timeout(IO_DEADLINE, accept).await else {
                        return;
                    };
                    let conn = stream.get_ref().1;
                    peers.lock().unwrap().push(TlsPeer {
                        client_cn: conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|der| common_name(der.as_ref())),
                        alpn: conn.alpn_protocol().map(|p| p.to_vec()),
                    });
                    serve_member(stream, name, behaviour, proxy, connection, seen).await
                });
            }
        });
        HttpMember {
            addr,
            seen,
            connections,
            tls_peers,
            task,
        }
    }

    /// The handshakes a TLS member completed.
    pub fn tls_peers(&self) -> Vec<TlsPeer> {
        self.tls_peers.lock().unwrap().clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The CN of a DER certificate.
fn common_name(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn serve_member<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    name: &'static str,
    behaviour: Behaviour,
    proxy: ExpectProxy,
    connection: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let served = async {
        let proxy_header = match proxy {
            ExpectProxy::None => None,
            ExpectProxy::V1 => {
                let mut line = Vec::new();
                read.read_until(b'\n', &mut line).await?;
                Some(line)
            }
            ExpectProxy::V2 => {
                let mut fixed = [0u8; 16];
                read.read_exact(&mut fixed).await?;
                let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
                let mut rest = vec![0u8; len];
                read.read_exact(&mut rest).await?;
                Some([&fixed[..], &rest].concat())
            }
        };
        loop {
            let Some((head, body)) = read_request(&mut read).await? else {
                return io::Result::Ok(());
            };
            seen.lock().unwrap().push(Seen {
                connection,
                proxy_header: proxy_header.clone(),
                head,
                body,
            });
            match behaviour {
                Behaviour::Answer | Behaviour::SetsCookie => {
                    let cookie = if behaviour == Behaviour::SetsCookie {
                        format!("Set-Cookie: JSESSIONID={name}; Path=/; HttpOnly\r\n")
                    } else {
                        String::new()
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Member: {name}\r\n{cookie}\r\n{name}",
                        name.len()
                    );
                    write.write_all(response.as_bytes()).await?;
                    write.flush().await?;
                }
                Behaviour::Big => {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG_BODY}\r\n\r\n");
                    write.write_all(head.as_bytes()).await?;
                    let body: Vec<u8> = b"0123456789"
                        .iter()
                        .copied()
                        .cycle()
                        .take(BIG_BODY)
                        .collect();
                    write.write_all(&body).await?;
                    write.flush().await?;
                }
                Behaviour::CloseWithoutAnswer => return Ok(()),
                Behaviour::UntilClose => {
                    write
                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close")
                        .await?;
                    write.flush().await?;
                    return Ok(());
                }
                Behaviour::DieMidBody => {
                    write
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                        .await?;
                    write.flush().await?;
                    return Ok(());
                }
            }
        }
    };
    let _ = tokio::time::timeout(TEST_DEADLINE, served).await;
}

/// Reads one request (head and Content-Length or chunked body); `None` at
/// end of stream.
async fn read_request<R: AsyncBufRead + Unpin>(
    read: &mut R,
) -> io::Result<Option<(String, Vec<u8>)>> {
    let Some(head) = read_head(read).await? else {
        return Ok(None);
    };
    let body = read_body(read, &head).await?;
    Ok(Some((head, body)))
}

async fn read_head<R: AsyncBufRead + Unpin>(read: &mut R) -> io::Result<Option<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines.join("\r\n")));
        }
        lines.push(line);
    }
}

fn head_header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn read_body<R: AsyncBufRead + Unpin>(read: &mut R, head: &str) -> io::Result<Vec<u8>> {
    if let Some(len) = head_header(head, "content-length") {
        let len: usize = len.parse().map_err(io::Error::other)?;
        let mut body = vec![0u8; len];
        read.read_exact(&mut body).await?;
        return Ok(body);
    }
    if head_header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            read.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(io::Error::other)?;
            if size == 0 {
                // Trailers, then the blank line.
                while !read_line_trimmed(read).await?.is_empty() {}
                return Ok(body);
            }
            let mut chunk = vec![0u8; size];
            read.read_exact(&mut chunk).await?;
            body.extend_from_slice(&chunk);
            read_line_trimmed(read).await?;
        }
    }
    Ok(Vec::new())
}

async fn read_line_trimmed<R: AsyncBufRead + Unpin>(read: &mut R) -> io::Result<String> {
    let mut line = String::new();
    if read.read_line(&mut line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A response as a client received it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header lines, without the status line.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection speaking raw HTTP/1.1, for as many requests as the
/// test sends on it.
pub struct HttpClient {
    /// The client's own address (what a PROXY header should name).
    pub local: SocketAddr,
    read: BufReader<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
    write: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
}

impl HttpClient {
    pub async fn connect(to: SocketAddr) -> HttpClient {
        Self::connect_from(None, to).await
    }

    pub async fn connect_from(source: Option<IpAddr>, to: SocketAddr) -> HttpClient {
        let stream = connect_from(source, to).await.unwrap();
        let local = stream.local_addr().unwrap();
        Self::over(stream, local)
    }

    /// A client over any connection (a TLS one, say) from `local`.
    pub fn over<S>(stream: S, local: SocketAddr) -> HttpClient
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        HttpClient {
            local,
            read: BufReader::new(Box::new(read)),
            write: Box::new(write),
        }
    }

    /// Sends raw bytes as they are.
    pub async fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.write.write_all(raw).await?;
        self.write.flush().await
    }

    /// `GET path` with any extra header lines, and `Host: statera.test`
    /// unless they have a Host.
    pub async fn get(&mut self, path: &str, extra: &[(&str, &str)]) -> io::Result<HttpReply> {
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        if !extra
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request.push_str("Host: statera.test\r\n");
        }
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.send(request.as_bytes()).await?;
        self.reply().await
    }

    /// Reads one response (bounded in time).
    pub async fn reply(&mut self) -> io::Result<HttpReply> {
        tokio::time::timeout(IO_DEADLINE, async {
            let head = read_head(&mut self.read)
                .await?
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            let (status_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
            let framed = head_header(&head, "content-length").is_some()
                || head_header(&head, "transfer-encoding").is_some();
            let body = if framed {
                read_body(&mut self.read, &head).await?
            } else {
                let mut rest = Vec::new();
                self.read.read_to_end(&mut rest).await?;
                rest
            };
            Ok(HttpReply {
                status,
                head: headers.to_string(),
                body,
            })
        })
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Whether the proxy closed the connection (within the I/O deadline).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(IO_DEADLINE, self.read.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
