//! Backends, clients and config builders for the engine tests. Everything
//! runs on loopback; each test uses its own 127.101.N.x VIP so tests can run
//! in parallel.

use statera_config::{
    DataPlane, InsertHeaders, LbConfig, ListenerConfig, MemberConfig, PoolConfig, StatusReport,
    Timeouts, Vip,
};
use statera_dataplane::{Engine, EngineOptions};
use statera_model::{LbAlgorithm, ListenerProtocol, PoolProtocol};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Upper bound for any single test.
pub const TEST_DEADLINE: Duration = Duration::from_secs(30);
/// Upper bound for one client exchange.
pub const IO_DEADLINE: Duration = Duration::from_secs(5);

/// Runs a test body, failing it if it takes longer than [`TEST_DEADLINE`].
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("test exceeded its deadline");
}

/// A tiny backend on 127.0.0.1 that identifies itself as `name`.
///
/// A connection whose first line starts with `GET ` gets
/// `HTTP/1.1 200 OK` with body `name` and is closed; any other connection is
/// a line echo: each line `x` is answered with `name x`.
pub struct Backend {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve_backend(stream, name));
            }
        });
        Backend { addr, task }
    }
}

async fn serve_backend(stream: TcpStream, name: &'static str) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut first = true;
    while let Ok(Ok(Some(line))) = tokio::time::timeout(TEST_DEADLINE, lines.next_line()).await {
        if first && line.starts_with("GET ") {
            // Skip the headers, then answer and close.
            while let Ok(Some(header)) = lines.next_line().await {
                if header.is_empty() {
                    break;
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = write.write_all(response.as_bytes()).await;
            return;
        }
        first = false;
        if write
            .write_all(format!("{name} {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// An address on which nothing listens: connecting is refused.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub fn vip(n: u8) -> IpAddr {
    IpAddr::from([127, 101, n, 1])
}

pub fn addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A minimal HTTP response: status code and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// `GET /` on `to`, from the default source address.
pub async fn get(to: SocketAddr) -> io::Result<Reply> {
    get_from(None, to).await
}

/// `GET /` on `to`, from `source` (any 127/8 address) when given.
pub async fn get_from(source: Option<IpAddr>, to: SocketAddr) -> io::Result<Reply> {
    tokio::time::timeout(IO_DEADLINE, async {
        let mut stream = connect_from(source, to).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: statera\r\nConnection: close\r\n\r\n")
            .await?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await?;
        parse_reply(&raw)
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

fn parse_reply(raw: &str) -> io::Result<Reply> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

pub async fn connect_from(source: Option<IpAddr>, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.connect(to).await
}

/// A line-oriented client on one long-lived connection (talks to the echo
/// side of [`Backend`]).
pub struct LineClient {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    pub async fn connect(to: SocketAddr) -> io::Result<LineClient> {
        Self::connect_from(None, to).await
    }

    pub async fn connect_from(source: Option<IpAddr>, to: SocketAddr) -> io::Result<LineClient> {
        let stream = connect_from(source, to).await?;
        let (read, write) = stream.into_split();
        Ok(LineClient {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.write.write_all(format!("{line}\n").as_bytes()).await
    }

    /// The next line, `None` on end of stream; errors after `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> io::Result<Option<String>> {
        tokio::time::timeout(wait, self.lines.next_line())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Sends `line` and returns the answer.
    pub async fn ask(&mut self, line: &str) -> io::Result<String> {
        self.send(line).await?;
        self.recv_within(IO_DEADLINE)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }
}

/// An engine with its report channel.
pub struct Harness {
    pub engine: Engine,
    pub reports: mpsc::UnboundedReceiver<StatusReport>,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_options(EngineOptions::default())
    }

    pub fn with_options(options: EngineOptions) -> Harness {
        let (tx, reports) = mpsc::unbounded_channel();
        Harness {
            engine: Engine::with_options(tx, options),
            reports,
        }
    }

    pub async fn apply(&self, config: &LbConfig) -> Result<u64, statera_config::DataPlaneError> {
        self.engine.apply(Arc::new(config.clone())).await
    }

    pub fn report(&self, lb_id: Uuid) -> StatusReport {
        self.engine.report(lb_id).expect("load balancer is served")
    }

    /// Waits (bounded) for a report that satisfies `check`.
    pub async fn wait_report(&mut self, check: impl Fn(&StatusReport) -> bool) -> StatusReport {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let report = self.reports.recv().await.expect("report channel open");
                if check(&report) {
                    return report;
                }
            }
        })
        .await
        .expect("expected report within 10 s")
    }
}

/// Polls `check` every 20 ms, for at most `wait`; true when it held.
pub async fn eventually(wait: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let rounds = (wait.as_millis() / 20).max(1);
    for _ in 0..rounds {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub fn lb(vip: IpAddr, listeners: Vec<ListenerConfig>, pools: Vec<PoolConfig>) -> LbConfig {
    LbConfig {
        lb_id: Uuid::new_v4(),
        version: 1,
        admin_state_up: true,
        vip: Vip {
            address: vip,
            port_id: Uuid::new_v4(),
            subnet_id: Uuid::new_v4(),
            network_id: Uuid::new_v4(),
            mac_address: "fa:16:3e:00:00:01".into(),
            subnet_cidr: "127.101.0.0/16".parse().unwrap(),
            gateway: None,
            namespace: None,
            plumbing: None,
        },
        listeners,
        pools,
    }
}

pub fn listener(protocol: ListenerProtocol, port: u16, pool: Option<Uuid>) -> ListenerConfig {
    ListenerConfig {
        id: Uuid::new_v4(),
        protocol,
        protocol_port: port,
        admin_state_up: true,
        connection_limit: None,
        default_pool_id: pool,
        timeouts: Timeouts {
            client_data_ms: 50_000,
            member_connect_ms: 5_000,
            member_data_ms: 50_000,
            tcp_inspect_ms: 0,
        },
        insert_headers: InsertHeaders::default(),
        allowed_cidrs: Vec::new(),
        l7policies: Vec::new(),
        tls: None,
    }
}

pub fn pool(members: Vec<MemberConfig>) -> PoolConfig {
    PoolConfig {
        id: Uuid::new_v4(),
        protocol: PoolProtocol::Http,
        lb_algorithm: LbAlgorithm::RoundRobin,
        admin_state_up: true,
        session_persistence: None,
        members,
        health_monitor: None,
        tls: None,
    }
}

pub fn member(addr: SocketAddr, weight: u16) -> MemberConfig {
    MemberConfig {
        id: Uuid::new_v4(),
        address: addr.ip(),
        protocol_port: addr.port(),
        weight,
        backup: false,
        admin_state_up: true,
        monitor_address: None,
        monitor_port: None,
    }
}

/// The stats of listener `id` in `report`.
pub fn listener_stats(report: &StatusReport, id: Uuid) -> statera_config::Stats {
    report
        .listeners
        .iter()
        .find(|l| l.id == id)
        .expect("listener in report")
        .stats
}

/// Waits (bounded) until connecting to `addr` is refused: a stopped backend
/// has closed its listening socket.
pub async fn wait_refused(addr: SocketAddr) {
    let refused = eventually(Duration::from_secs(5), async || {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "{addr} still accepts connections");
}
