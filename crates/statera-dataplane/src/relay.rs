//! One client connection: admission (drain state, `allowed_cidrs`,
//! counters), then either the HTTP proxy (`http/`, for HTTP listeners) or
//! the layer 4 relay here (TCP and HTTPS passthrough listeners): member
//! selection with bounded retries, and bytes copied as they come. The member
//! sees the connection come from this host (the full-proxy source NAT of
//! one-arm mode); members of PROXY / PROXYV2 pools first get a PROXY header
//! naming the client and the VIP.

use crate::health::passive::Outcome;
use crate::listener::{Admitted, LifeState, ListenerView};
use crate::pool::InFlight;
use crate::snapshot::Snapshot;
use crate::stats::ListenerStats;
use crate::upstream;
use ipnet::IpNet;
use statera_config::{ListenerConfig, Timeouts};
use statera_model::ListenerProtocol;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// Distinct members tried for one connection before giving up on it. Enough
/// to step over a dead member or two that health checks have not caught yet,
/// bounded so one client cannot walk a large pool.
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// Why a connection found no member.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the listener has no default pool")]
    NoPool,
    #[error("pool {0} has no member that takes new connections")]
    NoUsableMember(Uuid),
    #[error("{attempts} member(s) of pool {pool} failed, last {last}: {error}")]
    AttemptsFailed {
        pool: Uuid,
        attempts: usize,
        last: SocketAddr,
        error: io::Error,
    },
}

/// Serves one accepted connection to its end. `admitted` holds the
/// listener's connection slot, if it has a limit, and the connection's place
/// under the load balancer's ceiling; both are released when this returns.
pub async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    snapshot: Arc<Snapshot>,
    view: Arc<ListenerView>,
    shared: Arc<crate::snapshot::LbShared>,
    admitted: Admitted,
) {
    let mut life = view.life.subscribe();
    if *life.borrow() != LifeState::Serving {
        return;
    }
    let Some(listener) = snapshot.config.listeners.get(view.index) else {
        return;
    };
    if !source_allowed(&listener.allowed_cidrs, peer.ip()) {
        tracing::debug!(listener = %listener.id, %peer, "source not in allowed_cidrs");
        return;
    }
    let stats = &view.stats;
    let _active = stats.open_connection();
    let _ = client.set_nodelay(true);
    if listener.protocol == ListenerProtocol::Prometheus {
        Box::pin(crate::metrics::serve(
            client,
            view.clone(),
            shared,
            &mut life,
            millis(listener.timeouts.client_data_ms),
        ))
        .await;
        return;
    }
    if matches!(
        listener.protocol,
        ListenerProtocol::Http | ListenerProtocol::TerminatedHttps
    ) {
        crate::http::serve(
            client,
            peer,
            snapshot.clone(),
            view.clone(),
            shared,
            &mut life,
            &admitted._slot,
        )
        .await;
        return;
    }
    // Boxed, as the HTTP path boxes its connection state: the task of every
    // connection is as large as its largest state, so this one stays small
    // while an HTTP client sends nothing (see `http::first_byte`).
    Box::pin(serve_tcp(
        client, peer, &snapshot, listener, stats, &mut life,
    ))
    .await;
}

