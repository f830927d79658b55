//! One change at a time per load balancer: locking it, marking the parents a
//! change goes through, and cascading a delete down its tree.

use crate::error::{ServiceError, ServiceResult};
use crate::store::{StoreRead, StoreWrite};
use crate::tree::{LbTree, ListenerTree, MarkDeleted, PolicyTree, PoolTree};
use statera_model::*;
use statera_store::Record;
use std::sync::Arc;
use uuid::Uuid;

/// A load balancer by id, or 404 `Load Balancer <id> not found.`.
pub fn load_balancer(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<LoadBalancer>> {
    s.get(&id)
        .ok_or_else(|| ServiceError::not_found("Load Balancer", id))
}

/// Lock a load balancer for a change to one of its children: it must be
/// ACTIVE (409 otherwise); it goes PENDING_UPDATE and the controller is owed
/// work about `subjects` (the objects the change is about, as opposed to
/// parents only locked along).
pub fn lock_lb(txn: &mut impl StoreWrite, lb_id: Uuid, subjects: &[Uuid]) -> ServiceResult<()> {
    let lb = load_balancer(txn, lb_id)?;
    if !status::accepts_changes(lb.provisioning_status) {
        return Err(ServiceError::immutable(
            "Load Balancer",
            lb_id,
            lb.provisioning_status,
        ));
    }
    let mut lb = (*lb).clone();
    lb.provisioning_status = ProvisioningStatus::PendingUpdate;
    lb.updated_at = Some(now());
    txn.put(lb)?;
    txn.enqueue(lb_id, subjects)?;
    Ok(())
}

/// Set a listener PENDING_UPDATE (as a parent of the change).
pub fn touch_listener(txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    if let Some(l) = txn.get::<Listener>(&id) {
        let mut l = (*l).clone();
        if !l.provisioning_status.is_pending() {
            l.provisioning_status = ProvisioningStatus::PendingUpdate;
        }
        l.updated_at = Some(now());
        txn.put(l)?;
    }
    Ok(())
}

/// Listeners of load balancer `lb_id` whose default pool is `pool_id`.
pub fn listeners_using_pool(s: &impl StoreRead, lb_id: Uuid, pool_id: Uuid) -> Vec<Arc<Listener>> {
    let mut listeners = s.children::<Listener>(lb_id);
    listeners.retain(|l| l.default_pool_id == Some(pool_id));
    listeners
}

/// Set a pool and every listener using it PENDING_UPDATE (as parents of the change).
pub fn touch_pool(txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let Some(p) = txn.get::<Pool>(&id) else {
        return Ok(());
    };
    let listeners = listeners_using_pool(txn, p.loadbalancer_id, id);
    let mut p = (*p).clone();
    if !p.provisioning_status.is_pending() {
        p.provisioning_status = ProvisioningStatus::PendingUpdate;
    }
    p.updated_at = Some(now());
    txn.put(p)?;
    for l in listeners {
        touch_listener(txn, l.id)?;
    }
    Ok(())
}

/// A pool that a member or monitor change goes through: it must be ACTIVE.
pub fn pool_for_change(s: &impl StoreRead, pool_id: Uuid) -> ServiceResult<Arc<Pool>> {
    let pool = s
        .get::<Pool>(&pool_id)
        .ok_or_else(|| ServiceError::not_found("Pool", pool_id))?;
    if pool.provisioning_status != ProvisioningStatus::Active {
        let lb_status = s
            .get::<LoadBalancer>(&pool.loadbalancer_id)
            .map(|lb| lb.provisioning_status)
            .filter(|st| st.is_pending());
        return Err(match lb_status {
            Some(st) => ServiceError::immutable("Load Balancer", pool.loadbalancer_id, st),
            None => ServiceError::immutable("Pool", pool_id, pool.provisioning_status),
        });
    }
    Ok(pool)
}

/// An L7 policy and its rules → PENDING_DELETE.
pub fn mark_policy_deleted(txn: &mut impl StoreWrite, policy_id: Uuid) -> ServiceResult<()> {
    if let Some(tree) = PolicyTree::of(txn, policy_id) {
        tree.walk(&mut MarkDeleted(txn))?;
    }
    Ok(())
}

/// A listener, its policies and their rules → PENDING_DELETE.
pub fn mark_listener_deleted(txn: &mut impl StoreWrite, listener_id: Uuid) -> ServiceResult<()> {
    if let Some(tree) = ListenerTree::of(txn, listener_id) {
        tree.walk(&mut MarkDeleted(txn))?;
    }
    Ok(())
}

/// A pool, its members and its monitor → PENDING_DELETE.
pub fn mark_pool_deleted(txn: &mut impl StoreWrite, pool_id: Uuid) -> ServiceResult<()> {
    if let Some(tree) = PoolTree::of(txn, pool_id) {
        tree.walk(&mut MarkDeleted(txn))?;
    }
    Ok(())
}

/// A load balancer and everything under it → PENDING_DELETE (the load
/// balancer's `updated_at` stamped).
pub fn mark_tree_deleted(txn: &mut impl StoreWrite, lb_id: Uuid) -> ServiceResult<()> {
    LbTree::of(txn, lb_id).walk(&mut MarkDeleted(txn))?;
    touch_updated::<LoadBalancer>(txn, &lb_id, |lb| lb.updated_at = Some(now()))
}

/// Stamp `updated_at` on the object just marked (the one the user deleted).
pub fn touch_updated<R: Record>(
    txn: &mut impl StoreWrite,
    key: &R::Key,
    stamp: impl FnOnce(&mut R),
) -> ServiceResult<()> {
    if let Some(row) = txn.get::<R>(key) {
        let mut row = (*row).clone();
        stamp(&mut row);
        txn.put(row)?;
    }
    Ok(())
}
