//! The load-balancer tree, walked once: every object under a load balancer,
//! by kind. The controller's completion, failure and removal paths and the
//! API's delete marking (a policy, a listener, a pool, a whole load
//! balancer) all read it from here.
//!
//! ```text
//! LoadBalancer ─┬─ Listener ── L7Policy ── L7Rule
//!               ├─ Pool ─┬─ Member
//!               │        └─ HealthMonitor
//!               └─ Amphora
//! ```

use crate::store::{StoreRead, StoreWrite};
use statera_model::status::Provisioned;
use statera_model::*;
use statera_store::{Record, StoreError};
use std::sync::Arc;
use uuid::Uuid;

/// An L7 policy and its rules.
#[derive(Debug, Clone)]
pub struct PolicyTree {
    pub policy: Arc<L7Policy>,
    pub rules: Vec<Arc<L7Rule>>,
}

/// A listener and its L7 policies.
#[derive(Debug, Clone)]
pub struct ListenerTree {
    pub listener: Arc<Listener>,
    pub policies: Vec<PolicyTree>,
}

/// A pool, its members and its monitor (at most one).
#[derive(Debug, Clone)]
pub struct PoolTree {
    pub pool: Arc<Pool>,
    pub members: Vec<Arc<Member>>,
    pub monitors: Vec<Arc<HealthMonitor>>,
}

/// Everything under one load balancer (the load balancer itself when it
/// exists), each level in key order.
#[derive(Debug, Clone)]
pub struct LbTree {
    pub lb: Option<Arc<LoadBalancer>>,
    pub listeners: Vec<ListenerTree>,
    pub pools: Vec<PoolTree>,
    pub amphorae: Vec<Arc<Amphora>>,
}

/// Something done to each provisioned object of a tree (`id` is its id),
/// whatever its kind.
pub trait Visitor {
    fn visit<R: Record + Provisioned>(&mut self, id: Uuid, row: &Arc<R>) -> Result<(), StoreError>;
}

impl PolicyTree {
    fn under(s: &impl StoreRead, policy: Arc<L7Policy>) -> PolicyTree {
        PolicyTree {
            rules: s.children(policy.id),
            policy,
        }
    }

    pub fn of(s: &impl StoreRead, policy_id: Uuid) -> Option<PolicyTree> {
        Some(PolicyTree::under(s, s.get(&policy_id)?))
    }

    /// Children first: the rules, then the policy.
    pub fn walk(&self, v: &mut impl Visitor) -> Result<(), StoreError> {
        for r in &self.rules {
            v.visit(r.id, r)?;
        }
        v.visit(self.policy.id, &self.policy)
    }
}

impl ListenerTree {
    fn under(s: &impl StoreRead, listener: Arc<Listener>) -> ListenerTree {
        ListenerTree {
            policies: s
                .children(listener.id)
                .into_iter()
                .map(|p| PolicyTree::under(s, p))
                .collect(),
            listener,
        }
    }

    pub fn of(s: &impl StoreRead, listener_id: Uuid) -> Option<ListenerTree> {
        Some(ListenerTree::under(s, s.get(&listener_id)?))
    }

    /// Children first: each policy's rules and the policy, then the listener.
    pub fn walk(&self, v: &mut impl Visitor) -> Result<(), StoreError> {
        for p in &self.policies {
            p.walk(v)?;
        }
        v.visit(self.listener.id, &self.listener)
    }
}

impl PoolTree {
    fn under(s: &impl StoreRead, pool: Arc<Pool>) -> PoolTree {
        PoolTree {
            members: s.children(pool.id),
            monitors: s.children(pool.id),
            pool,
        }
    }

    pub fn of(s: &impl StoreRead, pool_id: Uuid) -> Option<PoolTree> {
        Some(PoolTree::under(s, s.get(&pool_id)?))
    }

    /// Children first: members, the monitor, then the pool.
    pub fn walk(&self, v: &mut impl Visitor) -> Result<(), StoreError> {
        for m in &self.members {
            v.visit(m.id, m)?;
        }
        for h in &self.monitors {
            v.visit(h.id, h)?;
        }
        v.visit(self.pool.id, &self.pool)
    }
}

impl LbTree {
    pub fn of(s: &impl StoreRead, lb_id: Uuid) -> LbTree {
        LbTree {
            lb: s.get(&lb_id),
            listeners: s
                .children(lb_id)
                .into_iter()
                .map(|l| ListenerTree::under(s, l))
                .collect(),
            pools: s
                .children(lb_id)
                .into_iter()
                .map(|p| PoolTree::under(s, p))
                .collect(),
            amphorae: s.children(lb_id),
        }
    }

    /// Whether anything a user made hangs under the load balancer.
    pub fn has_children(&self) -> bool {
        !self.listeners.is_empty() || !self.pools.is_empty()
    }

    /// Children first: every listener's tree, every pool's tree, then the
    /// load balancer (amphorae are not provisioned objects and not visited).
    pub fn walk(&self, v: &mut impl Visitor) -> Result<(), StoreError> {
        for l in &self.listeners {
            l.walk(v)?;
        }
        for p in &self.pools {
            p.walk(v)?;
        }
        if let Some(lb) = &self.lb {
            v.visit(lb.id, lb)?;
        }
        Ok(())
    }
}

/// Puts every visited object in PENDING_DELETE (the API's delete marking).
pub struct MarkDeleted<'t, T: StoreWrite>(pub &'t mut T);

impl<T: StoreWrite> Visitor for MarkDeleted<'_, T> {
    fn visit<R: Record + Provisioned>(&mut self, _: Uuid, row: &Arc<R>) -> Result<(), StoreError> {
        let mut row = (**row).clone();
        row.set_provisioning_status(ProvisioningStatus::PendingDelete);
        self.0.put(row)
    }
}

/// Removes every visited object (the controller's removal of a deleted tree).
pub struct Remove<'t, T: StoreWrite>(pub &'t mut T);

impl<T: StoreWrite> Visitor for Remove<'_, T> {
    fn visit<R: Record + Provisioned>(&mut self, _: Uuid, row: &Arc<R>) -> Result<(), StoreError> {
        self.0.delete::<R>(&row.key());
        Ok(())
    }
}