/// Serves one TCP (or HTTPS passthrough) connection: a member connection,
/// then bytes both ways until either side is done.
async fn serve_tcp(
    client: TcpStream,
    peer: SocketAddr,
    snapshot: &Snapshot,
    listener: &ListenerConfig,
    stats: &ListenerStats,
    life: &mut watch::Receiver<LifeState>,
) {
    let vip = match client.local_addr() {
        Ok(vip) => vip,
        Err(_) => return,
    };
    // `_in_flight` is dropped before `_active`: a closed connection no longer
    // counts for its member by the time the listener reports it closed.
    let (member, member_stats, _in_flight) =
        match connect_member(snapshot, listener, peer, vip).await {
            Ok(member) => member,
            Err(error) => {
                tracing::debug!(listener = %listener.id, %peer, %error, "no member for connection");
                stats.request_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
    let end = relay(
        client,
        member,
        &listener.timeouts,
        stats,
        &member_stats,
        life,
    )
    .await;
    tracing::debug!(listener = %listener.id, %peer, ?end, "connection closed");
}

pub(crate) fn source_allowed(allowed: &[IpNet], source: IpAddr) -> bool {
    let source = source.to_canonical();
    allowed.is_empty() || allowed.iter().any(|net| net.contains(&source))
}

/// Connects to a member of the listener's default pool, trying up to
/// [`MAX_CONNECT_ATTEMPTS`] distinct members, and sends the PROXY header
/// first if the pool wants one (`peer` is the client, `vip` the address it
/// connected to). The connection counts in the member's `in_flight` while the
/// returned guard lives; source IP persistence remembers the member.
async fn connect_member(
    snapshot: &Snapshot,
    listener: &ListenerConfig,
    peer: SocketAddr,
    vip: SocketAddr,
) -> Result<(TcpStream, Arc<ListenerStats>, InFlight), ConnectError> {
    let pool = listener
        .default_pool_id
        .and_then(|id| snapshot.pools.get(&id))
        .ok_or(ConnectError::NoPool)?;
    if pool.tls.is_some() {
        // Never reached: a TLS pool behind an L4 listener leaves it out.
        return Err(ConnectError::NoUsableMember(pool.id));
    }
    let affinity = pool.affinity(peer, None);
    let connect_timeout = millis(listener.timeouts.member_connect_ms);
    let proxy_header = upstream::proxy_header(pool.protocol, peer, vip);
    let mut tried = Vec::with_capacity(MAX_CONNECT_ATTEMPTS);
    let mut last_failure = None;
    while tried.len() < MAX_CONNECT_ATTEMPTS {
        let Some(i) = pool.select(peer, &affinity, &tried) else {
            break;
        };
        tried.push(i);
        let member = &pool.members[i];
        let addr = member.addr;
        // Counted from the attempt on, so that concurrent picks see it.
        let in_flight = member.start();
        match upstream::connect(
            &snapshot.netns,
            statera_config::member_source(vip.ip(), addr.ip()),
            addr,
            connect_timeout,
            proxy_header.as_deref(),
        )
        .await
        {
            Ok(stream) => {
                pool.observe(i, Outcome::Success, &snapshot.reporter);
                pool.stick(&affinity, i);
                return Ok((stream, member.stats.clone(), in_flight));
            }
            Err(error) => {
                tracing::debug!(member = %pool.members[i].id, %addr, %error, "member connect failed");
                pool.observe(i, Outcome::Failure, &snapshot.reporter);
                last_failure = Some((addr, error));
            }
        }
    }
    Err(match last_failure {
        None => ConnectError::NoUsableMember(pool.id),
        Some((last, error)) => ConnectError::AttemptsFailed {
            pool: pool.id,
            attempts: tried.len(),
            last,
            error,
        },
    })
}

/// A timeout in milliseconds as the API states it; 0 means none.
pub fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// How a relayed connection ended (for the debug log).
#[derive(Debug)]
#[expect(dead_code, reason = "the fields are read through Debug, in the log")]
enum RelayEnd {
    Done { from_client: u64, from_member: u64 },
    Error(io::Error),
    IdleTimeout,
    DrainDeadline,
}

async fn relay(
    client: TcpStream,
    member: TcpStream,
    timeouts: &Timeouts,
    stats: &ListenerStats,
    member_stats: &ListenerStats,
    life: &mut watch::Receiver<LifeState>,
) -> RelayEnd {
    let activity = Activity::new();
    let from_client = crate::splice::Meter {
        bytes: [&stats.bytes_in, &member_stats.bytes_in],
        last_read: &activity.client,
        epoch: activity.epoch,
    };
    let from_member = crate::splice::Meter {
        bytes: [&stats.bytes_out, &member_stats.bytes_out],
        last_read: &activity.member,
        epoch: activity.epoch,
    };
    let idle = activity.idle(
        millis(timeouts.client_data_ms),
        millis(timeouts.member_data_ms),
    );
    let cut = async {
        if life.wait_for(|s| *s == LifeState::Cut).await.is_err() {
            // The listener's life cannot end any more: never cut.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        copied = crate::splice::relay(&client, &member, from_client, from_member) => match copied {
            Ok((from_client, from_member)) => RelayEnd::Done { from_client, from_member },
            Err(error) => RelayEnd::Error(error),
        },
        () = idle => RelayEnd::IdleTimeout,
        () = cut => RelayEnd::DrainDeadline,
    }
}

/// When each side last sent something, in milliseconds since `epoch`.
struct Activity {
    epoch: Instant,
    client: AtomicU64,
    member: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            client: AtomicU64::new(0),
            member: AtomicU64::new(0),
        }
    }

    /// Resolves when the connection is idle: the client has sent nothing for
    /// `client_timeout` and the member nothing for `member_timeout`. Waiting
    /// on one side alone is not idleness: a client quietly downloading, or a
    /// member quietly receiving an upload, keeps the connection. A missing
    /// timeout (0 in the config) means never idle.
    async fn idle(&self, client_timeout: Option<Duration>, member_timeout: Option<Duration>) {
        let (Some(client_timeout), Some(member_timeout)) = (client_timeout, member_timeout) else {
            return std::future::pending().await;
        };
        loop {
            let at = |last: &AtomicU64, timeout: Duration| {
                self.epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + timeout
            };
            let deadline = at(&self.client, client_timeout).max(at(&self.member, member_timeout));
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cidrs_filter_sources() {
        let nets: Vec<IpNet> = vec!["127.10.0.0/16".parse().unwrap(), "::1/128".parse().unwrap()];
        let table = [
            ("127.10.3.4", true),
            ("127.11.0.1", false),
            ("::1", true),
            // An IPv4 client on a dual-stack socket shows as v4-mapped v6.
            ("::ffff:127.10.0.9", true),
            ("::ffff:10.0.0.1", false),
        ];
        for (source, expected) in table {
            assert_eq!(
                source_allowed(&nets, source.parse().unwrap()),
                expected,
                "{source}"
            );
        }
        assert!(source_allowed(&[], "10.1.2.3".parse().unwrap()));
    }
}
