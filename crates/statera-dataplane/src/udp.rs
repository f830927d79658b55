//! UDP listeners: datagram sessions.
//!
//! A session is keyed by the client's address and port. Its first datagram
//! picks a member of the listener's default pool (the pool's algorithm and
//! `SOURCE_IP` persistence, as for a TCP connection) and opens one UDP
//! socket for it, bound on the VIP (any port) and connected to the member;
//! the client's datagrams go out on it, and what comes back on it is sent to
//! the client from the listener's socket, so from VIP:port. A session ends
//! after `timeout_client_data` without a datagram either way
//! ([`DEFAULT_IDLE`] when 0), or when the member answers with an ICMP
//! unreachable (the kernel reports it on the connected socket): that counts
//! as a failed use of the member (passive health), and the client's next
//! datagram starts a new session on another member.
//!
//! A listener's `connection_limit` bounds its live sessions: a datagram
//! that would open one more is dropped and counted in `request_errors`.
//!
//! Counters: a session counts as a connection (total and active) of the
//! listener and of its member; datagram payload bytes count as bytes in and
//! out; a datagram no member can take counts in `request_errors`.
//!
//! The listener's task owns the session table and, through a `JoinSet`,
//! every session's task: closing the listener ends its sessions at once (UDP
//! has nothing to drain) and releases the address.

use crate::limits::Slot;
use crate::listener::ListenerView;
use crate::pool::InFlight;
use crate::snapshot::{LbShared, Snapshot};
use crate::sockets::{Netns, new_socket};
use crate::stats::ListenerStats;
use socket2::{Domain, Protocol, Type};
use statera_model::ListenerProtocol;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use uuid::Uuid;

/// Idle timeout of a session when the listener's `timeout_client_data` is 0.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// Largest datagram relayed (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Sessions per listener at most (whatever `connection_limit` says); a new
/// client over it is dropped (counted as a request error) until sessions
/// expire.
const MAX_SESSIONS: usize = 64 * 1024;

/// How often ended sessions are swept from the table.
const SWEEP: Duration = Duration::from_secs(1);

