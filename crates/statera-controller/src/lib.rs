//! The controller: the only writer that moves objects out of PENDING_*.
//!
//! It takes the store's pending work in commit order, one load balancer at a
//! time: builds the load balancer's next whole [`LbConfig`] from the store,
//! hands it to the data plane of the load balancer's provider, and — in one
//! transaction — marks everything that was pending ACTIVE (or removes what
//! was being deleted), or ERROR when the data plane refused. It also turns
//! the data planes' [`StatusReport`]s into operating statuses and listener
//! statistics, writing only what changed.
//!
//! At start it re-applies every load balancer's configuration, so the same
//! VIPs serve again after a restart: every provider's load balancers
//! independently of the others', several at a time. A listener whose socket
//! cannot be bound then (port taken, no permission) is left out, so its
//! siblings serve; it shows operating_status ERROR (the log says why) and is
//! tried again periodically and with every change to its load balancer.
//!
//! A write of the controller's own that the store refuses (disk full) is not
//! lost: pending work stays pending and is processed again, and status and
//! counters are derived again from the next reports.

pub mod config;
pub mod network;
pub mod sharing;

pub use sharing::Sharing;

pub use network::NetnsNetwork;
pub mod status;
mod tls;

use statera_config::{
    DataPlane, DataPlaneError, LbConfig, ListenerReport, ListenerState, StatusReport,
};
use statera_model::status::Provisioned;
use statera_model::*;
use statera_service::tree::Remove;
use statera_service::{LbTree, Visitor};
use statera_store::{
    ListenerStats, PendingWork, Record, SeenCounters, State, Store, StoreError, Txn,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// How often counters are collected from the data planes.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often listeners left out for a failed bind are tried again.
pub const UNBOUND_RETRY_INTERVAL: Duration = Duration::from_secs(15);
/// How many load balancers of one provider are restored at a time.
pub const RESTORE_PARALLELISM: usize = 8;

/// Listeners (by id) left out of what a load balancer serves because their
/// socket could not be bound, with the reason.
pub type Unbound = HashMap<Uuid, String>;

pub struct Controller {
    store: Arc<Store>,
    /// Data planes by provider name.
    planes: HashMap<String, Arc<dyn DataPlane>>,
    reports: mpsc::UnboundedReceiver<StatusReport>,
    /// Name of this host, shown as the amphora's compute_id.
    host: String,
    /// The `netns` network driver, when enabled.
    network: Option<Arc<NetnsNetwork>>,
    /// Per load balancer, the listeners it is served without.
    unbound: HashMap<Uuid, Unbound>,
    /// Several controllers share the store: this one's name and how long
    /// a silent one keeps its load balancers.
    sharing: Option<Sharing>,
    /// The load balancers this controller's data planes were given.
    served: HashSet<Uuid>,
    /// Since when this controller's heartbeats have been landing.
    beat: sharing::Beat,
    /// Told once every load balancer is served again after the start.
    restored: Option<tokio::sync::oneshot::Sender<()>>,
    /// With agents and the `netns` driver: the plumbing each load
    /// balancer's last configuration carried, to send it again when what it
    /// is made of changes without a change of the load balancer (a
    /// security group rule, the VIP port's groups, a subnet's routes).
    plumbed: HashMap<Uuid, statera_net::netns::LbPlumbing>,
    /// Store changes not yet looked at for that.
    replumb_changes: Option<watch::Receiver<u64>>,
    /// Load balancers whose plumbing could not be sent again (told by the
    /// task that sends it), to be sent at the next pass.
    replumb_failed: (mpsc::UnboundedSender<Uuid>, mpsc::UnboundedReceiver<Uuid>),
    replumb_retry: HashSet<Uuid>,
    /// TERMINATED_HTTPS listeners' certificates (none: such listeners are
    /// sent without them, and refused by their data plane).
    certificates: Option<tls::Certificates>,
}

/// Why the controller's own write about a load balancer did not happen.
#[derive(Debug)]
enum SettleError {
    Store(StoreError),
    /// Another controller serves the load balancer now (it adopted it).
    NotMine,
}

impl From<StoreError> for SettleError {
    fn from(e: StoreError) -> Self {
        SettleError::Store(e)
    }
}

impl Controller {
    pub fn new(
        store: Arc<Store>,
        planes: HashMap<String, Arc<dyn DataPlane>>,
        reports: mpsc::UnboundedReceiver<StatusReport>,
        host: String,
    ) -> Controller {
        Controller {
            store,
            planes,
            reports,
            host,
            network: None,
            unbound: HashMap::new(),
            sharing: None,
            served: HashSet::new(),
            beat: sharing::Beat::default(),
            restored: None,
            plumbed: HashMap::new(),
            replumb_changes: None,
            replumb_failed: mpsc::unbounded_channel(),
            replumb_retry: HashSet::new(),
            certificates: None,
        }
    }

    /// Sends on `tx` once `run` has served every load balancer again (the
    /// restore at its start): a `statera serve` taking over from another
    /// waits for it before telling the old one to stop accepting.
    pub fn on_restored(mut self, tx: tokio::sync::oneshot::Sender<()>) -> Controller {
        self.restored = Some(tx);
        self
    }

    /// Shares the store with other controllers (PostgreSQL): this one
    /// serves the load balancers claimed for it, heartbeats, places new
    /// load balancers on the least loaded live controller and adopts the
    /// load balancers of one gone silent (see [`sharing`]).
    pub fn with_sharing(mut self, sharing: Sharing) -> Controller {
        self.host = sharing.node.clone();
        self.sharing = Some(sharing);
        self
    }

    /// Whether this controller serves `lb_id` (always, alone on the store).
    fn owns(&self, s: &State, lb_id: Uuid) -> bool {
        match &self.sharing {
            None => true,
            Some(sh) => s.claim_of(lb_id) == Some(sh.node.as_str()),
        }
    }

    /// Refuses a settling write about a load balancer this controller no
    /// longer serves (inside the write: fenced against an adoption).
    ///
    /// `s` is the state the work was read from: the claim must still be
    /// the same one (its epoch too, so that a load balancer that went to
    /// another controller and came back while this one was busy is not
    /// settled on the strength of the old claim).
    fn fence(
        &self,
        s: &State,
        lb_id: Uuid,
    ) -> impl Fn(&Txn, Uuid) -> Result<(), SettleError> + use<> {
        let node = self.sharing.as_ref().map(|sh| sh.node.clone());
        let epoch = s.lb_claims.get(&lb_id).map(|c| c.epoch);
        move |txn, lb_id| match &node {
            Some(node) => match txn.state().lb_claims.get(&lb_id) {
                Some(c) if c.controller == *node && Some(c.epoch) == epoch => Ok(()),
                _ => Err(SettleError::NotMine),
            },
            None => Ok(()),
        }
    }

    /// Reads TERMINATED_HTTPS listeners' certificates from this key manager.
    pub fn with_key_manager(
        mut self,
        km: Arc<statera_service::keymanager::KeyManager>,
    ) -> Controller {
        self.certificates = Some(tls::Certificates::new(km));
        self
    }

    /// Plugs load balancers into namespaces with the `netns` driver.
    pub fn with_network(mut self, network: Arc<NetnsNetwork>) -> Controller {
        if network.on_agents() {
            self.replumb_changes = Some(self.store.changes());
        }
        self.network = Some(network);
        self
    }

    /// `lb`'s config, placed in its namespace (netns driver), or carrying
    /// the plumbing its agent builds (recorded as sent).
    fn build(&mut self, s: &State, lb: &LoadBalancer, version: u64) -> LbConfig {
        let mut cfg = config::build(s, lb, version);
        if cfg
            .listeners
            .iter()
            .any(|l| l.protocol == ListenerProtocol::TerminatedHttps)
            || cfg
                .pools
                .iter()
                .any(|p| s.pools.get(&p.id).is_some_and(|p| p.tls_enabled))
        {
            // Reading certificates may wait for a child process or a key
            // derivation: not on the async worker, where it would hold up
            // other tasks (a current-thread runtime, in tests, just waits).
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(|| self.add_tls(s, lb, &mut cfg))
                }
                _ => self.add_tls(s, lb, &mut cfg),
            }
        }
        cfg.vip.namespace = self.network.as_ref().and_then(|n| n.namespace_for(s, lb));
        cfg.vip.plumbing = self.network.as_ref().and_then(|n| n.plumbing_for(s, lb));
        match &cfg.vip.plumbing {
            Some(p) => self.plumbed.insert(lb.id, p.clone()),
            None => self.plumbed.remove(&lb.id),
        };
        cfg
    }

    /// TERMINATED_HTTPS listeners' and TLS pools' certificates, from the
    /// key manager.
    fn add_tls(&mut self, s: &State, lb: &LoadBalancer, cfg: &mut LbConfig) {
        for l in &mut cfg.listeners {
            if l.protocol != ListenerProtocol::TerminatedHttps {
                continue;
            }
            let Some(listener) = s.listeners.get(&l.id) else {
                continue;
            };
            let Some(certs) = &mut self.certificates else {
                tracing::warn!(lb = %lb.id, listener = %l.id, "TERMINATED_HTTPS listener cannot be served: this controller has no key manager");
                continue;
            };
            match certs.listener(s, &lb.project_id, listener) {
                Ok(t) => l.tls = Some(t),
                Err(why) => {
                    tracing::warn!(lb = %lb.id, listener = %l.id, %why, "TERMINATED_HTTPS listener cannot be served")
                }
            }
        }
        for p in &mut cfg.pools {
            let Some(pool) = s.pools.get(&p.id).filter(|p| p.tls_enabled) else {
                continue;
            };
            let tls = match &mut self.certificates {
                Some(certs) => certs.pool(s, &lb.project_id, pool),
                None => {
                    statera_config::PoolTls::unreadable("this controller has no key manager".into())
                }
            };
            if let Some(why) = &tls.unreadable {
                tracing::warn!(lb = %lb.id, pool = %p.id, %why, "TLS pool cannot be served");
            }
            p.tls = Some(tls);
        }
    }

    /// With agents and the `netns` driver, after store changes: sends the
    /// configuration again (same version) of each settled load balancer
    /// whose plumbing changed though the load balancer did not (its VIP
    /// port's security groups or their rules, its subnet's routes, its
    /// network's MTU), so its agent's host follows as the embedded driver's
    /// reconciler does. The sends run in a task of their own, eight at a
    /// time (one whose agent is away must not hold up the controller's
    /// work); one that fails is sent again at the next pass.
    async fn replumb(&mut self) {
        let Some(changes) = &mut self.replumb_changes else {
            return;
        };
        while let Ok(lb_id) = self.replumb_failed.1.try_recv() {
            self.replumb_retry.insert(lb_id);
        }
        if !changes.has_changed().unwrap_or(false) && self.replumb_retry.is_empty() {
            return;
        }
        changes.borrow_and_update();
        let Some(network) = self.network.clone() else {
            return;
        };
        let s = self.store.snapshot();
        self.plumbed.retain(|id, _| s.loadbalancers.contains(id));
        let retry = std::mem::take(&mut self.replumb_retry);
        let stale: Vec<Uuid> = self
            .plumbed
            .iter()
            .filter(|(id, sent)| {
                s.loadbalancers.get(id).is_some_and(|lb| {
                    !lb.provisioning_status.is_pending()
                        && self.served.contains(&lb.id)
                        && (retry.contains(&lb.id)
                            || network.plumbing_for(&s, lb).as_ref() != Some(*sent))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        let mut sends = Vec::new();
        for lb_id in stale {
            let Some(lb) = s.loadbalancers.get(&lb_id).cloned() else {
                continue;
            };
            let Some(plane) = self.planes.get(&lb.provider).cloned() else {
                continue;
            };
            let mut cfg = self.build(&s, &lb, lb.config_version.max(1));
            // Served as it is: without the listeners it is served without.
            if let Some(unbound) = self.unbound.get(&lb_id) {
                cfg.listeners.retain(|l| !unbound.contains_key(&l.id));
            }
            sends.push((plane, Arc::new(cfg)));
        }
        if sends.is_empty() {
            return;
        }
        let failed = self.replumb_failed.0.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(RESTORE_PARALLELISM));
            let mut tasks = JoinSet::new();
            for (plane, cfg) in sends {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let failed = failed.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    let lb_id = cfg.lb_id;
                    match plane.apply(cfg).await {
                        Ok(_) => tracing::info!(lb = %lb_id, "its network plumbing changed: sent again to its data plane"),
                        Err(error) => {
                            tracing::error!(lb = %lb_id, %error, "its network plumbing changed and could not be sent again; tried again");
                            let _ = failed.send(lb_id);
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
    }

    /// The listeners `lb_id` is served without (a failed bind), with why.
    pub fn unbound(&self, lb_id: Uuid) -> Option<&Unbound> {
        self.unbound.get(&lb_id)
    }

    fn set_unbound(&mut self, lb_id: Uuid, left_out: Unbound) {
        if left_out.is_empty() {
            self.unbound.remove(&lb_id);
        } else {
            self.unbound.insert(lb_id, left_out);
        }
    }

    /// Re-apply every settled load balancer's last configuration (after a
    /// restart). Pending ones are left to the work queue.
    ///
    /// Each provider's load balancers are restored independently of the
    /// other providers' (the native engine's in milliseconds does not wait
    /// for HAProxy processes starting), [`RESTORE_PARALLELISM`] at a time.
    /// A listener that cannot bind is left out (see [`apply_leaving_out`]).
    pub async fn restore(&mut self) {
        if let Some(network) = &self.network {
            network.reconcile(&self.store, true).await;
        }
        let s = self.store.snapshot();
        let lbs: Vec<Uuid> = s.loadbalancers.iter().map(|lb| lb.id).collect();
        self.restore_these(&s, &lbs).await;
    }

    /// Re-applies the last configuration of those of `lbs` that are
    /// settled and this controller's.
    async fn restore_these(&mut self, s: &State, lbs: &[Uuid]) {
        let mut by_provider: HashMap<&str, Vec<LbConfig>> = HashMap::new();
        for lb in lbs.iter().filter_map(|id| s.loadbalancers.get(id)) {
            if lb.provisioning_status.is_pending() || !self.owns(s, lb.id) {
                continue;
            }
            if !self.planes.contains_key(&lb.provider) {
                tracing::error!(lb = %lb.id, provider = %lb.provider, "no data plane for provider");
                continue;
            }
            let cfg = self.build(s, lb, lb.config_version.max(1));
            self.served.insert(lb.id);
            by_provider.entry(&lb.provider).or_default().push(cfg);
        }
        let mut providers = JoinSet::new();
        for (provider, configs) in by_provider {
            let plane = self.planes[provider].clone();
            let (network, store) = (self.network.clone(), self.store.clone());
            providers.spawn(restore_provider(plane, configs, network, store));
        }
        while let Some(done) = providers.join_next().await {
            match done {
                Ok(restored) => {
                    for (lb_id, left_out) in restored {
                        self.set_unbound(lb_id, left_out);
                    }
                }
                Err(e) => tracing::error!(error = %e, "a restore task failed"),
            }
        }
    }

    /// Tries again the listeners left out for a failed bind: a load
    /// balancer's whole configuration is applied again at its version.
    pub async fn retry_unbound(&mut self) {
        let s = self.store.snapshot();
        let lbs: Vec<Uuid> = self.unbound.keys().copied().collect();
        for lb_id in lbs {
            let Some(lb) = s.loadbalancers.get(&lb_id) else {
                self.unbound.remove(&lb_id);
                continue;
            };
            // A change in progress applies the whole configuration anyway.
            if lb.provisioning_status.is_pending() {
                continue;
            }
            let Some(plane) = self.planes.get(&lb.provider).cloned() else {
                continue;
            };
            let cfg = self.build(&s, lb, lb.config_version.max(1));
            match apply_leaving_out(plane.as_ref(), cfg, |_| true, false).await {
                Ok((_, left_out)) => {
                    let bound: Vec<Uuid> = self.unbound[&lb_id]
                        .keys()
                        .filter(|l| !left_out.contains_key(l))
                        .copied()
                        .collect();
                    for listener in bound {
                        tracing::info!(lb = %lb_id, %listener, "listener bound: serving it again");
                    }
                    self.set_unbound(lb_id, left_out);
                }
                Err(e) => {
                    tracing::warn!(lb = %lb_id, error = %e, "retrying the unbound listeners failed")
                }
            }
            if let Some(report) = plane.report(lb_id) {
                self.ingest(vec![report]).await;
            }
        }
    }

    /// Run until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut beating = None;
        if let Some(sh) = &self.sharing {
            // Heartbeats in a task of their own, so that long work (many
            // changes, slow HAProxy starts) never makes this controller look
            // dead to its peers.
            self.beat.beat(&self.store, &sh.node).await;
            beating = Some(sharing::AbortOnDrop(tokio::spawn(sharing::heartbeats(
                self.store.clone(),
                sh.node.clone(),
                self.beat.clone(),
                shutdown.clone(),
            ))));
            // Serves what is claimed for this controller (a restore of
            // those), after adopting what silent controllers left.
            self.share().await;
        } else {
            self.restore().await;
        }
        if let Some(tx) = self.restored.take() {
            let _ = tx.send(());
        }
        let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
        let mut unbound_tick = tokio::time::interval(UNBOUND_RETRY_INTERVAL);
        unbound_tick.tick().await;
        let mut share_tick = tokio::time::interval(sharing::TICK);
        share_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.drain_work().await;
            self.replumb().await;
            tokio::select! {
                _ = self.store.work_enqueued() => {}
                Some(report) = self.reports.recv() => {
                    let mut batch = vec![report];
                    while let Ok(r) = self.reports.try_recv() {
                        batch.push(r);
                    }
                    self.ingest(batch).await;
                }
                _ = stats_tick.tick() => self.collect().await,
                _ = unbound_tick.tick(), if !self.unbound.is_empty() => self.retry_unbound().await,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = share_tick.tick(), if self.sharing.is_some() => self.share().await,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        self.collect().await;
        drop(beating);
    }

    /// Process every load balancer with pending work, oldest first.
    pub async fn drain_work(&mut self) {
        loop {
            let s = self.store.snapshot();
            let mut todo = s.pending_lbs();
            // A pending object without a work row (should not happen) is still served.
            for lb in s.loadbalancers.iter() {
                if lb.provisioning_status.is_pending() && !todo.contains(&lb.id) {
                    todo.push(lb.id);
                }
            }
            if self.sharing.is_some() {
                // Work for a load balancer no controller serves yet places
                // it first; another controller's work is its own.
                let unplaced: Vec<Uuid> = todo
                    .iter()
                    .copied()
                    .filter(|lb| s.claim_of(*lb).is_none())
                    .collect();
                if !unplaced.is_empty() {
                    self.place(&unplaced).await;
                }
                // Work left for a load balancer that is gone is anyone's
                // to forget.
                let s = self.store.snapshot();
                todo.retain(|lb| self.owns(&s, *lb) || !s.loadbalancers.contains(lb));
            }
            if todo.is_empty() {
                return;
            }
            for lb_id in todo {
                if let Err(e) = self.process(lb_id).await {
                    tracing::error!(lb = %lb_id, error = %e, "work failed; will retry");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return;
                }
            }
        }
    }

    async fn process(&mut self, lb_id: Uuid) -> Result<(), StoreError> {
        let s = self.store.snapshot();
        let seqs: Vec<u64> = s.pending_work.children(lb_id).map(|w| w.seq).collect();
        let subjects: Vec<Uuid> = s
            .pending_work
            .children(lb_id)
            .flat_map(|w| w.subjects.iter().copied())
            .collect();
        let failover = s.pending_work.children(lb_id).any(|w| w.failover);
        let Some(lb) = s.loadbalancers.get(&lb_id).cloned() else {
            self.store
                .write(|txn| {
                    txn.delete::<statera_store::Claim>(&lb_id);
                    forget_work(txn, &seqs)
                })
                .await?;
            return Ok(());
        };
        let plane = self.planes.get(&lb.provider).cloned();
        if lb.provisioning_status == ProvisioningStatus::PendingDelete {
            if let Some(plane) = &plane
                && let Err(e) = plane.remove(lb_id).await
            {
                tracing::warn!(lb = %lb_id, error = %e, "data plane could not remove the load balancer");
            }
            if let Some(network) = &self.network {
                network.unplug(lb_id).await;
            }
            self.unbound.remove(&lb_id);
            self.served.remove(&lb_id);
            let fence = self.fence(&s, lb_id);
            let deleted = self
                .store
                .write(|txn| {
                    fence(txn, lb_id)?;
                    delete_tree(txn, lb_id)?;
                    txn.delete::<statera_store::Claim>(&lb_id);
                    forget_work(txn, &seqs).map_err(SettleError::from)
                })
                .await;
            if self.settled(lb_id, deleted).await? {
                return Ok(());
            }
            tracing::info!(lb = %lb_id, "deleted");
            return Ok(());
        }
        let version = lb.config_version + 1;
        let cfg = self.build(&s, &lb, version);
        // A listener that already was ACTIVE and is not what this change is
        // about (one left out at restore) does not block the change; one the
        // change creates or modifies does, as any refusal.
        // A failover leaves out nothing new: a listener the new place cannot
        // bind refuses the move (it is served again where it was).
        // A listener that reaches a pool the change is about (its default
        // pool, or one its policies redirect to) is what the change is about
        // too: a TLS pool whose references no longer read fails the change.
        let uses_subject = |id: Uuid| {
            s.listeners.get(&id).is_some_and(|l| {
                l.default_pool_id.is_some_and(|p| subjects.contains(&p))
                    || s.l7policies
                        .children(id)
                        .any(|p| p.redirect_pool_id.is_some_and(|p| subjects.contains(&p)))
            })
        };
        // A failover moves what is served: listeners already served without
        // (a certificate that no longer reads) may stay out.
        let already_out: HashSet<Uuid> = self
            .unbound
            .get(&lb_id)
            .map(|u| u.keys().copied().collect())
            .unwrap_or_default();
        let may_leave_out = |id: Uuid| {
            (!failover || already_out.contains(&id))
                && !subjects.contains(&id)
                && !uses_subject(id)
                && s.listeners
                    .get(&id)
                    .is_some_and(|l| !l.provisioning_status.is_pending())
        };
        let result = match &plane {
            Some(plane) => match plug(self.network.as_ref(), &self.store, &cfg).await {
                Ok(()) => apply_leaving_out(plane.as_ref(), cfg, may_leave_out, failover)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            None => Err(format!("no data plane for provider '{}'", lb.provider)),
        };
        let host = self.host.clone();
        match result {
            Ok((served, left_out)) => {
                self.set_unbound(lb_id, left_out);
                self.served.insert(lb_id);
                let fence = self.fence(&s, lb_id);
                let completed = self
                    .store
                    .write(|txn| {
                        fence(txn, lb_id)?;
                        complete(txn, lb_id, served, &host)?;
                        forget_work(txn, &seqs).map_err(SettleError::from)
                    })
                    .await;
                if self.settled(lb_id, completed).await? {
                    return Ok(());
                }
                tracing::info!(lb = %lb_id, version = served, "applied");
                if let Some(report) = plane.as_ref().and_then(|p| p.report(lb_id)) {
                    self.ingest(vec![report]).await;
                }
            }
            Err(reason) => {
                tracing::error!(lb = %lb_id, %reason, "data plane refused the configuration");
                let fence = self.fence(&s, lb_id);
                let failed = self
                    .store
                    .write(|txn| {
                        fence(txn, lb_id)?;
                        fail(txn, lb_id, &subjects)?;
                        forget_work(txn, &seqs).map_err(SettleError::from)
                    })
                    .await;
                self.settled(lb_id, failed).await?;
            }
        }
        Ok(())
    }

    /// The outcome of a fenced settling write: `Ok(true)` when the load
    /// balancer turned out to be another controller's (it adopted it), in
    /// which case this controller stops serving it and leaves the work to
    /// the new owner.
    async fn settled(
        &mut self,
        lb_id: Uuid,
        outcome: Result<(), SettleError>,
    ) -> Result<bool, StoreError> {
        match outcome {
            Ok(()) => Ok(false),
            Err(SettleError::Store(e)) => Err(e),
            Err(SettleError::NotMine) => {
                tracing::warn!(lb = %lb_id, "another controller serves this load balancer now: leaving it");
                self.leave(lb_id).await;
                Ok(true)
            }
        }
    }

    /// Stops serving `lb_id` here (another controller took it over).
    async fn leave(&mut self, lb_id: Uuid) {
        self.served.remove(&lb_id);
        self.unbound.remove(&lb_id);
        for plane in self.planes.values() {
            if let Err(e) = plane.remove(lb_id).await {
                tracing::debug!(lb = %lb_id, error = %e, "removing a load balancer left to another controller");
            }
        }
    }

    /// Poll every data plane for counters and write what changed.
    pub async fn collect(&mut self) {
        let s = self.store.snapshot();
        let mut reports = Vec::new();
        for lb in s.loadbalancers.iter() {
            if let Some(r) = self.planes.get(&lb.provider).and_then(|p| p.report(lb.id)) {
                reports.push(r);
            }
        }
        if !reports.is_empty() {
            self.ingest(reports).await;
        }
    }

    /// Write the statuses and counters of `reports`, only what changed.
    ///
    /// A listener left out for a failed bind is reported down (operating
    /// status ERROR) whatever its data plane says. When the store refuses
    /// the write, nothing of it counts as recorded: the counters' deltas are
    /// taken again from the same point with the next reports.
    pub async fn ingest(&mut self, mut reports: Vec<StatusReport>) {
        for r in &mut reports {
            if let Some(unbound) = self.unbound.get(&r.lb_id) {
                mark_unbound(r, unbound);
            }
        }
        let planes = &self.planes;
        let node = self.sharing.as_ref().map(|sh| sh.node.clone());
        let res = self
            .store
            .write(|txn| {
                for r in &reports {
                    // On a shared store, only what is still claimed for
                    // this controller (fenced inside the write): one whose
                    // load balancers were adopted meanwhile must not write
                    // its engine's statuses and counters over the adopter's.
                    if let Some(node) = &node
                        && txn.state().claim_of(r.lb_id) != Some(node.as_str())
                    {
                        continue;
                    }
                    status::apply_report(txn, r)?;
                    record_stats(txn, r)?;
                    show_placement(txn, planes, r.lb_id)?;
                }
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "cannot record status reports; the next reports carry them")
        }
    }
}

/// Keeps the amphora naming where the load balancer is served, when its
/// data plane says (an agent, which a failover may change): its name, the
/// address it connects from and its version (kept from the last time it was
/// connected while it is away); served in this process, this binary's
/// version.
fn show_placement(
    txn: &mut Txn,
    planes: &HashMap<String, Arc<dyn DataPlane>>,
    lb_id: Uuid,
) -> Result<(), StoreError> {
    let Some(lb) = txn.state().loadbalancers.get(&lb_id).cloned() else {
        return Ok(());
    };
    let Some(plane) = planes.get(&lb.provider) else {
        return Ok(());
    };
    let placed = plane.placement(lb_id);
    let shown = |a: &Amphora| {
        let mut a = a.clone();
        match &placed {
            Some(placed) => {
                a.compute_id = Some(placed.agent.clone());
                if let Some(ip) = placed.address {
                    a.lb_network_ip = Some(ip);
                }
                if !placed.version.is_empty() {
                    a.image_id = Some(placed.version.clone());
                }
            }
            // Served in this process: this binary's version (after an
            // upgrade by handover, the new one).
            None => a.image_id = Some(env!("CARGO_PKG_VERSION").to_string()),
        }
        a
    };
    let amphorae: Vec<Amphora> = txn
        .state()
        .amphorae
        .children(lb_id)
        .map(|a| shown(a))
        .filter(|a| {
            txn.state()
                .amphorae
                .get(&a.id)
                .is_none_or(|old| **old != *a)
        })
        .collect();
    for mut amphora in amphorae {
        amphora.updated_at = Some(statera_model::now());
        txn.put(amphora)?;
    }
    Ok(())
}

/// Makes the kernel hold `cfg`'s namespace before a data plane binds in it.
async fn plug(
    network: Option<&Arc<NetnsNetwork>>,
    store: &Store,
    cfg: &LbConfig,
) -> Result<(), String> {
    match (network, &cfg.vip.namespace, &cfg.vip.plumbing) {
        (Some(network), Some(_), _) => network.plug(store, cfg.lb_id).await,
        // An agent's host trunks into the network's bridge: it must exist
        // (the reconciler's pass after the network's creation may not have
        // run yet).
        (Some(network), None, Some(plumbing)) => {
            network.ensure_network(plumbing.leg.network_id).await
        }
        _ => Ok(()),
    }
}

/// Applies `cfg`; when a listener's socket cannot be bound and
/// `may_leave_out` allows it, applies it again without that listener (and
/// so on). Returns the version served and the listeners left out, with why.
/// Other refusals, and a bind failure of a listener that may not be left
/// out, refuse the whole configuration as before. With `failover`, each
/// try is a [`DataPlane::fail_over`] (moved where the plane can).
pub async fn apply_leaving_out(
    plane: &dyn DataPlane,
    mut cfg: LbConfig,
    may_leave_out: impl Fn(Uuid) -> bool,
    failover: bool,
) -> Result<(u64, Unbound), DataPlaneError> {
    let mut left_out = Unbound::new();
    loop {
        let sent = Arc::new(cfg.clone());
        let result = if failover {
            plane.fail_over(sent).await
        } else {
            plane.apply(sent).await
        };
        match result {
            Ok(version) => return Ok((version, left_out)),
            Err(DataPlaneError::Bind {
                address,
                reason,
                listener: Some(id),
            }) if may_leave_out(id) && cfg.listeners.iter().any(|l| l.id == id) => {
                tracing::error!(
                    lb = %cfg.lb_id, listener = %id, %address, %reason,
                    "the listener cannot be served (its socket cannot be bound, or its \
                     certificates no longer read): its load balancer is served without it \
                     (operating_status ERROR) and it is tried again later"
                );
                left_out.insert(id, format!("cannot bind {address}: {reason}"));
                cfg.listeners.retain(|l| l.id != id);
            }
            Err(e) => return Err(e),
        }
    }
}

/// One provider's share of a restore, [`RESTORE_PARALLELISM`] at a time;
/// each load balancer's listeners left out, by load balancer.
async fn restore_provider(
    plane: Arc<dyn DataPlane>,
    configs: Vec<LbConfig>,
    network: Option<Arc<NetnsNetwork>>,
    store: Arc<Store>,
) -> Vec<(Uuid, Unbound)> {
    let slots = Arc::new(Semaphore::new(RESTORE_PARALLELISM));
    let mut tasks = JoinSet::new();
    for cfg in configs {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (plane, network, store) = (plane.clone(), network.clone(), store.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let lb_id = cfg.lb_id;
            if let Err(e) = plug(network.as_ref(), &store, &cfg).await {
                tracing::error!(lb = %lb_id, error = %e, "cannot restore");
                return (lb_id, Unbound::new());
            }
            match apply_leaving_out(plane.as_ref(), cfg, |_| true, false).await {
                Ok((version, left_out)) => {
                    tracing::info!(lb = %lb_id, version, unbound = left_out.len(), "restored");
                    (lb_id, left_out)
                }
                Err(e) => {
                    tracing::error!(lb = %lb_id, error = %e, "cannot restore");
                    (lb_id, Unbound::new())
                }
            }
        });
    }
    let mut restored = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(one) => restored.push(one),
            Err(e) => tracing::error!(error = %e, "a restore task failed"),
        }
    }
    restored
}

/// `r` with every listener of `unbound` down.
fn mark_unbound(r: &mut StatusReport, unbound: &Unbound) {
    for id in unbound.keys() {
        match r.listeners.iter_mut().find(|l| l.id == *id) {
            Some(l) => l.state = ListenerState::Down,
            None => r.listeners.push(ListenerReport {
                id: *id,
                state: ListenerState::Down,
                stats: statera_config::Stats::default(),
                epoch: 0,
            }),
        }
    }
}

fn forget_work(txn: &mut Txn, seqs: &[u64]) -> Result<(), StoreError> {
    for seq in seqs {
        txn.delete::<PendingWork>(seq);
    }
    Ok(())
}

/// Add the traffic of `r` since the last report to the stored counters.
///
/// What a data plane's counters add is what they have beyond what was
/// taken in before under the same epoch (kept with the totals, for the last
/// few epochs); under an epoch not kept (another process or agent, counting
/// from zero) all of them. A lower reading under one epoch is a stale
/// report overtaken by a newer one: it adds nothing.
fn record_stats(txn: &mut Txn, r: &StatusReport) -> Result<(), StoreError> {
    for l in &r.listeners {
        // Only the report's own load balancer's listeners count.
        if txn
            .state()
            .listeners
            .get(&l.id)
            .is_none_or(|x| x.loadbalancer_id != r.lb_id)
        {
            continue;
        }
        let old = txn.state().listener_stats.get(&l.id).map(|x| **x);
        // Nothing said of counters (a listener nothing serves): nothing
        // is active on it.
        if l.epoch == 0 && l.stats == statera_config::Stats::default() {
            if let Some(mut st) = old.filter(|st| st.active_connections != 0) {
                st.active_connections = 0;
                txn.put(st)?;
            }
            continue;
        }
        let old = old.unwrap_or(ListenerStats {
            listener_id: l.id,
            loadbalancer_id: r.lb_id,
            ..Default::default()
        });
        let st = take_in(old, l);
        if st != old {
            txn.put(st)?;
        }
    }
    Ok(())
}

/// `old` with what `l`'s counters add to it (see [`record_stats`]).
fn take_in(old: ListenerStats, l: &ListenerReport) -> ListenerStats {
    let prev = old
        .seen
        .iter()
        .find(|s| s.epoch == l.epoch)
        .copied()
        .unwrap_or(SeenCounters {
            epoch: l.epoch,
            ..Default::default()
        });
    let seen = SeenCounters {
        epoch: l.epoch,
        bytes_in: prev.bytes_in.max(l.stats.bytes_in),
        bytes_out: prev.bytes_out.max(l.stats.bytes_out),
        total_connections: prev.total_connections.max(l.stats.total_connections),
        request_errors: prev.request_errors.max(l.stats.request_errors),
    };
    let mut st = old;
    st.bytes_in += seen.bytes_in - prev.bytes_in;
    st.bytes_out += seen.bytes_out - prev.bytes_out;
    st.total_connections += seen.total_connections - prev.total_connections;
    st.request_errors += seen.request_errors - prev.request_errors;
    st.active_connections = l.stats.active_connections;
    st.seen = remember(&old.seen, seen);
    st
}

/// `seen` first, then the other epochs of `kept` by recency (the oldest
/// falls off).
fn remember(
    kept: &[SeenCounters; statera_store::SEEN_EPOCHS],
    seen: SeenCounters,
) -> [SeenCounters; statera_store::SEEN_EPOCHS] {
    let mut out = [SeenCounters::default(); statera_store::SEEN_EPOCHS];
    out[0] = seen;
    for (slot, kept) in out[1..]
        .iter_mut()
        .zip(kept.iter().filter(|k| k.epoch != seen.epoch))
    {
        *slot = *kept;
    }
    out
}

/// Everything that belongs to a load balancer, children first.
fn delete_tree(txn: &mut Txn, lb_id: Uuid) -> Result<(), StoreError> {
    let tree = LbTree::of(txn, lb_id);
    for l in &tree.listeners {
        txn.delete::<ListenerStats>(&l.listener.id);
    }
    for a in &tree.amphorae {
        txn.delete::<Amphora>(&a.id);
    }
    if let Some(lb) = &tree.lb {
        let s: State = txn.state().clone();
        release_vip_port(txn, &s, lb)?;
    }
    tree.walk(&mut Remove(txn))
}

/// Delete the VIP port Statera made, or hand back a port the user brought.
fn release_vip_port(txn: &mut Txn, s: &State, lb: &LoadBalancer) -> Result<(), StoreError> {
    let Some(port) = s.ports.get(&lb.vip_port_id) else {
        return Ok(());
    };
    if port.name == format!("octavia-lb-{}", lb.id) {
        txn.delete::<Port>(&port.id);
        // Floating IPs on the VIP are disassociated, as Neutron does when a
        // port goes (the network driver drops their NAT).
        for fip in s.floating_ips.iter().filter(|f| f.port_id == Some(port.id)) {
            let mut f = (**fip).clone();
            f.port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
            f.updated_at = Some(now());
            txn.put(f)?;
        }
    } else {
        let mut p = (**port).clone();
        p.device_owner.clear();
        p.device_id.clear();
        p.updated_at = Some(now());
        txn.put(p)?;
    }
    Ok(())
}

/// The data plane serves version `served`: settle everything pending.
fn complete(txn: &mut Txn, lb_id: Uuid, served: u64, host: &str) -> Result<(), StoreError> {
    let tree = LbTree::of(txn, lb_id);
    let Some(lb) = &tree.lb else {
        return Ok(());
    };
    let now = now();
    let mut compact_listeners = Vec::new();
    for lt in &tree.listeners {
        let l = &lt.listener;
        let mut policies_removed = false;
        for pt in &lt.policies {
            let p = &pt.policy;
            for r in &pt.rules {
                if r.provisioning_status == ProvisioningStatus::PendingDelete {
                    txn.delete::<L7Rule>(&r.id);
                } else if r.provisioning_status.is_pending() {
                    let mut r = (**r).clone();
                    r.provisioning_status = ProvisioningStatus::Active;
                    r.operating_status = status::admin_operating_status(r.admin_state_up);
                    r.updated_at = Some(now);
                    txn.put(r)?;
                }
            }
            if p.provisioning_status == ProvisioningStatus::PendingDelete {
                txn.delete::<L7Policy>(&p.id);
                policies_removed = true;
            } else if p.provisioning_status.is_pending() {
                let mut p = (**p).clone();
                p.provisioning_status = ProvisioningStatus::Active;
                p.operating_status = status::admin_operating_status(p.admin_state_up);
                p.updated_at = Some(now);
                txn.put(p)?;
            }
        }
        if l.provisioning_status == ProvisioningStatus::PendingDelete {
            txn.delete::<ListenerStats>(&l.id);
            txn.delete::<Listener>(&l.id);
        } else {
            if policies_removed {
                compact_listeners.push(l.id);
            }
            if l.provisioning_status.is_pending() {
                let mut l = (**l).clone();
                l.provisioning_status = ProvisioningStatus::Active;
                if !l.admin_state_up {
                    l.operating_status = OperatingStatus::Offline;
                }
                l.updated_at = Some(now);
                txn.put(l)?;
            }
        }
    }
    for pt in &tree.pools {
        let p = &pt.pool;
        if p.provisioning_status == ProvisioningStatus::PendingDelete {
            pt.walk(&mut Remove(txn))?;
            continue;
        }
        let mut monitored = false;
        for h in &pt.monitors {
            if h.provisioning_status == ProvisioningStatus::PendingDelete {
                txn.delete::<HealthMonitor>(&h.id);
            } else {
                monitored = h.admin_state_up;
                if h.provisioning_status.is_pending() {
                    let mut h = (**h).clone();
                    h.provisioning_status = ProvisioningStatus::Active;
                    h.operating_status = status::admin_operating_status(h.admin_state_up);
                    h.updated_at = Some(now);
                    txn.put(h)?;
                }
            }
        }
        for m in &pt.members {
            if m.provisioning_status == ProvisioningStatus::PendingDelete {
                txn.delete::<Member>(&m.id);
                continue;
            }
            let mut m2 = (**m).clone();
            if m2.provisioning_status.is_pending() {
                m2.provisioning_status = ProvisioningStatus::Active;
                m2.updated_at = Some(now);
            }
            // Until the first health result: NO_MONITOR without a monitor, OFFLINE when disabled.
            if !m2.admin_state_up {
                m2.operating_status = OperatingStatus::Offline;
            } else if !monitored {
                m2.operating_status = if m2.weight == 0 {
                    OperatingStatus::Draining
                } else {
                    OperatingStatus::NoMonitor
                };
            }
            if m2 != **m {
                txn.put(m2)?;
            }
        }
        if p.provisioning_status.is_pending() {
            let mut p = (**p).clone();
            p.provisioning_status = ProvisioningStatus::Active;
            p.updated_at = Some(now);
            txn.put(p)?;
        }
    }
    for lid in compact_listeners {
        let mut rest: Vec<L7Policy> = txn
            .state()
            .l7policies
            .children(lid)
            .map(|p| (**p).clone())
            .collect();
        rest.sort_by_key(|p| p.position);
        for (i, mut p) in rest.into_iter().enumerate() {
            if p.position != i as u32 + 1 {
                p.position = i as u32 + 1;
                txn.put(p)?;
            }
        }
    }
    let mut lb = (**lb).clone();
    lb.provisioning_status = ProvisioningStatus::Active;
    lb.config_version = served;
    if !lb.admin_state_up {
        lb.operating_status = OperatingStatus::Offline;
    }
    lb.updated_at = Some(now);
    if tree.amphorae.is_empty() {
        txn.put(Amphora {
            id: Uuid::new_v4(),
            loadbalancer_id: lb_id,
            role: AmphoraRole::Standalone,
            status: AmphoraStatus::Allocated,
            compute_id: Some(host.to_string()),
            lb_network_ip: Some(lb.vip_address),
            ha_ip: Some(lb.vip_address),
            ha_port_id: Some(lb.vip_port_id),
            cached_zone: lb.availability_zone.clone(),
            image_id: Some(env!("CARGO_PKG_VERSION").to_string()),
            created_at: now,
            updated_at: None,
        })?;
    }
    txn.put(lb)?;
    Ok(())
}

/// Settles each pending object of a refused change: the subjects (and
/// anything being created or deleted) go to ERROR, parents only locked along
/// go back to ACTIVE.
struct Settle<'a> {
    txn: &'a mut Txn,
    subjects: &'a [Uuid],
}

impl Settle<'_> {
    fn status(&self, id: Uuid, st: ProvisioningStatus) -> ProvisioningStatus {
        match st {
            ProvisioningStatus::PendingUpdate if !self.subjects.contains(&id) => {
                ProvisioningStatus::Active
            }
            other => statera_model::status::on_failure(other),
        }
    }
}

impl Visitor for Settle<'_> {
    fn visit<R: Record + Provisioned>(&mut self, id: Uuid, row: &Arc<R>) -> Result<(), StoreError> {
        let st = row.provisioning_status();
        if !st.is_pending() {
            return Ok(());
        }
        let mut o = (**row).clone();
        o.set_provisioning_status(self.status(id, st));
        self.txn.put(o)
    }
}

