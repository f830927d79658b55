//! A pool as the relay sees it: its protocol, its members' addresses, admin
//! state, weights, health, load and idle HTTP connections, the balancer that
//! picks among them, and its session persistence.
//!
//! Health enters selection twice: a member whose probe target is down takes
//! nothing new; a member that passive health ejected takes nothing new
//! either, unless every member that could is ejected (then ejection is
//! ignored: better to try than to refuse). A member back from either (its
//! target came back up, its ejection ended) is ramped in over
//! [`HealthOptions::slow_start`], like HAProxy's `slowstart`: while ramping,
//! a pick of it by a ROUND_ROBIN or LEAST_CONNECTIONS balancer stands only
//! for the ramp's fraction of picks (5 % at first, growing linearly to all),
//! otherwise the balancer picks again without it. Hash-based algorithms
//! (SOURCE_IP, SOURCE_IP_PORT) are not ramped, as in HAProxy, so clients keep
//! their member.

use crate::balance::{self, BalancedMember, Balancer, PickContext};
use crate::health::passive::{Outcome, Passive};
use crate::health::{HealthOptions, Target};
use crate::member_tls::MemberTls;
use crate::persistence::{Affinity, Persistence};
use crate::snapshot::Reporter;
use crate::stats::ListenerStats;
use crate::upstream::IdleConns;
use statera_config::PoolConfig;
use statera_model::{LbAlgorithm, PoolProtocol};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The smallest share of its picks a ramping member keeps.
const RAMP_FLOOR: f64 = 0.05;

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
    /// Whether members coming back are ramped in (dynamic algorithms).
    ramps: bool,
    health: HealthOptions,
    /// A pool over TLS: how its members are connected to.
    pub tls: Option<Arc<MemberTls>>,
    /// Over TLS, but its TLS did not build: no member is used (its
    /// listeners are left out; this guards any other way to it).
    tls_unservable: bool,
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
    /// `Some` when the member is probed: its probe target (shared with every
    /// member probed the same way).
    pub health: Option<Arc<Target>>,
    /// Passive health, carried over by member id.
    pub passive: Arc<Passive>,
    /// Picks of the member while it ramps in (spreads its admissions).
    ramp_picks: AtomicU64,
    /// Idle HTTP keep-alive connections to the member, shared by every client
    /// (unused for PROXY pools); carried over while the address is unchanged.
    pub idle: Arc<IdleConns>,
    /// Connections (L4) or requests (HTTP) in flight to the member, shared by
    /// every config that has the member (by id), for `LEAST_CONNECTIONS`.
    pub in_flight: Arc<AtomicU64>,
    /// The member's counters (`active_connections` unused: `in_flight` is
    /// that), carried over by member id: `bytes_in` toward the member,
    /// `bytes_out` from it, `total_connections` connections (L4) or requests
    /// (HTTP) sent to it, `request_errors` failed uses (passive health's
    /// failures).
    pub stats: Arc<ListenerStats>,
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
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    /// Whether the member may take a new connection, passive health aside.
    pub fn takes_new_connections(&self) -> bool {
        self.admin_state_up && self.weight > 0 && self.health.as_ref().is_none_or(|t| t.is_up())
    }

    /// The share of its picks the member takes now: below 1 while it ramps
    /// in after coming back.
    fn ramp(&self, slow_start: Duration, now: Instant) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        let back = self
            .health
            .as_ref()
            .and_then(|t| t.came_up())
            .max(self.passive.returned(now));
        let Some(back) = back else {
            return 1.0;
        };
        let elapsed = now.saturating_duration_since(back);
        if elapsed >= slow_start {
            return 1.0;
        }
        (elapsed.as_secs_f64() / slow_start.as_secs_f64()).max(RAMP_FLOOR)
    }

    /// Whether this pick of a ramping member stands: the n-th pick stands
    /// when the fractional part of n·φ is below `share`, which admits that
    /// share of picks, evenly spread, without a random source.
    fn admits(&self, share: f64) -> bool {
        if share >= 1.0 {
            return true;
        }
        let n = self.ramp_picks.fetch_add(1, Ordering::Relaxed);
        const GOLDEN: f64 = 0.618_033_988_749_895;
        (n as f64 * GOLDEN).fract() < share
    }
}

