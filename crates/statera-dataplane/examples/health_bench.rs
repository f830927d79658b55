//! Health checking at scale: 10,000 monitored members (TCP monitor, delay
//! 5 s) on 10,000 distinct endpoints, probed for 30 s; reports the engine's
//! CPU time and memory.
//!
//! ```text
//! cargo run --release -p statera-dataplane --example health_bench [-- <seconds>]
//! ```
//!
//! The endpoints are 100 addresses (127.104.0.1 … 127.104.99.1) × 100 ports
//! (21000 … 21099), served by a child process (this same binary, run with
//! `--backends`) that accepts and closes every connection, so the figures
//! below count the prober side only (`getrusage(RUSAGE_SELF)` of this
//! process). The members are spread over 10 load balancers of 10 pools of
//! 100 members each; every member is its own endpoint (10,000 probers).
//! Everything runs on one tokio current-thread runtime. Needs about 10,100
//! file descriptors in the child (it raises its soft limit to the hard one).

use statera_config::{
    DataPlane, HealthMonitorConfig, LbConfig, MemberConfig, MemberHealth, PoolConfig, StatusReport,
    Vip,
};
use statera_dataplane::Engine;
use statera_model::{HealthMonitorType, LbAlgorithm, PoolProtocol};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const ADDRESSES: u8 = 100;
const PORTS: u16 = 100;
const FIRST_PORT: u16 = 21_000;
const LBS: usize = 10;
const POOLS_PER_LB: usize = 10;
const DELAY_S: u64 = 5;

fn endpoint(i: usize) -> SocketAddr {
    let a = (i / PORTS as usize) as u8;
    let p = (i % PORTS as usize) as u16;
    SocketAddr::new(IpAddr::from([127, 104, a, 1]), FIRST_PORT + p)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--backends") {
        backends();
        return;
    }
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(seconds));
}

/// The child: every endpoint bound, accepting and closing.
fn backends() {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let total = ADDRESSES as usize * PORTS as usize;
        for i in 0..total {
            let listener = tokio::net::TcpListener::bind(endpoint(i))
                .await
                .unwrap_or_else(|e| panic!("bind {}: {e}", endpoint(i)));
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            });
        }
        println!("ready");
        std::io::stdout().flush().unwrap();
        // Until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    });
}

fn raise_fd_limit() {
    // SAFETY: plain libc calls on a properly initialised struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// CPU time (user + system) of this process, and its peak RSS in KiB.
fn usage() -> (Duration, Duration, u64) {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss as u64)
}

/// Current RSS in KiB (from /proc/self/statm).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn config(lb: usize) -> LbConfig {
    let pools = (0..POOLS_PER_LB)
        .map(|p| {
            let members = (0..100)
                .map(|m| {
                    let i = (lb * POOLS_PER_LB + p) * 100 + m;
                    let addr = endpoint(i);
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
                })
                .collect();
            PoolConfig {
                id: Uuid::new_v4(),
                protocol: PoolProtocol::Tcp,
                lb_algorithm: LbAlgorithm::RoundRobin,
                admin_state_up: true,
                session_persistence: None,
                members,
                health_monitor: Some(HealthMonitorConfig {
                    id: Uuid::new_v4(),
                    kind: HealthMonitorType::Tcp,
                    admin_state_up: true,
                    delay_s: DELAY_S,
                    timeout_s: 2,
                    rise: 2,
                    fall: 3,
                    http_method: None,
                    url_path: None,
                    expected_codes: None,
                    http_version: None,
                    domain_name: None,
                }),
                tls: None,
            }
        })
        .collect();
    LbConfig {
        lb_id: Uuid::new_v4(),
        version: 1,
        admin_state_up: true,
        vip: Vip {
            address: IpAddr::from([127, 104, 200, lb as u8 + 1]),
            port_id: Uuid::new_v4(),
            subnet_id: Uuid::new_v4(),
            network_id: Uuid::new_v4(),
            mac_address: "fa:16:3e:00:00:01".into(),
            subnet_cidr: "127.104.0.0/16".parse().unwrap(),
            gateway: None,
            namespace: None,
            plumbing: None,
        },
        listeners: Vec::new(),
        pools,
    }
}

async fn bench(seconds: u64) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .arg("--backends")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the backends");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "backends failed to start");

    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel::<StatusReport>();
    let engine = Engine::new(tx);
    let (u0, s0, _) = usage();
    let rss0 = rss_kib();
    let started = Instant::now();
    let configs: Vec<LbConfig> = (0..LBS).map(config).collect();
    for c in &configs {
        engine.apply(Arc::new(c.clone())).await.unwrap();
    }
    let apply_time = started.elapsed();
    let (u1, s1, _) = usage();
    println!(
        "applied {LBS} load balancers, {} members, in {apply_time:?} (CPU {:?}); probers: {}",
        LBS * POOLS_PER_LB * 100,
        (u1 + s1) - (u0 + s0),
        engine.health_probes().0
    );

    // Probes per 500 ms over the run (first-probe spread and steady rate).
    let mut windows = Vec::new();
    let mut last = engine.health_probes().1;
    let run_start = Instant::now();
    let deadline = run_start + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        while reports.try_recv().is_ok() {}
        let now = engine.health_probes().1;
        windows.push(now - last);
        last = now;
    }
    let elapsed = run_start.elapsed();
    let (u2, s2, maxrss) = usage();
    let rss = rss_kib();
    let probes = engine.health_probes().1;
    let down = configs
        .iter()
        .filter_map(|c| engine.report(c.lb_id))
        .flat_map(|r| r.pools)
        .flat_map(|p| p.members)
        .filter(|m| m.health != MemberHealth::Up)
        .count();
    let cpu = (u2 - u1) + (s2 - s1);
    println!(
        "ran {elapsed:.1?}: {probes} probes ({:.0}/s), members not up at the end: {down}",
        probes as f64 / elapsed.as_secs_f64()
    );
    println!(
        "CPU over the run: {cpu:.2?} (user {:.2?}, system {:.2?}) = {:.1} % of one core",
        u2 - u1,
        s2 - s1,
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    println!(
        "RSS: {} KiB before apply, {rss} KiB at the end, peak {maxrss} KiB",
        rss0
    );
    let steady = &windows[(2 * DELAY_S as usize).min(windows.len())..];
    if let (Some(min), Some(max)) = (steady.iter().min(), steady.iter().max()) {
        println!(
            "probes per 500 ms after the first {} s: min {min}, max {max} (even spread: {})",
            DELAY_S,
            10_000 / (2 * DELAY_S)
        );
    }
    let first: Vec<_> = windows.iter().take(2 * DELAY_S as usize).collect();
    println!("probes per 500 ms during the first delay: {first:?}");
    for c in &configs {
        engine.remove(c.lb_id).await.unwrap();
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