/// The data plane refused: the objects the change was about (its subjects,
/// and anything being created or deleted) go to ERROR; parents that were
/// only locked along go back to ACTIVE.
fn fail(txn: &mut Txn, lb_id: Uuid, subjects: &[Uuid]) -> Result<(), StoreError> {
    let mut tree = LbTree::of(txn, lb_id);
    let Some(lb) = tree.lb.take() else {
        return Ok(());
    };
    let mut settle = Settle { txn, subjects };
    tree.walk(&mut settle)?;
    let mut lb = (*lb).clone();
    lb.provisioning_status = settle.status(lb.id, lb.provisioning_status);
    lb.operating_status = if lb.provisioning_status == ProvisioningStatus::Error {
        OperatingStatus::Error
    } else {
        lb.operating_status
    };
    lb.updated_at = Some(now());
    txn.put(lb)?;
    Ok(())
}

/// Build the configuration of one load balancer as the controller would.
pub fn config_for(s: &State, lb_id: Uuid) -> Option<LbConfig> {
    s.loadbalancers
        .get(&lb_id)
        .map(|lb| config::build(s, lb, lb.config_version))
}

#[cfg(test)]
mod counter_tests {
    use super::*;

    fn report(epoch: u64, total: u64) -> ListenerReport {
        ListenerReport {
            id: Uuid::nil(),
            state: ListenerState::Open,
            stats: statera_config::Stats {
                total_connections: total,
                bytes_in: 10 * total,
                ..Default::default()
            },
            epoch,
        }
    }