impl PoolRuntime {
    /// The runtime for `config`, carrying over from `prev` (the same pool in
    /// the config served before) the balancer and each member's load, idle
    /// connections and passive health; `targets` are the probe targets of
    /// probed members, by member id; `tls` its TLS toward members when it is
    /// over TLS.
    pub fn build(
        config: &PoolConfig,
        prev: Option<&PoolRuntime>,
        targets: &HashMap<Uuid, Arc<Target>>,
        health: HealthOptions,
        tls: Option<Arc<MemberTls>>,
    ) -> PoolRuntime {
        let members: Vec<MemberRuntime> = config
            .members
            .iter()
            .map(|m| {
                let prev_member = prev.and_then(|p| p.members.iter().find(|pm| pm.id == m.id));
                let in_flight = prev_member
                    .map(|pm| pm.in_flight.clone())
                    .unwrap_or_default();
                let stats = prev_member.map(|pm| pm.stats.clone()).unwrap_or_default();
                let addr = SocketAddr::new(m.address, m.protocol_port);
                // Connections opened for another protocol (a pool switched to
                // or from PROXY) or other TLS settings are not reused.
                let same_tls = |p: &&PoolRuntime| match (&p.tls, &tls) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
                let idle = prev
                    .filter(|p| p.protocol == config.protocol)
                    .filter(same_tls)
                    .and(prev_member)
                    .filter(|pm| pm.addr == addr)
                    .map(|pm| pm.idle.clone())
                    .unwrap_or_default();
                // What real traffic said of a member at another address says
                // nothing of this one.
                let passive = prev_member
                    .filter(|pm| pm.addr == addr)
                    .map(|pm| pm.passive.clone())
                    .unwrap_or_default();
                MemberRuntime {
                    id: m.id,
                    addr,
                    weight: m.weight,
                    backup: m.backup,
                    admin_state_up: m.admin_state_up,
                    health: targets.get(&m.id).cloned(),
                    passive,
                    ramp_picks: AtomicU64::new(0),
                    idle,
                    in_flight,
                    stats,
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
            ramps: matches!(
                config.lb_algorithm,
                LbAlgorithm::RoundRobin | LbAlgorithm::LeastConnections
            ),
            health,
            tls_unservable: config.tls.is_some() && tls.is_none(),
            tls,
        }
    }

    /// Counts what one use of member `i` came to in passive health, and
    /// ejects it when it has failed too often in a row, unless no other
    /// member could take its traffic. An ejection is reported at once, and
    /// again when it ends. Must run inside a tokio runtime.
    pub fn observe(&self, i: usize, outcome: Outcome, reporter: &Arc<Reporter>) {
        let Some(member) = self.members.get(i) else {
            return;
        };
        if outcome == Outcome::Failure {
            member.stats.request_errors.fetch_add(1, Ordering::Relaxed);
        }
        let options = &self.health.passive;
        let now = Instant::now();
        if !member.passive.record(outcome, options, now) {
            return;
        }
        let others = self.members.iter().enumerate().any(|(j, other)| {
            j != i && other.takes_new_connections() && !other.passive.is_ejected(now)
        });
        if !others {
            return;
        }
        let Some(length) = member.passive.eject(options, now) else {
            return;
        };
        tracing::warn!(
            pool = %self.id,
            member = %member.id,
            addr = %member.addr,
            ejected_for = ?length,
            "passive health: member failed {} times in a row; ejected",
            options.consecutive_failures
        );
        reporter.send();
        let reporter = reporter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            reporter.send();
        });
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
    /// Candidates are the members that take new connections and are not
    /// ejected; backup members only when no primary member is left
    /// (including primaries already tried for this connection: a primary that
    /// refused us a moment ago is as good as down); ejected members only when
    /// nothing else is left. The member persistence remembers wins if it is a
    /// candidate; otherwise the balancer picks, and a member ramping in after
    /// coming back may be passed over for its ramp's share of picks.
    pub fn select(
        &self,
        client: SocketAddr,
        affinity: &Affinity,
        tried: &[usize],
    ) -> Option<usize> {
        if !self.admin_state_up || self.tls_unservable {
            return None;
        }
        let now = Instant::now();
        let usable = |backup: bool, ejected_too: bool| {
            Candidates::collect(
                self.members
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| {
                        m.backup == backup
                            && m.takes_new_connections()
                            && !tried.contains(i)
                            && (ejected_too || !m.passive.is_ejected(now))
                    })
                    .map(|(i, _)| i),
            )
        };
        let mut candidates = usable(false, false);
        for (backup, ejected_too) in [(true, false), (false, true), (true, true)] {
            if !candidates.as_slice().is_empty() {
                break;
            }
            candidates = usable(backup, ejected_too);
        }
        if candidates.as_slice().is_empty() {
            return None;
        }
        if let Some(id) = affinity.remembered
            && let Some(&i) = candidates
                .as_slice()
                .iter()
                .find(|i| self.members[**i].id == id)
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
        loop {
            let i = self.balancer.pick(candidates.as_slice(), &ctx)?;
            if !self.ramps || candidates.as_slice().len() == 1 {
                return Some(i);
            }
            let member = &self.members[i];
            if member.admits(member.ramp(self.health.slow_start, now)) {
                return Some(i);
            }
            candidates.remove(i);
        }
    }
}

