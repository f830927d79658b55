//! Several controllers on one shared (PostgreSQL) store.
//!
//! Until data planes run apart from controllers (agents), a controller's
//! data planes live in its own process, so a load balancer is served by one
//! controller: the one its [`Claim`] names. The claims are rows of the store,
//! written in the same serialised commits as everything else, which gives:
//!
//! - **placement**: work for a load balancer nobody serves yet makes the
//!   controller that sees it first claim it for the least loaded live
//!   controller (fewest claims; ties by name);
//! - **exclusion**: a controller processes only its own load balancers'
//!   work, and every write settling that work checks the claim inside the
//!   transaction (`fence`), so one load balancer is worked on by one
//!   controller at a time and a controller that lost a load balancer cannot
//!   settle it;
//! - **failover**: every controller heartbeats (the database's clock, in a
//!   task of its own so that long work does not silence it); one silent for
//!   longer than the timeout has its heartbeat row locked by a live
//!   controller whose own heartbeats have landed for a whole timeout with `FOR UPDATE SKIP LOCKED` (so two never adopt the
//!   same one), its load balancers claimed again for the least loaded live
//!   controllers, and the row removed. Each controller then serves what it
//!   newly owns (a restore of the last configuration; pending work is
//!   processed as usual) and stops serving what it lost.
//!
//! Nothing acknowledged is lost or done twice: pending work rows stay until
//! the owner's settling write removes them in the same transaction as the
//! statuses, and a configuration applied again is the same whole
//! configuration.

use crate::Controller;
use statera_store::{Claim, State, Store};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a sharing controller heartbeats and looks at claims.
pub const TICK: Duration = Duration::from_millis(500);

/// This controller among others.
#[derive(Debug, Clone)]
pub struct Sharing {
    /// Its name (`--node-id`).
    pub node: String,
    /// How long a controller may stay silent before its load balancers are
    /// adopted.
    pub timeout: Duration,
}

/// Claims per live controller, counted once per write (a placement or an
/// adoption of thousands of load balancers must not count every claim again
/// for each: it runs under the store's write lock).
struct Loads<'a>(BTreeMap<&'a str, usize>);

impl<'a> Loads<'a> {
    fn count(s: &State, live: &'a [String]) -> Loads<'a> {
        let mut load: BTreeMap<&str, usize> = live.iter().map(|c| (c.as_str(), 0)).collect();
        for claim in s.lb_claims.iter() {
            if let Some(n) = load.get_mut(claim.controller.as_str()) {
                *n += 1;
            }
        }
        Loads(load)
    }

    /// The live controller with the fewest claims (ties by name), counted
    /// from now on with one more.
    fn take(&mut self) -> Option<&'a str> {
        let (name, n) = self.0.iter_mut().min_by_key(|(name, n)| (**n, **name))?;
        *n += 1;
        Some(*name)
    }
}

/// Since when a controller's heartbeats have been landing without a miss.
#[derive(Clone, Default)]
pub(crate) struct Beat(Arc<Mutex<Option<Instant>>>);

impl Beat {
    /// Heartbeats once and records the outcome.
    pub(crate) async fn beat(&self, store: &Store, node: &str) {
        let ok = match store.heartbeat(node).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                false
            }
        };
        let mut since = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (ok, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, _) => *since = None,
            (true, Some(_)) => {}
        }
    }

    /// How long heartbeats have been landing, if the last one did.
    pub(crate) fn healthy_for(&self) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }
}