    fn feed(reports: &[(u64, u64)]) -> ListenerStats {
        reports
            .iter()
            .fold(ListenerStats::default(), |st, (epoch, total)| {
                take_in(st, &report(*epoch, *total))
            })
    }

    #[test]
    fn each_run_of_counters_counts_once() {
        // A restarted controller reading the same run again adds nothing.
        assert_eq!(feed(&[(7, 40), (7, 40), (7, 50)]).total_connections, 50);
        // Another run (a failover, a new process) counts from zero.
        assert_eq!(feed(&[(7, 40), (9, 5), (9, 21)]).total_connections, 61);
        // A stale (lower) reading of one run adds nothing.
        assert_eq!(feed(&[(7, 40), (7, 30), (7, 41)]).total_connections, 41);
        assert_eq!(feed(&[(7, 40), (7, 30), (7, 41)]).bytes_in, 410);
    }

    #[test]
    fn an_older_run_reporting_after_a_newer_one_is_not_counted_again() {
        // A handover called off: the new process's run B, then the old A
        // again, then B's late report.
        let st = feed(&[(1, 100), (2, 3), (1, 104), (2, 3), (1, 110)]);
        assert_eq!(st.total_connections, 113);
        // Reports of several runs interleaved (queued reports behind a
        // newer read): each counted once.
        let st = feed(&[(1, 10), (2, 5), (1, 10), (3, 1), (2, 6), (1, 12), (3, 2)]);
        assert_eq!(st.total_connections, 12 + 6 + 2);
    }

    #[test]
    fn the_oldest_run_is_forgotten_past_the_kept_few() {
        let mut reports: Vec<(u64, u64)> = (1..=statera_store::SEEN_EPOCHS as u64)
            .map(|e| (e, 10))
            .collect();
        assert_eq!(feed(&reports).total_connections, 10 * reports.len() as u64);
        // One more run pushes the first out: it would count again.
        reports.push((99, 10));
        let st = feed(&reports);
        assert!(st.seen.iter().all(|s| s.epoch != 1));
        assert!(st.seen.iter().any(|s| s.epoch == 99));
    }
}
