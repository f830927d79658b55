//! Member selection.
//!
//! Selection is split in two, the way Pingora splits it:
//!
//! - the caller ([`crate::pool::PoolRuntime::select`]) decides which members
//!   are *candidates* right now: enabled, weight above 0, not known to be
//!   down, not already tried for this connection, and backup members only when
//!   no primary member is left;
//! - a [`Balancer`] picks one of those candidates. Balancers know nothing
//!   about health, admin state or persistence, so each algorithm stays small
//!   and is tested with plain tables.
//!
//! A retry after a failed connect asks the same balancer again with the
//! failed member left out, so every algorithm yields its next choice: the
//! next member in the rotation, the next least loaded, the next highest
//! hash score.
//!
//! One file per algorithm, chosen by [`for_algorithm`]:
//!
//! | Octavia algorithm | file |
//! |---|---|
//! | `ROUND_ROBIN` | `round_robin.rs` (smooth weighted) |
//! | `LEAST_CONNECTIONS` | `least_connections.rs` (weighted, ties in rotation) |
//! | `SOURCE_IP`, `SOURCE_IP_PORT` | `source_hash.rs` (weighted rendezvous hashing of the client address, with or without its port) |

pub mod least_connections;
pub mod round_robin;
pub mod source_hash;

use statera_model::LbAlgorithm;
use std::net::SocketAddr;
use uuid::Uuid;

/// What a balancer may look at besides the candidates.
pub struct PickContext<'a> {
    /// The client's address (`SOURCE_IP` hashes its IP, `SOURCE_IP_PORT` its
    /// IP and port).
    pub client: SocketAddr,
    /// Connections (L4) or requests (HTTP) in flight to a member, by member
    /// index (`LEAST_CONNECTIONS`).
    pub in_flight: &'a dyn Fn(usize) -> u64,
}

impl std::fmt::Debug for PickContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickContext")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A member as balancers see it when they are built: what does not change
/// until the next config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancedMember {
    /// Stable across configs: hashing keys on it, never on the position, so
    /// removing one member does not move the clients of the others.
    pub id: Uuid,
    /// 0–256 (candidates always have a weight above 0).
    pub weight: u16,
}

/// Picks one member among candidates.
///
/// `candidates` are indices into the pool's member list (the order of
/// `PoolConfig::members`, which is also the order of the members the balancer
/// was built with), never empty, without duplicates. A balancer returns one
/// of them; it may keep state between calls (its own rotation), but it must
/// accept a different candidate set on every call, since members come and go
/// with health and retries. An index it was not built for is ignored.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    fn pick(&self, candidates: &[usize], ctx: &PickContext<'_>) -> Option<usize>;
}

/// The balancer for a pool's algorithm over `members` (index-aligned with the
/// pool's members).
pub fn for_algorithm(algorithm: LbAlgorithm, members: &[BalancedMember]) -> Box<dyn Balancer> {
    let weights: Vec<u16> = members.iter().map(|m| m.weight).collect();
    match algorithm {
        LbAlgorithm::RoundRobin => Box::new(round_robin::SmoothWeightedRoundRobin::new(&weights)),
        LbAlgorithm::LeastConnections => {
            Box::new(least_connections::LeastConnections::new(&weights))
        }
        LbAlgorithm::SourceIp => {
            Box::new(source_hash::SourceHash::new(source_hash::Key::Ip, members))
        }
        LbAlgorithm::SourceIpPort => Box::new(source_hash::SourceHash::new(
            source_hash::Key::IpAndPort,
            members,
        )),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::PickContext;
    use std::net::SocketAddr;

    /// A context with no load anywhere.
    pub fn idle_ctx(client: SocketAddr) -> PickContext<'static> {
        PickContext {
            client,
            in_flight: &|_| 0,
        }
    }
}
