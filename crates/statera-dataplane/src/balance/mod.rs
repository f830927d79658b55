//! Member selection.
//!
//! Selection is split in two, the way Pingora splits it:
//!
//! - the caller ([`crate::pool::PoolRuntime::select`]) decides which members
//!   are *candidates* right now: enabled, weight above 0, not known to be
//!   down, not already tried for this connection, and backup members only when
//!   no primary member is left;
//! - a [`Balancer`] picks one of those candidates. Balancers know nothing
//!   about health or admin state, so each algorithm stays small and can be
//!   tested with plain tables.
//!
//! One file per algorithm. Only smooth weighted round robin exists so far:
//! every Octavia algorithm (`ROUND_ROBIN`, `LEAST_CONNECTIONS`, `SOURCE_IP`,
//! `SOURCE_IP_PORT`) is served by it for now; see [`for_algorithm`].

pub mod round_robin;

use statera_model::LbAlgorithm;
use std::net::SocketAddr;

/// What a balancer may look at besides the candidates.
#[derive(Debug, Clone, Copy)]
pub struct PickContext {
    /// The client's address (for `SOURCE_IP` / `SOURCE_IP_PORT`, later).
    #[expect(
        dead_code,
        reason = "read by the SOURCE_IP balancers, which come later"
    )]
    pub client: SocketAddr,
}

/// Picks one member among candidates.
///
/// `candidates` are indices into the pool's member list (the order of
/// `PoolConfig::members`), never empty, without duplicates. A balancer
/// returns one of them; it may keep state between calls (its own rotation),
/// but it must accept a different candidate set on every call, since members
/// come and go with health and retries.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    fn pick(&self, candidates: &[usize], ctx: &PickContext) -> Option<usize>;
}

/// The balancer for a pool's algorithm, over members with these weights
/// (index-aligned with the pool's members).
///
/// Every algorithm falls back to smooth weighted round robin in this version:
/// `LEAST_CONNECTIONS`, `SOURCE_IP` and `SOURCE_IP_PORT` get their own file
/// here later, behind the same trait.
pub fn for_algorithm(algorithm: LbAlgorithm, weights: &[u16]) -> Box<dyn Balancer> {
    match algorithm {
        LbAlgorithm::RoundRobin
        | LbAlgorithm::LeastConnections
        | LbAlgorithm::SourceIp
        | LbAlgorithm::SourceIpPort => {
            Box::new(round_robin::SmoothWeightedRoundRobin::new(weights))
        }
    }
}
