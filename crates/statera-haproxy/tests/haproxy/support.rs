//! Backends, clients, config builders and the harness for the HAProxy
//! provider tests. Everything runs on loopback; each test uses its own
//! 127.112.N.1 VIP so tests run in parallel. A harness removes its
//! directory when dropped and kills, by pid, any HAProxy a failed test left.

use statera_config::{
    HealthMonitorConfig, InsertHeaders, LbConfig, ListenerConfig, MemberConfig, PoolConfig,
    StatusReport, Timeouts, Vip,
};
use statera_haproxy::{HaproxyOptions, HaproxyProvider};
use statera_model::{HealthMonitorType, LbAlgorithm, ListenerProtocol, PoolProtocol};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Upper bound for any single test.
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound for one client exchange.
pub const IO_DEADLINE: Duration = Duration::from_secs(5);

pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("test exceeded its deadline");
}

/// A prerequisite is missing: on a developer's machine say so and skip; under CI (`CI=true`),
/// where `scripts/test` installs every prerequisite, fail.
pub fn skip_or_fail(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing under CI=true: {reason}");
    }
    println!("SKIPPED: {reason}");
}

/// A provider on a private directory, or `None` (with the reason printed)
/// when HAProxy is not installed.
pub struct Harness {
    pub provider: HaproxyProvider,
    pub reports: mpsc::UnboundedReceiver<StatusReport>,
    pub dir: PathBuf,
}

impl Harness {
    pub fn new() -> Option<Harness> {
        let Some(binary) = statera_haproxy::find_haproxy() else {
            skip_or_fail("haproxy is not installed (apt-get install haproxy)");
            return None;
        };
        // Short: socket paths must fit in 107 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/sthx-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut options = HaproxyOptions::new(&dir);
        options.binary = binary;
        options.poll_interval = Duration::from_millis(200);
        options.stop_timeout = Duration::from_secs(5);
        let (tx, reports) = mpsc::unbounded_channel();
        Some(Harness {
            provider: HaproxyProvider::new(options, tx),
            reports,
            dir,
        })
    }

    /// Waits until `check` holds for the provider's report of `lb`.
    pub async fn wait_report(
        &self,
        lb: Uuid,
        what: &str,
        check: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport {
        use statera_config::DataPlane;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(report) = self.provider.report(lb)
                && check(&report)
            {
                return report;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last report {:?}",
                self.provider.report(lb)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Whatever a failed test left running: masters from pid files, and
        // their workers from the master CLI.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let lb_dir = entry.path();
                for pid in worker_pids(&lb_dir.join("master.sock")) {
                    kill(pid, libc::SIGKILL);
                }
                if let Ok(text) = std::fs::read_to_string(lb_dir.join("haproxy.pid"))
                    && let Ok(pid) = text.trim().parse::<u32>()
                {
                    kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// The workers a master lists on its CLI (blocking; for cleanup and tests).
pub fn worker_pids(master_socket: &std::path::Path) -> Vec<u32> {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(master_socket) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(b"show proc\n");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[1] == "worker").then(|| f[0].parse().ok())?
        })
        .collect()
}

/// Request lines a [`Backend`] got, each with the address it came from.
pub type Requests = Arc<Mutex<Vec<(IpAddr, String)>>>;

/// A tiny HTTP backend on 127.0.0.1: answers every request with its name
/// (and closes), remembering each request's X-Forwarded-For, and its
/// request line and the address it came from.
pub struct Backend {
    pub addr: SocketAddr,
    pub forwarded_for: Arc<Mutex<Vec<String>>>,
    pub requests: Requests,
    pub hits: Arc<AtomicUsize>,
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
        let forwarded_for = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (xff, seen, count) = (forwarded_for.clone(), requests.clone(), hits.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                let seen = (peer.ip(), seen.clone());
                connections.spawn(serve(stream, name, xff.clone(), seen, count.clone()));
            }
        });
        Backend {
            addr,
            forwarded_for,
            requests,
            hits,
            task,
        }
    }

    /// Stops accepting and closes the port (connections are refused).
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

async fn serve(
    mut stream: TcpStream,
    name: &'static str,
    xff: Arc<Mutex<Vec<String>>>,
    (peer, seen): (IpAddr, Requests),
    hits: Arc<AtomicUsize>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout(IO_DEADLINE, stream.read(&mut buf)).await else {
            return;
        };
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 65536 {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let request_line = head.lines().next().unwrap_or("").to_string();
    seen.lock().unwrap().push((peer, request_line));
    if let Some(value) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-forwarded-for")
            .then(|| v.trim().to_string())
    }) {
        xff.lock().unwrap().push(value);
    }
    if !head.starts_with("OPTIONS") {
        hits.fetch_add(1, Ordering::Relaxed);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

pub fn vip(n: u8) -> IpAddr {
    IpAddr::from([127, 112, n, 1])
}

#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET /` on a fresh connection.
pub async fn get(to: SocketAddr) -> io::Result<Reply> {
    get_path(to, "/", "statera").await
}

/// `GET <path>` with `Host: <host>` on a fresh connection.
pub async fn get_path(to: SocketAddr, path: &str, host: &str) -> io::Result<Reply> {
    tokio::time::timeout(IO_DEADLINE, async {
        let mut stream = TcpStream::connect(to).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw);
        let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {raw:?}"));
        let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        Ok(Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
        })
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

pub fn member(addr: SocketAddr) -> MemberConfig {
    MemberConfig {
        id: Uuid::new_v4(),
        address: addr.ip(),
        protocol_port: addr.port(),
        weight: 1,
        backup: false,
        admin_state_up: true,
        monitor_address: None,
        monitor_port: None,
    }
}

pub fn tcp_monitor() -> HealthMonitorConfig {
    HealthMonitorConfig {
        id: Uuid::new_v4(),
        kind: HealthMonitorType::Tcp,
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

/// One HTTP listener on `vip:port` with one round-robin pool of `members`.
pub fn http_lb(vip: IpAddr, port: u16, members: Vec<MemberConfig>) -> LbConfig {
    let pool_id = Uuid::new_v4();
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
            subnet_cidr: "127.0.0.0/8".parse().unwrap(),
            gateway: None,
            namespace: None,
            plumbing: None,
        },
        listeners: vec![ListenerConfig {
            id: Uuid::new_v4(),
            protocol: ListenerProtocol::Http,
            protocol_port: port,
            admin_state_up: true,
            connection_limit: Some(1000),
            default_pool_id: Some(pool_id),
            timeouts: Timeouts {
                client_data_ms: 10_000,
                member_connect_ms: 2_000,
                member_data_ms: 10_000,
                tcp_inspect_ms: 0,
            },
            insert_headers: InsertHeaders {
                x_forwarded_for: true,
                x_forwarded_port: true,
                x_forwarded_proto: true,
                ..Default::default()
            },
            allowed_cidrs: Vec::new(),
            l7policies: Vec::new(),
            tls: None,
        }],
        pools: vec![PoolConfig {
            id: pool_id,
            protocol: PoolProtocol::Http,
            lb_algorithm: LbAlgorithm::RoundRobin,
            admin_state_up: true,
            session_persistence: None,
            members,
            health_monitor: None,
            tls: None,
        }],
    }
}

/// `config` as the next version.
pub fn next(config: &LbConfig, change: impl FnOnce(&mut LbConfig)) -> Arc<LbConfig> {
    let mut next = config.clone();
    next.version += 1;
    change(&mut next);
    Arc::new(next)
}
