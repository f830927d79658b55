//! Backends that health probes talk to, each on its own 127.103.N.x address,
//! recording what they see; monitor and report helpers.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use statera_config::{HealthMonitorConfig, MemberHealth, StatusReport};
use statera_model::HealthMonitorType;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

/// 127.103.`n`.`host`: test `n`'s backend addresses.
pub fn backend_ip(n: u8, host: u8) -> IpAddr {
    IpAddr::from([127, 103, n, host])
}

pub fn monitor(kind: HealthMonitorType) -> HealthMonitorConfig {
    HealthMonitorConfig {
        id: Uuid::new_v4(),
        kind,
        admin_state_up: true,
        delay_s: 1,
        timeout_s: 1,
        rise: 1,
        fall: 1,
        http_method: None,
        url_path: None,
        expected_codes: None,
        http_version: None,
        domain_name: None,
    }
}

/// The health of member `id` in `report`.
pub fn health(report: &StatusReport, id: Uuid) -> MemberHealth {
    report
        .pools
        .iter()
        .flat_map(|p| &p.members)
        .find(|m| m.id == id)
        .expect("member in report")
        .health
}

/// One request as a probe backend saw it, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub request_line: String,
    pub host: Option<String>,
    pub status: u16,
}

/// An HTTP (or HTTPS) server that answers every request with the status in
/// `status` and records it.
pub struct ProbeBackend {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for ProbeBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProbeBackend {
    pub async fn http(ip: IpAddr, status: u16) -> ProbeBackend {
        Self::start(ip, status, None).await
    }

    pub async fn https(ip: IpAddr, status: u16) -> ProbeBackend {
        Self::start(ip, status, Some(acceptor())).await
    }

    async fn start(ip: IpAddr, status: u16, tls: Option<TlsAcceptor>) -> ProbeBackend {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (status.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (st, sn, tls) = (st.clone(), sn.clone(), tls.clone());
                conns.spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                answer(stream, &st, &sn).await;
                            }
                        }
                        None => answer(stream, &st, &sn).await,
                    }
                });
            }
        });
        ProbeBackend {
            addr,
            status,
            seen,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn answer<S>(stream: S, status: &AtomicU16, seen: &Mutex<Vec<Seen>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut host = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("host")
        {
            host = Some(value.trim().to_string());
        }
    }
    // Decided and recorded together, so a test that flips the status sees
    // exactly which answer each probe got.
    let code = {
        let mut seen = seen.lock().unwrap();
        let code = status.load(Ordering::SeqCst);
        seen.push(Seen {
            request_line: request_line.trim_end().to_string(),
            host,
            status: code,
        });
        code
    };
    let response =
        format!("HTTP/1.1 {code} Status\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The test certificate (self-signed, made once with the openssl CLI).
fn acceptor() -> TlsAcceptor {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/probe-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/probe-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A TLS server that counts completed handshakes and closes.
pub struct TlsCounter {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TlsCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsCounter {
    pub async fn start(ip: IpAddr) -> TlsCounter {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = handshakes.clone();
        let tls = acceptor();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (tls, count) = (tls.clone(), count.clone());
                conns.spawn(async move {
                    if tls.accept(stream).await.is_ok() {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        TlsCounter {
            addr,
            handshakes,
            task,
        }
    }
}

/// A TCP server that counts connections and closes them at once; with
/// `silent` it keeps them open without a byte (a TLS client waits in vain).
pub struct TcpCounter {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TcpCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpCounter {
    pub async fn start(addr: SocketAddr, silent: bool) -> TcpCounter {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                if silent {
                    held.push(stream);
                }
            }
        });
        TcpCounter {
            addr,
            accepted,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A bound UDP socket that never answers (an open UDP port).
pub async fn open_udp(ip: IpAddr) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.unwrap()
}

/// A UDP port on `ip` where nothing listens.
pub async fn closed_udp(ip: IpAddr) -> SocketAddr {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    socket.local_addr().unwrap()
}

/// A TCP port on `ip` where nothing listens.
pub async fn closed_tcp(ip: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap()
}
