//! A pool as the relay sees it: its protocol, its members' addresses, admin
//! state, weights, health and idle HTTP connections, and the balancer that
//! picks among them.

use crate::balance::{self, Balancer, PickContext};
use crate::health::{HealthCell, ProbeSpec};
use crate::upstream::IdleConns;
use statera_config::PoolConfig;
use statera_model::PoolProtocol;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
pub struct PoolRuntime {
    pub id: Uuid,
    /// PROXY and PROXYV2 pools get a PROXY header on each member connection.
    pub protocol: PoolProtocol,
    pub admin_state_up: bool,
    /// Index-aligned with the pool's `members` in the config.
    pub members: Vec<MemberRuntime>,
    balancer: Arc<dyn Balancer>,
    /// What `balancer` was built from: the balancer (and its rotation) is
    /// carried over to the next config when this is unchanged.
    balancer_key: BalancerKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BalancerKey {
    algorithm: statera_model::LbAlgorithm,
    members: Vec<(Uuid, u16)>,
}

#[derive(Debug)]
pub struct MemberRuntime {
    pub id: Uuid,
    pub addr: SocketAddr,
    pub weight: u16,
    pub backup: bool,
    pub admin_state_up: bool,
    /// `Some` when the member is probed: its health cell and probe.
    pub health: Option<(Arc<HealthCell>, ProbeSpec)>,
    /// Idle HTTP keep-alive connections to the member, shared by every client
    /// (unused for PROXY pools); carried over while the address is unchanged.
    pub idle: Arc<IdleConns>,
}

impl MemberRuntime {
    /// Whether the member may take a new connection.
    pub fn takes_new_connections(&self) -> bool {
        self.admin_state_up
            && self.weight > 0
            && self.health.as_ref().is_none_or(|(cell, _)| cell.is_up())
    }
}

impl PoolRuntime {
    /// The runtime for `config`, carrying over from `prev` (the same pool in
    /// the config served before) the balancer and the health of members whose
    /// probe target did not change.
    pub fn build(config: &PoolConfig, prev: Option<&PoolRuntime>) -> PoolRuntime {
        let monitor = config.health_monitor.as_ref();
        let members: Vec<MemberRuntime> = config
            .members
            .iter()
            .map(|m| {
                let spec = monitor
                    .filter(|_| m.admin_state_up)
                    .and_then(|hm| ProbeSpec::for_member(hm, m));
                let health = spec.map(|spec| {
                    let cell = prev
                        .and_then(|p| p.members.iter().find(|pm| pm.id == m.id))
                        .and_then(|pm| pm.health.as_ref())
                        .filter(|(_, prev_spec)| prev_spec.target == spec.target)
                        .map(|(cell, _)| cell.clone())
                        .unwrap_or_else(|| Arc::new(HealthCell::new_up()));
                    (cell, spec)
                });
                let addr = SocketAddr::new(m.address, m.protocol_port);
                // Connections opened for another protocol (a pool switched to
                // or from PROXY) are not reused.
                let idle = prev
                    .filter(|p| p.protocol == config.protocol)
                    .and_then(|p| p.members.iter().find(|pm| pm.id == m.id))
                    .filter(|pm| pm.addr == addr)
                    .map(|pm| pm.idle.clone())
                    .unwrap_or_default();
                MemberRuntime {
                    id: m.id,
                    addr,
                    weight: m.weight,
                    backup: m.backup,
                    admin_state_up: m.admin_state_up,
                    health,
                    idle,
                }
            })
            .collect();
        let balancer_key = BalancerKey {
            algorithm: config.lb_algorithm,
            members: config.members.iter().map(|m| (m.id, m.weight)).collect(),
        };
        let balancer = match prev {
            Some(p) if p.balancer_key == balancer_key => p.balancer.clone(),
            _ => {
                let weights: Vec<u16> = config.members.iter().map(|m| m.weight).collect();
                Arc::from(balance::for_algorithm(config.lb_algorithm, &weights))
            }
        };
        PoolRuntime {
            id: config.id,
            protocol: config.protocol,
            admin_state_up: config.admin_state_up,
            members,
            balancer,
            balancer_key,
        }
    }

    /// Picks a member for a new connection, skipping the members in `tried`.
    ///
    /// Candidates are the members that take new connections; backup members
    /// only when no primary member is left (including primaries already tried
    /// for this connection: a primary that refused us a moment ago is as good
    /// as down).
    pub fn select(&self, ctx: &PickContext, tried: &[usize]) -> Option<usize> {
        if !self.admin_state_up {
            return None;
        }
        let usable = |backup: bool| -> Vec<usize> {
            self.members
                .iter()
                .enumerate()
                .filter(|(i, m)| {
                    m.backup == backup && m.takes_new_connections() && !tried.contains(i)
                })
                .map(|(i, _)| i)
                .collect()
        };
        let mut candidates = usable(false);
        if candidates.is_empty() {
            candidates = usable(true);
        }
        if candidates.is_empty() {
            return None;
        }
        self.balancer.pick(&candidates, ctx)
    }
}
