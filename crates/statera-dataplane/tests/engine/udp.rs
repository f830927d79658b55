//! UDP listeners: datagram sessions to UDP echo members.

use crate::support::*;
use statera_config::{DataPlane, SessionPersistenceConfig};
use statera_model::{ListenerProtocol, PoolProtocol, SessionPersistenceType};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A UDP member on 127.0.0.1 answering each datagram `x` with `name x`,
/// noting the source address of every datagram.
struct UdpEcho {
    addr: SocketAddr,
    sources: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpEcho {
    async fn start(name: &'static str) -> UdpEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let sources = Arc::new(Mutex::new(Vec::new()));
        let seen = sources.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                seen.lock().unwrap().push(from);
                let mut reply = format!("{name} ").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = socket.send_to(&reply, from).await;
            }
        });
        UdpEcho {
            addr,
            sources,
            task,
        }
    }
}

/// A UDP port on which nothing listens: datagrams get ICMP port unreachable.
async fn dead_udp() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap()
}

/// A client socket (its own port) connected to `to`: it only receives what
/// comes from `to`, so an answer proves the reply's source.
async fn client(to: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(to).await.unwrap();
    socket
}

/// Sends `line`, returns the answer's member name, or `None` after `wait`.
async fn ask(socket: &UdpSocket, line: &str, wait: Duration) -> Option<String> {
    socket.send(line.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 2048];
    let n = match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return None,
    };
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let (name, echoed) = text.split_once(' ')?;
    assert_eq!(echoed, line);
    Some(name.to_string())
}

const WAIT: Duration = Duration::from_secs(2);

fn udp_config(
    n: u8,
    members: &[SocketAddr],
    client_ms: u64,
) -> (statera_config::LbConfig, uuid::Uuid) {
    let mut p = pool(members.iter().map(|a| member(*a, 1)).collect());
    p.protocol = PoolProtocol::Udp;
    let mut l = listener(ListenerProtocol::Udp, 5353, Some(p.id));
    l.timeouts.client_data_ms = client_ms;
    let id = l.id;
    (lb(vip(n), vec![l], vec![p]), id)
}

#[tokio::test]
async fn sessions_are_balanced_by_client_port_and_answered_from_the_vip() {
    bounded(async {
        let a = UdpEcho::start("a").await;
        let b = UdpEcho::start("b").await;
        let (config, listener_id) = udp_config(160, &[a.addr, b.addr], 50_000);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(160), 5353);
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut clients = Vec::new();
        for i in 0..4 {
            let c = client(to).await;
            let name = ask(&c, &format!("hello {i}"), WAIT).await.expect("answer");
            *names.entry(name).or_default() += 1;
            clients.push(c);
        }
        assert_eq!(names.get("a"), Some(&2), "{names:?}");
        assert_eq!(names.get("b"), Some(&2), "{names:?}");
        // Members see the datagrams come from the VIP.
        for echo in [&a, &b] {
            for source in echo.sources.lock().unwrap().iter() {
                assert_eq!(source.ip(), vip(160));
            }
        }
        let stats = listener_stats(&h.report(config.lb_id), listener_id);
        assert_eq!(stats.total_connections, 4);
        assert_eq!(stats.active_connections, 4);
        assert_eq!(stats.bytes_in, 4 * "hello 0".len() as u64);
        assert_eq!(stats.bytes_out, 4 * "a hello 0".len() as u64);
        // Disabled: the sessions end, and stop counting as active.
        let mut disabled = config.clone();
        disabled.version = 2;
        disabled.listeners[0].admin_state_up = false;
        h.apply(&disabled).await.unwrap();
        let ended = eventually(Duration::from_secs(3), async || {
            listener_stats(&h.report(config.lb_id), listener_id).active_connections == 0
        })
        .await;
        assert!(ended, "sessions of a disabled listener still active");
        h.engine.remove(config.lb_id).await.unwrap();
        // The address is free again at once.
        UdpSocket::bind(to).await.expect("VIP port released");
    })
    .await;
}