/// Candidates a pool of up to this many members keeps inline.
const INLINE_CANDIDATES: usize = 16;

/// Member indices, in the pool's order: inline for pools of up to
/// [`INLINE_CANDIDATES`] members, so picking a member for a request
/// allocates nothing; on the heap beyond.
enum Candidates {
    Inline {
        indices: [usize; INLINE_CANDIDATES],
        len: usize,
    },
    Heap(Vec<usize>),
}

impl Candidates {
    fn collect(mut iter: impl Iterator<Item = usize>) -> Self {
        let mut indices = [0; INLINE_CANDIDATES];
        let mut len = 0;
        while let Some(i) = iter.next() {
            if len == INLINE_CANDIDATES {
                let mut all = indices.to_vec();
                all.push(i);
                all.extend(iter);
                return Candidates::Heap(all);
            }
            indices[len] = i;
            len += 1;
        }
        Candidates::Inline { indices, len }
    }

    fn as_slice(&self) -> &[usize] {
        match self {
            Candidates::Inline { indices, len } => &indices[..*len],
            Candidates::Heap(all) => all,
        }
    }

    /// Removes `i`, keeping the order of the others.
    fn remove(&mut self, i: usize) {
        match self {
            Candidates::Inline { indices, len } => {
                if let Some(at) = indices[..*len].iter().position(|c| *c == i) {
                    indices.copy_within(at + 1..*len, at);
                    *len -= 1;
                }
            }
            Candidates::Heap(all) => all.retain(|c| *c != i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> MemberRuntime {
        MemberRuntime {
            id: Uuid::nil(),
            addr: "127.0.0.1:80".parse().unwrap(),
            weight: 1,
            backup: false,
            admin_state_up: true,
            health: None,
            passive: Arc::default(),
            ramp_picks: AtomicU64::new(0),
            idle: Arc::default(),
            in_flight: Arc::default(),
            stats: Arc::default(),
        }
    }

    #[test]
    fn candidates_keep_their_order_inline_and_beyond() {
        for n in [0, 1, 3, INLINE_CANDIDATES, INLINE_CANDIDATES + 1, 40] {
            let all: Vec<usize> = (0..n).map(|i| i * 2).collect();
            let mut candidates = Candidates::collect(all.iter().copied());
            assert_eq!(candidates.as_slice(), &all[..]);
            assert_eq!(
                matches!(candidates, Candidates::Inline { .. }),
                n <= INLINE_CANDIDATES
            );
            let mut expected = all.clone();
            for gone in [2, 0, 7, 1000, 30] {
                candidates.remove(gone);
                expected.retain(|c| *c != gone);
                assert_eq!(candidates.as_slice(), &expected[..]);
            }
        }
    }

    #[test]
    fn a_ramping_member_takes_its_share_of_picks_evenly() {
        for share in [0.05, 0.25, 0.5, 0.9] {
            let m = member();
            let admitted: Vec<bool> = (0..1000).map(|_| m.admits(share)).collect();
            let n = admitted.iter().filter(|a| **a).count() as f64;
            assert!((n / 1000.0 - share).abs() < 0.01, "{share}: {n}");
            // Evenly: every window of 100 picks gets about its share.
            for window in admitted.chunks(100) {
                let k = window.iter().filter(|a| **a).count() as f64;
                assert!((k / 100.0 - share).abs() <= 0.03, "{share}: {k} in 100");
            }
        }
        assert!(member().admits(1.0));
    }

    #[tokio::test]
    async fn the_ramp_grows_linearly_after_an_ejection_ends() {
        let m = member();
        let options = crate::health::PassiveOptions {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(1),
        };
        let start = Instant::now();
        m.passive.eject(&options, start);
        let slow = Duration::from_secs(10);
        assert_eq!(m.ramp(slow, start), 1.0, "no ramp while ejected");
        let back = start + Duration::from_secs(1);
        assert_eq!(m.ramp(slow, back), RAMP_FLOOR);
        let half = m.ramp(slow, back + Duration::from_secs(5));
        assert!((half - 0.5).abs() < 1e-9, "{half}");
        assert_eq!(m.ramp(slow, back + slow), 1.0);
        assert_eq!(m.ramp(Duration::ZERO, back), 1.0);
    }
}