/// Binds the listener's UDP socket on `addr` (`IP_FREEBIND`, like TCP
/// listeners; no `SO_REUSEADDR`, which for UDP would let two sockets share
/// the address).
pub fn bind(netns: &Netns, addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(
        netns,
        Domain::for_address(addr),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A UDP socket handed over by the process this one replaces, checked to be
/// bound to `addr`.
pub fn adopt(fd: std::os::fd::OwnedFd, addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::from(fd);
    crate::sockets::check_inherited(&socket, Type::DGRAM, addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// A member-side socket: bound on the VIP (an ephemeral port), connected to
/// `member`.
fn member_socket(netns: &Netns, vip: SocketAddr, member: SocketAddr) -> io::Result<UdpSocket> {
    let local = SocketAddr::new(vip.ip(), 0);
    let socket = bind(netns, local)?;
    let std = socket.into_std()?;
    std.connect(member)?;
    UdpSocket::from_std(std)
}

/// The task of one bound UDP listener socket; dropping it closes the socket
/// and ends its sessions.
#[derive(Debug)]
pub struct UdpTask {
    task: JoinHandle<()>,
    /// The socket, shared with the task (see [`UdpTask::socket_fd`]).
    socket: Arc<UdpSocket>,
}

impl Drop for UdpTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpTask {
    pub fn spawn(socket: UdpSocket, addr: SocketAddr, shared: Arc<LbShared>) -> UdpTask {
        let socket = Arc::new(socket);
        UdpTask {
            task: tokio::spawn(serve(socket.clone(), addr, shared)),
            socket,
        }
    }

    /// A second descriptor of the socket, for a process taking over from
    /// this one.
    pub fn socket_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.socket.as_fd().try_clone_to_owned()
    }

    /// Stops serving and returns once the socket is closed.
    pub async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// One client's session, as the listener's task sees it.
struct Session {
    upstream: Arc<UdpSocket>,
    member: Uuid,
    shared: Arc<SessionState>,
}

/// What a session's task and the listener's task share.
struct SessionState {
    /// Milliseconds since `epoch` of the last datagram either way.
    last: AtomicU64,
    epoch: Instant,
    /// The session is over (idle or refused): the next datagram starts a
    /// new one.
    done: AtomicBool,
    /// The member refused (ICMP unreachable).
    refused: AtomicBool,
}

impl SessionState {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

async fn serve(socket: Arc<UdpSocket>, addr: SocketAddr, shared: Arc<LbShared>) {
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let (n, client) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // An ICMP error for an earlier reply to a client, or a
                // transient error: nothing to do for this datagram.
                Err(_) => continue,
            },
            _ = sweep.tick() => {
                sessions.retain(|_, s| !s.shared.done.load(Ordering::Relaxed));
                while tasks.try_join_next().is_some() {}
                continue;
            }
        };
        let snapshot = shared.load();
        let Some(view) = snapshot.udp_by_addr.get(&addr).cloned() else {
            continue;
        };
        let Some(listener) = snapshot.config.listeners.get(view.index) else {
            continue;
        };
        debug_assert_eq!(listener.protocol, ListenerProtocol::Udp);
        if !crate::relay::source_allowed(&listener.allowed_cidrs, client.ip()) {
            continue;
        }
        let data = &buf[..n];
        view.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        // The session in place, if it still runs.
        let mut avoid = None;
        if let Some(session) = sessions.get(&client) {
            if !session.shared.done.load(Ordering::Relaxed) {
                session.shared.touch();
                match session.upstream.send(data).await {
                    Ok(_) => {
                        if let Some(stats) = member_stats(&snapshot, listener, session.member) {
                            stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Err(error) => {
                        // An ICMP unreachable for an earlier datagram.
                        tracing::debug!(%client, %error, "UDP member send failed");
                        session.shared.refused.store(true, Ordering::Relaxed);
                        session.shared.done.store(true, Ordering::Relaxed);
                        observe_refused(&snapshot, listener, session.member);
                    }
                }
            }
            if session.shared.refused.load(Ordering::Relaxed) {
                avoid = Some(session.member);
            }
            sessions.remove(&client);
        }
        // `connection_limit` counts sessions: a new client over it is
        // dropped (UDP has no accept queue to wait in).
        if sessions.len() >= MAX_SESSIONS || view.is_full() {
            view.stats.request_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // A session holds a socket: it counts under the load balancer's and
        // the process's connection ceilings.
        let slot = match shared.admission().admit() {
            Ok(slot) => slot,
            Err(refusal) => {
                view.stats.refuse_connection();
                shared.admission().refused(addr, listener.id, refusal);
                continue;
            }
        };
        match open_session(
            &snapshot, &view, &socket, addr, client, data, avoid, &mut tasks, slot,
        )
        .await
        {
            Some(session) => {
                sessions.insert(client, session);
            }
            None => {
                view.stats.request_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn member_stats(
    snapshot: &Snapshot,
    listener: &statera_config::ListenerConfig,
    member: Uuid,
) -> Option<Arc<ListenerStats>> {
    let pool = snapshot.pools.get(&listener.default_pool_id?)?;
    let m = pool.members.iter().find(|m| m.id == member)?;
    Some(m.stats.clone())
}

fn observe_refused(snapshot: &Snapshot, listener: &statera_config::ListenerConfig, member: Uuid) {
    let Some(pool) = listener
        .default_pool_id
        .and_then(|id| snapshot.pools.get(&id))
    else {
        return;
    };
    if let Some(i) = pool.members.iter().position(|m| m.id == member) {
        pool.observe(
            i,
            crate::health::passive::Outcome::Failure,
            &snapshot.reporter,
        );
    }
}

/// Starts a session for `client` with its first datagram: picks a member
/// (not `avoid`, the member that just refused this client), opens the
/// member-side socket, sends, and spawns the task relaying replies.
#[expect(clippy::too_many_arguments, reason = "one call site, all distinct")]
async fn open_session(
    snapshot: &Arc<Snapshot>,
    view: &Arc<ListenerView>,
    socket: &Arc<UdpSocket>,
    vip: SocketAddr,
    client: SocketAddr,
    data: &[u8],
    avoid: Option<Uuid>,
    tasks: &mut JoinSet<()>,
    slot: Slot,
) -> Option<Session> {
    let listener = snapshot.config.listeners.get(view.index)?;
    let pool = snapshot.pools.get(&listener.default_pool_id?)?;
    let affinity = pool.affinity(client, None);
    let mut tried: Vec<usize> = avoid
        .and_then(|id| pool.members.iter().position(|m| m.id == id))
        .into_iter()
        .collect();
    let attempts = tried.len() + crate::http::MAX_CONNECT_ATTEMPTS;
    while tried.len() < attempts {
        let i = pool.select(client, &affinity, &tried)?;
        tried.push(i);
        let member = &pool.members[i];
        let upstream = match member_socket(&snapshot.netns, vip, member.addr) {
            Ok(upstream) => Arc::new(upstream),
            Err(error) => {
                tracing::warn!(%vip, member = %member.addr, %error, "UDP member socket failed");
                return None;
            }
        };
        let in_flight = member.start();
        if let Err(error) = upstream.send(data).await {
            tracing::debug!(%client, member = %member.addr, %error, "UDP member send failed");
            pool.observe(
                i,
                crate::health::passive::Outcome::Failure,
                &snapshot.reporter,
            );
            continue;
        }
        member
            .stats
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        pool.stick(&affinity, i);
        let state = Arc::new(SessionState {
            last: AtomicU64::new(0),
            epoch: Instant::now(),
            done: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        });
        let idle = match listener.timeouts.client_data_ms {
            0 => DEFAULT_IDLE,
            ms => Duration::from_millis(ms),
        };
        tasks.spawn(relay_replies(Replies {
            upstream: upstream.clone(),
            socket: Arc::downgrade(socket),
            client,
            state: state.clone(),
            idle,
            listener_stats: view.stats.clone(),
            member_stats: member.stats.clone(),
            _in_flight: in_flight,
            snapshot: snapshot.clone(),
            pool: pool.id,
            member: member.id,
            _slot: slot,
        }));
        return Some(Session {
            upstream,
            member: member.id,
            shared: state,
        });
    }
    None
}

/// What a session's task needs.
struct Replies {
    upstream: Arc<UdpSocket>,
    /// The listener's socket; weak, so closing the listener closes it at once.
    socket: Weak<UdpSocket>,
    client: SocketAddr,
    state: Arc<SessionState>,
    idle: Duration,
    listener_stats: Arc<ListenerStats>,
    member_stats: Arc<ListenerStats>,
    /// Counts the session in the member's load until the task ends.
    _in_flight: InFlight,
    snapshot: Arc<Snapshot>,
    pool: Uuid,
    member: Uuid,
    /// The session's place under the connection ceilings.
    _slot: Slot,
}

/// Relays the member's datagrams to the client until the session is idle
/// for `idle` or the member refuses.
async fn relay_replies(r: Replies) {
    // Also when the task is aborted (the listener closed).
    let _live = Live::new(r.listener_stats.clone(), r.state.clone());
    let mut answered = false;
    loop {
        let left = r.idle.saturating_sub(r.state.idle_for());
        if left.is_zero() {
            break;
        }
        let ready = tokio::select! {
            ready = r.upstream.readable() => ready,
            () = tokio::time::sleep(left) => continue,
        };
        let received = match ready {
            Ok(()) => receive_now(&r.upstream),
            Err(error) => Err(error),
        };
        match received {
            Ok(None) => continue,
            Ok(Some(datagram)) => {
                let n = datagram.len();
                r.state.touch();
                if !answered {
                    // A reply: the member serves (resets passive failures).
                    answered = true;
                    observe(&r, crate::health::passive::Outcome::Success);
                }
                r.member_stats
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                let Some(socket) = r.socket.upgrade() else {
                    break;
                };
                if socket.send_to(&datagram, r.client).await.is_ok() {
                    r.listener_stats
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::debug!(client = %r.client, member = %r.member, %error, "UDP member refused");
                r.state.refused.store(true, Ordering::Relaxed);
                observe(&r, crate::health::passive::Outcome::Failure);
                break;
            }
        }
    }
}

/// The datagram waiting on `socket`, if any. The full-size buffer lives on
/// the stack of this call only, so an idle session holds no buffer.
fn receive_now(socket: &UdpSocket) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; MAX_DATAGRAM];
    match socket.try_recv(&mut buf) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(error) => Err(error),
    }
}

/// A session counted as a connection of its listener (total and active)
/// while it lives; marks it done when it ends.
struct Live(Arc<ListenerStats>, Arc<SessionState>);

impl Live {
    fn new(stats: Arc<ListenerStats>, state: Arc<SessionState>) -> Live {
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        stats.active_connections.fetch_add(1, Ordering::Relaxed);
        Live(stats, state)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.1.done.store(true, Ordering::Relaxed);
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn observe(r: &Replies, outcome: crate::health::passive::Outcome) {
    if let Some(pool) = r.snapshot.pools.get(&r.pool)
        && let Some(i) = pool.members.iter().position(|m| m.id == r.member)
    {
        pool.observe(i, outcome, &r.snapshot.reporter);
    }
}