/// A task aborted when its handle is dropped (the heartbeats end with the
/// controller's loop, however that ends).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Heartbeats every [`TICK`] until `shutdown`.
pub(crate) async fn heartbeats(
    store: Arc<Store>,
    node: String,
    beat: Beat,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => beat.beat(&store, &node).await,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

impl Controller {
    fn sharing(&self) -> &Sharing {
        self.sharing.as_ref().expect("only called when sharing")
    }

    /// The live controllers, this one always among them.
    async fn live(&self) -> Option<Vec<String>> {
        let sh = self.sharing();
        match self.store.live_controllers(sh.timeout).await {
            Ok(mut live) => {
                if !live.contains(&sh.node) {
                    live.push(sh.node.clone());
                    live.sort();
                }
                Some(live)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the live controllers");
                None
            }
        }
    }

    /// Claims the load balancers of `lbs` that nobody serves yet for the
    /// least loaded live controllers.
    pub(crate) async fn place(&mut self, lbs: &[Uuid]) {
        let Some(live) = self.live().await else {
            return;
        };
        let placed = self
            .store
            .write(|txn| {
                let mut loads = Loads::count(txn.state(), &live);
                let mut placed = Vec::new();
                for &lb_id in lbs {
                    let s = txn.state();
                    if s.claim_of(lb_id).is_some() || !s.loadbalancers.contains(&lb_id) {
                        continue;
                    }
                    let Some(to) = loads.take() else {
                        break;
                    };
                    placed.push((lb_id, to.to_string()));
                    txn.put(Claim {
                        lb_id,
                        controller: to.to_string(),
                        epoch: 1,
                    })?;
                }
                Ok::<_, statera_store::StoreError>(placed)
            })
            .await;
        match placed {
            Ok(placed) => {
                for (lb, to) in placed {
                    tracing::info!(%lb, controller = %to, "load balancer placed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot place load balancers; will retry"),
        }
    }

    /// One round: heartbeat, adopt the load balancers of silent
    /// controllers, serve what became this controller's and leave what
    /// stopped being its.
    pub(crate) async fn share(&mut self) {
        let sh = self.sharing().clone();
        // Only a controller whose own heartbeats have landed for a whole
        // timeout judges others silent: after the database was away, every
        // controller's heartbeat is old, and none must take the others'
        // load balancers before they had the time to beat again.
        if self.beat.healthy_for() >= Some(sh.timeout) {
            self.adopt().await;
        }
        if let Err(e) = self.store.sync().await {
            tracing::debug!(error = %e, "cannot catch up with the store; keeping what is served");
            return;
        }
        let s = self.store.snapshot();
        // Served here but claimed for another controller (or for nobody:
        // deleted through another): leave it.
        let lost: Vec<Uuid> = self
            .served
            .iter()
            .copied()
            .filter(|lb| !self.owns(&s, *lb))
            .collect();
        for lb in lost {
            tracing::warn!(%lb, "this load balancer is another controller's now: leaving it");
            self.leave(lb).await;
        }
        // Claimed here, settled, and not served yet (pending ones are the
        // work queue's).
        let gained: Vec<Uuid> = s
            .lb_claims
            .iter()
            .filter(|c| c.controller == sh.node && !self.served.contains(&c.lb_id))
            .filter(|c| {
                s.loadbalancers
                    .get(&c.lb_id)
                    .is_some_and(|lb| !lb.provisioning_status.is_pending())
            })
            .map(|c| c.lb_id)
            .collect();
        if !gained.is_empty() {
            tracing::info!(
                count = gained.len(),
                "serving load balancers adopted from another controller"
            );
            self.restore_these(&s, &gained).await;
        }
    }

    /// Claims again, for the live controllers, the load balancers of every
    /// controller silent for longer than the timeout.
    async fn adopt(&mut self) {
        let sh = self.sharing().clone();
        let s = self.store.snapshot();
        let owners: HashSet<&str> = s.lb_claims.iter().map(|c| c.controller.as_str()).collect();
        let Some(live) = self.live().await else {
            return;
        };
        if owners.iter().all(|o| live.iter().any(|l| l == o)) {
            return;
        }
        let dead = match self.store.dead_controllers(&sh.node, sh.timeout).await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for silent controllers");
                return;
            }
        };
        // Silent ones whose row this controller holds, and owners with no
        // heartbeat row at all (placed on a controller just as it was
        // adopted): the serialised write below settles any race on those.
        let adoptable: HashSet<String> = owners
            .iter()
            .filter(|o| !live.iter().any(|l| l == *o))
            .filter(|o| dead.ids.iter().any(|d| d == *o) || !dead.known.iter().any(|k| k == *o))
            .map(|o| o.to_string())
            .collect();
        if adoptable.is_empty() {
            return;
        }
        let moved = self
            .store
            .write(|txn| {
                let mut loads = Loads::count(txn.state(), &live);
                let mut moved = Vec::new();
                let claims: Vec<Claim> = txn
                    .state()
                    .lb_claims
                    .iter()
                    .filter(|c| adoptable.contains(&c.controller))
                    .map(|c| (**c).clone())
                    .collect();
                for claim in claims {
                    let Some(to) = loads.take() else {
                        break;
                    };
                    moved.push((claim.lb_id, claim.controller.clone(), to.to_string()));
                    txn.put(Claim {
                        lb_id: claim.lb_id,
                        controller: to.to_string(),
                        epoch: claim.epoch + 1,
                    })?;
                    // The amphora API shows where the load balancer runs now.
                    let amphorae: Vec<_> = txn
                        .state()
                        .amphorae
                        .children(claim.lb_id)
                        .map(|a| (**a).clone())
                        .collect();
                    for mut amphora in amphorae {
                        amphora.compute_id = Some(to.to_string());
                        amphora.updated_at = Some(statera_model::now());
                        txn.put(amphora)?;
                    }
                }
                Ok::<_, statera_store::StoreError>(moved)
            })
            .await;
        match moved {
            Ok(moved) => {
                for (lb, from, to) in &moved {
                    tracing::warn!(%lb, %from, %to, "controller silent: load balancer failed over");
                }
                if let Err(e) = dead.forget().await {
                    tracing::warn!(error = %e, "cannot forget the silent controllers' heartbeats");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot adopt the silent controllers' load balancers")
            }
        }
    }
}
