//! A pool as the relay sees it: its protocol, its members' addresses, admin
//! state, weights, health, load and idle HTTP connections, the balancer that
//! picks among them, and its session persistence.

use crate::balance::{self, BalancedMember, Balancer, PickContext};
use crate::health::{HealthCell, ProbeSpec};
use crate::persistence::{Affinity, Persistence};
use crate::upstream::IdleConns;
use statera_config::PoolConfig;
use statera_model::PoolProtocol;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// `None` without session persistence.
    pub persistence: Option<Arc<Persistence>>,
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
    /// Connections (L4) or requests (HTTP) in flight to the member, shared by
    /// every config that has the member (by id), for `LEAST_CONNECTIONS`.
    pub in_flight: Arc<AtomicU64>,
}

/// One connection or request counted in a member's `in_flight` until it is
/// dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MemberRuntime {
    /// Counts one more connection or request in flight to the member, until
    /// the returned guard is dropped.
    pub fn start(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

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
                let prev_member = prev.and_then(|p| p.members.iter().find(|pm| pm.id == m.id));
                let in_flight = prev_member
                    .map(|pm| pm.in_flight.clone())
                    .unwrap_or_default();
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
                    in_flight,
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
                let members: Vec<BalancedMember> = config
                    .members
                    .iter()
                    .map(|m| BalancedMember {
                        id: m.id,
                        weight: m.weight,
                    })
                    .collect();
                Arc::from(balance::for_algorithm(config.lb_algorithm, &members))
            }
        };
        let member_ids: HashSet<Uuid> = config.members.iter().map(|m| m.id).collect();
        let persistence = Persistence::build(
            config.session_persistence.as_ref(),
            prev.and_then(|p| p.persistence.as_ref()),
            &member_ids,
        );
        PoolRuntime {
            id: config.id,
            protocol: config.protocol,
            admin_state_up: config.admin_state_up,
            members,
            balancer,
            balancer_key,
            persistence,
        }
    }

    /// What a request or connection from `client` carries for the pool's
    /// persistence (`headers`: the request's, on HTTP listeners).
    pub fn affinity(&self, client: SocketAddr, headers: Option<&hyper::HeaderMap>) -> Affinity {
        match &self.persistence {
            Some(p) => p.affinity(client.ip(), headers, tokio::time::Instant::now()),
            None => Affinity::default(),
        }
    }

    /// Remembers that the client of `affinity` is served by member `i`.
    pub fn stick(&self, affinity: &Affinity, i: usize) {
        if let (Some(p), Some(member)) = (&self.persistence, self.members.get(i)) {
            p.stick(affinity, member.id, tokio::time::Instant::now());
        }
    }

    /// Picks a member for a new connection or request from `client`,
    /// skipping the members in `tried`.
    ///
    /// Candidates are the members that take new connections; backup members
    /// only when no primary member is left (including primaries already tried
    /// for this connection: a primary that refused us a moment ago is as good
    /// as down). The member persistence remembers wins if it is a candidate;
    /// otherwise the balancer picks.
    pub fn select(
        &self,
        client: SocketAddr,
        affinity: &Affinity,
        tried: &[usize],
    ) -> Option<usize> {
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
        if let Some(id) = affinity.remembered
            && let Some(&i) = candidates.iter().find(|i| self.members[**i].id == id)
        {
            return Some(i);
        }
        let in_flight = |i: usize| {
            self.members
                .get(i)
                .map_or(0, |m| m.in_flight.load(Ordering::Relaxed))
        };
        let ctx = PickContext {
            client,
            in_flight: &in_flight,
        };
        self.balancer.pick(&candidates, &ctx)
    }
}
