//! The one immutable snapshot per load balancer, and what is shared with the
//! tasks that serve it.
//!
//! A [`Snapshot`] is everything a connection needs, derived from one
//! `LbConfig`: which listener serves which address, each listener's counters
//! and connection limit, each pool's members and balancer. It is published
//! whole through one `ArcSwap`, so a connection sees one config version from
//! start to end, never half of two.
//!
//! Runtime state that must outlive a config (counters, connection slots,
//! listener lives, balancer rotation, member health) is carried from the
//! previous snapshot into the next by id when the snapshot is built.

use crate::health::{HealthOptions, Target};
use crate::l7::Policies;
use crate::limits::LbAdmission;
use crate::listener::{ListenerLife, ListenerView};
use crate::pool::PoolRuntime;
use crate::sockets::Netns;
use crate::stats::ListenerStats;
use arc_swap::ArcSwap;
use statera_config::{
    LbConfig, ListenerReport, ListenerState, MemberHealth, MemberReport, PoolReport, ReportSender,
    StatusReport,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use uuid::Uuid;

/// A listener the engine decided to serve, with what was compiled for it.
#[derive(Debug)]
pub struct Served {
    /// Index in `config.listeners`.
    pub index: usize,
    pub addr: SocketAddr,
    pub policies: Arc<Policies>,
    /// A UDP listener (its socket is a datagram one, apart from TCP ones).
    pub udp: bool,
    /// TERMINATED_HTTPS: what rustls serves.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
}

/// The TLS toward members of each pool over TLS that can be served, by
/// pool id.
pub type PoolTlsMap = HashMap<Uuid, Arc<crate::member_tls::MemberTls>>;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<LbConfig>,
    /// Index-aligned with `config.listeners`.
    pub listeners: Vec<ListenerSlot>,
    /// The served listeners by the address they are bound on.
    pub by_addr: HashMap<SocketAddr, Arc<ListenerView>>,
    /// The served UDP listeners by the address they are bound on.
    pub udp_by_addr: HashMap<SocketAddr, Arc<ListenerView>>,
    pub pools: HashMap<Uuid, Arc<PoolRuntime>>,
    /// Sends this load balancer's report (health transitions, passive
    /// ejections); the same for every snapshot of the load balancer.
    pub reporter: Arc<Reporter>,
    /// Where this load balancer's sockets are created.
    pub netns: Netns,
}

/// Every listener of the config, served or not.
#[derive(Debug)]
pub struct ListenerSlot {
    pub stats: Arc<ListenerStats>,
    /// `Some` when the listener is served (enabled, on an enabled LB).
    pub view: Option<Arc<ListenerView>>,
}

impl Snapshot {
    /// The snapshot for `config`, serving the listeners in `served` (and
    /// the pools over TLS in `pool_tls` over their TLS), carrying
    /// runtime state over from `prev`; `targets` are the probe targets of the
    /// probed members (by member id).
    pub fn build(
        config: Arc<LbConfig>,
        served: &[Served],
        pool_tls: &PoolTlsMap,
        prev: Option<&Snapshot>,
        targets: &HashMap<Uuid, Arc<Target>>,
        reporter: Arc<Reporter>,
        health: HealthOptions,
    ) -> Snapshot {
        let prev_slot = |id: Uuid| -> Option<&ListenerSlot> {
            let prev = prev?;
            let i = prev.config.listeners.iter().position(|l| l.id == id)?;
            prev.listeners.get(i)
        };
        let mut by_addr = HashMap::new();
        let mut udp_by_addr = HashMap::new();
        let listeners = config
            .listeners
            .iter()
            .enumerate()
            .map(|(index, listener)| {
                let prev = prev_slot(listener.id);
                let stats = prev.map(|p| p.stats.clone()).unwrap_or_default();
                let served = served.iter().find(|s| s.index == index);
                let view = served.map(|served| {
                    let prev_view = prev.and_then(|p| p.view.as_ref());
                    let limiter = connection_limit(listener.connection_limit).map(|limit| {
                        match prev_view.and_then(|v| v.limiter.as_ref()) {
                            Some((prev_limit, sem)) if *prev_limit == limit => (limit, sem.clone()),
                            _ => (limit, Arc::new(Semaphore::new(limit as usize))),
                        }
                    });
                    let life = prev_view
                        .map(|v| v.life.clone())
                        .unwrap_or_else(|| Arc::new(ListenerLife::new()));
                    let view = Arc::new(ListenerView {
                        index,
                        stats: stats.clone(),
                        limiter,
                        life,
                        policies: served.policies.clone(),
                        tls: served.tls.clone(),
                    });
                    if served.udp {
                        udp_by_addr.insert(served.addr, view.clone());
                    } else {
                        by_addr.insert(served.addr, view.clone());
                    }
                    view
                });
                ListenerSlot { stats, view }
            })
            .collect();
        let pools = config
            .pools
            .iter()
            .map(|pool| {
                let prev = prev.and_then(|p| p.pools.get(&pool.id)).map(|p| &**p);
                (
                    pool.id,
                    Arc::new(PoolRuntime::build(
                        pool,
                        prev,
                        targets,
                        health,
                        pool_tls.get(&pool.id).cloned(),
                    )),
                )
            })
            .collect();
        let netns = crate::sockets::netns_of(&config);
        Snapshot {
            netns,
            config,
            listeners,
            by_addr,
            udp_by_addr,
            pools,
            reporter,
        }
    }

