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
//! VIPs serve again after a restart.

pub mod config;
pub mod network;

pub use network::NetnsNetwork;
pub mod status;

use statera_config::{DataPlane, LbConfig, StatusReport};
use statera_model::*;
use statera_store::{ListenerStats, PendingWork, State, Store, StoreError, Txn};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// How often counters are collected from the data planes.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

pub struct Controller {
    store: Arc<Store>,
    /// Data planes by provider name.
    planes: HashMap<String, Arc<dyn DataPlane>>,
    reports: mpsc::UnboundedReceiver<StatusReport>,
    /// Last cumulative counters seen per listener, to turn them into deltas.
    last_counters: HashMap<Uuid, statera_config::Stats>,
    /// Name of this host, shown as the amphora's compute_id.
    host: String,
    /// The `netns` network driver, when enabled.
    network: Option<Arc<NetnsNetwork>>,
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
            last_counters: HashMap::new(),
            host,
            network: None,
        }
    }

    /// Plugs load balancers into namespaces with the `netns` driver.
    pub fn with_network(mut self, network: Arc<NetnsNetwork>) -> Controller {
        self.network = Some(network);
        self
    }

    /// `lb`'s config, placed in its namespace (netns driver).
    fn build(&self, s: &State, lb: &LoadBalancer, version: u64) -> LbConfig {
        let mut cfg = config::build(s, lb, version);
        cfg.vip.namespace = self.network.as_ref().and_then(|n| n.namespace_for(s, lb));
        cfg
    }

    /// Makes the kernel hold `cfg`'s namespace before a data plane binds in it.
    async fn plug(&self, cfg: &LbConfig) -> Result<(), String> {
        match (&self.network, &cfg.vip.namespace) {
            (Some(network), Some(_)) => network.plug(&self.store, cfg.lb_id).await,
            _ => Ok(()),
        }
    }

    /// Re-apply every settled load balancer's last configuration (after a
    /// restart). Pending ones are left to the work queue.
    pub async fn restore(&mut self) {
        if let Some(network) = &self.network {
            network.reconcile(&self.store, true).await;
        }
        let s = self.store.snapshot();
        for lb in s.loadbalancers.iter() {
            if lb.provisioning_status.is_pending() {
                continue;
            }
            let Some(plane) = self.planes.get(&lb.provider) else {
                tracing::error!(lb = %lb.id, provider = %lb.provider, "no data plane for provider");
                continue;
            };
            let cfg = self.build(&s, lb, lb.config_version.max(1));
            if let Err(e) = self.plug(&cfg).await {
                tracing::error!(lb = %lb.id, error = %e, "cannot restore");
                continue;
            }
            match plane.apply(Arc::new(cfg)).await {
                Ok(v) => tracing::info!(lb = %lb.id, version = v, "restored"),
                Err(e) => tracing::error!(lb = %lb.id, error = %e, "cannot restore"),
            }
        }
    }

    /// Run until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.restore().await;
        let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
        loop {
            self.drain_work().await;
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
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        self.collect().await;
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
        let Some(lb) = s.loadbalancers.get(&lb_id).cloned() else {
            self.store.write(|txn| forget_work(txn, &seqs)).await?;
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
            self.store
                .write(|txn| {
                    delete_tree(txn, lb_id)?;
                    forget_work(txn, &seqs)
                })
                .await?;
            for l in s.listeners.children(lb_id) {
                self.last_counters.remove(&l.id);
            }
            tracing::info!(lb = %lb_id, "deleted");
            return Ok(());
        }
        let version = lb.config_version + 1;
        let cfg = Arc::new(self.build(&s, &lb, version));
        let result = match &plane {
            Some(plane) => match self.plug(&cfg).await {
                Ok(()) => plane.apply(cfg.clone()).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            None => Err(format!("no data plane for provider '{}'", lb.provider)),
        };
        let host = self.host.clone();
        match result {
            Ok(served) => {
                self.store
                    .write(|txn| {
                        complete(txn, lb_id, served, &host)?;
                        forget_work(txn, &seqs)
                    })
                    .await?;
                tracing::info!(lb = %lb_id, version = served, "applied");
                if let Some(report) = plane.as_ref().and_then(|p| p.report(lb_id)) {
                    self.ingest(vec![report]).await;
                }
            }
            Err(reason) => {
                tracing::error!(lb = %lb_id, %reason, "data plane refused the configuration");
                self.store
                    .write(|txn| {
                        fail(txn, lb_id, &subjects)?;
                        forget_work(txn, &seqs)
                    })
                    .await?;
            }
        }
        Ok(())
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
    pub async fn ingest(&mut self, reports: Vec<StatusReport>) {
        let last = &mut self.last_counters;
        let res = self
            .store
            .write(|txn| {
                for r in &reports {
                    status::apply_report(txn, r)?;
                    record_stats(txn, r, last)?;
                }
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "cannot record status reports");
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
fn record_stats(
    txn: &mut Txn,
    r: &StatusReport,
    last: &mut HashMap<Uuid, statera_config::Stats>,
) -> Result<(), StoreError> {
    for l in &r.listeners {
        if !txn.state().listeners.contains(&l.id) {
            continue;
        }
        // Data planes keep their counters monotonic for as long as they run
        // (and the controller starts afresh with them), so a lower reading is
        // a stale report overtaken by a newer one: it adds nothing.
        let prev = last.get(&l.id).copied().unwrap_or_default();
        let seen = statera_config::Stats {
            bytes_in: prev.bytes_in.max(l.stats.bytes_in),
            bytes_out: prev.bytes_out.max(l.stats.bytes_out),
            active_connections: l.stats.active_connections,
            total_connections: prev.total_connections.max(l.stats.total_connections),
            request_errors: prev.request_errors.max(l.stats.request_errors),
        };
        last.insert(l.id, seen);
        let mut st = txn
            .state()
            .listener_stats
            .get(&l.id)
            .map(|x| **x)
            .unwrap_or(ListenerStats {
                listener_id: l.id,
                loadbalancer_id: r.lb_id,
                ..Default::default()
            });
        let old = st;
        st.bytes_in += seen.bytes_in - prev.bytes_in;
        st.bytes_out += seen.bytes_out - prev.bytes_out;
        st.total_connections += seen.total_connections - prev.total_connections;
        st.request_errors += seen.request_errors - prev.request_errors;
        st.active_connections = l.stats.active_connections;
        if st != old {
            txn.put(st)?;
        }
    }
    Ok(())
}

/// Everything that belongs to a load balancer, children first.
fn delete_tree(txn: &mut Txn, lb_id: Uuid) -> Result<(), StoreError> {
    let s: State = txn.state().clone();
    for l in s.listeners.children(lb_id) {
        for p in s.l7policies.children(l.id) {
            for r in s.l7rules.children(p.id) {
                txn.delete::<L7Rule>(&r.id);
            }
            txn.delete::<L7Policy>(&p.id);
        }
        txn.delete::<ListenerStats>(&l.id);
        txn.delete::<Listener>(&l.id);
    }
    for p in s.pools.children(lb_id) {
        for m in s.members.children(p.id) {
            txn.delete::<Member>(&m.id);
        }
        for h in s.healthmonitors.children(p.id) {
            txn.delete::<HealthMonitor>(&h.id);
        }
        txn.delete::<Pool>(&p.id);
    }
    for a in s.amphorae.children(lb_id) {
        txn.delete::<Amphora>(&a.id);
    }
    if let Some(lb) = s.loadbalancers.get(&lb_id) {
        release_vip_port(txn, &s, lb)?;
    }
    txn.delete::<LoadBalancer>(&lb_id);
    Ok(())
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
    let s: State = txn.state().clone();
    let Some(lb) = s.loadbalancers.get(&lb_id) else {
        return Ok(());
    };
    let now = now();
    let mut compact_listeners = Vec::new();
    for l in s.listeners.children(lb_id) {
        let mut policies_removed = false;
        for p in s.l7policies.children(l.id) {
            for r in s.l7rules.children(p.id) {
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
    for p in s.pools.children(lb_id) {
        if p.provisioning_status == ProvisioningStatus::PendingDelete {
            for m in s.members.children(p.id) {
                txn.delete::<Member>(&m.id);
            }
            for h in s.healthmonitors.children(p.id) {
                txn.delete::<HealthMonitor>(&h.id);
            }
            txn.delete::<Pool>(&p.id);
            continue;
        }
        let mut monitored = false;
        for h in s.healthmonitors.children(p.id) {
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
        for m in s.members.children(p.id) {
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
    if s.amphorae.children(lb_id).next().is_none() {
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
            created_at: now,
            updated_at: None,
        })?;
    }
    txn.put(lb)?;
    Ok(())
}

/// The data plane refused: the objects the change was about (its subjects,
/// and anything being created or deleted) go to ERROR; parents that were
/// only locked along go back to ACTIVE.
fn fail(txn: &mut Txn, lb_id: Uuid, subjects: &[Uuid]) -> Result<(), StoreError> {
    let s: State = txn.state().clone();
    let Some(lb) = s.loadbalancers.get(&lb_id) else {
        return Ok(());
    };
    let settle = |id: Uuid, st: ProvisioningStatus| match st {
        ProvisioningStatus::PendingUpdate if !subjects.contains(&id) => ProvisioningStatus::Active,
        other => statera_model::status::on_failure(other),
    };
    macro_rules! settle_all {
        ($iter:expr) => {
            for o in $iter {
                if o.provisioning_status.is_pending() {
                    let mut o = (**o).clone();
                    o.provisioning_status = settle(o.id, o.provisioning_status);
                    txn.put(o)?;
                }
            }
        };
    }
    for l in s.listeners.children(lb_id) {
        for p in s.l7policies.children(l.id) {
            settle_all!(s.l7rules.children(p.id));
        }
        settle_all!(s.l7policies.children(l.id));
    }
    settle_all!(s.listeners.children(lb_id));
    for p in s.pools.children(lb_id) {
        settle_all!(s.members.children(p.id));
        settle_all!(s.healthmonitors.children(p.id));
    }
    settle_all!(s.pools.children(lb_id));
    let mut lb = (**lb).clone();
    lb.provisioning_status = settle(lb.id, lb.provisioning_status);
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