#[tokio::test]
async fn a_session_sticks_and_source_ip_persistence_spans_ports() {
    bounded(async {
        let a = UdpEcho::start("a").await;
        let b = UdpEcho::start("b").await;
        let (mut config, _) = udp_config(161, &[a.addr, b.addr], 50_000);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(161), 5353);
        let c = client(to).await;
        let first = ask(&c, "x", WAIT).await.unwrap();
        for i in 0..5 {
            assert_eq!(ask(&c, &format!("x{i}"), WAIT).await.unwrap(), first);
        }
        // SOURCE_IP persistence: every port of one client address goes to
        // the member it had.
        config.version = 2;
        config.pools[0].session_persistence = Some(SessionPersistenceConfig {
            kind: SessionPersistenceType::SourceIp,
            cookie_name: None,
            persistence_timeout: Some(60),
            persistence_granularity: None,
        });
        h.apply(&config).await.unwrap();
        let c1 = client(to).await;
        let sticky = ask(&c1, "y", WAIT).await.unwrap();
        for i in 0..4 {
            let ci = client(to).await;
            assert_eq!(ask(&ci, &format!("y{i}"), WAIT).await.unwrap(), sticky);
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_idle_session_expires() {
    bounded(async {
        let a = UdpEcho::start("a").await;
        let b = UdpEcho::start("b").await;
        let (config, listener_id) = udp_config(162, &[a.addr, b.addr], 300);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let c = client(addr(vip(162), 5353)).await;
        let first = ask(&c, "1", WAIT).await.unwrap();
        // Within the timeout: the same session.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ask(&c, "2", WAIT).await.unwrap(), first);
        let ended = eventually(Duration::from_secs(3), async || {
            listener_stats(&h.report(config.lb_id), listener_id).active_connections == 0
        })
        .await;
        assert!(ended, "the session did not expire");
        // The next datagram opens a new session: round robin's next member.
        let second = ask(&c, "3", WAIT).await.unwrap();
        assert_ne!(second, first);
        let stats = listener_stats(&h.report(config.lb_id), listener_id);
        assert_eq!(stats.total_connections, 2);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_refusing_member_sends_the_next_session_elsewhere() {
    bounded(async {
        let dead = dead_udp().await;
        let a = UdpEcho::start("a").await;
        let (mut config, _) = udp_config(163, &[dead, a.addr], 50_000);
        // The dead member is picked first.
        config.pools[0].members[0].weight = 100;
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let c = client(addr(vip(163), 5353)).await;
        assert_eq!(
            ask(&c, "lost", Duration::from_millis(300)).await,
            None,
            "the dead member answered"
        );
        // ICMP port unreachable ended that session: the client's next
        // datagram goes to `a`. (A client retransmits; each datagram to the
        // dead member draws an ICMP error, which the kernel may rate-limit
        // while other tests run, so allow a few tries.)
        let mut answer = None;
        for i in 0..5 {
            answer = ask(&c, &format!("again {i}"), Duration::from_millis(400)).await;
            if answer.is_some() {
                break;
            }
        }
        assert_eq!(answer.as_deref(), Some("a"));
        let report = h.report(config.lb_id);
        let dead_member = config.pools[0].members[0].id;
        assert!(
            report.pools[0].members.iter().any(|m| m.id == dead_member),
            "{report:?}"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn connection_limit_bounds_live_sessions() {
    bounded(async {
        let a = UdpEcho::start("a").await;
        let (mut config, listener_id) = udp_config(164, &[a.addr], 300);
        config.listeners[0].connection_limit = Some(1);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(164), 5353);
        let first = client(to).await;
        assert_eq!(ask(&first, "1", WAIT).await.as_deref(), Some("a"));
        let second = client(to).await;
        assert_eq!(ask(&second, "2", Duration::from_millis(100)).await, None);
        assert_eq!(
            listener_stats(&h.report(config.lb_id), listener_id).request_errors,
            1
        );
        // Once the first session idles out, the second client gets in.
        let mut answer = None;
        for i in 0..10 {
            answer = ask(&second, &format!("again {i}"), Duration::from_millis(200)).await;
            if answer.is_some() {
                break;
            }
        }
        assert_eq!(answer.as_deref(), Some("a"));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// A UDP session holds a socket: sessions count under the load balancer's
/// ceiling like TCP connections, and a new client past it is dropped and
/// counted.
#[tokio::test]
async fn sessions_count_under_the_load_balancers_ceiling() {
    bounded(async {
        let a = UdpEcho::start("a").await;
        let (config, listener_id) = udp_config(233, &[a.addr], 50_000);
        let h = Harness::with_options(statera_dataplane::EngineOptions {
            limits: statera_dataplane::ConnectionLimits {
                total: None,
                per_lb: Some(2),
                handshakes: None,
            },
            ..Default::default()
        });
        h.apply(&config).await.unwrap();
        let to = addr(vip(233), 5353);
        let (c1, c2, c3) = (client(to).await, client(to).await, client(to).await);
        assert_eq!(ask(&c1, "one", WAIT).await.as_deref(), Some("a"));
        assert_eq!(ask(&c2, "two", WAIT).await.as_deref(), Some("a"));
        assert_eq!(ask(&c3, "three", Duration::from_millis(300)).await, None);
        // The sessions in place go on.
        assert_eq!(ask(&c1, "again", WAIT).await.as_deref(), Some("a"));
        let stats = listener_stats(&h.report(config.lb_id), listener_id);
        assert_eq!((stats.active_connections, stats.request_errors), (2, 1));
        assert_eq!(h.engine.connections(), (1, 2));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