    /// Lives of listeners served here and no longer served in `next`.
    pub fn ended_lives(&self, next: &Snapshot) -> Vec<Arc<ListenerLife>> {
        self.by_addr
            .values()
            .filter(|v| !next.by_addr.values().any(|n| Arc::ptr_eq(&n.life, &v.life)))
            .map(|v| v.life.clone())
            .collect()
    }

    pub fn report(&self) -> StatusReport {
        let listeners = self
            .config
            .listeners
            .iter()
            .zip(&self.listeners)
            .map(|(listener, slot)| ListenerReport {
                id: listener.id,
                state: match &slot.view {
                    None => ListenerState::Down,
                    Some(view) if view.is_full() => ListenerState::Full,
                    Some(_) => ListenerState::Open,
                },
                stats: slot.stats.read(),
                epoch: slot.stats.epoch,
            })
            .collect();
        let pools = self
            .config
            .pools
            .iter()
            .map(|pool| PoolReport {
                id: pool.id,
                members: pool
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, member)| {
                        let runtime = self.pools.get(&pool.id).and_then(|p| p.members.get(i));
                        let health = if !member.admin_state_up {
                            MemberHealth::Maint
                        } else if member.weight == 0 {
                            MemberHealth::Drain
                        } else {
                            match runtime {
                                None => MemberHealth::NoCheck,
                                Some(m) if m.passive.is_ejected(Instant::now()) => {
                                    MemberHealth::Down
                                }
                                Some(m) => match &m.health {
                                    None => MemberHealth::NoCheck,
                                    Some(target) if target.is_up() => MemberHealth::Up,
                                    Some(_) => MemberHealth::Down,
                                },
                            }
                        };
                        MemberReport {
                            id: member.id,
                            health,
                        }
                    })
                    .collect(),
            })
            .collect();
        StatusReport {
            lb_id: self.config.lb_id,
            version: self.config.version,
            listeners,
            pools,
            unserved: false,
        }
    }
}

/// A listener's `connection_limit` as a number of slots: `None` (the
/// provider's default) and `Some(0)` are unlimited, like HAProxy, where a
/// `maxconn` of 0 means no per-frontend limit.
fn connection_limit(limit: Option<u32>) -> Option<u32> {
    limit.filter(|n| *n > 0)
}

/// What the engine shares with the tasks serving one load balancer.
#[derive(Debug)]
pub struct LbShared {
    snapshot: ArcSwap<Snapshot>,
    /// Bumped after each publish, so accept loops waiting for a connection
    /// slot or a connection re-read the snapshot (a new connection limit).
    changed: watch::Sender<u64>,
    report_tx: ReportSender,
    /// The load balancer's connection ceiling and refusals; lives as long as
    /// the load balancer is served, across snapshots.
    admission: Arc<LbAdmission>,
}

impl LbShared {
    /// Shares `first`; its reporter sends this load balancer's reports;
    /// `admission` holds its connections under their ceilings.
    pub fn new(
        first: Snapshot,
        report_tx: ReportSender,
        admission: Arc<LbAdmission>,
    ) -> Arc<LbShared> {
        let version = first.config.version;
        let reporter = first.reporter.clone();
        let shared = Arc::new(LbShared {
            snapshot: ArcSwap::from_pointee(first),
            changed: watch::Sender::new(version),
            report_tx,
            admission,
        });
        let _ = reporter.shared.set(Arc::downgrade(&shared));
        shared
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Publishes `next` (one swap: the whole new config at once) and returns
    /// the snapshot it replaces.
    pub fn publish(&self, next: Snapshot) -> Arc<Snapshot> {
        let version = next.config.version;
        let prev = self.snapshot.swap(Arc::new(next));
        self.changed.send_replace(version);
        prev
    }

    pub fn admission(&self) -> &Arc<LbAdmission> {
        &self.admission
    }

    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current report. While the load balancer (or the process) holds
    /// its connection ceiling, its open listeners report FULL, as
    /// listeners at their own `connection_limit` do.
    pub fn report(&self) -> StatusReport {
        let mut report = self.load().report();
        if self.admission.is_full() {
            for listener in &mut report.listeners {
                if listener.state == ListenerState::Open {
                    listener.state = ListenerState::Full;
                }
            }
        }
        report
    }

    /// Sends the current report to the control plane. A closed channel only
    /// means nobody listens any more; serving goes on.
    pub fn send_report(&self) {
        let _ = self.report_tx.send(self.report());
    }
}

/// Sends the current report of one load balancer when something changed
/// outside an apply: a probe target's transition, a passive ejection or
/// return. Probers and the relay hold it without keeping the load balancer
/// alive.
#[derive(Debug, Default)]
pub struct Reporter {
    shared: OnceLock<Weak<LbShared>>,
}

impl Reporter {
    pub fn send(&self) {
        if let Some(shared) = self.shared.get().and_then(Weak::upgrade) {
            shared.send_report();
        }
    }
}
